"""Training: the loss falls, resume is exact, run folders and signals behave."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from devices import ON_CUDA, TEST_DEVICE

from fgaug.data.io import DataError
from fgaug.errors import FgaugError
from fgaug.flow import FullGlow
from fgaug.progress import SilentProgress
from fgaug.resources import DEMO_MODEL_NAME, bundled_dir
from fgaug.runtime import RuntimeChoiceError, fused_adam_available
from fgaug.training.checkpoint import CheckpointError, export_weights, initialise_from, load_checkpoint
from fgaug.training.options import TrainOptions
from fgaug.training.stopping import STOP_SIGNALS, batches_of, leave_stop_signals_to_the_trainer
from fgaug.training.train import (
    Optimisation,
    build_optimisation,
    resolve_cuda_graphs,
    resolve_run,
    train,
)
from fgaug.usage import UsageError


def options(data: Path, run: Path, **changes: object) -> TrainOptions:
    base = dict(
        data=str(data),
        run_dir=str(run),
        preset="test",
        steps=40,
        batch_size=4,
        lr=2e-3,
        warmup_steps=5,
        workers=0,
        device=str(TEST_DEVICE),
        validate_every=20,
        sample_every=40,
        checkpoint_every=20,
        log_every=5,
    )
    base.update(changes)
    return TrainOptions(**base)  # type: ignore[arg-type]


def losses(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {line["step"]: line["loss"] for line in lines if "loss" in line}


def test_training_lowers_validation_bits_per_dim(small_tree: Path, tmp_path: Path) -> None:
    result = train(options(small_tree, tmp_path / "run", steps=60, validate_every=30, sample_every=60))
    assert result.first_val_bpd is not None and result.last_val_bpd is not None
    assert result.last_val_bpd < result.first_val_bpd - 0.5
    run = tmp_path / "run"
    assert (run / "config.json").is_file() and (run / "checkpoints" / "best.pt").is_file()
    assert (run / "samples" / "step_0000060.png").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "test" and config["model"]["image_size"] == [16, 32]
    assert config["train"]["precision"] == "auto" and config["precision"] == result.precision
    assert result.precision == ("bf16" if TEST_DEVICE.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32")
    assert load_checkpoint(result.last_checkpoint).meta["step"] == 60


def test_resume_continues_the_same_loss_curve(small_tree: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    train(options(small_tree, whole))
    split = tmp_path / "split"
    train(options(small_tree, split, steps=20))
    train(options(small_tree, split, steps=40, resume=True))
    if ON_CUDA:  # cuDNN's backward kernels may sum in a different order from run to run
        assert losses(split) == pytest.approx(losses(whole), rel=1e-4)
    else:
        assert losses(split) == losses(whole)
    assert max(losses(whole)) == 40


def logged_steps(run: Path) -> list[int]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line["step"] for line in lines if "loss" in line]


def test_a_run_killed_outright_resumes_with_each_step_logged_once(small_tree: Path, tmp_path: Path) -> None:
    """A run killed by SIGKILL had logged steps after its last checkpoint (and maybe a line cut off
    mid-write): the resumed run logged those steps a second time, and a cut line made the log
    unreadable. A run killed before its first checkpoint could not be resumed at all."""
    quick = {"log_every": 1, "validate_every": 100, "sample_every": 100}
    whole = tmp_path / "whole"
    train(options(small_tree, whole, steps=6, **quick))
    killed = tmp_path / "killed"
    train(options(small_tree, killed, steps=4, **quick))
    with open(killed / "metrics.jsonl", "a", encoding="utf-8") as log:  # logged after the checkpoint at step 4
        log.write('{"step": 5, "loss": 99.0}\n{"step": 6, "los')
    train(options(small_tree, killed, steps=6, resume=True, **quick))
    same = pytest.approx(losses(whole), rel=1e-4) if ON_CUDA else losses(whole)  # cuDNN's order may vary
    assert logged_steps(killed) == logged_steps(whole) == [1, 2, 3, 4, 5, 6]
    assert losses(killed) == same
    finished = tmp_path / "finished"
    train(options(small_tree, finished, steps=6, checkpoint_every=4, **quick))
    (finished / "checkpoints" / "last.pt").unlink()  # a finished run's, deleted: its best.pt is kept
    with pytest.raises(CheckpointError, match=r"last\.pt: not found, so the run cannot resume; --exist-ok starts"):
        train(options(small_tree, finished, steps=6, checkpoint_every=4, resume=True, **quick))
    assert (finished / "checkpoints" / "best.pt").is_file()
    early = tmp_path / "early"
    train(options(small_tree, early, steps=6, checkpoint_every=10, **quick))
    (early / "checkpoints" / "last.pt").unlink()  # killed at step 6 of 8 before a checkpoint: step 1's best.pt stays
    train(options(small_tree, early, steps=8, checkpoint_every=10, resume=True, **quick))
    assert logged_steps(early) == list(range(1, 9)) and losses(early)[1] == pytest.approx(losses(whole)[1], rel=1e-4)
    short = tmp_path / "short"  # finished before its first --checkpoint-every, as the README's demo run
    train(options(small_tree, short, steps=6, checkpoint_every=10, **quick))
    (short / "checkpoints" / "last.pt").unlink()
    with pytest.raises(CheckpointError, match=r"last\.pt: not found, so the run cannot resume"):
        train(options(small_tree, short, steps=6, checkpoint_every=10, resume=True, **quick))
    assert (short / "checkpoints" / "best.pt").is_file() and (short / "metrics.jsonl").is_file()


def test_exist_ok_keeps_the_earlier_run_until_the_new_one_can_start(small_tree: Path, tmp_path: Path) -> None:
    """``--exist-ok`` with a missing dataset, a batch larger than the data or a bad --val emptied
    the run folder first, then failed."""
    run = tmp_path / "run"
    train(options(small_tree, run, steps=2))
    before = sorted(path.relative_to(run) for path in run.rglob("*"))
    for data, changes in (
        (tmp_path / "nowhere", {}),
        (small_tree, {"batch_size": 64}),
        (small_tree, {"val_data": "-"}),
    ):
        with pytest.raises(FgaugError):
            train(options(data, run, steps=2, exist_ok=True, **changes))
        assert sorted(path.relative_to(run) for path in run.rglob("*")) == before


def test_a_resume_refuses_settings_other_than_the_runs_and_takes_how_long_and_on_what(
    small_tree: Path, tmp_path: Path
) -> None:
    """``--resume --lr 0.5 --preset small`` trained on at the run's settings and said nothing."""
    run = tmp_path / "run"
    train(options(small_tree, run, steps=2))
    refused = r"not --preset small \(the run has test\), --lr 0.5 \(the run has 0.002\); start a new run"
    with pytest.raises(UsageError, match=refused):
        resolve_run(options(small_tree, run, steps=4, resume=True, preset="small", lr=0.5))
    with pytest.raises(UsageError, match=r"not --boundary on \(the run has off\);"):
        resolve_run(options(small_tree, run, steps=4, resume=True, boundary=True))
    moved = tmp_path / "moved"
    shutil.copytree(small_tree, moved)  # a dataset moved: the run goes on reading it where it is now
    given = options(moved, run, steps=4, resume=True, precision="fp32", workers=1, skip_bad=True)
    resumed, _, _ = resolve_run(given)
    assert (resumed.steps, resumed.precision, resumed.workers, resumed.lr) == (4, "fp32", 1, 2e-3)
    assert (resumed.data, resumed.skip_bad) == (str(moved), True)
    lengthened, _, _ = resolve_run(options(small_tree, run, steps=None, epochs=30, resume=True))
    assert (lengthened.steps, lengthened.epochs) == (None, 30), "--epochs anew, not the run's recorded --steps"


def test_a_run_started_afresh_keeps_nothing_of_the_earlier_run_in_its_folder(small_tree: Path, tmp_path: Path) -> None:
    """``--exist-ok`` kept the old checkpoints and samples: a new run stopped before its first
    checkpoint resumed the old weights under the new configuration."""
    run = tmp_path / "run"
    train(options(small_tree, run, steps=4, sample_every=2))
    (run / "notes.txt").write_text("mine")
    (run / "samples" / "mine.png").write_bytes(b"mine")  # the user's, in the run's own folders
    shutil.copy(run / "checkpoints" / "last.pt", run / "checkpoints" / "keep-me.pt")  # it was removed
    with pytest.raises(DataError, match="run folder exists"):
        train(options(small_tree, run, steps=1))
    train(options(small_tree, run, steps=1, exist_ok=True, sample_every=1))
    assert sorted(path.name for path in (run / "samples").iterdir()) == ["mine.png", "step_0000001.png"]
    assert load_checkpoint(run / "checkpoints" / "last.pt").meta["step"] == 1
    assert (run / "notes.txt").read_text() == "mine" and (run / "checkpoints" / "keep-me.pt").is_file()


def test_a_resume_refuses_other_training_pairs_but_not_a_copy_of_the_same(small_tree: Path, tmp_path: Path) -> None:
    """``--resume`` on a tree with other pairs (a city dropped, another added) went on silently,
    over a batch order drawn for the run's pairs."""
    run = tmp_path / "run"
    train(options(small_tree, run, steps=2))
    copy = tmp_path / "copy"
    shutil.copytree(small_tree, copy)  # new modification times, the same pairs
    assert train(options(copy, run, steps=3, resume=True)).steps == 3
    for path in (
        sorted((copy / "gtFine" / "train").rglob("*"))[:1] + sorted((copy / "leftImg8bit" / "train").rglob("*"))[:1]
    ):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(DataError, match=f"^{copy}: holds \\d+ pairs .*, but {run} trained on 12 pairs"):
        train(options(copy, run, steps=4, resume=True))


@pytest.mark.skipif(not fused_adam_available(TEST_DEVICE), reason="no fused Adam here (CPU: torch < 2.4)")
def test_a_checkpoint_of_the_per_tensor_adam_resumes_with_the_fused_one(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run checkpointed by fgaug before it fused Adam on the CPU (its optimiser's groups saved
    with ``fused: None``) goes on with the fused kernel: one call per step."""
    run = tmp_path / "run"
    train(options(small_tree, run, steps=4, validate_every=100, sample_every=100, checkpoint_every=4))
    checkpoint = run / "checkpoints" / "last.pt"
    payload = torch.load(checkpoint, weights_only=True)
    for group in payload["training"]["optimizer"]["param_groups"]:
        group["fused"] = None
    torch.save(payload, checkpoint)
    fused_kernel, calls = torch._fused_adam_, []

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return fused_kernel(*args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adam_", counted)
    train(options(small_tree, run, steps=7, validate_every=100, sample_every=100, checkpoint_every=4, resume=True))
    assert len(calls) == 3


def test_data_workers_start_once_per_run_and_give_the_batches_of_a_run_without_them(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 pairs at batch 4 are 3 steps per epoch: 12 steps span 4 epochs, and a loader per epoch
    forked its worker 4 times (on a user's 20 images that was two thirds of a CPU step's time)."""
    starts = tmp_path / "worker-starts"

    def counted(worker_id: int) -> None:
        with starts.open("a") as log:
            log.write(f"{os.getpid()}\n")
        leave_stop_signals_to_the_trainer(worker_id)

    alone = tmp_path / "alone"
    train(options(small_tree, alone, steps=12, validate_every=100, sample_every=100))
    monkeypatch.setattr("fgaug.training.train.leave_stop_signals_to_the_trainer", counted)
    with_worker = tmp_path / "with-worker"
    train(options(small_tree, with_worker, steps=12, validate_every=100, sample_every=100, workers=1, log_every=1))
    assert len(starts.read_text().splitlines()) == 1
    if ON_CUDA:  # cuDNN's backward kernels may sum in a different order from run to run
        assert losses(with_worker)[12] == pytest.approx(losses(alone)[12], rel=1e-4)
    else:
        assert losses(with_worker)[12] == losses(alone)[12]


def test_a_copied_run_folder_resumes_in_the_copy_and_leaves_the_original_alone(
    small_tree: Path, tmp_path: Path
) -> None:
    """Branching a longer run off a finished one: the copy's config.json names the original folder,
    which must not be written to."""
    original, branch = tmp_path / "original", tmp_path / "branch"
    train(options(small_tree, original, steps=20))
    shutil.copytree(original, branch)
    before = {path: path.read_bytes() for path in original.rglob("*") if path.is_file()}
    result = train(options(small_tree, branch, steps=40, resume=True))
    assert {path: path.read_bytes() for path in original.rglob("*") if path.is_file()} == before
    assert result.last_checkpoint.parent.parent == branch and max(losses(branch)) == 40
    resumed = json.loads((branch / "config.json").read_text())["train"]
    assert resumed["run_dir"] == str(branch) and resumed["steps"] == 40


def test_a_run_initialised_from_a_checkpoint_starts_from_its_ema_weights_with_a_fresh_optimiser(
    small_tree: Path, tmp_path: Path
) -> None:
    trained = train(options(small_tree, tmp_path / "trained", steps=20)).last_checkpoint
    tuned = options(small_tree, tmp_path / "tuned", steps=10, init_from=trained)
    resolved, config, _ = resolve_run(tuned)
    start = build_optimisation(resolved, config, TEST_DEVICE)
    expected = load_checkpoint(trained).model.state_dict()  # its EMA weights
    raw = load_checkpoint(trained, prefer_ema=False).model.state_dict()
    assert any(not torch.equal(value, raw[key]) for key, value in expected.items())
    assert all(torch.equal(value.cpu(), expected[key]) for key, value in start.model.state_dict().items())
    assert start.init_from_sha256 == load_checkpoint(trained).sha256
    fresh = train(options(small_tree, tmp_path / "fresh", steps=10))
    result = train(tuned)
    assert losses(result.run_dir)[5] < losses(fresh.run_dir)[5]  # a trained start: already a lower loss
    recorded = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert recorded["train"]["init_from"] == str(trained)
    assert recorded["init_from_sha256"] == load_checkpoint(trained).sha256
    assert load_checkpoint(result.last_checkpoint).meta["step"] == 10  # a fresh step count


def test_a_fine_tuned_run_resumes_without_its_source_and_refuses_another(small_tree: Path, tmp_path: Path) -> None:
    trained = train(options(small_tree, tmp_path / "trained", steps=4)).last_checkpoint
    exported = export_weights(trained, tmp_path / "half.pt", half=True)
    shutil.rmtree(tmp_path / "trained")
    tuned = options(small_tree, tmp_path / "tuned", steps=2, init_from=exported)
    resolved, config, _ = resolve_run(tuned)
    start = build_optimisation(resolved, config, TEST_DEVICE)
    stored = load_checkpoint(exported).model.state_dict()  # float16 on disk, loaded as float32
    assert all(value.dtype != torch.float16 for value in start.model.state_dict().values())
    assert all(torch.equal(value.cpu(), stored[key]) for key, value in start.model.state_dict().items())
    train(tuned)
    sha256 = json.loads((tmp_path / "tuned" / "config.json").read_text())["init_from_sha256"]
    exported.unlink()
    train(options(small_tree, tmp_path / "tuned", steps=4, resume=True))  # the source is not read again
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init_from_sha256"] == sha256
    with pytest.raises(UsageError, match=r"--init-from applies to a new run; .*tuned started from .*half\.pt"):
        train(options(small_tree, tmp_path / "tuned", steps=6, resume=True, init_from=tmp_path / "other.pt"))


def test_init_from_demo_names_the_bundled_model() -> None:
    bundled = load_checkpoint(bundled_dir() / DEMO_MODEL_NAME)
    model = FullGlow(bundled.model.config, seed=1)
    assert initialise_from(model, "demo") == bundled.sha256
    assert all(torch.equal(value, bundled.model.state_dict()[key]) for key, value in model.state_dict().items())


def test_fine_tuning_may_change_the_objective_but_not_the_model(small_tree: Path, tmp_path: Path) -> None:
    trained = train(options(small_tree, tmp_path / "trained", steps=2)).last_checkpoint
    noisy = train(options(small_tree, tmp_path / "noisy", steps=2, init_from=trained, noise="gaussian:0.02"))
    assert load_checkpoint(noisy.last_checkpoint).model.config.gaussian_noise == 0.02
    refusal = r"trained/checkpoints/last.pt: its model is not this run's \(image_size \[16, 32\] there, \[32, 64\]"
    with pytest.raises(CheckpointError, match=refusal):
        train(options(small_tree, tmp_path / "tuned", steps=2, init_from=trained, size=(32, 64)))
    assert not (tmp_path / "tuned" / "checkpoints").exists()


def test_existing_run_folder_is_not_overwritten(small_tree: Path, tmp_path: Path) -> None:
    train(options(small_tree, tmp_path / "run", steps=2))
    with pytest.raises(DataError, match="run folder exists; use --resume"):
        train(options(small_tree, tmp_path / "run", steps=2))
    train(options(small_tree, tmp_path / "run", steps=2, exist_ok=True))
    with pytest.raises(DataError, match="nothing to resume"):
        train(options(small_tree, tmp_path / "other", resume=True))


def test_cuda_graphs_are_refused_where_the_captured_step_would_not_be_the_eager_one(
    small_tree: Path, tmp_path: Path
) -> None:
    cuda = torch.device("cuda")  # only checked, never used
    graphed = options(small_tree, tmp_path / "run", cuda_graphs=True)
    assert resolve_cuda_graphs(cuda, graphed) == (True, None)
    for changes, named in (({"gradient_checkpointing": True}, "--checkpointing"), ({"compile": True}, "--compile")):
        with pytest.raises(RuntimeChoiceError, match=f"cannot be combined with {named}"):
            resolve_cuda_graphs(cuda, options(small_tree, tmp_path / "run", cuda_graphs=True, **changes))
    with pytest.raises(RuntimeChoiceError, match=r"torchrun \(2 processes\)"):
        resolve_cuda_graphs(cuda, graphed, world_size=2)
    with pytest.raises(RuntimeChoiceError, match="--cuda-graphs needs a CUDA device, not cpu"):
        train(options(small_tree, tmp_path / "cpu", steps=2, device="cpu", cuda_graphs=True))
    assert not (tmp_path / "cpu" / "checkpoints").exists()


def test_auto_cuda_graphs_are_on_where_valid_and_off_with_a_reason_elsewhere(small_tree: Path, tmp_path: Path) -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")  # only checked, never used
    auto = options(small_tree, tmp_path / "run")
    assert auto.cuda_graphs is None
    assert resolve_cuda_graphs(cuda, auto) == (True, None)
    assert resolve_cuda_graphs(cpu, auto) == (False, None)
    assert resolve_cuda_graphs(cuda, auto, world_size=2) == (
        False,
        "CUDA graphs off: cannot be combined with torchrun (2 processes)",
    )
    checkpointed = options(small_tree, tmp_path / "run", gradient_checkpointing=True)
    assert resolve_cuda_graphs(cuda, checkpointed) == (
        False,
        "CUDA graphs off: cannot be combined with --checkpointing",
    )
    assert resolve_cuda_graphs(cuda, options(small_tree, tmp_path / "run", cuda_graphs=False)) == (False, None)
    result = train(options(small_tree, tmp_path / "cpu", steps=2, device="cpu"))
    assert result.cuda_graphs is False and result.to_dict()["cuda_graphs"] is False


class LoggedProgress(SilentProgress):
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def log(self, message: str) -> None:
        self.lines.append(message)


class OutOfMemoryOnCapture:
    """Stands in for a CUDA graph whose first capture runs out of memory."""

    captures = 0

    def __call__(self, *args: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (the graph's pool)")


@pytest.mark.parametrize("choice", [None, True])
def test_a_capture_out_of_memory_falls_back_to_eager_steps_under_auto_only(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, choice: bool | None
) -> None:
    eager = train(options(small_tree, tmp_path / "eager", steps=2, device="cpu"))
    logged: list[str] = []

    def graphed_set_up(*args: object, **kwargs: object) -> Optimisation:
        optimisation = build_optimisation(*args, **kwargs)  # type: ignore[arg-type]
        optimisation.graphed = OutOfMemoryOnCapture()  # type: ignore[assignment]
        return optimisation

    monkeypatch.setattr("fgaug.training.train.build_optimisation", graphed_set_up)
    monkeypatch.setattr("fgaug.training.train.resolve_cuda_graphs", lambda *args: (False, None))
    progress = LoggedProgress(logged)
    run = options(small_tree, tmp_path / "fallback", steps=2, device="cpu", cuda_graphs=choice)
    if choice:
        with pytest.raises(torch.cuda.OutOfMemoryError):
            train(run, progress)
        return
    fallback = train(run, progress)
    assert any("CUDA graphs off: the captured step's memory pool did not fit" in line for line in logged)
    assert fallback.cuda_graphs is False
    weights = load_checkpoint(fallback.last_checkpoint).model.state_dict()
    for name, tensor in load_checkpoint(eager.last_checkpoint).model.state_dict().items():
        assert torch.equal(weights[name], tensor), name  # the same steps on the same noise, eagerly


@pytest.mark.parametrize("workers", [0, 1])
def test_sigterm_saves_a_checkpoint_that_resumes(small_tree: Path, tmp_path: Path, workers: int) -> None:
    """SIGTERM to the whole process group (a cancelled CI job, ``kill -- -PGID``), data workers
    included: the trainer saves its checkpoint and exits 130."""
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "fgaug",
        "train",
        str(small_tree),
        "--preset",
        "test",
        "--project",
        str(tmp_path),
        "--name",
        "run",
        "--steps",
        "100000",
        "--batch-size",
        "4",
        "--workers",
        str(workers),
        "--device",
        str(TEST_DEVICE),
        "--validate-every",
        "100000",
        "--sample-every",
        "100000",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.jsonl").is_file():
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    step = load_checkpoint(run / "checkpoints" / "last.pt").meta["step"]
    assert step > 0
    resumed = TrainOptions(str(small_tree), str(run), steps=step + 2, device=str(TEST_DEVICE), workers=0, resume=True)
    assert train(resumed).steps == step + 2
    os.environ.pop("FGAUG_MODEL", None)


def signalled_before_it_ignores_stops(worker_id: int) -> None:
    """A SIGTERM that reaches a data worker before its init function has run."""
    os.kill(os.getpid(), signal.SIGTERM)
    leave_stop_signals_to_the_trainer(worker_id)


def test_a_stop_signal_sent_while_a_worker_starts_does_not_kill_it() -> None:
    """The worker starts with the stop signals blocked: a SIGTERM sent before it ignores them stays
    pending and is discarded, where it used to kill the worker (torch's handler re-raises it) and
    make the loader raise in the trainer. The trainer's own signal mask is left as it was."""
    loader = torch.utils.data.DataLoader(
        list(range(8)), batch_size=2, num_workers=1, worker_init_fn=signalled_before_it_ignores_stops
    )
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert [batch.tolist() for batch in batches_of(loader)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    assert not set(STOP_SIGNALS) & before


def test_a_run_folder_holds_results_png_and_tensorboard_events(small_tree: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(options(small_tree, run, steps=20, validate_every=10, sample_every=20, log_every=5))
    assert (run / "results.png").stat().st_size > 10_000
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/bpd", "train/lr", "train/grad_norm", "train/images_per_s", "val/bpd"} <= set(scalars)
    assert [event.step for event in events.Scalars("val/bpd")] == [1, 10, 20]
    assert events.Tags()["images"] == ["samples"]


def test_tensorboard_can_be_switched_off_and_is_refused_when_missing(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train(options(small_tree, tmp_path / "off", steps=2, tensorboard=False))
    assert not (tmp_path / "off" / "tensorboard").exists() and (tmp_path / "off" / "results.png").is_file()
    monkeypatch.setattr("fgaug.training.runlog.tensorboard_available", lambda: False)
    with pytest.raises(ValueError, match='pip install "fgaug\\[tensorboard\\]"'):
        train(options(small_tree, tmp_path / "on", steps=2, tensorboard=True))
    train(options(small_tree, tmp_path / "auto", steps=2))
    assert not (tmp_path / "auto" / "tensorboard").exists()


def test_patience_without_validation_data_is_refused_before_the_run_starts(small_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    expected = r"--patience 3 stops on validation bits/dim, and there is no validation data \(no gtFine/nowhere"
    with pytest.raises(DataError, match=expected + r", no --val\); give it with --val, or train with no --patience$"):
        train(options(small_tree, run, val_split="nowhere", patience=3))
    assert not run.exists()
    data = tmp_path / "data"
    shutil.copytree(small_tree, data)
    train(options(data, run, steps=1, patience=3))
    shutil.rmtree(data / "gtFine" / "val")
    with pytest.raises(DataError, match=r"or train with --patience 0 \(a resumed run keeps its own\)$"):
        train(options(data, run, steps=2, resume=True))
    assert train(options(data, run, steps=2, resume=True, patience=0)).steps == 2


def test_patience_stops_when_validation_stops_improving_and_resumes_with_its_count(
    small_tree: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    # a learning rate this high makes validation worse after the first steps
    result = train(options(small_tree, run, steps=200, lr=0.01, warmup_steps=1, validate_every=4, patience=2))
    validations = [
        line["val_bpd"]
        for line in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if "val_bpd" in line
    ]
    assert result.stopped_early and result.steps < 200
    assert min(validations[-2:]) >= min(validations[:-2]), "it stopped although the last validations improved"
    assert load_checkpoint(result.last_checkpoint).training["since_best"] >= 2
    again = train(options(small_tree, run, steps=200, lr=0.01, warmup_steps=1, validate_every=4, resume=True))
    assert again.stopped_early and again.steps == result.steps, "a rerun of the stopped run trained on"
