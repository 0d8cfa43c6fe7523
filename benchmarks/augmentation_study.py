"""Does fgaug's synthetic data make a segmenter better? The study of issue 12, in resumable parts.

    python benchmarks/augmentation_study.py world                       # the toy world of the study
    python benchmarks/augmentation_study.py curve --minutes 55          # real-only learning curve
    python benchmarks/augmentation_study.py strategy prior --sizes 20,40 --minutes 55
    python benchmarks/augmentation_study.py report                      # tables and plots of what is done

The world: a toy Cityscapes tree of 640 training, 100 validation and 300 test scenes (128x256,
seed 12), read at 64x128. Real-only arms at N use its first N training pairs; a strategy at N
makes synthetic data from those N masks only, with a generator trained on those N pairs only
(``fair``; a row marked ``more data`` uses the bundled demo model, trained on 1500 other toy
scenes; ``copy-paste-real`` uses no generator at all), through fgaug's own commands (``layouts``,
``generate`` and its modes), and is paired by seed with the real-only arm at N.

    python benchmarks/augmentation_study.py report prior prior-pretrain content-paste-prior copy-paste-real

draws only the named arms in ``learning_curve.png`` (the figure of the README's "Does it help?",
copied to ``benchmarks/figures/augmentation-learning-curve.png``); the tables hold every arm.

Every part appends one JSON line per trained probe to ``runs/augmentation-study/results.jsonl``
and skips the (arm, real size, seed) already there; generators, synthetic trees and filter
probes are kept on disk. A part stopped by ``--minutes`` or a kill resumes where it was. Run
parts one at a time on 2 cores (``--threads`` sets torch's). The protocol is ``fgaug.evaluation.augment.protocol``;
the arms and how their synthetic data is made are fgaug's (``fgaug.evaluation.augment.strategies``
and ``synthesis``, also behind ``fgaug evaluate augment --strategy``): this script keeps the
study's world, sizes, seeds, generators, files and report.

``--min-steps M`` (default 1000, the protocol's) re-runs the curve and strategies with probes of
at least M steps and a patience scaled with them (10 validations at 2000 steps, so a probe is not
cut off while the one-cycle learning rate is still high). Their results go to
``results-minM.jsonl`` and the report to ``report-minM.md`` (and ``summary-minM.json``,
``learning_curve-minM.png``), beside the default schedule's, sharing its generators and synthetic
trees. It checks that a gain is not the under-trained baseline's. ``--schedules 2`` trains every
arm, real only included, with two one-cycle schedules back to back (a warm restart; files
``results-x2.jsonl`` and so on): the stronger baseline that ``real-pretrain-control`` found.
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgaug.data.cityscapes import find_groups
from fgaug.data.io import atomic_write_bytes
from fgaug.data.plots import class_bars, learning_curve_plot
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.evaluation.augment import supplies
from fgaug.evaluation.augment.protocol import (
    REAL_ONLY,
    SMALL_CLASSES,
    ArmResult,
    PairArrays,
    ProbeRecipe,
    curve_table,
    probe_recipe,
    read_pairs,
    run_arm,
    summarise,
)
from fgaug.evaluation.augment.strategies import MODEL_KINDS, STRATEGIES
from fgaug.evaluation.augment.synthesis import RealSet, Supplies, synthesise
from fgaug.evaluation.stats import paired_interval, signed_interval
from fgaug.finite import to_json
from fgaug.resources import bundled_dir
from fgaug.runtime import native_precision
from fgaug.training.options import TrainOptions
from fgaug.training.train import train

STUDY = Path("runs/augmentation-study")
WORLD_SPLITS = {"train": 640, "val": 100, "test": 300}
WORLD_SIZE = (128, 256)
WORLD_SEED = 12
IMAGE_SIZE = (64, 128)
CURVE_SIZES = (10, 20, 40, 80, 160, 320, 640)
STRATEGY_SIZES = (10, 20, 40)
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


DEFAULT_RECIPE = ProbeRecipe()


def study_recipe(args: argparse.Namespace) -> ProbeRecipe:
    """The probe of ``--min-steps`` and ``--schedules`` (patience grown with the steps)."""
    return probe_recipe(args.min_steps, schedules=args.schedules)


def schedule_suffix(recipe: ProbeRecipe) -> str:
    """How the files of a longer schedule are named apart from the default's."""
    steps = "" if recipe.min_steps == DEFAULT_RECIPE.min_steps else f"-min{recipe.min_steps}"
    return steps + ("" if recipe.schedules == 1 else f"-x{recipe.schedules}")


def describe_schedule(recipe: ProbeRecipe) -> str:
    restarts = "" if recipe.schedules == 1 else f" x {recipe.schedules} schedules"
    return f"at least {recipe.min_steps} steps{restarts}"


def results_file(study: Path, recipe: ProbeRecipe = DEFAULT_RECIPE) -> Path:
    return study / f"results{schedule_suffix(recipe)}.jsonl"


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
    recipe = study_recipe(args)
    results = results_file(args.study, recipe)
    real_all, val, test = (split_pairs(args.study, split) for split in ("train", "val", "test"))
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


# ------------------------------------------------------------------------------------------ strategies


def first_pairs_tree(world: Path, root: Path, size: int) -> Path:
    """``root``: a tree of copies of the first ``size`` training pairs of ``world`` (the pairs of
    the probes at N), made once; a copy left half-made is made again."""
    marker = root / "complete.json"
    if not marker.is_file():
        shutil.rmtree(root, ignore_errors=True)
        for group in find_groups(world, ["train"]).groups[:size]:
            for path in [group.photo, *group.label_files.values()]:
                target = root / path.relative_to(world)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        atomic_write_bytes(marker, json.dumps({"pairs": size}).encode())
    return root


def subset_tree(study: Path, size: int) -> Path:
    """A tree of the first ``size`` training pairs of the world (copies), for a fair generator."""
    return first_pairs_tree(write_world(study), study / "subsets" / f"N{size}", size)


GENERATOR_STEPS = 2000


def fair_generator(study: Path, size: int) -> Path:
    """The ``tiny`` Full-Glow trained on the N real pairs only for :data:`GENERATOR_STEPS` steps
    (its last EMA weights); trained here on first use, resumed if interrupted.

    Not its best-validation checkpoint: with 10-40 pairs, validation bits/dim is best at step 200
    (just after warm-up) and then rises as the flow memorises its pairs, while its samples of
    those masks only then start to look like the world (see RESULTS.md). The early generators
    were measured too, as the arm ``prior-early-generator``."""
    run = study / "generators" / f"N{size}"
    last = run / "checkpoints" / "last.pt"
    if (run / "complete.json").is_file():
        return last
    resume = last.is_file()
    train(
        TrainOptions(
            data=str(subset_tree(study, size)),
            val_data=str(write_world(study)),
            run_dir=str(run),
            preset="tiny",
            steps=GENERATOR_STEPS,
            batch_size=8,
            lr=1e-3,
            precision=native_precision(),
            validate_every=200,
            patience=0,  # none: the runs made before this choice had a patience saved in their config
            sample_every=GENERATOR_STEPS,
            checkpoint_every=200,
            workers=0,
            resume=resume,
            exist_ok=not resume,
            tensorboard=False,
        )
    )
    atomic_write_bytes(run / "complete.json", json.dumps({"steps": GENERATOR_STEPS}).encode())
    return last


def generator_checkpoint(study: Path, size: int, kind: str) -> Path:
    """``fair`` (trained on the N pairs, last weights), ``early`` (the same run's best-validation
    weights) or ``demo`` (the bundled model: more data, 1500 other toy scenes)."""
    if kind == "demo":
        return bundled_dir() / "demo-toy-64x128.pt"
    last = fair_generator(study, size)
    return last.with_name("best.pt") if kind == "early" else last


def filter_probe(study: Path, size: int, real: PairArrays, val: PairArrays) -> Path:
    """The probe that judges synthetic pixels for ignore maps at N (fgaug's
    :func:`~fgaug.evaluation.augment.supplies.filter_probe`), saved once per N."""
    return supplies.filter_probe(study / "filters" / f"N{size}.pt", real, val)


def hardness_weights(study: Path, size: int) -> Path:
    """``1 - IoU`` per class on the validation split, averaged over the real-only arms at N."""
    records = [ArmResult.from_dict(r) for r in read_results(study) if r["arm"] == REAL_ONLY and r["real"] == size]
    if not records:
        raise SystemExit(f"the real-only arms at N={size} are needed first (part curve)")
    return supplies.class_weights(study / "hardness" / f"N{size}.json", records)


def study_supplies(study: Path, real: PairArrays, val: PairArrays) -> Supplies:
    """What the study supplies the arms: per N, the generators of :func:`generator_checkpoint`, the
    filter probe and the weights above, all kept in the study folder; finished trees are reused."""

    def generator(kind: str) -> Callable[[RealSet], Path]:
        return lambda real_set: generator_checkpoint(study, real_set.size, kind)

    return Supplies(
        write_world(study),
        study / "synthetic",
        IMAGE_SIZE,
        generators={kind: generator(kind) for kind in MODEL_KINDS},
        filter_probe=lambda real_set: filter_probe(study, real_set.size, real, val),
        class_weights=lambda real_set: hardness_weights(study, real_set.size),
        reuse_finished=True,
    )


def arm_synthetic(study: Path, name: str, size: int, real: PairArrays, val: PairArrays) -> PairArrays:
    """The synthetic pairs of arm ``name`` at N = ``size`` (``real``: the first N real pairs),
    made once under ``synthetic/<arm>/N<size>`` (fgaug's :func:`~fgaug.evaluation.augment.synthesis.synthesise`)."""
    groups = find_groups(write_world(study), ["train"]).groups[:size]
    return synthesise(name, RealSet(groups), study_supplies(study, real, val))[0]


def read_results(study: Path, recipe: ProbeRecipe = DEFAULT_RECIPE) -> list[dict[str, Any]]:
    results = results_file(study, recipe)
    return [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []


def part_strategy(args: argparse.Namespace) -> None:
    recipe = study_recipe(args)
    results = results_file(args.study, recipe)
    real_all, val, test = (split_pairs(args.study, split) for split in ("train", "val", "test"))
    time_left = budget(args.minutes)
    for name in args.names:
        strategy = STRATEGIES[name]
        for size in args.sizes:
            real = real_all.head(size)
            done = done_keys(results)
            if all((name, size, seed) in done for seed in args.seeds):
                continue
            if not next(time_left):
                print("time budget spent; run the part again to continue", flush=True)
                return
            synthetic = arm_synthetic(args.study, name, size, real, val)
            for seed in args.seeds:
                if (name, size, seed) in done:
                    continue
                if not next(time_left):
                    print("time budget spent; run the part again to continue", flush=True)
                    return
                result = run_arm(name, real, val, test, seed, recipe, synthetic, strategy.mixing)
                result = replace(result, notes={"description": strategy.description, "generator": strategy.generator})
                append_result(results, result.to_dict())
                print(
                    f"{name} N={size} seed={seed}: test mIoU {result.test_miou:.4f} with {len(synthetic)} synthetic "
                    f"(best step {result.best_step}/{result.steps}, {result.seconds:.0f} s)",
                    flush=True,
                )


def part_generators(args: argparse.Namespace) -> None:
    """Train the fair generators of ``--sizes`` ahead of the strategies (each resumable)."""
    for size in args.sizes:
        print(f"generator N={size}: {fair_generator(args.study, size)}", flush=True)


def schedule_table(longer: list[dict[str, Any]], default: list[dict[str, Any]], recipe: ProbeRecipe) -> list[str]:
    """Markdown lines: each arm's test mIoU under the longer schedule minus under the default one,
    paired by seed (for real only: how far the default schedule left the baseline under-trained)."""
    by_key = {(r["arm"], r["real"], r["seed"]): r["test_miou"] for r in default}
    groups: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for record in longer:
        key = (record["arm"], record["real"], record["seed"])
        if key in by_key:
            groups.setdefault(key[:2], []).append((record["test_miou"], by_key[key]))
    lines = [
        f"| arm | N | seeds | mIoU, {describe_schedule(recipe)} | mIoU, {describe_schedule(DEFAULT_RECIPE)} "
        "| difference [95% CI] |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (arm, size), pairs in sorted(groups.items(), key=lambda item: (item[0][0] != REAL_ONLY, item[0])):
        longer_scores, default_scores = zip(*pairs, strict=True)
        difference = paired_interval(longer_scores, default_scores)
        lines.append(
            f"| {arm} | {size} | {len(pairs)} | {np.mean(longer_scores):.4f} | {np.mean(default_scores):.4f} | "
            f"{signed_interval(difference)} |"
        )
    return lines


def part_report(args: argparse.Namespace) -> None:
    """Markdown tables of the curve and every strategy (for RESULTS.md), ``summary.json``, and the
    plots: the learning curve with each strategy's point per N, and per-class IoU differences."""
    recipe = study_recipe(args)
    suffix = schedule_suffix(recipe)
    records = read_results(args.study, recipe)
    summary = summarise([ArmResult.from_dict(record) for record in records])
    atomic_write_bytes(args.study / f"summary{suffix}.json", to_json(summary.to_dict(), indent=1).encode())
    lines = curve_table(summary.curve)
    lines += [
        "",
        "| strategy | N | seeds | synthetic | mIoU | Δ mIoU [95% CI] | worth in real images "
        "| Δ IoU pole, light, sign, person |",
    ]
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    order = {name: index for index, name in enumerate(STRATEGIES)}
    for row in sorted(summary.strategies, key=lambda r: (order.get(r.arm, 99), r.real)):
        small = row.per_class_difference
        classes = ", ".join(f"{small[c]:+.3f}" if c in small else "n/a" for c in SMALL_CLASSES)
        lines.append(
            f"| {row.arm} | {row.real} | {len(row.seeds)} | {row.synthetic} | {row.miou.mean:.4f} | "
            f"{signed_interval(row.difference)} | {row.worth_described} "
            f"| {classes} |"
        )
    if suffix:
        lines += ["", *schedule_table(records, read_results(args.study), recipe)]
    table = "\n".join(lines) + "\n"
    atomic_write_bytes(args.study / f"report{suffix}.md", table.encode())
    print(table)
    if summary.curve:
        points = [
            {"label": row.arm, "real": row.real, **row.miou.to_dict()}
            for row in summary.strategies
            if row.arm in args.names or not args.names
        ]
        learning_curve_plot(
            args.study / f"learning_curve{suffix}.png",
            [point.to_dict() for point in summary.curve],
            points,
            title=f"toy world, probe width 16, {describe_schedule(recipe)}",
        )
    if summary.strategies:
        best = max(summary.strategies, key=lambda r: r.difference.mean)
        same = [r for r in summary.strategies if r.arm == best.arm]
        classes = list(best.per_class_difference)
        class_bars(
            args.study / f"class_difference{suffix}.png",
            classes,
            {f"{r.arm}, N={r.real}": [r.per_class_difference.get(c, float("nan")) for c in classes] for r in same},
            "IoU difference against real only",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["world", "curve", "generators", "strategy", "report"])
    parser.add_argument("names", nargs="*", help=f"strategies for the strategy part: {', '.join(STRATEGIES)}")
    parser.add_argument("--study", type=Path, default=STUDY)
    parser.add_argument("--minutes", type=float, default=55.0, help="stop starting new probes after this long")
    parser.add_argument("--sizes", type=lambda text: [int(v) for v in text.split(",")], default=list(CURVE_SIZES))
    parser.add_argument("--seeds", type=lambda text: [int(v) for v in text.split(",")], default=list(SEEDS))
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--min-steps", type=int, default=DEFAULT_RECIPE.min_steps, help="fewest steps of a probe (own results file)"
    )
    parser.add_argument(
        "--schedules", type=int, default=1, help="one-cycle schedules per probe, a warm restart (own results file)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part == "world":
        print(write_world(args.study))
    elif args.part == "curve":
        part_curve(args)
    elif args.part == "generators":
        part_generators(args)
    elif args.part == "strategy":
        unknown = [name for name in args.names if name not in STRATEGIES]
        if unknown or not args.names:
            raise SystemExit(f"name strategies from: {', '.join(STRATEGIES)}")
        part_strategy(args)
    else:
        part_report(args)


if __name__ == "__main__":
    main()
