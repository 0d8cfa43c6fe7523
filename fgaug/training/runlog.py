"""What a training run records for people to read and look at, in its run folder:

* ``metrics.jsonl``: one JSON line per logged step and per validation (the record machines read);
* ``results.png``: training and validation bits/dim, learning rate, images/s and gradient norm
  against the step, redrawn at a validation when the last drawing is :data:`REDRAW_SECONDS` old
  or older, and when the run stops (as ultralytics' ``results.png``; a drawing takes 0.3-0.7 s);
* ``tensorboard/``: the same scalars and the sample grids as TensorBoard events, when the
  ``tensorboard`` package is installed (``pip install "fgaug[tensorboard]"``) and not switched off.

Only the main process of a torchrun job keeps a log; the others get a :class:`RunLog` that writes
nothing.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from fgaug.data.io import DataError, atomic_write_bytes, first_line
from fgaug.data.plots import training_plot
from fgaug.finite import to_json
from fgaug.runtime import RuntimeChoiceError

TENSORBOARD_SCALARS = ("loss", "bpd", "source_bpd", "lr", "grad_norm", "images_per_s")
REDRAW_SECONDS = 30.0
"""``results.png`` is a picture for people, who look at it at most every half minute; a run that
validates more often than that redraws it no more often."""


RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "results.png",
    "checkpoints/last.pt",
    "checkpoints/best.pt",
    "samples/step_*.png",
    "tensorboard/events.out.tfevents.*",
    ".*.part",
    "*/.*.part",
)
"""What a training run writes in its run folder (docs/training.md), and the temporaries of its
atomic writes: what ``--exist-ok`` removes."""
RUN_FOLDERS = ("checkpoints", "samples", "tensorboard")


def clear_run_folder(run_dir: Path) -> None:
    """Remove an earlier run's files from ``run_dir`` before a new run starts there (``--exist-ok``):
    its checkpoints were kept, so a new run stopped before its first checkpoint resumed the old
    weights under the new configuration. Other files are the user's and stay, in the run's own
    folders too; a folder left empty goes. One process calls it."""
    for pattern in RUN_FILES:
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        folder = run_dir / name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def read_metrics(metrics: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The whole lines of a ``metrics.jsonl`` and their records (none without the file). A last
    line without its newline is kept if it is a whole record (written by hand) and left out if
    it was cut off mid-write by a kill; a damaged line before it is a :class:`DataError`."""
    if not metrics.is_file():
        return [], []
    try:
        *lines, last = metrics.read_text(encoding="utf-8").split("\n")
        records = [json.loads(line) for line in lines]
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{metrics}: damaged, not one JSON object a line ({first_line(error)})") from error
    try:
        whole = json.loads(last)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        records.append(whole)
        lines.append(last)
    if not all(isinstance(record, dict) for record in records):
        raise DataError(f"{metrics}: damaged, not one JSON object a line")
    return lines, records


def last_logged_step(run_dir: Path) -> int:
    """The last step a run logged in its ``metrics.jsonl`` (0 for none)."""
    steps = (record.get("step") for record in read_metrics(run_dir / "metrics.jsonl")[1])
    return max((step for step in steps if isinstance(step, int)), default=0)


class RunLog:
    """The log of one run. ``tensorboard=None`` writes TensorBoard events when the package is
    installed; ``True`` requires it; ``False`` never writes them. ``active=False`` writes nothing."""

    def __init__(self, run_dir: Path, tensorboard: bool | None = None, active: bool = True) -> None:
        self.run_dir = run_dir
        self.active = active
        self.metrics = run_dir / "metrics.jsonl"
        self.records: list[dict[str, Any]] = []
        self._drawn_at = time.monotonic()
        self._writer: Any = None
        if active and tensorboard is not False:
            if tensorboard and not tensorboard_available():
                raise RuntimeChoiceError(
                    'TensorBoard logging asked for, but tensorboard is not installed: pip install "fgaug[tensorboard]"'
                )
            if tensorboard_available():
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    @property
    def tensorboard_dir(self) -> Path | None:
        return self.run_dir / "tensorboard" if self._writer is not None else None

    def resume(self, step: int) -> None:
        """Read back the records of the run up to ``step``, its checkpoint's, so ``results.png``
        shows all of it. A run killed outright (SIGKILL, a lost machine) logged steps after its last
        checkpoint, and maybe a line cut off mid-write: the resumed run logs those steps again, so
        they are dropped from ``metrics.jsonl`` (rewritten atomically) rather than kept twice."""
        if not (self.active and self.metrics.is_file()):
            return
        lines, records = read_metrics(self.metrics)
        kept = [index for index, record in enumerate(records) if record.get("step", 0) <= step]
        if not self.metrics.read_bytes().endswith(b"\n") or len(kept) < len(records):
            atomic_write_bytes(self.metrics, "".join(lines[index] + "\n" for index in kept).encode())
        self.records = [records[index] for index in kept]

    def start(self) -> None:
        """A new run: no records yet."""
        if self.active:
            self.metrics.unlink(missing_ok=True)
            self.records = []

    def step(self, record: dict[str, Any]) -> None:
        """The figures of one logged step (``step`` and any of :data:`TENSORBOARD_SCALARS`)."""
        self._append(record)
        if self._writer is not None:
            for key in TENSORBOARD_SCALARS:
                if key in record and np.isfinite(record[key]):
                    self._writer.add_scalar(f"train/{key}", record[key], record["step"])

    def validation(self, step: int, bits_per_dim: float) -> None:
        """A validation result; ``results.png`` is redrawn when its drawing is
        :data:`REDRAW_SECONDS` old."""
        self._append({"step": step, "val_bpd": bits_per_dim})
        if self._writer is not None:
            self._writer.add_scalar("val/bpd", bits_per_dim, step)
            self._writer.flush()
        if self.active and time.monotonic() - self._drawn_at >= REDRAW_SECONDS:
            self._draw()

    def _draw(self) -> None:
        training_plot(self.run_dir / "results.png", self.records)
        self._drawn_at = time.monotonic()

    def image(self, step: int, tag: str, picture: np.ndarray) -> None:
        """An (H, W, 3) uint8 picture, such as a sample grid, for TensorBoard's image tab."""
        if self._writer is not None:
            self._writer.add_image(tag, picture, step, dataformats="HWC")

    def close(self) -> None:
        if self.active and self.records:
            self._draw()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _append(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        self.records.append(record)
        with open(self.metrics, "a", encoding="utf-8") as stream:
            stream.write(to_json(record) + "\n")
