"""How a training run stops: on a stop signal, which the trainer handles (saving a checkpoint) and
its data workers leave to it, and on an error in a data worker, which comes back with its own
message and stops the workers before it ends the run.
"""

from __future__ import annotations

import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch.utils.data import DataLoader

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C and a cancelled job's signal: the trainer saves a checkpoint and stops."""


@contextmanager
def stop_requests() -> Iterator[Callable[[], str | None]]:
    """While active, SIGINT/SIGTERM only request a stop (checked between steps); a second SIGINT
    interrupts at once."""
    requested: dict[str, str] = {}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def handler(signum: int, frame: object) -> None:
        if "signal" in requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested["signal"] = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield lambda: requested.get("signal")
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """In a data worker: ignore SIGINT and SIGTERM. Ctrl-C, a cancelled CI job or ``kill -- -PGID``
    signal the whole process group; a worker that died of it would make the loader raise in the
    trainer before the trainer's own handler could save its checkpoint. The trainer stops its
    workers itself (:func:`batches_of`), and a worker whose trainer is gone exits (torch's watchdog).

    The worker is forked with both signals blocked (:func:`batches_of`), so one sent before this
    runs stays pending and is discarded here, not delivered to the handler torch installs at the
    worker's start, which re-raises SIGTERM with its default action."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def batches_of(loader: DataLoader) -> Iterator[Any]:
    """Iterate ``loader``, forking its workers (if any) with the stop signals blocked. A signal that
    arrives meanwhile reaches the trainer once they are unblocked, right after the fork (the mask is
    the calling thread's, which is what a forked worker inherits). Errors while iterating stop the
    workers (:func:`_stopping_workers_on_error`)."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        batches = iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return _stopping_workers_on_error(batches)


def _stopping_workers_on_error(batches: Iterator[Any]) -> Iterator[Any]:
    """``batches``, and on any error while drawing them: the workers stopped, and an error of a
    worker given its own message (:func:`worker_message`).

    torch stops the workers when their iterator is freed, but the error's traceback holds the
    iterator (in the frames of torch's ``_next_data``), and it can live until the process exits.
    There, ``multiprocessing`` ends the workers with SIGTERM, which they ignore
    (:func:`leave_stop_signals_to_the_trainer`), and waits for them for ever: ``fgaug train
    --workers 2`` on a tree with one bad mask hung after printing its error. So the traceback's
    finished frames are cleared (their line numbers stay) and the iterator is freed here."""
    try:
        yield from batches
    except BaseException as error:
        del batches
        traceback.clear_frames(error.__traceback__)
        message = worker_message(error)
        if message is None:
            raise
        raise type(error)(message) from None


def worker_message(error: BaseException) -> str | None:
    """The message of an error raised in a data worker, which torch raises again in the trainer as
    "Caught DataError in DataLoader worker process 0. Original Traceback (...)", ending with the
    original "fgaug.data.io.DataError: <message>"; None for an error of the trainer itself."""
    text = str(error)
    if not text.startswith(f"Caught {type(error).__name__} in DataLoader worker process"):
        return None
    name = type(error).__qualname__
    prefix = name if type(error).__module__ == "builtins" else f"{type(error).__module__}.{name}"
    _, found, message = text.rpartition(f"{prefix}: ")
    return message.strip() if found and message.strip() else None
