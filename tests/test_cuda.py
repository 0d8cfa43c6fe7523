"""What only a CUDA device can show: host synchronisations, CUDA-graph sampling, half-precision
training with loss scaling, checkpoints moving between CUDA and the CPU.

These run with ``FGAUG_TEST_DEVICE=cuda`` (``benchmarks/gpu_check.py`` does so); on a machine
without CUDA the module is skipped as a whole, since each test needs the device itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from devices import ON_CUDA, TEST_DEVICE
from test_fullglow import images, trained_looking_model
from test_train import options

from fgaug.checkpoint import load_checkpoint
from fgaug.flow import FullGlow, network_precision
from fgaug.flow.graphs import GraphedSampler
from fgaug.runtime import counted_host_syncs
from fgaug.sample import draw_best, draw_noise
from fgaug.train import train

pytestmark = pytest.mark.skipif(not ON_CUDA, reason="needs FGAUG_TEST_DEVICE=cuda (run by benchmarks/gpu_check.py)")


def pinned_noise(model: FullGlow, batch: int, seed: int) -> list[torch.Tensor]:
    return [eps.pin_memory() for eps in model.sample_noise(batch, torch.Generator().manual_seed(seed))]


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_sampling_and_a_training_step_never_wait_for_the_device(dtype: torch.dtype | None) -> None:
    model = trained_looking_model()
    mask, photo = images(2), images(2, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    noise = pinned_noise(model, 6, 0)

    def step() -> None:
        with network_precision(dtype):
            loss = model(mask, photo, generator=torch.Generator().manual_seed(0)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with network_precision(dtype):
            model.sample(mask, n=3, temperature=0.8, noise=noise)

    step()  # first calls: data-dependent flags read once, optimiser state made
    with counted_host_syncs() as syncs:
        step()
    assert syncs == []


def test_draw_best_waits_for_the_device_once_per_call() -> None:
    model, masks = trained_looking_model(), images(2)
    draw_best(model, masks, ["a", "b"], [[0, 1]] * 2, 0.5, seed=0, best_of=2)
    with counted_host_syncs() as syncs:
        draw_best(model, masks, ["a", "b"], [[0, 1]] * 2, 0.5, seed=0, best_of=2)
    assert len(syncs) == 1, syncs


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_cuda_graph_sampling_gives_the_eager_images(dtype: torch.dtype | None) -> None:
    model = trained_looking_model()
    graphed = GraphedSampler(model)
    mask = images(2)
    with network_precision(dtype):
        for seed in (0, 1):  # the second call replays the graph captured by the first
            noise = draw_noise(model, range(seed * 6, seed * 6 + 6), pin=True)
            eager = model.sample(mask, n=3, temperature=0.8, noise=noise)
            replayed = graphed.sample(mask, n=3, temperature=0.8, noise=noise)
            torch.testing.assert_close(replayed.images, eager.images, atol=0, rtol=0)
            torch.testing.assert_close(replayed.log_likelihood, eager.log_likelihood, atol=0, rtol=0)
    assert graphed.captured == 1


def test_checkpoints_move_between_cuda_and_the_cpu(small_tree: Path, tmp_path: Path) -> None:
    result = train(options(small_tree, tmp_path / "run", steps=6, precision="fp32"))
    on_cuda = load_checkpoint(result.last_checkpoint, "cuda")
    on_cpu = load_checkpoint(result.last_checkpoint, "cpu")
    assert next(on_cpu.model.parameters()).device.type == "cpu"
    mask = torch.rand(2, 3, *on_cpu.model.config.image_size, generator=torch.Generator().manual_seed(0))
    noise = on_cpu.model.sample_noise(4, torch.Generator().manual_seed(1))
    cpu_images = on_cpu.model.sample(mask, n=2, temperature=0.8, noise=noise).images
    cuda_images = on_cuda.model.sample(mask.cuda(), n=2, temperature=0.8, noise=noise).images.cpu()
    assert (cpu_images - cuda_images).abs().max() <= 1 / 255 + 1e-6
    moved = FullGlow(on_cpu.model.config).to(TEST_DEVICE)
    moved.load_state_dict(on_cpu.model.state_dict())
    assert all(p.is_cuda for p in moved.parameters())


def test_fp16_training_with_loss_scaling_skips_nothing(small_tree: Path, tmp_path: Path) -> None:
    result = train(options(small_tree, tmp_path / "run", steps=30, precision="fp16", log_every=1))
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [line["loss"] for line in lines if "loss" in line]
    assert result.skipped_steps == 0 and len(losses) == 30
    assert all(map(math.isfinite, losses)) and sum(losses[-5:]) / 5 < losses[0]


def test_a_training_run_waits_for_the_device_about_once_per_step(small_tree: Path, tmp_path: Path) -> None:
    counts = []
    for name, steps in (("short", 5), ("long", 25)):
        quiet = {"validate_every": 10_000, "sample_every": 10_000, "checkpoint_every": 10_000, "log_every": 10_000}
        with counted_host_syncs() as syncs:
            train(options(small_tree, tmp_path / name, steps=steps, **quiet))
        counts.append(len(syncs))
    per_step = (counts[1] - counts[0]) / 20
    assert per_step <= 1.0, f"{per_step} host syncs per training step"
