"""Speed of reading data: one full-size Cityscapes group, and an HDF5 cache of toy groups.

Prints (1) seconds to read a 1024x2048 group (photo, labelIds, instanceIds) and resize it to
256x512 on one CPU thread, (2) seconds to prepare N toy groups into HDF5 and pairs/s reading them
back through a DataLoader.

    python benchmarks/data_speed.py
    python benchmarks/data_speed.py --groups 100 --size 256x512 --workers 2
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader

from fgaug.data.cache import CachedPairs, prepare_cache
from fgaug.data.cityscapes import ReadOptions, find_groups, load_pair
from fgaug.data.toyworld import write_toy_cityscapes


def parse_size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=100, help="toy groups to prepare into HDF5")
    parser.add_argument("--size", type=parse_size, default=(256, 512), help="prepared size HxW")
    parser.add_argument("--source-size", type=parse_size, default=(1024, 2048), help="size of the toy PNGs")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    args = parser.parse_args()

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "toy"
        start = time.perf_counter()
        write_toy_cityscapes(root, {"train": args.groups}, size=args.source_size, seed=0)
        print(
            f"write {args.groups} toy groups at {args.source_size[0]}x{args.source_size[1]}: "
            f"{time.perf_counter() - start:.1f} s"
        )
        groups = find_groups(root).groups
        options = ReadOptions(args.size, boundary=True)
        load_pair(groups[0], options)
        start = time.perf_counter()
        repeats = min(10, len(groups))
        for group in groups[:repeats]:
            load_pair(group, options)
        per_group = (time.perf_counter() - start) / repeats
        print(
            f"read + resize one {args.source_size[0]}x{args.source_size[1]} group to "
            f"{args.size[0]}x{args.size[1]} (1 thread): {per_group:.3f} s"
        )

        cache = Path(scratch) / "train.h5"
        report = prepare_cache(groups, options, cache, root)
        print(
            f"prepare {report.written} groups into HDF5: {report.seconds:.1f} s "
            f"({report.written / report.seconds:.1f} groups/s), {cache.stat().st_size / 2**20:.1f} MiB"
        )
        loader = DataLoader(CachedPairs(cache), batch_size=8, shuffle=True, num_workers=args.workers)
        start = time.perf_counter()
        pairs = sum(len(batch["key"]) for batch in loader)
        seconds = time.perf_counter() - start
        print(
            f"read {pairs} pairs back through a DataLoader ({args.workers} workers): "
            f"{seconds:.2f} s ({pairs / seconds:.0f} pairs/s)"
        )


if __name__ == "__main__":
    main()
