"""Speed of the probe segmenter's training step in fp32 and bf16, and the precision fgaug picks.

``fgaug evaluate augment`` and the augmentation studies train many probe segmenters; issue 23
found their bf16 steps 7.5x slower than fp32 on a CPU without bf16 hardware, where bf16 is
emulated. This times the probe's training step (forward, cross-entropy, backward, AdamW, the
one-cycle schedule: :func:`fgaug.segmentation.probe.fit_probe`) at the protocol's recipe
(:class:`~fgaug.evaluation.augment.protocol.ProbeRecipe`: width 16, batch 8) on random photos and
labels, both precisions interleaved round by round (fp32, bf16, bf16, fp32, ...) in this one
process, and prints the median seconds per step, bf16's speed-up per round (median and quartiles)
and the precision the recipe's default chooses on this device (``ProbeRecipe().network_dtype``).

    python benchmarks/probe_speed.py
    python benchmarks/probe_speed.py --size 64x128 --steps 5 --rounds 6 --threads 1
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import json
import statistics
from collections.abc import Iterator

import torch
from core_speed import parse_size
from quartiles import quartiles

from fgaug.data.labels import N_TRAIN_IDS
from fgaug.evaluation.augment.protocol import ProbeRecipe
from fgaug.runtime import cpu_description, resolve_device
from fgaug.segmentation.probe import fit_probe, new_probe

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def random_batches(batch: int, size: tuple[int, int], seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless random (photos in [0, 1], train ids) batches: the step's cost does not depend on content."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        photos = torch.rand(batch, 3, *size, generator=generator)
        labels = torch.randint(0, N_TRAIN_IDS, (batch, *size), generator=generator)
        yield photos, labels


RECIPE = ProbeRecipe()
"""The protocol's probe recipe, with its defaults."""


def seconds_per_step(precision: str, size: tuple[int, int], steps: int, device: torch.device, seed: int) -> float:
    """Seconds per step of one fit of ``steps`` steps on a fresh probe."""
    model = new_probe(RECIPE.width, seed, device)
    batches = random_batches(RECIPE.batch_size, size, seed)
    fit = fit_probe(model, batches, steps, RECIPE.lr, network_dtype=PRECISIONS[precision])
    return fit.seconds / fit.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=(64, 128), help="HxW of the photos")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per fit")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved fits of each precision")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    for precision in PRECISIONS:  # warm-up: oneDNN builds its kernels on the first calls
        seconds_per_step(precision, args.size, 2, device, seed=0)
    times: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    for round_ in range(args.rounds):
        order = list(PRECISIONS) if round_ % 2 == 0 else list(reversed(PRECISIONS))
        for precision in order:
            times[precision].append(seconds_per_step(precision, args.size, args.steps, device, seed=round_ + 1))
    speedups = [fp32 / bf16 for fp32, bf16 in zip(times["fp32"], times["bf16"], strict=True)]
    chosen = "bf16" if RECIPE.network_dtype(device) == torch.bfloat16 else "fp32"
    result = {
        "device": cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "size": list(args.size),
        "batch": RECIPE.batch_size,
        "width": RECIPE.width,
        "seconds_per_step": {name: statistics.median(values) for name, values in times.items()},
        "bf16_speedup": dict(zip(("low", "median", "high"), quartiles(speedups), strict=True)),
        "default_precision": chosen,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['device']}, {result['threads']} thread(s); probe width {result['width']}, batch {result['batch']}, "
        f"{args.size[0]}x{args.size[1]}; {args.rounds} rounds of {args.steps} steps"
    )
    for name, seconds in result["seconds_per_step"].items():
        print(f"  {name}: {seconds:.3f} s/step")
    low, median, high = (result["bf16_speedup"][key] for key in ("low", "median", "high"))
    print(f"  bf16 speed-up over fp32: {median:.2f}x [{low:.2f}, {high:.2f}]")
    print(f"  the probe recipe's default here: {chosen}")


if __name__ == "__main__":
    main()
