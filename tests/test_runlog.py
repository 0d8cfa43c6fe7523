"""A run's log: every record in metrics.jsonl, and results.png redrawn at most every half minute and
when the run stops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fgaug.training import runlog
from fgaug.training.runlog import REDRAW_SECONDS, RunLog


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The log's monotonic clock, set by the test (``clock[0]``, seconds)."""
    now = [1000.0]
    monkeypatch.setattr(runlog.time, "monotonic", lambda: now[0])
    return now


@pytest.fixture
def drawings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many records each drawing of results.png showed, in order."""
    drawn: list[int] = []

    def draw(path: Path, records: list[dict[str, object]]) -> Path:
        drawn.append(len(records))
        path.write_bytes(b"png")
        return path

    monkeypatch.setattr(runlog, "training_plot", draw)
    return drawn


def test_validations_redraw_at_most_every_redraw_seconds_and_the_end_always(
    tmp_path: Path, clock: list[float], drawings: list[int]
) -> None:
    log = RunLog(tmp_path, tensorboard=False)
    log.start()
    log.validation(10, 4.0)  # at the start: a drawing would show one point
    clock[0] += REDRAW_SECONDS - 1
    log.validation(20, 3.9)
    assert drawings == [] and not (tmp_path / "results.png").exists()
    clock[0] += 1
    log.validation(30, 3.8)
    assert drawings == [3]
    clock[0] += REDRAW_SECONDS / 2
    log.validation(40, 3.7)
    assert drawings == [3]
    log.close()
    assert drawings == [3, 4] and (tmp_path / "results.png").is_file()
    lines = (tmp_path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["val_bpd"] for line in lines] == [4.0, 3.9, 3.8, 3.7]


def test_an_inactive_log_draws_nothing(tmp_path: Path, clock: list[float], drawings: list[int]) -> None:
    log = RunLog(tmp_path, tensorboard=False, active=False)
    clock[0] += 10 * REDRAW_SECONDS
    log.validation(10, 4.0)
    log.close()
    assert drawings == [] and list(tmp_path.iterdir()) == []


def test_a_resumed_log_keeps_a_whole_last_line_without_its_newline(tmp_path: Path) -> None:
    """A last line with no newline was dropped as cut off even when it was whole (a log written by
    hand); one cut off mid-write still goes, as do steps after the checkpoint's."""
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}')
    log = RunLog(tmp_path, tensorboard=False)
    log.resume(2)
    assert [r["step"] for r in log.records] == [1, 2] and metrics.read_text().endswith("1.5}\n")
    metrics.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    log.resume(1)
    assert [r["step"] for r in log.records] == [1] and metrics.read_text() == '{"step": 1, "loss": 2.0}\n'


def test_the_last_logged_step_reads_the_log_as_resume_does(tmp_path: Path) -> None:
    """``last_logged_step`` passed over any bad line, where ``resume`` named a damaged log: one reader now."""
    metrics = tmp_path / "metrics.jsonl"
    assert runlog.last_logged_step(tmp_path) == 0
    metrics.write_text('{"step": 1, "loss": 2.0}\n{"step": 40, "val_bpd": 4.0}\n{"step": 90, "lo')
    assert runlog.last_logged_step(tmp_path) == 40, "a line cut off by a kill is left out"
    metrics.write_text('{"step": 1, "loss": 2.0}\n[3]\n{"step": 40}\n')
    with pytest.raises(runlog.DataError, match=f"{metrics}: damaged"):
        runlog.last_logged_step(tmp_path)
