"""How far ``generate``'s photos move with what the documentation says rounds them: the batch size,
the number of CPU threads, the number of torchrun processes, and a rerun that repairs or extends a
tree (its draws share batches with others than a fresh run's). Each comparison runs the bundled
demo model on the toy masks of ``fgaug demo`` (``--masks`` masks at 128x256, ``--samples`` each,
``--denoise`` as the demo draws them, batches of 8, one thread a process unless said otherwise),
by the command line, against one reference run, and prints how many photos are bitwise equal and
how many 8-bit values differ, and by how much at most. Label files are copied byte for byte and
not compared. docs/output.md ("Reproducibility") quotes the figures.

    python benchmarks/reproducibility.py --masks 6 --samples 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def fgaug(*arguments: str, threads: int = 1, processes: int = 1) -> None:
    """Run ``fgaug`` (under torchrun with ``processes`` > 1) with ``threads`` CPU threads a process."""
    launcher = [sys.executable, "-m", "fgaug"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), "-m", "fgaug"]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([*launcher, *arguments], check=True, env=environment, capture_output=True, text=True)


def compare(first: Path, second: Path) -> str:
    """Photos bitwise equal, values differing and the largest difference between two trees."""
    photos = sorted(path.relative_to(first) for path in first.rglob("*_leftImg8bit.png"))
    others = sorted(path.relative_to(second) for path in second.rglob("*_leftImg8bit.png"))
    assert photos == others, "the trees must hold the same photos"
    equal, differing, values, largest = 0, 0, 0, 0
    for name in photos:
        a = np.asarray(Image.open(first / name), dtype=np.int16)
        b = np.asarray(Image.open(second / name), dtype=np.int16)
        equal += (first / name).read_bytes() == (second / name).read_bytes()
        differing += int((a != b).sum())
        values += a.size
        largest = max(largest, int(np.abs(a - b).max()))
    share = f"{differing} of {values:,} values differ, by at most {largest}"
    return f"{equal} of {len(photos)} photos bitwise equal; {share}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masks", type=int, default=6, help="toy training masks (the demo's six)")
    parser.add_argument("--samples", type=int, default=4)
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fgaug-reproducibility-"))
    try:
        fgaug("demo", "--out", str(work / "demo"))
        masks = str(work / "demo" / "toy-cityscapes" / "gtFine" / "train")
        common = ["--model", "demo", "--samples", str(arguments.samples), "--denoise"]

        def run(name: str, *extra: str, limit: int = arguments.masks, threads: int = 1, processes: int = 1) -> Path:
            command = ["generate", masks, *common, "--limit", str(limit), "--out", str(work / name)]
            fgaug(*command, "--batch-size", "8", *extra, threads=threads, processes=processes)
            return work / name

        reference = run("reference")
        print(f"--batch-size 1 against 8: {compare(reference, run('batch1', '--batch-size', '1'))}")
        print(f"2 threads against 1: {compare(reference, run('threads2', threads=2))}")
        print(f"2 torchrun (gloo) processes against 1: {compare(reference, run('processes2', processes=2))}")
        repaired = work / "repaired"
        shutil.copytree(reference, repaired)
        for photo in sorted(repaired.rglob("*_leftImg8bit.png"))[::4]:
            photo.unlink()
        print(f"a rerun that draws a quarter of the photos again: {compare(reference, run('repaired'))}")
        half = max(1, arguments.masks // 2)
        run("extended", limit=half)
        print(f"a tree of {half} masks extended to all {arguments.masks}: {compare(reference, run('extended'))}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
