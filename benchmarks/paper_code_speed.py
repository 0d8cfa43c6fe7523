"""Speed of the paper's own code (MoeinSorkhei/glow2) beside fgaug's, on the same device.

The paper's code is read from a local copy (``--glow2 DIR``, the repository's root holding
``src/``); nothing of it is vendored or downloaded. Its Full-Glow ("improved" TwoGlows, LU 1x1
convolutions, every target operation conditioned) is built at the given blocks, flow steps and
size, at batch 1 (its conditional LU convolution works only there), and timed as its trainer runs
it: uniform dequantisation, ``lambda * nll(left) + nll(right)``, backward, Adam. Sampling is its
``reverse`` with latents at temperature 0.8. fgaug's model of the same structure is timed in the
same process, so the ratio is measured side by side. On CUDA fgaug is also timed with CUDA graphs
(``train --cuda-graphs``, ``generate --cuda-graphs``): the setting for single-image steps, where
kernel launches set the pace.

    python benchmarks/paper_code_speed.py --glow2 /path/to/glow2 --n-block 4 --n-flow 16 --size 256x256
    python benchmarks/paper_code_speed.py --glow2 /path/to/glow2 --n-block 3 --n-flow 4 --size 64x128 --json
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import importlib
import json
import math
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from core_speed import machine, parse_size, synchronize

from fgaug.flow import FullGlow, network_precision
from fgaug.flow.config import FullGlowConfig
from fgaug.flow.graphs import GraphedSampler, GraphedTrainingPass
from fgaug.runtime import resolve_device, resolve_precision
from fgaug.training.optimiser import adam
from fgaug.training.presets import load_preset


def import_paper_model(root: Path, device: torch.device) -> type:
    """glow2's ``TwoGlows`` class, imported without its training scripts: the modules it needs from
    outside ``models/glow`` (``globals``, ``helper``) get small stand-ins holding the two names used."""
    source = root / "src"
    if not (source / "models" / "two_glows" / "two_glows.py").is_file():
        raise SystemExit(f"{root}: not a copy of MoeinSorkhei/glow2 (no src/models/two_glows/two_glows.py)")
    globals_module = types.ModuleType("globals")
    globals_module.device = device  # type: ignore[attr-defined]
    helper_module = types.ModuleType("helper")
    helper_module.label_to_tensor = None  # type: ignore[attr-defined]  # imported, never called here
    sys.modules["globals"], sys.modules["helper"] = globals_module, helper_module
    try:
        importlib.import_module("torchvision.transforms")
    except Exception:  # torchvision that does not import beside this torch: only its name is needed
        for name in ("torchvision", "torchvision.transforms"):
            sys.modules[name] = types.ModuleType(name)
    models = types.ModuleType("models")
    models.__path__ = [str(source / "models")]  # skip models/__init__, which imports the trainers
    sys.modules["models"] = models
    return importlib.import_module("models.two_glows.two_glows").TwoGlows


def paper_model(root: Path, device: torch.device, n_block: int, n_flow: int, size: tuple[int, int]) -> torch.nn.Module:
    two_glows = import_paper_model(root, device)
    params = {"channels": 3, "img_size": list(size), "n_block": n_block, "n_flow": [n_flow] * n_block}
    left = {"all_conditional": False, "split_type": "regular", "do_lu": True, "grad_checkpoint": False}
    right = {**left, "all_conditional": True, "condition": "left"}
    return two_glows(params, left, right).to(device)


def paper_loss(model: torch.nn.Module, segment: torch.Tensor, photo: torch.Tensor, reg: float = 1e-4) -> torch.Tensor:
    """The paper's objective as its trainer computes it (bits per dimension, uniform noise)."""
    n_bins, dims = 256.0, photo[0].numel()

    def nll(outs: dict) -> torch.Tensor:
        log_x = -math.log(n_bins) * dims + outs["log_det"].mean() + outs["log_p"].mean()
        return -log_x / (math.log(2) * dims)

    left, right = model(segment + torch.rand_like(segment) / n_bins, photo + torch.rand_like(photo) / n_bins)
    return reg * nll(left) + nll(right)


def paper_calls(
    root: Path,
    device: torch.device,
    n_block: int,
    n_flow: int,
    size: tuple[int, int],
    segment: torch.Tensor,
    photo: torch.Tensor,
) -> tuple[torch.nn.Module, Callable[[], None], Callable[[], None]]:
    """The paper's model, one training step of it as its trainer runs it (Adam), and one sampling call."""
    model = paper_model(root, device, n_block, n_flow, size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = paper_loss(model, segment, photo)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def sample() -> None:
        with torch.no_grad():
            model.reverse(x_a=segment, z_b_samples=paper_latents(model, size, n_block, device))

    return model, step, sample


def paper_latents(model: torch.nn.Module, size: tuple[int, int], n_block: int, device: torch.device) -> list:
    channels, (height, width), shapes = 3, size, []
    for _ in range(n_block - 1):
        channels, height, width = channels * 2, height // 2, width // 2
        shapes.append((channels, height, width))
    shapes.append((channels * 4, height // 2, width // 2))
    return [0.8 * torch.randn(1, *shape, device=device) for shape in shapes]


def seconds_per_call(function: Callable[[], object], calls: int, device: torch.device) -> float:
    function()  # warm-up: cuDNN algorithm choice, allocator, data-dependent init
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        function()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def fgaug_config(n_block: int, n_flow: int, size: tuple[int, int]) -> FullGlowConfig:
    """fgaug's paper-256 settings (width 512, the paper's conditioning networks) at this structure."""
    settings = load_preset("paper-256").model.to_dict()
    settings.update(image_size=list(size), n_block=n_block, n_flow=[n_flow] * n_block)
    return FullGlowConfig.from_dict(settings, origin="paper_code_speed")


def measure(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    segment = torch.rand(1, 3, *args.size, device=device)
    photo = torch.rand(1, 3, *args.size, device=device)
    report: dict = {
        **machine(device),
        "structure": f"{args.n_block}x{args.n_flow} @ {args.size[0]}x{args.size[1]}, batch 1",
    }
    report.update(time_paper_code(args, device, segment, photo))
    report.update(time_fgaug(args, device, segment, photo))
    for precision in args.precisions:
        for mode in ("", "_graphs"):
            for what in ("train", "sample"):
                ours = report.get(f"fgaug_{precision}{mode}_{what}_seconds")
                if ours is not None:
                    report[f"fgaug_{precision}{mode}_{what}_speedup"] = report[f"paper_{what}_seconds"] / ours
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in report.items()}


def time_paper_code(
    args: argparse.Namespace, device: torch.device, segment: torch.Tensor, photo: torch.Tensor
) -> dict[str, float]:
    """The paper's code with torch's default float32 settings (cuDNN may use TF32 for its
    convolutions, as it did for the paper), not fgaug's strict float32 outside the networks."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        return _time_paper_code(args, device, segment, photo)
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def _time_paper_code(
    args: argparse.Namespace, device: torch.device, segment: torch.Tensor, photo: torch.Tensor
) -> dict[str, float]:
    paper, step, sample = paper_calls(args.glow2, device, args.n_block, args.n_flow, args.size, segment, photo)
    return {
        "paper_parameters_m": round(sum(p.numel() for p in paper.parameters()) / 1e6, 2),
        "paper_train_seconds": seconds_per_call(step, args.steps, device),
        "paper_sample_seconds": seconds_per_call(sample, args.samples, device),
    }


def time_fgaug(
    args: argparse.Namespace, device: torch.device, segment: torch.Tensor, photo: torch.Tensor
) -> dict[str, float]:
    model = FullGlow(fgaug_config(args.n_block, args.n_flow, args.size)).to(device)
    optimizer = adam(model, 1e-4)
    report = {"fgaug_parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    for precision in args.precisions:
        dtype = resolve_precision(precision, device)

        def step(dtype: torch.dtype | None = dtype) -> None:
            with network_precision(dtype):
                loss = model(segment, photo).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        def sample(dtype: torch.dtype | None = dtype) -> None:
            with network_precision(dtype):
                model.sample(segment, n=1, temperature=0.8)

        report[f"fgaug_{precision}_train_seconds"] = seconds_per_call(step, args.steps, device)
        report[f"fgaug_{precision}_sample_seconds"] = seconds_per_call(sample, args.samples, device)
        if device.type == "cuda":
            report.update(time_fgaug_graphs(args, device, model, optimizer, precision, dtype, segment, photo))
    return report


def time_fgaug_graphs(
    args: argparse.Namespace,
    device: torch.device,
    model: FullGlow,
    optimizer: torch.optim.Optimizer,
    precision: str,
    dtype: torch.dtype | None,
    segment: torch.Tensor,
    photo: torch.Tensor,
) -> dict[str, float]:
    """The same step and sample replayed from CUDA graphs (captured in the warm-up call)."""
    graphed_pass, sampler = GraphedTrainingPass(model), GraphedSampler(model)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        with network_precision(dtype):
            graphed_pass(segment, photo, model.dequantization_offsets(1, generator))
        optimizer.step()

    def sample() -> None:
        with network_precision(dtype):
            sampler.sample(segment, n=1, temperature=0.8)

    calls = max(args.steps, 10), max(args.samples, 10)  # a replay is short: more calls for a steady figure
    return {
        f"fgaug_{precision}_graphs_train_seconds": seconds_per_call(step, calls[0], device),
        f"fgaug_{precision}_graphs_sample_seconds": seconds_per_call(sample, calls[1], device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glow2", type=Path, required=True, help="a local copy of MoeinSorkhei/glow2 (its root)")
    parser.add_argument("--n-block", type=int, default=4)
    parser.add_argument("--n-flow", type=int, default=16)
    parser.add_argument("--size", type=parse_size, default=(256, 256))
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up)")
    parser.add_argument("--samples", type=int, default=3, help="timed sampling calls (after one warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="fgaug network precisions to time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    report = measure(args)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:32s} {value}")


if __name__ == "__main__":
    main()
