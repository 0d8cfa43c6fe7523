"""A run's counters in one :class:`TrainState` (issue 24, item 6): saved and restored from one
list, in the checkpoint keys of before, and the dry run set up as a run is."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fgaug.training.checkpoint import load_checkpoint
from fgaug.training.dry_run import dry_run
from fgaug.training.options import TrainOptions
from fgaug.training.state import TrainState
from fgaug.training.train import train
from fgaug.usage import UsageError

TRAINING_KEYS = {
    "optimizer",
    "scaler",
    "step",
    "skipped",
    "best_val",
    "since_best",
    "first_val",
    "last_val",
    "ema_updates",
    "world_size",
}
"""The keys of a checkpoint's ``training`` entry as fgaug wrote them before :class:`TrainState`."""


def short_run(data: Path, run: Path, **changes: object) -> TrainOptions:
    settings: dict = dict(
        data=data, run_dir=run, preset="test", steps=2, batch_size=4, lr=2e-3, warmup_steps=1, workers=0, device="cpu"
    )
    return TrainOptions(**{**settings, **changes})


def test_the_state_round_trips_and_ignores_the_other_keys_of_a_checkpoint() -> None:
    state = TrainState(step=7, skipped=1, best_val=3.5, since_best=2, first_val=4.0, last_val=3.6)
    assert TrainState.from_dict({**state.to_dict(), "optimizer": {}, "world_size": 2}) == state


def test_a_counter_a_checkpoint_lacks_takes_its_default() -> None:
    state = TrainState.from_dict({"step": 5, "skipped": 0, "best_val": 2.0})
    assert state == TrainState(step=5, best_val=2.0)
    assert TrainState().best_val == math.inf and TrainState().first_val is None


def test_validations_count_towards_the_best_and_the_patience() -> None:
    state = TrainState()
    assert state.record_validation(3.0) and state.record_validation(2.0)
    assert not state.record_validation(2.5)
    assert (state.first_val, state.last_val, state.best_val, state.since_best) == (3.0, 2.5, 2.0, 1)


def test_a_checkpoint_keeps_the_keys_of_before_and_resumes(small_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = train(short_run(small_tree, run))
    saved = load_checkpoint(first.last_checkpoint).training
    assert saved is not None and set(saved) == TRAINING_KEYS | {"stand_ins"}  # --skip-bad's list, added since
    resumed = train(short_run(small_tree, run, steps=4, resume=True))
    assert resumed.steps == 4 and resumed.first_val_bpd == first.first_val_bpd
    training = load_checkpoint(resumed.last_checkpoint).training
    assert training is not None and training["step"] == 4 and training["first_val"] == first.first_val_bpd
    with pytest.raises(UsageError, match=f"^--steps 3: {run} is at step 4 already"):  # it recorded 3 steps
        train(short_run(small_tree, run, steps=3, resume=True))
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4


def test_a_checkpoint_from_before_patience_resumes(small_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(short_run(small_tree, run))
    last = run / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    del payload["training"]["since_best"]  # as fgaug wrote it before train --patience
    torch.save(payload, last)
    resumed = train(short_run(small_tree, run, steps=3, resume=True, patience=5))
    assert resumed.steps == 3 and not resumed.stopped_early


def test_a_dry_run_sets_up_the_model_as_a_run_does() -> None:
    report = dry_run("test", batch_size=2, device="cpu", precision="fp32", steps=1)
    assert report["preset"] == "test" and report["batch_size"] == 2 and report["image_size"] == [16, 32]
    assert report["precision"] == "fp32" and report["finite_loss"] and report["seconds_per_step"] > 0


def test_the_api_refuses_what_the_command_line_refuses(tmp_path: Path) -> None:
    """``TrainOptions(steps=0)`` trained the default step count, an interval of 0 divided by zero
    once the run folder was made, a size given as text failed inside string formatting."""
    for changes, message in (
        ({"steps": 0}, "--steps must be at least 1, got 0"),
        ({"checkpoint_every": 0}, "--checkpoint-every must be at least 1, got 0"),
        ({"workers": -1}, "--workers must be at least 0, got -1"),
        ({"lr": -1.0}, "--lr must be above 0, got -1"),
        ({"ema_decay": 2.0}, r"--ema-decay must lie in \[0, 1\), got 2"),
        ({"size": "16x32"}, "--size takes"),
    ):
        with pytest.raises(UsageError, match=message):
            TrainOptions(data=tmp_path, run_dir=tmp_path / "run", **changes)  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()
