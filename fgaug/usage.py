"""Usage errors: an option's value, or a combination of options, that cannot mean anything.

The API raises :class:`UsageError` naming the command-line option (``--temp must be >= 0``), so a
Python caller catches it as the ``ValueError`` it is, and the CLI prints it as one line and exits
2, as it does for a malformed option. Input that is wrong (a missing file, a corrupt mask) is a
``DataError`` instead: exit 1.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

from fgaug.errors import FgaugError


class UsageError(FgaugError, ValueError):
    """An option's value, or a combination of options, is invalid (the CLI's exit code 2)."""


def require_at_least(option: str, value: float | None, low: float) -> None:
    """Refuse ``value`` below ``low`` with a :class:`UsageError` naming the command-line
    ``option`` (``--samples must be at least 1, got 0``); ``None`` (a default) passes."""
    if value is not None and value < low:
        raise UsageError(f"{option} must be at least {low:g}, got {value:g}")


def require_positive(option: str, value: float | None) -> None:
    """Refuse ``value`` of 0 or below (``--lr must be above 0, got -1``); ``None`` passes."""
    if value is not None and not value > 0:
        raise UsageError(f"{option} must be above 0, got {value:g}")


def whole_number(option: str, value: object) -> int:
    """``value`` as an ``int`` (a NumPy integer included); a float, a bool or anything else is a
    :class:`UsageError` naming ``option``: a seed of 3.5 would give a look no command can repeat."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{option} takes whole numbers, got {value!r}")
    return int(value)


def require_counts(counts: Mapping[str, tuple[object, int]]) -> None:
    """Each option's value (``{option: (value, low)}``) a whole number of at least ``low``, else a
    :class:`UsageError` naming the option; ``None`` (a default) passes."""
    for option, (value, low) in counts.items():
        require_at_least(option, None if value is None else whole_number(option, value), low)


def image_size(option: str, value: object) -> tuple[int, int]:
    """``value`` as (height, width) in pixels: two whole numbers of at least 1 (a list read from
    JSON included); anything else is a :class:`UsageError` naming ``option``."""
    sides = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []
    whole = all(isinstance(side, numbers.Integral) and not isinstance(side, bool) for side in sides)
    if len(sides) != 2 or not whole or min(sides) < 1:
        raise UsageError(f"{option} takes (height, width) in pixels, two whole numbers of at least 1, got {value!r}")
    return int(sides[0]), int(sides[1])
