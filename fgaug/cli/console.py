"""Terminal output of the CLI: a rich progress bar on a terminal, plain log lines elsewhere.

Progress and messages go to stderr, so ``--json`` output on stdout stays machine-readable.
rich honours ``NO_COLOR`` and drops colour when stderr is not a terminal.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fgaug.cores import take_share

if TYPE_CHECKING:  # the report's module imports torch: the CLI imports it when a command runs
    from fgaug.evaluation.quality import QualityReport

err_console = Console(stderr=True, highlight=False)


class RichProgress:
    """A live progress bar with rate, ETA and the latest figures (loss...)."""

    def __init__(self, unit: str = "it") -> None:
        self.unit = unit
        self._progress: Progress | None = None
        self._task: Any = None
        self._started = 0.0
        self._done = 0

    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[figures]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err_console,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, completed=completed, rate="", figures="")
        self._started, self._done = time.perf_counter(), 0
        take_share()

    def advance(self, amount: int = 1, **fields: Any) -> None:
        take_share()
        if self._progress is None:
            return
        self._done += amount
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        shown: dict[str, Any] = {"rate": f"{self._done / elapsed:.2f} {self.unit}/s"}  # rich's **fields
        if fields:  # figures given now and then (the loss at logged steps) stay shown until the next
            shown["figures"] = " ".join(f"{key} {value:.4f}" for key, value in fields.items())
        self._progress.update(self._task, advance=amount, **shown)

    def log(self, message: str) -> None:
        (self._progress.console if self._progress else err_console).print(message)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class PlainProgress:
    """Log lines for CI logs: one at start, then every ``interval`` seconds or 10%, and at the end."""

    def __init__(self, unit: str = "it", interval: float = 30.0) -> None:
        self.unit = unit
        self.interval = interval
        self._description, self._done, self._completed = "", 0, 0
        self._total: int | None = None
        self._started = self._last = 0.0
        self._next_fraction = 0.1

    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        self._description, self._total, self._done, self._completed = description, total, completed, completed
        self._started = self._last = time.perf_counter()
        self._next_fraction = (math.floor(10 * completed / total) + 1) / 10 if total else 0.1
        to_do = "?" if total is None else total - completed
        after = f" (from {completed})" if completed else ""
        print(f"{description}: {to_do} {self.unit} to do{after}", file=sys.stderr, flush=True)
        take_share()

    def advance(self, amount: int = 1, **fields: Any) -> None:
        take_share()
        self._done += amount
        now = time.perf_counter()
        fraction = self._done / self._total if self._total else 0.0
        if now - self._last >= self.interval or fraction >= self._next_fraction:
            while self._next_fraction <= fraction:
                self._next_fraction += 0.1
            self._last = now
            rate = (self._done - self._completed) / max(now - self._started, 1e-9)
            figures = "".join(f" {key} {value:.4f}" for key, value in fields.items())
            total = f"/{self._total}" if self._total else ""
            print(
                f"{self._description}: {self._done}{total} ({rate:.2f} {self.unit}/s){figures}",
                file=sys.stderr,
                flush=True,
            )

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def stop(self) -> None:
        pass


def make_progress(unit: str, quiet: bool = False) -> RichProgress | PlainProgress:
    """A progress bar on a terminal, plain lines otherwise."""
    if err_console.is_terminal and not quiet:
        return RichProgress(unit)
    return PlainProgress(unit)


def quality_table(report: QualityReport) -> None:
    """The evaluation report as a rich table on stderr."""
    from rich.table import Table

    if report.bpd is not None:
        err_console.print(f"conditional bits/dim: [bold]{report.bpd.conditional_bpd:.4f}[/] ({report.bpd.pairs} pairs)")
    rows = report.samples.temperatures if report.samples else ()
    table = Table(title="temperature sweep")
    columns = ["T", "pixel acc", "class acc", "mIoU"] if rows and rows[0].consistency is not None else ["T"]
    for column in [*columns, "pairwise L1", "1 - SSIM", "colour W1", "diverged"]:
        table.add_column(column, justify="right")
    for row in rows:
        cells = [f"{row.temperature:g}"]
        if row.consistency is not None:
            scores = row.consistency
            cells += [f"{scores.pixel_accuracy:.4f}", f"{scores.mean_class_accuracy:.4f}", f"{scores.mean_iou:.4f}"]
        cells += [
            f"{row.pairwise_l1:.4f}",
            f"{row.pairwise_1_minus_ssim:.4f}",
            f"{row.colour_w1_mean:.2f}",
            f"{row.diverged_fraction:.1%}",
        ]
        table.add_row(*cells)
    err_console.print(table)
    real = report.samples.real_photos if report.samples else None
    if real is not None:
        err_console.print(f"segmenter on real photos: mIoU {real.mean_iou:.4f} (the ceiling)")
