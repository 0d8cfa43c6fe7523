"""How fast ``generate`` and ``layouts`` run with their files written on 0, 1, 2... background threads.

A toy Cityscapes tree is written at ``--size`` (1024x2048 by default, Cityscapes' own size). With
``--command generate`` the bundled demo model (64x128) draws ``--samples`` photos per mask, each
resized to its mask's size and written as PNG with every label file, as users run ``generate``;
at 1024x2048 the files, not the drawing, set the pace, as they do on a GPU whose drawing is fast,
at 64x128 the drawing does. With ``--command layouts``, ``fgaug layouts --photos --paste 3`` makes
``--samples`` copy-paste layouts per mask, each a photo and five label files. The settings run in
one process, interleaved round by round (A, B, C, C, B, A, ...), each into a fresh output folder.
Prints the median seconds and images per second of each, and each setting's speed over the first
one's per round (median [quartiles]).

    python benchmarks/write_threads.py --threads 0,1,2 --rounds 5
    python benchmarks/write_threads.py --size 64x128 --masks 24 --samples 4 --threads 0,1 --rounds 7
    python benchmarks/write_threads.py --command layouts --threads 0,2 --rounds 5
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from quartiles import quartiles

from fgaug.api import GenerateOptions, LayoutOptions, LayoutRunOptions, generate, layouts
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.progress import SilentProgress


def seconds_of(command: str, masks: Path, out: Path, samples: int, threads: int) -> float:
    started = time.perf_counter()
    if command == "generate":
        options = GenerateOptions(
            masks=str(masks), out=str(out), model="demo", n=samples, device="cpu", write_threads=threads
        )
        summary = generate(options, SilentProgress())
        assert summary.written == summary.requested, "every sample must be written"
    else:
        layout = LayoutOptions(n=samples, paste=3, photos=True)
        made = layouts(LayoutRunOptions(masks=str(masks), out=str(out), layout=layout, write_threads=threads))
        assert made.skipped == 0 and made.written == made.sources * samples, "every layout must be written"
    elapsed = time.perf_counter() - started
    shutil.rmtree(out)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--command", choices=("generate", "layouts"), default="generate")
    parser.add_argument("--threads", default="0,1,2", help="write threads to compare, the first is the reference")
    parser.add_argument("--size", default="1024x2048", help="the masks' size, HEIGHTxWIDTH")
    parser.add_argument("--masks", type=int, default=6)
    parser.add_argument("--samples", type=int, default=4, help="photos per mask")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = [int(text) for text in args.threads.split(",")]
    height, width = (int(text) for text in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="fgaug-write-threads-") as folder:
        root = Path(folder) / "toy"
        write_toy_cityscapes(root, {"train": args.masks}, size=(height, width), seed=7)
        masks = root / "gtFine" / "train"
        warm = Path(folder) / "warm"
        seconds_of(args.command, masks, warm, args.samples, settings[0])  # model, caches and imports warm
        seconds: dict[int, list[float]] = {threads: [] for threads in settings}
        for round_index in range(args.rounds):
            for threads in settings if round_index % 2 == 0 else reversed(settings):
                out = Path(folder) / f"out{threads}"
                seconds[threads].append(seconds_of(args.command, masks, out, args.samples, threads))
    images = args.masks * args.samples
    rows = []
    for threads in settings:
        ratios = [first / mine for first, mine in zip(seconds[settings[0]], seconds[threads], strict=True)]
        median = statistics.median(seconds[threads])
        rows.append(
            {
                "write_threads": threads,
                "seconds": round(median, 3),
                "images_per_s": round(images / median, 2),
                "speed_up": [round(value, 3) for value in quartiles(ratios)],
            }
        )
    setup = {"command": args.command, "size": args.size, "images": images, "rounds": args.rounds}
    setup["torch_threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps({**setup, "rows": rows}))
        return
    print(f"{args.command}, {images} photos at {args.size}, torch threads {setup['torch_threads']}, ")
    print(f"median of {args.rounds} interleaved rounds; speed_up: the first setting's seconds / these, per round")
    print("| write threads | seconds | images/s | speed-up [quartiles] |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        low, median, high = row["speed_up"]
        print(f"| {row['write_threads']} | {row['seconds']} | {row['images_per_s']} | {median}x [{low}, {high}] |")


if __name__ == "__main__":
    main()
