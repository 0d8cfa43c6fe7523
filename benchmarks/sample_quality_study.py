"""Issue-21 study: which training recipe makes Full-Glow's samples worth learning from?

    python benchmarks/sample_quality_study.py train              # the recipes' generators, resumable
    python benchmarks/sample_quality_study.py quality            # label consistency, diversity, colour, grids
    python benchmarks/sample_quality_study.py report             # report.md and the side-by-side picture

Every generator is the ``tiny`` preset trained on the demo model's toy world (1,500 scenes, seed
2024) for the same number of steps at the same batch size and learning rate (equal compute); the
recipes differ only in their training noise and condition dropout. Samples are judged on a
separate toy world (the augmentation study's, seed 12): its ``val`` split picks the sampling
settings (temperature, denoising scale, guidance weight), its ``test`` split, looked at only with
the chosen settings, gives the reported figures. Every phase skips what is already on disk, so an
interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from fgaug.data.io import atomic_write_bytes
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.train import TrainingStoppedError, TrainOptions, train

STUDY = Path("runs/sample-quality")
GENERATOR_WORLD = {"splits": {"train": 1500, "val": 32}, "size": (128, 256), "seed": 2024}


@dataclass(frozen=True)
class Recipe:
    """A training recipe: its noise (``--noise``) and condition dropout, and how it is sampled."""

    noise: str = "uniform"
    condition_dropout: float = 0.0
    steps_factor: int = 1

    @property
    def denoisable(self) -> bool:
        return self.noise != "uniform"

    @property
    def guidable(self) -> bool:
        return self.condition_dropout > 0


RECIPES = {
    "uniform": Recipe(),
    "gauss-0.01": Recipe("gaussian:0.01"),
    "gauss-0.02": Recipe("gaussian:0.02"),
    "gauss-0.04": Recipe("gaussian:0.04"),
    "dropout-0.1": Recipe(condition_dropout=0.1),
}


def write_generator_world(study: Path) -> Path:
    root = study / "generator-world"
    marker = root / "complete.json"
    if not marker.is_file():
        splits = GENERATOR_WORLD["splits"]
        write_toy_cityscapes(root, splits, size=GENERATOR_WORLD["size"], seed=GENERATOR_WORLD["seed"])
        atomic_write_bytes(marker, json.dumps(GENERATOR_WORLD).encode())
    return root


def generator_checkpoint(study: Path, name: str) -> Path:
    return study / "generators" / name / "checkpoints" / "last.pt"


def train_generators(study: Path, names: list[str], steps: int, batch: int) -> None:
    """Train each recipe's generator for ``steps * steps_factor`` steps, resuming a stopped run."""
    data = write_generator_world(study)
    for name in names:
        recipe = RECIPES[name]
        run_dir = study / "generators" / name
        total = steps * recipe.steps_factor
        options = TrainOptions(
            data=str(data),
            run_dir=str(run_dir),
            preset="tiny",
            steps=total,
            batch_size=batch,
            noise=recipe.noise,
            condition_dropout=recipe.condition_dropout,
            precision="auto",
            validate_every=500,
            sample_every=1000,
            checkpoint_every=250,
            workers=1,
            resume=(run_dir / "config.json").is_file(),
        )
        done = run_dir / "done.json"
        if done.is_file():
            print(f"{name}: trained ({total} steps)", flush=True)
            continue
        try:
            result = train(options)
        except TrainingStoppedError as stopped:
            print(f"{name}: {stopped}", flush=True)
            raise
        atomic_write_bytes(done, json.dumps({"steps": result.steps, "seconds": result.seconds}).encode())
        print(f"{name}: {result.steps} steps in {result.seconds:.0f} s, val {result.last_val_bpd:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["train"])
    parser.add_argument("--study", type=Path, default=STUDY)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of a 1x recipe")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    names = [name for name in args.recipes.split(",") if name]
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {sorted(RECIPES)}")
    if args.phase == "train":
        train_generators(args.study, names, args.steps, args.batch)


if __name__ == "__main__":
    sys.exit(main())
