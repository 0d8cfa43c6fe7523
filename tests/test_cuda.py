"""What only a CUDA device can show: host synchronisations, CUDA-graph sampling and training,
half-precision training with loss scaling, checkpoints moving between CUDA and the CPU.

These run with ``FGAUG_TEST_DEVICE=cuda`` (``benchmarks/gpu_check.py`` does so); on a machine
without CUDA the module is skipped as a whole, since each test needs the device itself.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from devices import ON_CUDA, TEST_DEVICE
from test_fullglow import SMALL, images, trained_looking_model
from test_train import losses, options

from fgaug.flow import FullGlow, network_precision
from fgaug.flow.graphs import GraphedSampler, GraphedTrainingPass
from fgaug.generate.draws import draw_best, draw_noise
from fgaug.runtime import counted_host_syncs
from fgaug.training.checkpoint import load_checkpoint
from fgaug.training.dry_run import dry_run
from fgaug.training.train import train

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


def assert_gradients_close(got: list[torch.Tensor], expected: list[torch.Tensor], relative: float) -> None:
    """Per tensor, in norm: cuDNN's backward kernels may sum in another order from call to call."""
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert (a - b).norm() <= relative * b.norm() + 1e-7, f"parameter {index}: {(a - b).norm()} vs {b.norm()}"


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_a_graphed_training_pass_follows_eager_training_from_the_first_batch(dtype: torch.dtype | None) -> None:
    """From an uninitialised model (the warm-ups initialise it from the first batch, as an eager
    step does) through Adam steps that change, in place, the parameters the replays read. The
    eager model's step is copied into the graphed one, so that cuDNN's run-to-run rounding in the
    gradients cannot grow through Adam into the comparison."""
    eager_model = FullGlow(SMALL, seed=0).to(TEST_DEVICE).train()
    graphed_model = copy.deepcopy(eager_model)
    graphed = GraphedTrainingPass(graphed_model)
    optimizer = torch.optim.Adam(eager_model.parameters(), lr=1e-3)
    for step in range(4):
        mask, photo = images(2, seed=step), images(2, seed=step + 10)
        offsets = eager_model.dequantization_offsets(2, torch.Generator().manual_seed(step))
        with network_precision(dtype):
            eager = eager_model(mask, photo, offsets=offsets)
            optimizer.zero_grad(set_to_none=True)
            eager.loss.backward()
            replayed = graphed(mask, photo, offsets)
        torch.testing.assert_close(replayed.loss, eager.loss.detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(replayed.conditional_bpd, eager.conditional_bpd.detach(), atol=1e-5, rtol=1e-5)
        assert_gradients_close(
            [p.grad for p in graphed_model.parameters()], [p.grad for p in eager_model.parameters()], 1e-3
        )
        optimizer.step()
        with torch.no_grad():
            torch._foreach_copy_(list(graphed_model.parameters()), list(eager_model.parameters()))
    assert graphed.captures == 1


def test_a_graphed_training_pass_never_waits_for_the_device() -> None:
    model = trained_looking_model().train()
    graphed = GraphedTrainingPass(model)
    mask, photo = images(2), images(2, seed=1)
    graphed(mask, photo, model.dequantization_offsets(2, torch.Generator().manual_seed(0)))  # capture
    offsets = model.dequantization_offsets(2, torch.Generator().manual_seed(1))
    with counted_host_syncs() as syncs:
        graphed(mask, photo, offsets)
    assert syncs == []


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_with_cuda_graphs_follows_the_eager_loss_curve(
    small_tree: Path, tmp_path: Path, precision: str
) -> None:
    runs = {}
    for graphs in (False, True):
        run = tmp_path / f"graphs-{graphs}"
        result = train(options(small_tree, run, steps=12, precision=precision, log_every=1, cuda_graphs=graphs))
        assert result.skipped_steps == 0
        runs[graphs] = losses(run)
    assert list(runs[True]) == list(range(1, 13))
    for step, loss in runs[False].items():
        assert abs(runs[True][step] - loss) <= 1e-3 * abs(loss), (step, runs[True][step], loss)
    report = dry_run("test", batch_size=2, device="cuda", precision=precision, cuda_graphs=True)
    assert report["cuda_graphs"] and report["finite_loss"]


def test_graphed_training_captures_while_data_workers_pin_batches(small_tree: Path, tmp_path: Path) -> None:
    """With ``--workers`` the loader's pin-memory thread pins batches while the first step is
    captured; a capture that refused other threads' allocations would fail there."""
    run = tmp_path / "run"
    result = train(options(small_tree, run, steps=6, workers=2, cuda_graphs=True, log_every=1))
    assert result.cuda_graphs and list(losses(run)) == list(range(1, 7))
