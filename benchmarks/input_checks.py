"""What the checks of inputs and of an earlier run's files cost, per file, at Cityscapes' size: the
figures docs/output.md and docs/training.md quote.

- headers: :func:`~fgaug.data.headers.check_headers` of every group (mask, photo and every label
  file: mode, size, a PNG not cut short, a polygons file whose braces close), what ``train`` and
  ``generate`` run before their first step or draw; per file, and for Cityscapes' 2,975 training
  pairs at that rate.
- instance values: one instanceIds file decoded whole and its values checked
  (:func:`~fgaug.data.cityscapes.check_instance_ids`), what ``generate`` runs on a thread ahead of
  the drawing.
- files in place: :func:`~fgaug.data.io.files_in_place` over one group's files, what a rerun
  trusts an earlier run's sample by.

A toy tree of ``--groups`` scenes at ``--size`` is written first (the page cache then holds it, as
it holds a dataset read a moment before). Each check runs ``--rounds`` times over every group; the
median round is reported.

    python benchmarks/input_checks.py --groups 24 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fgaug.data.cityscapes import check_instance_ids, find_groups
from fgaug.data.headers import check_headers
from fgaug.data.io import files_in_place
from fgaug.data.toyworld import write_toy_cityscapes


def median_seconds(rounds: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=24)
    parser.add_argument("--size", default="1024x2048", help="HEIGHTxWIDTH")
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    height, width = (int(side) for side in arguments.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="fgaug-input-checks-") as work:
        root = Path(work) / "cityscapes"
        write_toy_cityscapes(root, {"train": arguments.groups}, (height, width))
        groups = find_groups(root, ["train"]).groups
        files = [[group.mask, *(path for path in group.label_files.values() if path != group.mask)] for group in groups]
        per_group = sum(len(names) for names in files) / len(groups) + 1  # and the photo
        headers = median_seconds(arguments.rounds, lambda: check_headers(groups, False, False, True, True))
        instances = [group.instance_ids for group in groups if group.instance_ids]
        values = median_seconds(arguments.rounds, lambda: [check_instance_ids(path) for path in instances])
        names = [
            [str(path.relative_to(root)) for path in (*kept, group.photo)]
            for kept, group in zip(files, groups, strict=True)
        ]
        in_place = median_seconds(arguments.rounds, lambda: [files_in_place(root, group) for group in names])
    print(f"{len(groups)} groups at {height}x{width}, {per_group:.0f} files each (photo, mask and label files)")
    per_file = headers / (len(groups) * per_group)
    print(
        f"headers: {per_file * 1e3:.3f} ms a file; {per_file * 2975 * 2 * 1e3:.0f} ms for 2,975 pairs' masks and photos"
    )
    print(f"instance values: {values / len(instances) * 1e3:.1f} ms an instanceIds file")
    print(f"files in place: {in_place / len(groups) * 1e3:.3f} ms a group of {per_group:.0f} files")


if __name__ == "__main__":
    main()
