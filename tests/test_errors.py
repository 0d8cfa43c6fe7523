"""Errors users cause (issue 24, item 4): one base, :class:`FgaugError`, printed by the CLI as one
line; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from test_fullglow import SMALL
from typer.testing import CliRunner

from fgaug.cli.app import app
from fgaug.cli.common import is_user_error, one_line
from fgaug.data.io import DataError, atomic_output
from fgaug.data.record import OutputConflictError
from fgaug.errors import FgaugError
from fgaug.flow import FullGlow, SamplingError
from fgaug.flow.config import ConfigError
from fgaug.runtime import RuntimeChoiceError
from fgaug.training.checkpoint import CheckpointError, save_checkpoint
from fgaug.training.options import TrainingStoppedError, TrainOptions
from fgaug.training.train import train
from fgaug.usage import UsageError

runner = CliRunner()


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (UsageError, ValueError),
        (ConfigError, ValueError),
        (SamplingError, ValueError),
        (DataError, ValueError),
        (OutputConflictError, DataError),
        (CheckpointError, ValueError),
        (RuntimeChoiceError, ValueError),
        (TrainingStoppedError, RuntimeError),
    ],
)
def test_every_user_error_is_an_fgaug_error_and_still_its_builtin_kind(
    error: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(error, FgaugError) and issubclass(error, builtin)


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_a_user_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    line = one_line_error(runner.invoke(app, ["info", str(tmp_path / "missing.pt")]), 1)
    assert "missing.pt: checkpoint not found" in line


def test_a_usage_error_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(checkpoint: object) -> dict:
        raise UsageError("--something cannot mean anything")

    monkeypatch.setattr("fgaug.api.info", refuse)
    assert "--something" in one_line_error(runner.invoke(app, ["info", "x.pt"]), 2)


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(errno.ENOENT, "No such file or directory", "data/x.png"),
        PermissionError(errno.EACCES, "Permission denied", "data/x.png"),
        IsADirectoryError(errno.EISDIR, "Is a directory", "data/x.png"),
        NotADirectoryError(errno.ENOTDIR, "Not a directory", "data/x.png"),
        FileExistsError(errno.EEXIST, "File exists", "data/x.png"),
        OSError(errno.ENOSPC, "No space left on device", "data/x.png"),
    ],
    ids=lambda error: type(error).__name__ if type(error) is not OSError else "ENOSPC",
)
def test_a_file_the_user_named_is_one_line_naming_it(error: OSError, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(checkpoint: object) -> dict:
        raise error

    monkeypatch.setattr("fgaug.api.info", fail)
    line = one_line_error(runner.invoke(app, ["info", "x.pt"]), 1)
    assert line == f"error: data/x.png: {error.strerror}"


@pytest.mark.parametrize(
    "bug",
    [
        ValueError("operands could not be broadcast together"),
        OSError(errno.EIO, "Input/output error"),
        RuntimeError("CUDA error: an illegal memory access"),
    ],
    ids=["ValueError", "OSError-EIO", "RuntimeError"],
)
def test_an_unexpected_error_inside_an_api_call_keeps_its_traceback(
    bug: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(checkpoint: object) -> dict:
        raise bug

    monkeypatch.setattr("fgaug.api.info", crash)
    result = runner.invoke(app, ["info", "x.pt"])
    assert result.exit_code == 1
    assert result.exception is bug
    assert "error:" not in result.output


@pytest.mark.parametrize(("reason", "code"), [("signal", 130), ("non-finite loss", 1)])
def test_the_exit_code_of_a_stopped_run_comes_from_its_reason(
    reason: str, code: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "last.pt"

    def stop(options: object, progress: object) -> None:
        raise TrainingStoppedError("the run ended early", checkpoint, reason=reason)  # type: ignore[arg-type]

    monkeypatch.setattr("fgaug.api.train", stop)
    result = runner.invoke(app, ["train", str(tmp_path), "--project", str(tmp_path), "--device", "cpu"])
    line = one_line_error(result, code)
    assert line == f"error: the run ended early (checkpoint: {checkpoint})"


def test_a_damaged_run_configuration_is_a_data_error_naming_it(tmp_path: Path) -> None:
    from fgaug.training.options import TrainOptions
    from fgaug.training.train import resolve_run

    (tmp_path / "config.json").write_text('{"preset": "test", ')
    with pytest.raises(DataError, match=r"config\.json: not a readable run configuration"):
        resolve_run(TrainOptions(data="unused", run_dir=str(tmp_path), resume=True))


def test_a_truncated_cache_is_a_data_error_naming_it(tmp_path: Path) -> None:
    from fgaug.data.cache import inspect_cache

    cache = tmp_path / "train.h5"
    cache.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))  # the HDF5 signature, then nothing readable
    with pytest.raises(DataError, match=r"train\.h5: not a readable HDF5 file"):
        inspect_cache(cache)


def short_run(data: Path, run: Path, **changes: object) -> TrainOptions:
    settings: dict = dict(data=data, run_dir=run, preset="test", steps=6, batch_size=4, workers=0, device="cpu")
    return TrainOptions(**{**settings, **changes})


def test_a_run_whose_loss_stays_non_finite_stops_for_that_reason(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *args, **kwargs: torch.tensor(float("nan")))
    with pytest.raises(TrainingStoppedError, match="not finite for 2 steps in a row") as stopped:
        train(short_run(small_tree, tmp_path / "run", max_bad_steps=2))
    assert stopped.value.reason == "non-finite loss"
    assert stopped.value.checkpoint is not None and stopped.value.checkpoint.is_file()


def test_skipped_steps_do_not_validate_the_last_step_again(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose loss went non-finite after step 1 validated step 1 again at each skipped step
    (twenty "step 1: validation nan" lines), though ``--validate-every 3``."""
    clip = torch.nn.utils.clip_grad_norm_
    calls = []

    def finite_once(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return clip(*args, **kwargs) if len(calls) == 1 else torch.tensor(float("nan"))  # type: ignore[arg-type]

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", finite_once)
    run = tmp_path / "run"
    with pytest.raises(TrainingStoppedError, match="not finite for 5 steps in a row"):
        train(short_run(small_tree, run, max_bad_steps=5, validate_every=3))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "val_bpd" in line] == [1]


def test_a_bad_pair_found_mid_run_keeps_the_steps_so_far(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that read a bad mask at step 700 stopped without saving: its folder held config.json and
    best.pt but no last.pt, and the steps since the last checkpoint were lost."""
    from fgaug.training import train as trainer

    real = trainer.batches_of

    def bad_third(loader: object) -> Iterator[object]:
        for index, batch in enumerate(real(loader)):  # type: ignore[arg-type]
            if index == 2:
                raise DataError("masks/x_gtFine_labelIds.png: unknown label ids [40] (labelIds holds 0-33)")
            yield batch

    monkeypatch.setattr(trainer, "batches_of", bad_third)
    run = tmp_path / "run"
    saved = r"\(the run is saved at step 2: fix the file and --resume, or --resume --skip-bad to train past it\)"
    with pytest.raises(DataError, match=rf"^masks/x_gtFine_labelIds.png: unknown label ids \[40\].* {saved}$"):
        train(short_run(small_tree, run, checkpoint_every=100))
    monkeypatch.setattr(trainer, "batches_of", real)
    assert train(short_run(small_tree, run, checkpoint_every=100, resume=True)).steps == 6


def test_a_run_asked_to_stop_by_a_signal_stops_for_that_reason(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextmanager
    def sigterm_at_once() -> Iterator[Callable[[], str | None]]:
        yield lambda: "SIGTERM"

    monkeypatch.setattr("fgaug.training.train.stop_requests", sigterm_at_once)
    with pytest.raises(TrainingStoppedError, match="stopped by SIGTERM at step 1") as stopped:
        train(short_run(small_tree, tmp_path / "run"))
    assert stopped.value.reason == "signal"
    assert stopped.value.checkpoint is not None and stopped.value.checkpoint.is_file()


def test_a_long_message_is_cut_after_a_whole_sentence_or_marked() -> None:
    """A truncated checkpoint said "... there is a high likelihood that your checkpoint file is)"."""
    from fgaug.data.io import first_line

    torch_message = (
        "PytorchStreamReader failed reading zip archive: failed finding central directory. This is an internal "
        "miniz error. If you are seeing this error, there is a high likelihood that your checkpoint file is corrupted."
    )
    assert first_line(RuntimeError(torch_message)) == (
        "PytorchStreamReader failed reading zip archive: failed finding central directory. This is an internal "
        "miniz error. ..."
    )
    assert first_line(RuntimeError("x" * 300)) == "x" * 196 + " ..."
    assert first_line(RuntimeError("short\nsecond line")) == "short"
    assert first_line(RuntimeError("")) == "RuntimeError"


def test_a_probe_segmenter_given_as_a_model_is_named_as_one(tmp_path: Path) -> None:
    """``--model probe.pt`` said only "not an fgaug checkpoint (format 'fgaug-probe-1', ...)"; the
    opposite mistake already said what the file is and where it goes."""
    from fgaug.segmentation.probe import PROBE_FORMAT
    from fgaug.training.checkpoint import load_checkpoint

    probe = tmp_path / "probe.pt"
    torch.save({"format": PROBE_FORMAT, "width": 16, "state": {}}, probe)
    with pytest.raises(CheckpointError, match=r"probe\.pt: a probe segmenter of `fgaug segmenter train`.*--segmenter"):
        load_checkpoint(probe)


class FillingDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left: a write past them fails as a full disk's
    ``write`` does, with ENOSPC and no file name."""

    def __init__(self, path: str | Path, mode: str = "wb", room: int = 1024) -> None:
        super().__init__(path, mode)
        self.room = room

    def write(self, data: Any) -> int:
        self.room -= len(memoryview(data).cast("B"))
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_a_full_disk_names_the_file_being_written_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sample.png"
    with pytest.raises(OSError) as raised, atomic_output(target) as temporary, FillingDisk(temporary) as stream:
        stream.write(b"x" * 2048)
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(target))
    assert one_line(raised.value) == f"{target}: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_checkpoint_save_names_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fgaug.training.checkpoint.open", FillingDisk, raising=False)
    target = tmp_path / "last.pt"
    with pytest.raises(OSError) as raised:
        save_checkpoint(target, FullGlow(SMALL, seed=0), {"run": "full-disk"})
    assert is_user_error(raised.value) and one_line(raised.value) == f"{target}: No space left on device"
    assert list(tmp_path.iterdir()) == []
