"""Usage errors: an option's value, or a combination of options, that cannot mean anything.

The API raises :class:`UsageError` naming the command-line option (``--temp must be >= 0``), so a
Python caller catches it as the ``ValueError`` it is, and the CLI prints it as one line and exits
2, as it does for a malformed option. Input that is wrong (a missing file, a corrupt mask) is a
``DataError`` instead: exit 1.
"""

from __future__ import annotations

from fgaug.errors import FgaugError


class UsageError(FgaugError, ValueError):
    """An option's value, or a combination of options, is invalid (the CLI's exit code 2)."""
