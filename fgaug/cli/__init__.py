"""The ``fgaug`` command: a thin layer that parses options, calls :mod:`fgaug.api` and prints.

Exit codes: 0 success, 1 bad input or a failed run (one line on stderr naming the file and the
problem; also a device this machine lacks, and an output tree made with other settings), 2 usage
errors (a malformed or out-of-range option value, options that cannot be combined, no model named:
one line naming the option), 3 ``generate`` left requested samples unwritten (beyond
``--allow-failed``), 130 stopped by Ctrl-C or SIGTERM (training saves a checkpoint first; finished
outputs are kept).
"""

from __future__ import annotations

import importlib
import sys

from fgaug.cli.app import app
from fgaug.cli.common import unannounced_interrupt
from fgaug.interrupts import EXIT_INTERRUPTED, LAST_SIGNAL, interrupt_on_sigterm

COMMAND_MODULES = ("train", "generate", "data", "info", "evaluate")
"""Each registers its commands on :data:`app` when imported; ``--help`` lists them in this order."""
for module in COMMAND_MODULES:
    importlib.import_module(f"fgaug.cli.{module}")


def main() -> None:
    interrupt_on_sigterm()
    try:
        app(prog_name="fgaug")
    except KeyboardInterrupt as interrupt:  # while Typer built the commands, before any handling of its own
        LAST_SIGNAL[0] = str(interrupt)
        unannounced_interrupt(EXIT_INTERRUPTED, sys.argv[1:])
        raise SystemExit(EXIT_INTERRUPTED) from None
    except SystemExit as stop:
        unannounced_interrupt(stop.code, sys.argv[1:])
        raise


if __name__ == "__main__":
    main()
