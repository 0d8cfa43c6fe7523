"""Speed of the Full-Glow core: one training step (forward + backward + the trainer's Adam) and sampling.

Prints parameters, seconds per training step, training images/s, seconds per sampled image,
sampling images/s and peak memory, for a preset at its size (or ``--size HxW``), on CPU or CUDA,
for each network precision asked for (fp32 and bf16 by default, with bf16's speed-up), and the
CPU's model and whether it computes bf16 natively (without, bf16 is emulated and slow).

    python benchmarks/core_speed.py --preset tiny
    python benchmarks/core_speed.py --preset paper-256 --steps 2 --samples 2 --precisions bf16
    python benchmarks/core_speed.py --preset paper-256 --device cuda --batch 4 --per-mask 8
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import json
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from fgaug.flow import FullGlow, compile_networks, network_precision
from fgaug.flow.config import FullGlowConfig
from fgaug.runtime import (
    cpu_has_native_bf16,
    cpu_model,
    peak_memory,
    reset_peak_memory,
    resolve_device,
    resolve_precision,
)
from fgaug.training.optimiser import adam
from fgaug.training.presets import load_preset


def parse_size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict[str, Any]:
    """The device, and the CPU's model and whether it computes bf16 natively (the host's, on CUDA)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {"device": name, "cpu": cpu_model(), "cpu_native_bf16": cpu_has_native_bf16()}


def count_flops(
    model: FullGlow, mask: torch.Tensor, photo: torch.Tensor, per_mask: int, network_dtype: torch.dtype | None
) -> tuple[int, int]:
    """FLOPs of one training step (forward and backward) and of one sampling call, counted once
    by torch's FlopCounterMode (convolutions and matrix products; element-wise work is not counted)."""
    with FlopCounterMode(display=False) as counter, network_precision(network_dtype):
        model(mask, photo).loss.backward()
    train_flops = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter, network_precision(network_dtype):
        model.sample(mask, n=per_mask, temperature=0.8)
    return train_flops, counter.get_total_flops()


def timings(args: argparse.Namespace, config: FullGlowConfig, device: torch.device, precision: str) -> dict[str, Any]:
    """Seconds per training step and per sampled image of a fresh model with ``precision``
    networks (and its FLOP rates with ``--flops``)."""
    model = FullGlow(config).to(device)
    height, width = config.image_size
    mask = torch.rand(args.batch, config.mask_channels, height, width, device=device)
    photo = torch.rand(args.batch, config.image_channels, height, width, device=device)
    optimizer = adam(model, 1e-4)  # the trainer's
    network_dtype = resolve_precision(precision, device)
    flops = count_flops(model, mask, photo, args.per_mask, network_dtype) if args.flops else None
    warmups = 1
    if args.compile:
        compile_networks(model)
        warmups = 2

    def train_step() -> None:
        with network_precision(network_dtype):
            loss = model(mask, photo).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step_seconds = float("nan")
    if args.steps:
        model.train()
        for _ in range(warmups):
            train_step()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            train_step()
        synchronize(device)
        step_seconds = (time.perf_counter() - start) / args.steps

    model.eval()
    generator = torch.Generator().manual_seed(0)

    def sample() -> None:
        with network_precision(network_dtype):
            model.sample(mask, n=args.per_mask, temperature=0.8, generator=generator)

    images_per_call = args.batch * args.per_mask
    sample_seconds = float("nan")
    if args.samples:
        for _ in range(warmups):
            sample()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.samples):
            sample()
        synchronize(device)
        sample_seconds = (time.perf_counter() - start) / (args.samples * images_per_call)

    report: dict[str, Any] = {
        "train_seconds_per_step": round(step_seconds, 4),
        "train_images_per_s": round(args.batch / step_seconds, 3),
        "sample_seconds_per_image": round(sample_seconds, 4),
        "sample_images_per_s": round(1 / sample_seconds, 3),
    }
    if flops:
        train_flops, sample_flops = flops
        report["train_gflop_per_image"] = round(train_flops / args.batch / 1e9, 2)
        report["sample_gflop_per_image"] = round(sample_flops / images_per_call / 1e9, 2)
        report["train_tflop_per_s"] = round(train_flops / step_seconds / 1e12, 3)
        report["sample_tflop_per_s"] = round(sample_flops / images_per_call / sample_seconds / 1e12, 3)
        if args.peak_tflops:
            report["train_mfu"] = round(report["train_tflop_per_s"] / args.peak_tflops, 4)
            report["sample_mfu"] = round(report["sample_tflop_per_s"] / args.peak_tflops, 4)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--size", type=parse_size, help="override the preset's HxW, e.g. 64x128")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model setting (JSON value), e.g. --set coupling_hidden=512 --set n_flow=4",
    )
    parser.add_argument("--batch", type=int, default=1, help="training batch and number of masks when sampling")
    parser.add_argument("--per-mask", type=int, default=1, help="samples per mask (decoded in one batch)")
    parser.add_argument(
        "--steps", type=int, default=5, help="timed training steps (after one warm-up); 0 skips training"
    )
    parser.add_argument(
        "--samples", type=int, default=5, help="timed sampling calls (after one warm-up); 0 skips sampling"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["fp32", "tf32", "bf16", "fp16"],
        default=["fp32", "bf16"],
        help="dtypes of the coupling and condition-embedding networks, each timed on a fresh model (flow "
        "arithmetic stays fp32); on the CPU the peak memory is the process's over all of them",
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the networks (fgaug's --compile); two warm-up calls"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--flops", action="store_true", help="count FLOPs (torch's FlopCounterMode) and report rates")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s at this precision, for MFU")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = load_preset(args.preset).model.to_dict()
    if args.size:
        settings["image_size"] = list(args.size)
    for assignment in args.set:
        key, _, value = assignment.partition("=")
        settings[key] = json.loads(value)
    config = FullGlowConfig.from_dict(settings, origin="--set")
    height, width = config.image_size
    report: dict[str, Any] = {
        "preset": args.preset,
        "size": f"{height}x{width}",
        **machine(device),
        "parameters_m": round(sum(p.numel() for p in FullGlow(config).parameters()) / 1e6, 2),
        "compiled": args.compile,
        "batch": args.batch,
        "per_mask": args.per_mask,
    }
    precisions = {}
    for precision in dict.fromkeys(args.precisions):
        reset_peak_memory(device)
        precisions[precision] = timings(args, config, device, precision)
        if device.type == "cuda":
            precisions[precision]["peak_memory_mib"] = round(peak_memory(device)[0], 1)
    report["precisions"] = precisions
    if device.type != "cuda":
        report["peak_memory_mib"] = round(peak_memory(device)[0], 1)
    if "fp32" in precisions and "bf16" in precisions:
        for what in ("train", "sample"):
            fp32, bf16 = precisions["fp32"][f"{what}_images_per_s"], precisions["bf16"][f"{what}_images_per_s"]
            report[f"bf16_{what}_speedup"] = round(bf16 / fp32, 2)
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        if key != "precisions":
            print(f"{key:26s} {value}")
    print(f"{'':26s} " + " ".join(f"{name:>10s}" for name in precisions))
    for key in next(iter(precisions.values())):
        print(f"{key:26s} " + " ".join(f"{row[key]:>10}" for row in precisions.values()))


if __name__ == "__main__":
    main()
