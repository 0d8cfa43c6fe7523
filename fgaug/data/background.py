"""Files written on background threads while the next sample or layout is made.

Encoding PNGs can take longer than making what they hold: one 1024x2048 photo, a Cityscapes
sample at its mask's native size, takes 0.1-0.15 s to encode (:data:`fgaug.data.io.PNG_ENCODING`;
0.25-0.4 s with Pillow at level 4, as before) on one core of an AVX2 EPYC, while an H100 draws
256x512 samples at up to 261 per second, and ``layouts --photos`` spent half its time encoding a
layout's photo and four label files. Written in the loop, one after the other, the files set the
pace and the accelerator (or the other cores) wait. OpenCV releases the GIL while it encodes, so
``threads`` threads encode ``threads`` items at once, beside the loop.

:class:`BackgroundWrites` takes a run's writes (``generate``'s :meth:`DatasetWriter.write` calls,
``layouts``' label files and photo) and runs them on its threads, with at most ``2 * threads``
waiting (a bounded memory). A write may have a follow-up, run in the caller's thread in the order
the writes were submitted once its write is done: ``layouts`` appends its manifest line there, so
``layouts.jsonl`` is the same whatever the threads. A write's error is raised by the
:meth:`~BackgroundWrites.submit` that waits for that write (up to ``2 * threads`` items later) or
at the end of the ``with`` block. When the block ends by an error or an interrupt, the writes
under way finish, the waiting ones are dropped, no follow-up runs, and the error goes on: every
file is written atomically and an item's manifest line follows its files, so a rerun makes exactly
the items that have no line. With ``threads=0`` every write runs in the caller, as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

import torch

MAX_WRITE_THREADS = 8
"""Enough to keep up with an H100's sampling at 256x512 without filling a large machine."""


def write_threads() -> int:
    """Threads to write on: the process's CPU threads (its share of the cores), up to
    :data:`MAX_WRITE_THREADS`. On CUDA they are idle while the GPU draws. On a 2-core AVX2 EPYC,
    drawing with the demo model on the CPU (``benchmarks/write_threads.py``, against writes in the
    drawing loop): 1.58x as fast with masks of 1024x2048, 1.23x at 256x512, and 0.98x at the toy
    world's 64x128, where the drawing sets the pace; one thread was no faster at any size."""
    return min(torch.get_num_threads(), MAX_WRITE_THREADS)


class BackgroundWrites:
    """Writes run on ``threads`` background threads, their follow-ups in order (see the module)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="fgaug-write") if threads > 0 else None
        self._pending: deque[tuple[Future[object], Callable[[], object] | None]] = deque()

    def submit(self, write: Callable[..., object], *arguments: Any, then: Callable[[], object] | None = None) -> None:
        """Run ``write(*arguments)`` now or on a background thread, and ``then()`` after it, in the
        caller's thread and in submission order; raises the error of an earlier write that failed,
        once it waits for it."""
        if self._pool is None:
            write(*arguments)
            if then is not None:
                then()
            return
        while len(self._pending) >= 2 * self.threads:
            self._finish_oldest()
        self._pending.append((self._pool.submit(write, *arguments), then))

    def _finish_oldest(self) -> None:
        future, then = self._pending.popleft()
        future.result()
        if then is not None:
            then()

    def __enter__(self) -> BackgroundWrites:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._pool is None:
            return
        try:
            if kind is None:
                while self._pending:
                    self._finish_oldest()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
