"""Shared fixtures: a small toy Cityscapes tree, written once per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from fgaug.data.toyworld import write_toy_cityscapes

os.environ["FGAUG_PROCESS_DIR"] = tempfile.mkdtemp(prefix="fgaug-test-processes-")
atexit.register(shutil.rmtree, os.environ["FGAUG_PROCESS_DIR"], ignore_errors=True)
"""The tests' commands share the cores only with each other, not with fgaug runs outside the suite
(whose presence would change the tests' thread counts, and with them the float rounding). Under
pytest-xdist each worker has a registry of its own, so the two workers' commands do not share the
cores with each other either: each takes every core, as a suite of one process would. Pinning each
worker to one thread (``OMP_NUM_THREADS=1``) ran the suite only 3% faster (7 min 21 s against
7 min 35 s, benchmarks/RESULTS.md) and switches the registry off, which tests of it need."""


@pytest.fixture(scope="session")
def toy_tree_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy") / "cityscapes"
    write_toy_cityscapes(root, {"train": 4, "val": 2}, size=(64, 128), seed=3)
    return root


@pytest.fixture
def toy_tree(toy_tree_master: Path, tmp_path: Path) -> Path:
    """A private copy of the toy tree, free to modify."""
    copy = tmp_path / "cityscapes"
    shutil.copytree(toy_tree_master, copy)
    return copy


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy tree at 32x64 with 12 training and 4 validation scenes, for training tests."""
    root = tmp_path_factory.mktemp("small") / "cityscapes"
    write_toy_cityscapes(root, {"train": 12, "val": 4}, size=(32, 64), seed=11)
    return root


@pytest.fixture(scope="session")
def test_checkpoint(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the `test` preset (16x32) after a few training steps."""
    from fgaug.training.options import TrainOptions
    from fgaug.training.train import train

    run = tmp_path_factory.mktemp("run") / "run"
    result = train(
        TrainOptions(
            data=str(small_tree),
            run_dir=str(run),
            preset="test",
            steps=8,
            batch_size=4,
            lr=2e-3,
            warmup_steps=2,
            workers=0,
            device="cpu",
            validate_every=100,
            sample_every=100,
        )
    )
    return result.last_checkpoint


@pytest.fixture
def every_draw_diverges(monkeypatch: pytest.MonkeyPatch) -> None:
    """FullGlow.sample flags every draw as diverged (log-likelihood -inf), as a model blowing up
    at a high temperature would."""
    import torch

    from fgaug.flow import FullGlow, Samples

    sample = FullGlow.sample

    def diverging(self: FullGlow, *arguments: object, **options: object) -> Samples:
        drawn = sample(self, *arguments, **options)
        return Samples(drawn.images, torch.full_like(drawn.log_likelihood, -torch.inf), torch.ones_like(drawn.diverged))

    monkeypatch.setattr(FullGlow, "sample", diverging)
