"""Stopping. An error in a data worker ends a training run at once, with the worker's own one-line
message: the workers, which ignore stop signals, are stopped before the error leaves the loader.
SIGTERM stops any command as Ctrl-C does: one line, exit 130, nothing half-written left."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fgaug.cli.common import REPORT, clear_errors
from fgaug.data.io import DataError
from fgaug.interrupts import EXIT_INTERRUPTED
from fgaug.training.stopping import batches_of, leave_stop_signals_to_the_trainer, worker_message


class BadFourth(Dataset):
    """Items 0-7; item 3 is a damaged file."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> int:
        if index == 3:
            raise DataError("scenes/bad_gtFine_labelIds.png: an id mask must be a single-channel PNG, got mode RGB")
        return index


def test_a_workers_error_keeps_its_message_and_its_workers_stop() -> None:
    loader = DataLoader(BadFourth(), batch_size=2, num_workers=2, worker_init_fn=leave_stop_signals_to_the_trainer)
    with pytest.raises(DataError) as caught:
        for _ in batches_of(loader):
            pass
    assert str(caught.value) == "scenes/bad_gtFine_labelIds.png: an id mask must be a single-channel PNG, got mode RGB"
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:  # the error is still held here
        time.sleep(0.05)
    assert multiprocessing.active_children() == []


def test_errors_of_the_trainer_itself_keep_their_message() -> None:
    assert worker_message(DataError("a.png: damaged")) is None
    with pytest.raises(DataError, match=r"^scenes/bad_gtFine_labelIds.png: an id mask"):
        list(batches_of(DataLoader(BadFourth(), batch_size=2)))


def test_train_with_workers_on_a_tree_with_a_bad_mask_exits_with_one_line(toy_tree: Path, tmp_path: Path) -> None:
    """It printed "Caught DataError in DataLoader worker process 0." and hung at exit. The mask's
    header is sound (the header check before the first step passes it): its pixels are not."""
    bad = sorted((toy_tree / "gtFine" / "train").rglob("*_labelIds.png"))[1]
    Image.fromarray(np.full((64, 128), 40, np.uint8)).save(bad)
    command = [sys.executable, "-m", "fgaug", "train", str(toy_tree), "--preset", "test", "--workers", "2"]
    command += ["--steps", "8", "--batch-size", "2", "--project", str(tmp_path / "runs"), "--name", "bad"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: unknown label ids [40] (labelIds holds 0-33)")


def test_skip_bad_trains_past_a_mask_whose_pixels_fail_and_lists_it(toy_tree: Path, tmp_path: Path) -> None:
    """``--skip-bad`` covered only what headers show: a mask of unknown ids stopped the run where its
    batch was read, with the option given. A resumed run listed only the pairs it read itself."""
    bad = sorted((toy_tree / "gtFine" / "train").rglob("*_labelIds.png"))[1]
    sound = bad.read_bytes()
    Image.fromarray(np.full((64, 128), 40, np.uint8)).save(bad)
    command = [sys.executable, "-m", "fgaug", "train", str(toy_tree), "--preset", "test", "--workers", "2"]
    command += ["--batch-size", "2", "--project", str(tmp_path / "runs"), "--name", "skip", "--skip-bad", "--json"]
    command += ["--validate-every", "100", "--sample-every", "100"]  # 3 steps of 2: the first epoch, each pair once
    result = subprocess.run([*command, "--steps", "3"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    expected = f"{bad}: unknown label ids [40] (labelIds holds 0-33)"
    assert summary["steps"] == 3 and summary["skipped_groups"] == [expected]
    assert result.stderr.count(f"skipped: {expected}; another pair stands in for it") == 1
    bad.write_bytes(sound)  # mended: the resumed run reads it whole, and lists what the first part skipped
    result = subprocess.run([*command, "--steps", "4", "--resume"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 4 and summary["skipped_groups"] == [expected]


def test_a_pair_that_fails_is_replaced_by_the_next_that_reads(toy_tree: Path) -> None:
    from fgaug.data.cityscapes import ReadOptions, find_groups
    from fgaug.training.batches import PairsSkippingBad

    groups = find_groups(toy_tree, ["train"]).groups
    Image.fromarray(np.full((64, 128), 40, np.uint8)).save(groups[1].mask)
    pairs = PairsSkippingBad(groups, ReadOptions((32, 64)))
    stand_in, next_pair = pairs[1], pairs[2]
    assert stand_in["key"] == next_pair["key"] == groups[2].key and next_pair["stands_in_for"] == ""
    assert stand_in["stands_in_for"].startswith(f"{groups[1].mask}: unknown label ids [40]")
    assert np.array_equal(stand_in["photo"].numpy(), next_pair["photo"].numpy())


def test_sigterm_stops_generate_with_one_line_and_a_rerun_finishes(small_tree: Path, tmp_path: Path) -> None:
    """It died at once with exit 143: no line, and ``finally`` blocks (a temporary file's removal,
    leaving the core-sharing registry) did not run."""
    out, registry = tmp_path / "out", tmp_path / "processes"
    command = [sys.executable, "-m", "fgaug", "generate", str(small_tree / "gtFine" / "train"), "--model", "demo"]
    command += ["--samples", "12", "--out", str(out)]
    environment = {**os.environ, "FGAUG_PROCESS_DIR": str(registry)}
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    deadline = time.monotonic() + 120
    while not list(out.rglob("*_leftImg8bit.png")) and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.1)
    running.send_signal(signal.SIGTERM)
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted by SIGTERM"
    assert not list(out.rglob("*.part")) and not [entry for entry in registry.iterdir() if entry.is_file()]
    validate = [sys.executable, "-m", "fgaug", "validate", str(out)]
    unfinished = subprocess.run(validate, capture_output=True, text=True, timeout=120)
    assert unfinished.returncode == 1 and "run that writes this tree has not finished" in unfinished.stderr
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert len(list(out.rglob("*_leftImg8bit.png"))) == 12 * 12
    assert subprocess.run(validate, capture_output=True, text=True, timeout=120).returncode == 0


DROPPED_IN_A_CALLBACK = """
import signal, sys, time, weakref
from fgaug.interrupts import interrupt_on_sigterm

interrupt_on_sigterm()


class Resource:
    pass


def close(reference):  # h5py closes its objects from such callbacks
    signal.raise_signal(signal.SIGTERM)


resource = Resource()
watch = weakref.ref(resource, close)
try:
    del resource  # the interrupt is raised in the callback, which Python cannot raise from
    time.sleep(1)
except KeyboardInterrupt as interrupt:
    print(f"interrupted by {interrupt}")
    sys.exit(130)
print("ran on to the end")
"""


def test_an_interrupt_dropped_in_a_weakref_callback_is_delivered_again() -> None:
    """SIGTERM to `prepare` was swallowed in 2 of 4 tries: raised in an h5py weakref callback,
    printed as "Exception ignored", and the run went on to exit 0."""
    result = subprocess.run([sys.executable, "-c", DROPPED_IN_A_CALLBACK], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (130, "interrupted by SIGTERM\n"), result.stderr
    assert "Exception ignored" not in result.stderr


@pytest.mark.parametrize(
    ("interrupt", "signal_name"), [(KeyboardInterrupt(), "SIGINT"), (KeyboardInterrupt("SIGTERM"), "SIGTERM")]
)
def test_both_stop_signals_end_a_command_with_the_same_line(interrupt: KeyboardInterrupt, signal_name: str) -> None:
    """Ctrl-C ended a command with "interrupted", SIGTERM with "interrupted by SIGTERM"."""
    with pytest.raises(typer.Exit) as stopped, clear_errors():
        raise interrupt
    assert stopped.value.exit_code == EXIT_INTERRUPTED
    assert REPORT.error == f"interrupted by {signal_name}"


@pytest.mark.parametrize("typer_caught_it", [False, True])
def test_an_interrupt_before_fgaugs_own_handling_gets_its_line_and_json(
    typer_caught_it: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM in a command's first ~2 s (Typer building the commands, reading the options, the
    command importing torch) ended it with exit 130 and not a word, or with a traceback."""
    import fgaug.cli as cli
    from fgaug.cli import common

    def stopped(prog_name: str) -> None:
        common.LAST_SIGNAL[0] = "SIGTERM"
        if typer_caught_it:
            raise SystemExit(EXIT_INTERRUPTED)  # what Typer does with an interrupt it catches itself
        raise KeyboardInterrupt("SIGTERM")

    REPORT.reset()
    monkeypatch.setattr(cli, "app", stopped)
    monkeypatch.setattr(cli, "interrupt_on_sigterm", lambda: None)
    monkeypatch.setattr(sys, "argv", ["fgaug", "layouts", "cs", "--json"])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == EXIT_INTERRUPTED
    printed = capsys.readouterr()
    assert printed.out.strip() == '{"error": "interrupted by SIGTERM", "exit_code": 130}'
    assert printed.err.strip() == "error: interrupted by SIGTERM"


CANCELLED_WHILE_THE_CLI_LOADS = """
import signal, sys

sys.argv = ["fgaug", "layouts", "masks", "--json"]
from fgaug.__main__ import main


class CancelledJob:  # SIGTERM arrives while the CLI's modules load, about 0.15 s into a command
    def find_spec(self, name, path=None, target=None):
        if name == "fgaug.cli":
            signal.raise_signal(signal.SIGTERM)
        return None


sys.meta_path.insert(0, CancelledJob())
main()
"""


def test_sigterm_while_the_cli_loads_exits_130_with_its_line() -> None:
    """The ``fgaug`` command installed its SIGTERM handler after loading Typer, rich and every
    command: a job cancelled in its first ~0.15 s died with 143, no line and no JSON."""
    result = subprocess.run(
        [sys.executable, "-c", CANCELLED_WHILE_THE_CLI_LOADS], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == EXIT_INTERRUPTED, result.stderr
    assert json.loads(result.stdout) == {"error": "interrupted by SIGTERM", "exit_code": EXIT_INTERRUPTED}
    assert result.stderr.strip() == "error: interrupted by SIGTERM"
