"""Eager against fused invertible arithmetic (issue 23, part 3), side by side in one process.

Two copies of one model with the same weights, one with ``fuse_arithmetic`` (the element-wise
work of the actnorms, couplings and split priors compiled by ``torch.compile``: inductor's C++
kernels on the CPU, Triton on CUDA); everything else eager in both. Timed interleaved (eager,
fused, fused, eager, ...) after a warm-up that compiles every shape:

* a training pass (forward and backward, no optimiser step: the arithmetic's share is what changes);
* a sampling call (``--per-mask`` samples of each of ``--batch`` masks, T = 0.8).

Prints the compile seconds, each code's median seconds per call and the median and quartiles of
the per-round ratios eager / fused (above 1: fused is faster), and checks that both codes give
the same loss (to float32 rounding) and samples within one 8-bit level.

    python benchmarks/fused_arithmetic.py --preset tiny --batch 8
    python benchmarks/fused_arithmetic.py --preset paper-256 --device cuda --batch 16 --per-mask 8
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from core_speed import machine, parse_size, synchronize

from fgaug.flow import FullGlow, fuse_arithmetic, network_precision
from fgaug.runtime import resolve_device, resolve_precision
from fgaug.training.presets import load_preset


def timed(function: Callable[[], Any], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def quartiles(values: list[float]) -> tuple[float, float, float]:
    low, middle, high = statistics.quantiles(values, n=4)
    return low, middle, high


def measure(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    network_dtype = resolve_precision(args.precision, device)
    config = load_preset(args.preset).model
    if args.size:
        config = dataclasses.replace(config, image_size=parse_size(args.size))
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(args.batch, 3, *config.image_size, generator=generator).to(device)
    photo = torch.rand(args.batch, 3, *config.image_size, generator=generator).to(device)
    eager = FullGlow(config, seed=0).to(device)
    with torch.no_grad():
        eager(mask, photo)  # data-dependent initialisation, then the fused copy shares its weights
    fused = FullGlow(config, seed=0).to(device)
    fused.load_state_dict(eager.state_dict())
    layers = fuse_arithmetic(fused)
    noise = eager.sample_noise(args.batch * args.per_mask, torch.Generator().manual_seed(1))
    noise = [part.to(device) for part in noise]

    def training(model: FullGlow) -> Callable[[], Any]:
        def run() -> torch.Tensor:
            model.zero_grad(set_to_none=True)
            with network_precision(network_dtype):
                loss = model(mask, photo, generator=torch.Generator().manual_seed(2)).loss
            loss.backward()
            return loss.detach()

        return run

    def sampling(model: FullGlow) -> Callable[[], Any]:
        def run() -> torch.Tensor:
            with torch.no_grad(), network_precision(network_dtype):
                return model.sample(mask, n=args.per_mask, temperature=0.8, noise=noise).images

        return run

    report: dict[str, Any] = {
        **machine(device),
        "preset": args.preset,
        "image_size": list(config.image_size),
        "batch": args.batch,
        "per_mask": args.per_mask,
        "precision": args.precision,
        "fused_layers": layers,
    }
    for what, make in (("train", training), ("sample", sampling)):
        codes = {"eager": make(eager), "fused": make(fused)}
        report[f"{what}_compile_seconds"] = timed(codes["fused"], device) + timed(codes["fused"], device)
        outputs = {name: code() for name, code in codes.items()}
        if what == "train":
            report["train_loss_difference"] = abs(outputs["fused"] - outputs["eager"]).item()
        else:
            report["sample_max_difference_levels"] = (outputs["fused"] - outputs["eager"]).abs().max().item() * 255
        seconds: dict[str, list[float]] = {"eager": [], "fused": []}
        ratios = []
        for round_ in range(args.rounds):
            order = ["eager", "fused"] if round_ % 2 == 0 else ["fused", "eager"]
            for name in order:
                seconds[name].append(timed(codes[name], device))
            ratios.append(seconds["eager"][-1] / seconds["fused"][-1])
        for name, values in seconds.items():
            report[f"{what}_{name}_seconds"] = statistics.median(values)
        report[f"{what}_eager_over_fused"] = quartiles(ratios)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--size", default="", help="HxW instead of the preset's")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", help="the networks' precision: fp32, bf16, fp16 or auto")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--per-mask", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    report = measure(args)
    for key, value in report.items():
        if isinstance(value, tuple):
            value = f"{value[1]:.3f} [{value[0]:.3f}, {value[2]:.3f}]"
        elif isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:>32}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
