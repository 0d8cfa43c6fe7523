"""fgaug processes running at once share the CPU's cores (:mod:`fgaug.cores`): each takes its share
of threads while the others run, and takes its threads back when they have finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fgaug.cli.app import app
from fgaug.cores import CoreShare, Member, process_start, shared_cores, sharing_blocker, threads_for
from fgaug.progress import SilentProgress
from fgaug.training.options import TrainOptions
from fgaug.training.train import train

JOINER = """
import sys, time
import torch
from fgaug.progress import SilentProgress
from fgaug.training.options import TrainOptions
from fgaug.training.train import train
from fgaug.cores import shared_cores
torch.set_num_threads(2)
with shared_cores() as share:
    print("joined" if share is not None else "not sharing", flush=True)
    time.sleep(120)
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "processes"
    monkeypatch.setenv("FGAUG_PROCESS_DIR", str(folder))
    for name in ("OMP_NUM_THREADS", "FGAUG_OMP", "FGAUG_SHARE_CORES"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def other_fgaug(registry: Path) -> Iterator[subprocess.Popen[str]]:
    """Another fgaug process that has joined the registry and keeps working."""
    child = subprocess.Popen([sys.executable, "-c", JOINER], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    watchdog = threading.Timer(60, child.kill)
    watchdog.start()
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "joined"
        watchdog.cancel()
        yield child
    finally:
        watchdog.cancel()
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    ("budget", "processes", "expected"),
    [
        (2, 1, [2]),
        (2, 2, [1, 1]),
        (2, 3, [1, 1, 1]),
        (8, 3, [3, 3, 2]),
        (16, 5, [4, 3, 3, 3, 3]),
        (1, 2, [1, 1]),
    ],
)
def test_shares_split_the_budget(budget: int, processes: int, expected: list[int]) -> None:
    shares = [threads_for(rank, processes, budget) for rank in range(processes)]
    assert shares == expected
    assert sum(shares) == max(budget, processes)


@pytest.mark.parametrize(
    ("environ", "blocker"),
    [
        ({}, None),
        ({"OMP_NUM_THREADS": "1"}, "OMP_NUM_THREADS is set"),
        ({"FGAUG_OMP": "leave"}, "FGAUG_OMP=leave is set"),
        ({"FGAUG_SHARE_CORES": "no"}, "FGAUG_SHARE_CORES=no is set"),
        ({"FGAUG_SHARE_CORES": "yes"}, None),
        ({"FGAUG_SHARE_CORES": "maybe"}, "FGAUG_SHARE_CORES=maybe is neither yes nor no"),
    ],
)
def test_sharing_is_left_to_a_user_who_chose(environ: dict[str, str], blocker: str | None) -> None:
    assert sharing_blocker(environ) == blocker


def test_a_process_takes_its_share_and_gives_it_back(registry: Path, two_threads: None) -> None:
    clock = Clock()
    share = CoreShare(registry, budget=2, clock=clock)
    share.join()
    assert share.refresh() is None and torch.get_num_threads() == 2, "alone it keeps its threads"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        start = None
        while start is None:
            start = process_start(sleeper.pid)
        (registry / str(sleeper.pid)).write_text(str(start))
        assert share.refresh() is None, "counted at most once a second"
        clock.now += 1.5
        message = share.refresh()
        assert message is not None and "2 fgaug processes share" in message
        assert torch.get_num_threads() == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    clock.now += 1.5
    message = share.refresh()
    assert message is not None and "back to 2" in message and torch.get_num_threads() == 2
    assert not (registry / str(sleeper.pid)).exists(), "a dead process's file is removed"
    share.leave()
    assert not list(registry.iterdir())


def test_a_reused_pid_does_not_count(registry: Path) -> None:
    registry.mkdir()
    parent = Member(process_start(os.getppid()) or 0, os.getppid())
    assert parent.alive()
    (registry / str(parent.pid)).write_text(str(parent.start + 1))  # another process once had this PID
    share = CoreShare(registry, budget=2)
    assert share.members() == [share.me]
    assert not (registry / str(parent.pid)).exists()


def test_the_block_restores_the_threads(registry: Path, two_threads: None, other_fgaug: subprocess.Popen) -> None:
    with shared_cores() as share:
        assert share is not None
        assert share.refresh() is not None and torch.get_num_threads() == 1
        assert (registry / str(os.getpid())).is_file()
    assert torch.get_num_threads() == 2
    assert [path.name for path in registry.iterdir()] == [str(other_fgaug.pid)]


def test_every_loop_that_reports_progress_takes_the_share(
    registry: Path, two_threads: None, other_fgaug: subprocess.Popen
) -> None:
    """An API loop inside a command (a probe's training steps) reports to a silent progress: that
    is where it takes its share, and a nested block does not register the process twice."""
    said: list[str] = []
    with shared_cores(log=said.append) as share:
        assert share is not None
        with shared_cores() as nested:
            assert nested is None
        SilentProgress().advance()
        assert torch.get_num_threads() == 1
        assert said == [
            "2 fgaug processes share this machine's 2 CPU threads: this one now uses 1 "
            "(FGAUG_SHARE_CORES=no keeps them all)"
        ]
    SilentProgress().advance()
    assert torch.get_num_threads() == 2, "outside a command nothing is shared"


def test_a_user_set_thread_count_is_left_alone(
    registry: Path, two_threads: None, other_fgaug: subprocess.Popen, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with shared_cores() as share:
        assert share is None
    assert torch.get_num_threads() == 2
    assert [path.name for path in registry.iterdir()] == [str(other_fgaug.pid)]


def test_a_command_shares_with_another_running(
    small_tree: Path, tmp_path: Path, registry: Path, two_threads: None, other_fgaug: subprocess.Popen
) -> None:
    """A real command beside a real second fgaug process: it takes one of the two threads, says so,
    and leaves the registry with its threads restored."""
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    mask = next((small_tree / "gtFine" / "val").rglob("*_labelIds.png"))
    result = CliRunner().invoke(
        app, ["transfer", str(photo), str(mask), "-o", str(tmp_path / "moved.png"), "--model", "demo"]
    )
    assert result.exit_code == 0, result.output
    assert "2 fgaug processes share this machine's 2 CPU threads: this one now uses 1" in result.stderr
    assert torch.get_num_threads() == 2
    assert [path.name for path in registry.iterdir()] == [str(other_fgaug.pid)]


def test_env_says_how_many_share(registry: Path, other_fgaug: subprocess.Popen, monkeypatch) -> None:
    cpu_line = next(line for line in CliRunner().invoke(app, ["env"]).output.splitlines() if line.startswith("CPU: "))
    assert f"shared between the fgaug processes registered in {registry} (1 running now)" in cpu_line
    monkeypatch.setenv("FGAUG_SHARE_CORES", "no")
    cpu_line = next(line for line in CliRunner().invoke(app, ["env"]).output.splitlines() if line.startswith("CPU: "))
    assert "not shared (" in cpu_line


def test_the_threads_come_back_when_the_command_fails(
    registry: Path, two_threads: None, other_fgaug: subprocess.Popen
) -> None:
    with pytest.raises(RuntimeError, match="failed"), shared_cores(log=lambda message: None):
        SilentProgress().start("work", 1)
        assert torch.get_num_threads() == 1
        raise RuntimeError("failed")
    assert torch.get_num_threads() == 2
    assert [path.name for path in registry.iterdir()] == [str(other_fgaug.pid)]


def test_a_registry_others_can_write_to_is_refused(registry: Path, two_threads: None) -> None:
    registry.mkdir()
    registry.chmod(0o777)
    with shared_cores() as share:
        assert share is None
    assert not list(registry.iterdir())
    cpu_line = next(line for line in CliRunner().invoke(app, ["env"]).output.splitlines() if line.startswith("CPU: "))
    assert f"not shared: {registry}: not a folder of this user's" in cpu_line, "env said it was shared"


def test_stray_files_and_zombies_do_not_count(registry: Path) -> None:
    registry.mkdir(mode=0o700)
    finished = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    try:
        start = None
        while start is None:
            start = process_start(finished.pid)
        deadline = time.monotonic() + 30
        while process_start(finished.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # exited, not reaped: a zombie until wait()
        assert Path(f"/proc/{finished.pid}").exists(), "still in the process table"
        (registry / str(finished.pid)).write_text(str(start))
        (registry / f".{finished.pid}.partial").write_text(str(start))
        (registry / "notes").write_text("not a process")
        share = CoreShare(registry, budget=2)
        assert share.members() == [share.me]
        assert sorted(path.name for path in registry.iterdir()) == [f".{finished.pid}.partial", "notes"]
    finally:
        finished.wait()


def test_a_removed_entry_is_written_again(registry: Path, two_threads: None) -> None:
    clock = Clock()
    share = CoreShare(registry, budget=2, clock=clock)
    share.join()
    share.entry.unlink()  # a cleaner of the temporary folder
    share.refresh()
    assert share.entry.read_text() == str(share.me.start)
    share.leave()


def test_a_training_run_records_the_threads_it_ran_with(
    small_tree: Path, tmp_path: Path, registry: Path, two_threads: None, other_fgaug: subprocess.Popen
) -> None:
    run = tmp_path / "run"
    settings = {"preset": "test", "steps": 3, "batch_size": 4, "workers": 0, "device": "cpu", "log_every": 1}
    with shared_cores(log=lambda message: None):
        train(TrainOptions(data=str(small_tree), run_dir=str(run), validate_every=100, sample_every=100, **settings))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["cpu_threads"] for record in records if "loss" in record] == [1, 1, 1]
