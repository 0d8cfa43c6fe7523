"""Training speed on a small dataset, by the number of data workers: does forking them cost steps?

A user fine-tuning on a few dozen pairs has epochs of a few steps. This script trains the ``tiny``
preset on a toy tree of ``--pairs`` pairs with ``fgaug train --workers W`` for each W in
``--workers``, ``--rounds`` times interleaved (W = 0, 1, 2, 0, 1, 2, ...), each run ``--steps``
steps in a fresh run folder, and prints the median images/s of every run's ``metrics.jsonl``
windows after the first ``--skip`` steps (a window's time includes whatever stalls the loop, such
as forking workers), with its ratio to W = 0 measured in the same round.

``--baseline REV`` runs the same trainings a second time from a git worktree of this repository
at ``REV`` (interleaved with today's), to measure a change side by side.

    python benchmarks/small_set_training.py
    python benchmarks/small_set_training.py --pairs 20 --steps 120 --rounds 3 --baseline HEAD~1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fgaug.data.toyworld import write_toy_cityscapes

REPOSITORY = Path(__file__).resolve().parent.parent


def images_per_second(source: Path, data: Path, run: Path, workers: int, steps: int, skip: int) -> float:
    """Train in a subprocess with the fgaug of ``source``; the median logged images/s after ``skip`` steps."""
    command = [sys.executable, "-m", "fgaug", "train", str(data), "--project", str(run.parent)]
    command += ["--name", run.name, "--preset", "tiny"]
    command += ["--steps", str(steps), "--batch-size", "8", "--workers", str(workers), "--device", "cpu"]
    command += ["--precision", "fp32", "--validate-every", str(10 * steps), "--sample-every", str(10 * steps)]
    command += ["--checkpoint-every", str(10 * steps), "--log-every", "5", "--json", "--no-tensorboard"]
    environment = {**os.environ, "PYTHONPATH": str(source)}
    subprocess.run(command, check=True, capture_output=True, env=environment, cwd=source)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [line["images_per_s"] for line in lines if "images_per_s" in line and line["step"] > skip]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20, help="training pairs of the toy tree")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated --workers values")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--skip", type=int, default=20, help="steps left out of the median (warm-up)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", help="also train with fgaug at this git revision")
    args = parser.parse_args()
    workers = [int(value) for value in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        data = work / "cityscapes"
        write_toy_cityscapes(data, {"train": args.pairs, "val": 4}, size=(64, 128), seed=3)
        sources = {"today": REPOSITORY}
        if args.baseline:
            baseline = work / "baseline"
            subprocess.run(
                ["git", "-C", str(REPOSITORY), "worktree", "add", "-q", "--detach", str(baseline), args.baseline],
                check=True,
            )
            sources[args.baseline] = baseline
        rates: dict[tuple[str, int], list[float]] = {(name, w): [] for name in sources for w in workers}
        ratios: dict[tuple[str, int], list[float]] = {key: [] for key in rates}
        try:
            for round_index in range(args.rounds):
                for name, source in sources.items():
                    measured = {}
                    for w in workers:
                        run = work / f"run-{name.replace('/', '_')}-{w}-{round_index}"
                        measured[w] = images_per_second(source, data, run, w, args.steps, args.skip)
                        rates[name, w].append(measured[w])
                        print(f"round {round_index} {name} workers={w}: {measured[w]:.1f} images/s", flush=True)
                    for w in workers:
                        ratios[name, w].append(measured[w] / measured[workers[0]])
        finally:
            if args.baseline:
                subprocess.run(
                    ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(work / "baseline")], check=False
                )
    print(f"\n{args.pairs} pairs, batch 8 ({args.pairs // 8} steps per epoch), tiny preset, fp32, {args.steps} steps")
    print(f"{'code':<12} {'workers':>7} {'images/s (median of rounds)':>28} {f'ratio to workers={workers[0]}':>20}")
    for (name, w), values in rates.items():
        print(f"{name:<12} {w:>7} {statistics.median(values):>28.1f} {statistics.median(ratios[name, w]):>20.2f}")


if __name__ == "__main__":
    main()
