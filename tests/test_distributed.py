"""torchrun on CPU with the gloo backend: two processes train, and generate what one does (up to rounding)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from same_images import assert_same_up_to_rounding, photos

from fgaug.data.cityscapes import find_groups
from fgaug.generate.engine import generate
from fgaug.generate.options import GenerateOptions
from fgaug.training.batches import StepOrderSampler
from fgaug.training.checkpoint import load_checkpoint
from fgaug.training.options import TrainOptions
from fgaug.training.train import train


def torchrun(logs: Path, *arguments: str) -> subprocess.CompletedProcess:
    """``torchrun`` with two processes; its per-process logs go under ``logs`` (else a new folder in /tmp)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--log-dir",
        str(logs),
        "--nproc_per_node",
        "2",
        "-m",
        "fgaug",
        *arguments,
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)


def test_two_processes_train_and_resume_with_one(small_tree: Path, tmp_path: Path) -> None:
    """With ``--skip-bad``, a pair that the second process reads and that fails is listed too (it
    was listed by that process alone, which prints nothing)."""
    data = tmp_path / "data"
    shutil.copytree(small_tree, data)
    groups = find_groups(data, ["train"]).groups
    second_rank_first = next(iter(StepOrderSampler(len(groups), TrainOptions.seed, 0, 6, 3, 2, rank=1, world_size=2)))
    bad = groups[second_rank_first].mask
    Image.fromarray(np.full(np.array(Image.open(bad)).shape, 250, np.uint8)).save(bad)
    result = torchrun(
        tmp_path / "torchrun",
        "train",
        str(data),
        "--skip-bad",
        "--preset",
        "test",
        "--project",
        str(tmp_path),
        "--name",
        "ddp",
        "--steps",
        "6",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--validate-every",
        "3",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 6 and summary["last_val_bpd"] < summary["first_val_bpd"]
    assert summary["skipped_groups"] == [f"{bad}: unknown label ids [250] (labelIds holds 0-33)"]
    assert f"skipped on another process: {bad}: unknown label ids [250]" in result.stderr
    checkpoint = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert checkpoint.training is not None and checkpoint.training["world_size"] == 2
    assert checkpoint.training["stand_ins"] == summary["skipped_groups"]  # the second process's, for a resume
    # rank 0 alone keeps the log: one TensorBoard event file, one metrics line per logged step
    assert len(list((tmp_path / "ddp" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    kinds = [(record["step"], "loss" in record) for record in records]
    assert len(kinds) == len(set(kinds)) and (6, True) in kinds and (6, False) in kinds
    resumed = train(
        TrainOptions(data=str(data), run_dir=str(tmp_path / "ddp"), steps=8, resume=True, workers=0, device="cpu")
    )
    assert resumed.steps == 8


def test_sharded_generation_equals_a_single_process_up_to_rounding(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    masks = small_tree / "gtFine" / "val"
    single = generate(
        GenerateOptions(
            masks=str(masks), out=str(tmp_path / "one"), model=str(test_checkpoint), n=3, device="cpu", seed=9
        )
    )
    result = torchrun(
        tmp_path / "torchrun",
        "generate",
        "--masks",
        str(masks),
        "--out",
        str(tmp_path / "two"),
        "--model",
        str(test_checkpoint),
        "--samples",
        "3",
        "--device",
        "cpu",
        "--seed",
        "9",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["written"] == single.written == 12
    assert_same_up_to_rounding(photos(tmp_path / "one"), photos(tmp_path / "two"))
    manifests = sorted(p.name for p in (tmp_path / "two").glob("manifest*.jsonl"))
    assert manifests == ["manifest.jsonl"]
    keys = [
        (json.loads(line)["key"], json.loads(line)["sample"])
        for line in (tmp_path / "two" / "manifest.jsonl").read_text().splitlines()
    ]
    expected = [
        (json.loads(line)["key"], json.loads(line)["sample"])
        for line in (tmp_path / "one" / "manifest.jsonl").read_text().splitlines()
    ]
    assert keys == expected


def test_one_process_under_torchrun_still_makes_a_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--nproc_per_node 1`` must run the code of a larger job (process group, DDP), not the plain path."""
    import torch.distributed as dist

    from fgaug import distributed

    environment = {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29517",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    context, device = distributed.start("cpu")
    try:
        assert context.active and context.world_size == 1 and dist.is_initialized()
        assert context.sum([2, 3], device) == [2, 3]
    finally:
        distributed.stop(context)
    assert not dist.is_initialized()
    for name in environment:
        monkeypatch.delenv(name)
    assert not distributed.start("cpu")[0].active


def test_generation_tears_the_process_group_down_when_it_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A rank failing on bad input must not leave its process group behind (the other ranks would wait on it)."""
    import torch.distributed as dist

    from fgaug.data.io import DataError

    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29518"}.items():
        monkeypatch.setenv(name, value)
    try:
        with pytest.raises(DataError, match="no such file"):
            generate(
                GenerateOptions(masks=str(tmp_path / "missing"), out=str(tmp_path / "out"), model="demo", device="cpu")
            )
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
