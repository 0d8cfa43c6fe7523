"""The ``fgaug`` command and ``python -m fgaug``.

SIGTERM is made an interrupt before the CLI's modules load (about 0.2 s of Typer, rich and the
commands), so a job cancelled in that time exits 130 with its one line, as it does later
(:mod:`fgaug.interrupts`); only Python's own start-up is left to end with 143.
"""

from __future__ import annotations

import json
import sys

from fgaug.interrupts import EXIT_INTERRUPTED, LAST_SIGNAL, interrupt_on_sigterm


def main() -> None:
    interrupt_on_sigterm()
    try:
        from fgaug.cli import main as run_command
    except KeyboardInterrupt as interrupt:  # while the CLI's modules load: nothing of them to print with
        message = f"interrupted by {str(interrupt) or LAST_SIGNAL[0] or 'SIGINT'}"
        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": message, "exit_code": EXIT_INTERRUPTED}), flush=True)
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    run_command()


if __name__ == "__main__":
    main()
