"""Samples written on background threads while the next batch is drawn.

Encoding a sample's PNGs can take longer than drawing it: one 1024x2048 photo, a Cityscapes
sample at its mask's native size, takes 0.29 s to encode at compression level 4 on one core of an
AVX2 EPYC, while an H100 draws 256x512 samples at up to 261 per second. Written in the drawing
loop, one after the other, the files set the pace of ``generate`` and the accelerator waits.
zlib and PIL's encoder release the GIL, so ``threads`` threads encode ``threads`` samples at once,
beside the drawing.

:class:`BackgroundWriter` takes the :meth:`DatasetWriter.write` calls of a run and runs them on
its threads, with at most ``2 * threads`` waiting (a bounded memory). A write's error is raised
by the :meth:`~BackgroundWriter.submit` that waits for that write (up to ``2 * threads`` samples
later) or at the end of the ``with`` block. When the block
ends by an error or an interrupt, the writes under way finish, the waiting ones are dropped, and
the error goes on: every file is written atomically and a sample's manifest line follows its
files, so a rerun draws exactly the samples that have no line. With ``threads=0`` every write
runs in the caller, as before.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

import numpy as np
import torch

from fgaug.data.cityscapes import Group
from fgaug.data.writer import DatasetWriter

MAX_WRITE_THREADS = 8
"""Enough to keep up with an H100's sampling at 256x512 without filling a large machine."""


def write_threads() -> int:
    """Threads to write samples on: the process's CPU threads (its share of the cores), up to
    :data:`MAX_WRITE_THREADS`. On CUDA they are idle while the GPU draws. On a 2-core AVX2 EPYC,
    drawing with the demo model on the CPU (``benchmarks/write_threads.py``, against writes in the
    drawing loop): 1.58x as fast with masks of 1024x2048, 1.23x at 256x512, and 0.98x at the toy
    world's 64x128, where the drawing sets the pace; one thread was no faster at any size."""
    return min(torch.get_num_threads(), MAX_WRITE_THREADS)


class BackgroundWriter:
    """:meth:`DatasetWriter.write` calls run on ``threads`` background threads (see the module)."""

    def __init__(self, writer: DatasetWriter, threads: int) -> None:
        self.writer = writer
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="fgaug-write") if threads > 0 else None
        self._pending: deque[Future[dict[str, str]]] = deque()

    def submit(
        self, group: Group, index: int, photo: np.ndarray, metadata: dict, extra: dict[str, np.ndarray] | None = None
    ) -> None:
        """Write sample ``index`` of ``group`` as :meth:`DatasetWriter.write` does, now or on a
        background thread; raises the error of an earlier write that failed, once it waits for it."""
        if self._pool is None:
            self.writer.write(group, index, photo, metadata, extra)
            return
        while len(self._pending) >= 2 * self.threads:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self.writer.write, group, index, photo, metadata, extra))

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._pool is None:
            return
        try:
            if kind is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
