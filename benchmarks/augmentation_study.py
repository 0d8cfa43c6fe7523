"""Does fgaug's synthetic data make a segmenter better? The study of issue 12, in resumable parts.

    python benchmarks/augmentation_study.py world                  # the toy world of the study
    python benchmarks/augmentation_study.py curve --minutes 55     # real-only learning curve
    python benchmarks/augmentation_study.py report                 # tables (and plots) of what is done

Every part appends one JSON line per trained probe to ``runs/augmentation-study/results.jsonl``
and skips the (arm, real size, seed) already there, so a part stopped by ``--minutes`` or by a
kill resumes where it was. Run parts one at a time on 2 cores (``--threads`` sets torch's).
The protocol itself is ``fgaug.protocol``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fgaug.data.cityscapes import find_groups
from fgaug.data.io import atomic_write_bytes
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.protocol import REAL_ONLY, PairArrays, ProbeRecipe, read_pairs, run_arm, summarise

STUDY = Path("runs/augmentation-study")
WORLD_SPLITS = {"train": 640, "val": 100, "test": 300}
WORLD_SIZE = (128, 256)
WORLD_SEED = 12
IMAGE_SIZE = (64, 128)
CURVE_SIZES = (10, 20, 40, 80, 160, 320, 640)
SEEDS = (0, 1, 2, 3, 4)


def world_root(study: Path) -> Path:
    return study / "world"


def write_world(study: Path) -> Path:
    root = world_root(study)
    marker = root / "complete.json"
    if not marker.is_file():
        write_toy_cityscapes(root, WORLD_SPLITS, size=WORLD_SIZE, seed=WORLD_SEED)
        description = {"splits": WORLD_SPLITS, "size": WORLD_SIZE, "seed": WORLD_SEED}
        atomic_write_bytes(marker, json.dumps(description).encode())
    return root


def split_pairs(study: Path, split: str) -> PairArrays:
    groups = find_groups(write_world(study), [split], True).groups
    return read_pairs(groups, IMAGE_SIZE)


def done_keys(results: Path) -> set[tuple[str, int, int]]:
    if not results.is_file():
        return set()
    return {(r["arm"], r["real"], r["seed"]) for r in map(json.loads, results.read_text().splitlines())}


def append_result(results: Path, record: dict[str, Any]) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, sort_keys=True) + "\n")


def budget(minutes: float) -> Iterator[bool]:
    deadline = time.monotonic() + minutes * 60
    while True:
        yield time.monotonic() < deadline


def part_curve(args: argparse.Namespace) -> None:
    results = args.study / "results.jsonl"
    real_all, val, test = (split_pairs(args.study, split) for split in ("train", "val", "test"))
    recipe = ProbeRecipe()
    done = done_keys(results)
    time_left = budget(args.minutes)
    for seed in args.seeds:
        for size in args.sizes:
            if (REAL_ONLY, size, seed) in done:
                continue
            if not next(time_left):
                print("time budget spent; run the part again to continue", flush=True)
                return
            result = run_arm(REAL_ONLY, real_all.head(size), val, test, seed, recipe)
            append_result(results, result.to_dict())
            print(
                f"real only N={size} seed={seed}: test mIoU {result.test_miou:.4f} (val {result.val_miou:.4f}, "
                f"best step {result.best_step}/{result.steps}, {result.seconds:.0f} s)",
                flush=True,
            )


def part_report(args: argparse.Namespace) -> None:
    results = args.study / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    summary = summarise(records)
    atomic_write_bytes(args.study / "summary.json", json.dumps(summary, indent=1).encode())
    print("| real N | seeds | test mIoU | 95% CI | rise to next | valid |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in summary["curve"]:
        print(
            f"| {row['real']} | {len(row['seeds'])} | {row['mean']:.4f} | ± {row['half_width']:.4f} | "
            f"{row.get('rise_to_next', float('nan')):+.4f} | {row.get('valid', '')} |"
        )
    for row in summary["strategies"]:
        difference = row["difference"]
        print(
            f"{row['arm']} N={row['real']}: Δ mIoU {difference['mean']:+.4f} ± {difference['half_width']:.4f} "
            f"worth {row['worth']} real"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["world", "curve", "report"])
    parser.add_argument("--study", type=Path, default=STUDY)
    parser.add_argument("--minutes", type=float, default=55.0, help="stop starting new probes after this long")
    parser.add_argument("--sizes", type=lambda text: [int(v) for v in text.split(",")], default=list(CURVE_SIZES))
    parser.add_argument("--seeds", type=lambda text: [int(v) for v in text.split(",")], default=list(SEEDS))
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part == "world":
        print(write_world(args.study))
    elif args.part == "curve":
        part_curve(args)
    else:
        part_report(args)


if __name__ == "__main__":
    main()
