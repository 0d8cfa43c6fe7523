"""What guidance and denoising cost at sampling time (issue 21): seconds per image and peak memory.

    python benchmarks/sampling_cost.py                       # tiny preset, 8 masks x 2 samples, CPU
    python benchmarks/sampling_cost.py --preset paper-256 --device cuda

Guidance runs every conditioning network twice (the mask's and the null condition's); denoising
adds one forward and one backward pass of the target Glow per draw. The modes are timed in one
process, interleaved round by round (so a busy machine slows them alike), and the median round is
reported with its ratio to plain sampling. Memory: on CUDA the peak allocated in a fresh child
process per mode; on every device the bytes autograd holds for the score step's backward pass
(what denoising adds; plain and guided sampling hold none).
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from fgaug.flow import FullGlow, network_precision
from fgaug.flow.config import FullGlowConfig
from fgaug.runtime import precision_name, resolve_device, resolve_precision
from fgaug.training.presets import load_preset

MODES = {
    "plain": {},
    "guidance w=2": {"guidance": 2.0},
    "denoise s=1": {"denoise_scale": 1.0},
    "guidance + denoise": {"guidance": 2.0, "denoise_scale": 1.0},
}


def build(preset: str, device: torch.device) -> FullGlow:
    """A model of the preset trained with Gaussian noise and condition dropout (fresh weights: the
    cost does not depend on their values)."""
    values = {**load_preset(preset).model.to_dict(), "gaussian_noise": 0.02, "condition_dropout": 0.1}
    return FullGlow(FullGlowConfig.from_dict(values)).to(device).eval()


def masks(model: FullGlow, count: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    shape = (count, model.config.mask_channels, *model.config.image_size)
    return (torch.randint(0, 256, shape, generator=generator).float() / 255).to(device)


def draw(model: FullGlow, mask: torch.Tensor, per_mask: int, options: dict, device: torch.device) -> float:
    start = time.perf_counter()
    model.sample(mask, per_mask, 0.8, generator=torch.Generator().manual_seed(1), **options)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def peak_cuda_mib(args: argparse.Namespace, mode: str) -> float:
    """The mode's peak CUDA memory allocated, from a child process running it once."""
    command = [sys.executable, __file__, "--child", mode, "--preset", args.preset, "--device", args.device]
    command += ["--masks", str(args.masks), "--per-mask", str(args.per_mask), "--precision", args.precision]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


def child(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    model = build(args.preset, device)
    mask = masks(model, args.masks, device)
    with network_precision(resolve_precision(args.precision, device)):
        draw(model, mask, args.per_mask, MODES[args.child], device)
    print(torch.cuda.max_memory_allocated(device) / 2**20)


def saved_for_backward_mib(model: FullGlow, mask: torch.Tensor, per_mask: int, options: dict) -> float:
    """MiB of tensors autograd saves for backward passes during one sampling call."""
    held = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal held
        held += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.sample(mask, per_mask, 0.8, generator=torch.Generator().manual_seed(1), **options)
    return held / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--masks", type=int, default=8)
    parser.add_argument("--per-mask", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    device = resolve_device(args.device)
    model = build(args.preset, device)
    mask = masks(model, args.masks, device)
    network_dtype = resolve_precision(args.precision, device)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with network_precision(network_dtype):
        for options in MODES.values():
            draw(model, mask, args.per_mask, options, device)  # warm-up
        for _ in range(args.rounds):
            for mode, options in MODES.items():
                times[mode].append(draw(model, mask, args.per_mask, options, device))
    images = args.masks * args.per_mask
    plain = statistics.median(times["plain"])
    rows = {}
    print(f"{args.preset} on {device} ({precision_name(network_dtype)}), {args.masks} masks x {args.per_mask} samples")
    for mode, options in MODES.items():
        median = statistics.median(times[mode])
        with network_precision(network_dtype):
            held = saved_for_backward_mib(model, mask, args.per_mask, options)
        row = {"s_per_image": median / images, "ratio": median / plain, "held_for_backward_mib": held}
        if device.type == "cuda":
            row["peak_cuda_mib"] = peak_cuda_mib(args, mode)
        rows[mode] = row
        peak = f"  peak {row['peak_cuda_mib']:8.1f} MiB" if device.type == "cuda" else ""
        print(f"{mode:20s} {median / images:8.4f} s/image  {median / plain:5.2f}x plain  {held:8.1f} MiB held{peak}")
    print(json.dumps(rows))


if __name__ == "__main__":
    sys.exit(main())
