"""Progress reports of a resumed task: the count starts where the earlier run stopped, and the
rate counts only the units done from now (a resumed training run's bar counted its earlier steps
as done in no time)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from test_train import options

from fgaug.cli import console
from fgaug.cli.console import PlainProgress, RichProgress
from fgaug.progress import SilentProgress
from fgaug.training.train import train


def test_plain_lines_count_from_the_completed_units(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(console, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    progress = PlainProgress("steps", interval=1e9)
    progress.start("training", 100, completed=40)
    now[0] += 4.0
    progress.advance(9)  # 49%: no line until the next tenth
    now[0] += 1.0
    progress.advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["training: 60 steps to do (from 40)", "training: 50/100 (2.00 steps/s)"], lines


def test_the_bar_starts_at_the_completed_units() -> None:
    progress = RichProgress("steps")
    progress.start("training", 100, completed=40)
    bar = progress._progress
    assert bar is not None
    task = bar.tasks[0]
    assert (task.completed, task.total) == (40, 100)
    progress.advance(2)
    assert task.completed == 42 and progress._done == 2
    progress.stop()


class StartRecorded(SilentProgress):
    def __init__(self) -> None:
        self.starts: list[tuple[str, int | None, int]] = []

    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        self.starts.append((description, total, completed))


def test_a_resumed_run_reports_its_steps_from_where_it_stopped(small_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(options(small_tree, run, steps=2))
    recorded = StartRecorded()
    train(options(small_tree, run, steps=3, resume=True), recorded)
    assert recorded.starts == [("training", 3, 2)]
