"""How often the bundled demo model's draws diverge (output outside [-50, 50] or not finite, drawn
again by ``generate``): ``--masks`` toy masks at 128x256 (the demo's size), ``--samples`` draws
each, at each of ``--temps``, with the demo model as ``generate`` runs it (no ``--denoise``). Prints
the diverged draws and their share of all first draws. docs/output.md ("Diverged draws") quotes it.

    python benchmarks/diverged_draws.py --masks 100 --samples 8 --temps 0.8,1.0
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fgaug.api import GenerateOptions, generate
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.progress import SilentProgress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masks", type=int, default=100)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--temps", default="0.8,1.0")
    parser.add_argument("--seed", type=int, default=0, help="the toy world's seed")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fgaug-diverged-") as work:
        root = Path(work) / "toy"
        write_toy_cityscapes(root, {"train": arguments.masks}, (128, 256), seed=arguments.seed)
        for temperature in (float(value) for value in arguments.temps.split(",")):
            options = GenerateOptions(
                masks=str(root / "gtFine" / "train"),
                out=str(Path(work) / f"out-{temperature:g}"),
                model="demo",
                n=arguments.samples,
                temperature=temperature,
                device="cpu",
            )
            summary = generate(options, SilentProgress())
            draws = arguments.masks * arguments.samples
            share = f"{summary.diverged_draws} of {draws} draws diverged ({summary.diverged_draws / draws:.1%})"
            print(f"T = {temperature:g}: {share}; {summary.written} samples written, {len(summary.failed)} failed")


if __name__ == "__main__":
    main()
