"""SIGTERM stops a command as Ctrl-C does, from the command's first moment.

A cancelled CI job, ``timeout`` or ``kill`` sends SIGTERM, whose default action ends Python at
once with exit 143: no ``finally`` block runs (a temporary file stays beside an output, a
command stays in the core-sharing registry) and no line says why. The ``fgaug`` command installs
this handler before it loads the CLI's modules (:mod:`fgaug.__main__`), so only a signal in
Python's own start-up still ends it with 143.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

EXIT_INTERRUPTED = 130
"""The exit code of a command stopped by SIGTERM or Ctrl-C."""


LAST_SIGNAL = [""]
"""The signal :func:`interrupt_on_sigterm`'s handler last turned into an interrupt ('' for none:
Ctrl-C's default handler names none)."""


REDELIVERY_DELAY_SECONDS = 0.01
"""How long after an interrupt was dropped in a callback it is delivered again."""


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (a cancelled CI job, ``timeout``, ``kill``) stop a command as Ctrl-C does: its
    ``finally`` blocks run (no temporary file is left beside an output, the command leaves the
    core-sharing registry) and it exits 130 with one line, instead of dying at once with 143.
    ``fgaug train`` handles both signals itself while it trains (it saves a checkpoint first).

    An interrupt that arrives while Python runs a finaliser or a weakref callback (h5py closes its
    objects from those) is raised there, printed as "Exception ignored" and dropped, and the
    command ran on to exit 0: `prepare` did so in 2 of 4 tries. Such a dropped interrupt is now
    delivered again, at the main thread's next instruction (:func:`_redeliver_dropped_interrupts`).
    Called again, it installs what something else replaced since, and nothing twice."""
    if signal.getsignal(signal.SIGTERM) is not _interrupt:
        signal.signal(signal.SIGTERM, _interrupt)
    if not getattr(sys.unraisablehook, "redelivers_interrupts", False):
        sys.unraisablehook = _redeliver_dropped_interrupts(sys.unraisablehook)


def _interrupt(signum: int, frame: object) -> None:
    LAST_SIGNAL[0] = signal.Signals(signum).name
    raise KeyboardInterrupt(LAST_SIGNAL[0])


def _redeliver_dropped_interrupts(hook: Callable[[Any], object]) -> Callable[[Any], object]:
    """An unraisable-exception hook that, for a dropped interrupt, simulates its signal again
    (SIGTERM where the interrupt came from :func:`interrupt_on_sigterm`, SIGINT otherwise) and
    passes every other exception to ``hook``. The signal is simulated a moment later, from a
    timer thread: simulated at once its handler would run inside the hook and be dropped again.
    Should it land in a callback again, it is delivered once more."""

    def redeliver(unraisable: Any) -> object:
        interrupt = unraisable.exc_value
        if not isinstance(interrupt, KeyboardInterrupt):
            return hook(unraisable)
        signum = signal.SIGTERM if str(interrupt) == "SIGTERM" else signal.SIGINT
        timer = threading.Timer(REDELIVERY_DELAY_SECONDS, _thread.interrupt_main, args=(signum,))
        timer.daemon = True
        timer.start()
        return None

    redeliver.redelivers_interrupts = True  # type: ignore[attr-defined]
    return redeliver
