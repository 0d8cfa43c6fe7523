"""Issue-21 study: which training recipe makes Full-Glow's samples worth learning from?

    python benchmarks/sample_quality_study.py train      # the recipes' generators (resumable; ~12 min each alone)
    python benchmarks/sample_quality_study.py probe      # the judging world and its probe segmenter
    python benchmarks/sample_quality_study.py quality    # val sweep, then the chosen settings on test; grid
    python benchmarks/sample_quality_study.py quality --recipes R --best-of 4   # CAFLOW's best-of-N selection
    python benchmarks/sample_quality_study.py augment --variants V --seeds 0,1,2   # two-schedule probes
    python benchmarks/sample_quality_study.py grid --variants V,W --sizes 20,40   # test masks, side by side
    python benchmarks/sample_quality_study.py report     # report.md, summary.json, augment-VARIANT.png

Every generator is the ``tiny`` preset trained on the demo model's toy world (1,500 scenes, seed
2024) for the same number of steps at the same batch size, learning rate and network precision (bf16
where the CPU computes it natively; equal compute); the recipes differ only in their training
noise and condition dropout. Samples are judged on a
separate toy world (the augmentation study's, seed 12): its ``val`` split picks the sampling
settings (temperature, denoising scale, guidance weight), its ``test`` split, looked at only with
the chosen settings, gives the reported figures. Every phase skips what is already on disk, so an
interrupted run continues where it stopped.

fgaug is imported first, so OpenMP's spinning is bounded before torch loads (``fgaug.threads``):
the phases share two cores with other work.
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from augmentation_study import first_pairs_tree

from fgaug.data.cityscapes import Group, ReadOptions, find_groups, load_pair, to_tensor
from fgaug.data.io import atomic_write_bytes
from fgaug.data.plots import learning_curve_plot
from fgaug.data.preview import save_grid, to_uint8_image
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.evaluation.augment.protocol import (
    REAL_ONLY,
    ArmResult,
    AugmentSummary,
    PairArrays,
    curve_table,
    probe_recipe,
    read_pairs,
    run_arm,
    summarise,
)
from fgaug.evaluation.augment.synthesis import RealSet, Supplies, Synthesiser, synthesise
from fgaug.evaluation.quality import SampleScores, evaluate_samples
from fgaug.evaluation.stats import mean_interval, paired_interval, signed_interval
from fgaug.flow.sampling import PLAIN_SAMPLING, SamplingOptions
from fgaug.generate.draws import Draw, draw_best
from fgaug.resources import DEMO_MODEL_NAME
from fgaug.runtime import native_precision
from fgaug.segmentation.probe import SegmentationPairs, load_segmenter, train_probe
from fgaug.training.checkpoint import load_checkpoint
from fgaug.training.options import TrainingStoppedError, TrainOptions
from fgaug.training.presets import load_preset
from fgaug.training.train import train

STUDY = Path("runs/sample-quality")
GENERATOR_WORLD = {"splits": {"train": 1500, "val": 32}, "size": (128, 256), "seed": 2024}
JUDGING_WORLD = {"splits": {"train": 640, "val": 100, "test": 300}, "size": (128, 256), "seed": 12}
"""The augmentation study's world: the probe learns from its train split, settings are chosen on
its val split, figures come from its test split."""
TEMPERATURES = (0.6, 0.8, 1.0)
DENOISE_SCALES = (0.8, 1.0, 1.2, 1.4)
GUIDANCE_WEIGHTS = (0.0, 0.05, 0.1, 1.0)
"""The issue's 1, 2 and 4 make every draw of a 1500-step model diverge (w = 1 measured on val:
all draws; ``benchmarks/guidance_divergence.py``), so the sweep looks below 1."""
VAL_MASKS = 60
TEST_MASKS = 100
TEST_SEEDS = (0, 1, 2, 3, 4)
SAMPLES_PER_MASK = 2
SMALL_CLASSES = ("pole", "traffic light", "traffic sign", "person")
PROBE = {"steps": 1500, "batch": 8, "lr": 3e-3, "width": 16}


@dataclass(frozen=True)
class Recipe:
    """A training recipe: its noise (``--noise``) and condition dropout, and how it is sampled."""

    noise: str = "uniform"
    condition_dropout: float = 0.0
    steps_factor: int = 1
    bundled_at: str | None = None
    """The bundled demo model as this commit holds it (``git show``), judged, never trained here."""
    fair: bool = False
    """One generator per real-set size N, trained on the judging world's first N train pairs only
    (the probes' own N pairs: the augmentation study's fair ``prior``) for :data:`FAIR_STEPS`
    steps, and sampled at the setting val chose for ``settings_from``'s generator."""
    settings_from: str | None = None
    branch_of: str | None = None
    """A longer run of another recipe's: its trained run folder is copied and trained on to this
    recipe's steps (the learning rate is constant after warm-up, so this equals one long run)."""
    starts_from: str | None = None
    """Another recipe whose generator's weights this one starts from (``train --init-from``: its
    EMA weights, a fresh optimiser and warm-up), training ``steps_factor`` x the 1x steps more."""

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
    # above TarFlow's 0.025-0.035: does the gain from 0.02 to 0.04 go on?
    "gauss-0.08": Recipe("gaussian:0.08"),
    "gauss-0.16": Recipe("gaussian:0.16"),
    "gauss-0.32": Recipe("gaussian:0.32"),
    "gauss-0.08-x4": Recipe("gaussian:0.08", steps_factor=4),
    # sigma 0.16 led at 1x: gauss-0.16's run trained on to 4x
    "gauss-0.16-x4": Recipe("gaussian:0.16", steps_factor=4, branch_of="gauss-0.16"),
    "gauss-0.04-x4": Recipe("gaussian:0.04", steps_factor=4),
    "gauss-0.04-x16": Recipe("gaussian:0.04", steps_factor=16, branch_of="gauss-0.04-x4"),
    # 4x more steps from the bundled model (gauss-0.04-x4's weights; its run folder was lost with
    # the machine): 8x in all, the optimiser restarted
    "gauss-0.04-x8": Recipe("gaussian:0.04", steps_factor=4, starts_from="bundled"),
    "dropout-0.1": Recipe(condition_dropout=0.1),
    # the bundled model from 2026-12-02 to 2026-12-03: gauss-0.04-x4's EMA weights, stored in
    # float16 (RESULTS' "demo-4000" rows judged the bundled model before it, the paper's recipe at
    # 4000 steps)
    "bundled": Recipe("gaussian:0.04", bundled_at="34f983c"),
    # the bundled model since 2026-12-03: gauss-0.16-x4's EMA weights, stored in float16
    "bundled-0.16": Recipe("gaussian:0.16", bundled_at="fae502c"),
    "fair-gauss-0.04": Recipe("gaussian:0.04", fair=True, settings_from="gauss-0.04-x4"),
    # the bundled model's recipe trained on the probes' own N pairs only: what a user's own
    # generator gives (4x the fair steps, as gauss-0.16-x4 has 4x the 1x steps)
    "fair-gauss-0.16-x4": Recipe("gaussian:0.16", steps_factor=4, fair=True, settings_from="gauss-0.16-x4"),
}
FAIR_STEPS = 2000
"""The augmentation study's fair generators' steps (``augmentation_study.GENERATOR_STEPS``)."""


def write_generator_world(study: Path) -> Path:
    root = study / "generator-world"
    marker = root / "complete.json"
    if not marker.is_file():
        splits = GENERATOR_WORLD["splits"]
        write_toy_cityscapes(root, splits, size=GENERATOR_WORLD["size"], seed=GENERATOR_WORLD["seed"])
        atomic_write_bytes(marker, json.dumps(GENERATOR_WORLD).encode())
    return root


def generator_checkpoint(study: Path, name: str, size: int | None = None) -> Path:
    """The recipe's generator; a fair recipe's (trained first if it is not) is the one of real-set size ``size``."""
    commit = RECIPES[name].bundled_at
    if commit is not None:
        return bundled_model_at(study, commit)
    if RECIPES[name].fair:
        if size is None:
            raise ValueError(f"{name} has one generator per real-set size: give the size")
        return fair_generator(study, name, size)
    return study / "generators" / name / "checkpoints" / "last.pt"


def bundled_model_at(study: Path, commit: str) -> Path:
    """The bundled demo model of ``commit``, copied from the repository's history once (a later
    commit may bundle another model; the study's rows stay those of the one they judged)."""
    path = study / "bundled" / commit / DEMO_MODEL_NAME
    if not path.is_file():
        stored = f"{commit}:models/{DEMO_MODEL_NAME}"
        repository = Path(__file__).resolve().parent.parent
        found = subprocess.run(["git", "-C", str(repository), "show", stored], capture_output=True, check=False)
        if found.returncode != 0:
            raise SystemExit(f"{stored}: not in this repository's history ({found.stderr.decode().strip()})")
        atomic_write_bytes(path, found.stdout)
    return path


def judging_subset(study: Path, size: int) -> Path:
    """A tree of copies of the judging world's first ``size`` train pairs: the pairs of the probes at N."""
    return first_pairs_tree(write_judging_world(study), study / "judging-subsets" / f"N{size}", size)


def fair_generator(study: Path, name: str, size: int) -> Path:
    """The fair recipe ``name``'s generator of the first ``size`` judging pairs (its last EMA
    weights, as the augmentation study's), trained here on first use and resumed if stopped."""
    recipe = RECIPES[name]
    run_dir = study / "generators" / name / f"N{size}"
    done = run_dir / "done.json"
    if not done.is_file():
        result = train(
            TrainOptions(
                data=str(judging_subset(study, size)),
                val_data=str(write_judging_world(study)),
                run_dir=str(run_dir),
                preset="tiny",
                steps=FAIR_STEPS * recipe.steps_factor,
                batch_size=8,
                lr=1e-3,
                noise=recipe.noise,
                condition_dropout=recipe.condition_dropout,
                precision=native_precision(),
                validate_every=500,
                patience=0,
                sample_every=FAIR_STEPS * recipe.steps_factor,
                checkpoint_every=250,
                workers=1,
                resume=(run_dir / "config.json").is_file(),
                tensorboard=False,
            )
        )
        atomic_write_bytes(done, json.dumps({"steps": result.steps, "seconds": result.seconds}).encode())
        print(f"{name} N={size}: {result.steps} steps in {result.seconds:.0f} s", flush=True)
    return run_dir / "checkpoints" / "last.pt"


def train_generators(study: Path, names: list[str], steps: int, batch: int, sizes: list[int]) -> None:
    """Train each recipe's generator for ``steps * steps_factor`` steps (a fair recipe's, one per
    real-set size in ``sizes``), resuming a stopped run."""
    data = write_generator_world(study)
    for name in [name for name in names if RECIPES[name].fair]:
        for size in sizes:
            print(f"{name} N={size}: {fair_generator(study, name, size)}", flush=True)
    for name in [name for name in names if not (RECIPES[name].bundled_at or RECIPES[name].fair)]:
        recipe = RECIPES[name]
        run_dir = study / "generators" / name
        total = steps * recipe.steps_factor
        if recipe.branch_of and not run_dir.exists():
            if not trained(study, recipe.branch_of):
                raise SystemExit(f"{name} continues {recipe.branch_of}'s run: train that first")
            partial = run_dir.with_name(f"{name}.partial")  # renamed when whole: a killed copy is redone
            shutil.rmtree(partial, ignore_errors=True)
            source = study / "generators" / recipe.branch_of
            shutil.copytree(source, partial, ignore=shutil.ignore_patterns("done.json"))
            partial.rename(run_dir)
        if recipe.starts_from and not trained(study, recipe.starts_from):
            raise SystemExit(f"{name} starts from {recipe.starts_from}'s weights: train that first")
        options = TrainOptions(
            data=str(data),
            run_dir=str(run_dir),
            preset="tiny",
            steps=total,
            batch_size=batch,
            noise=recipe.noise,
            condition_dropout=recipe.condition_dropout,
            precision=native_precision(),
            validate_every=500,
            sample_every=1000,
            checkpoint_every=250,
            workers=1,
            init_from=generator_checkpoint(study, recipe.starts_from) if recipe.starts_from else None,
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


@dataclass(frozen=True)
class Variant:
    """A recipe's generator sampled one way: plain, denoised (scale chosen on val) or guided
    (weight chosen on val); ``settings`` are the candidates the val split chooses among."""

    recipe: str
    kind: str
    settings: tuple[SamplingOptions, ...]
    best_of: int = 1
    """Each sample the most likely of this many draws (``generate --best-of``, CAFLOW's selection)."""

    @property
    def name(self) -> str:
        name = self.recipe if self.kind == "plain" else f"{self.recipe}+{self.kind}"
        return name if self.best_of == 1 else f"{name}+best{self.best_of}"

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether a quality record was drawn this variant's way (records before best-of: 1)."""
        return (
            record["recipe"] == (RECIPES[self.recipe].settings_from or self.recipe)
            and record.get("best_of", 1) == self.best_of
            and (record["guidance"], record["denoise_scale"]) in {(s.guidance, s.denoise_scale) for s in self.settings}
        )


def trained(study: Path, recipe: str) -> bool:
    """Whether the recipe's generator can be judged on val and test (a fair recipe's never is: it
    has one generator per real-set size and borrows its setting)."""
    if RECIPES[recipe].fair:
        return False
    return RECIPES[recipe].bundled_at is not None or (study / "generators" / recipe / "done.json").is_file()


def best_of_variants(study: Path, names: list[str], best_of: int) -> list[Variant]:
    """Each recipe's plain and denoised variants with every sample the most likely of ``best_of``
    draws, the denoised one at the scale val chose for it without selection (temperature swept again)."""
    found = []
    for name in names:
        found.append(Variant(name, "plain", (PLAIN_SAMPLING,), best_of))
        if RECIPES[name].denoisable:
            denoised = next(variant for variant in variants([name]) if variant.kind == "denoise")
            scale = choose(study, denoised)
            found.append(Variant(name, "denoise", (SamplingOptions(denoise_scale=scale["denoise_scale"]),), best_of))
    return found


def variants(names: list[str]) -> list[Variant]:
    found = []
    for name in names:
        recipe = RECIPES[name]
        found.append(Variant(name, "plain", (PLAIN_SAMPLING,)))
        if recipe.denoisable:
            found.append(Variant(name, "denoise", tuple(SamplingOptions(denoise_scale=s) for s in DENOISE_SCALES)))
        if recipe.guidable:
            found.append(Variant(name, "guidance", tuple(SamplingOptions(guidance=w) for w in GUIDANCE_WEIGHTS[1:])))
    return found


def write_judging_world(study: Path) -> Path:
    root = study / "judging-world"
    marker = root / "complete.json"
    if not marker.is_file():
        write_toy_cityscapes(root, JUDGING_WORLD["splits"], size=JUDGING_WORLD["size"], seed=JUDGING_WORLD["seed"])
        atomic_write_bytes(marker, json.dumps(JUDGING_WORLD).encode())
    return root


def probe_path(study: Path) -> Path:
    return study / "probe.pt"


def train_judging_probe(study: Path) -> Path:
    """The probe segmenter that judges label consistency, trained on the judging world's real photos."""
    path = probe_path(study)
    if not path.is_file():
        groups = find_groups(write_judging_world(study), ["train"], True).groups
        size = load_preset("tiny").model.image_size
        report = train_probe(
            SegmentationPairs(groups, size, flip=True),
            path,
            PROBE["steps"],
            PROBE["batch"],
            PROBE["lr"],
            PROBE["width"],
        )
        print(f"probe: {report.steps} steps, final loss {report.final_loss:.3f}, {report.seconds:.0f} s", flush=True)
    return path


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def append_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, sort_keys=True) + "\n")


def figures(evaluation: SampleScores) -> list[dict[str, Any]]:
    """Per temperature: consistency (samples' probe mIoU / real photos'), small-class IoUs,
    diversity and colour W1, from one :func:`evaluate_samples` result (with a segmenter)."""
    if evaluation.real_photos is None:
        raise ValueError("the figures need the probe's scores of the real photos")
    real = evaluation.real_photos.mean_iou
    rows = []
    for row in evaluation.temperatures:
        if row.consistency is None:
            raise ValueError("the figures need the probe's scores of the samples")
        per_class = row.consistency.named_iou()
        rows.append(
            {
                "temperature": row.temperature,
                "consistency": row.consistency.mean_iou / real,
                "samples_miou": row.consistency.mean_iou,
                "real_miou": real,
                **{name: per_class[name] for name in SMALL_CLASSES},
                "pairwise_l1": row.pairwise_l1,
                "pairwise_1_minus_ssim": row.pairwise_1_minus_ssim,
                "colour_w1": row.colour_w1_mean,
                "diverged_fraction": row.diverged_fraction,
            }
        )
    return rows


def judge(
    study: Path,
    recipe: str,
    sampling: SamplingOptions,
    groups: list[Group],
    seed: int,
    temperatures: tuple[float, ...] = TEMPERATURES,
    best_of: int = 1,
) -> list[dict[str, Any]]:
    checkpoint = load_checkpoint(generator_checkpoint(study, recipe))
    probe = load_segmenter(probe_path(study))
    evaluation = evaluate_samples(
        checkpoint, groups, temperatures, SAMPLES_PER_MASK, seed, probe, sampling=sampling, best_of=best_of
    )
    return figures(evaluation)


def sweep_validation(study: Path, chosen: list[Variant]) -> None:
    """Every candidate setting of every variant at every temperature, on the val split's first masks."""
    results = study / "quality-val.jsonl"
    done = {(r["recipe"], r["guidance"], r["denoise_scale"], r.get("best_of", 1)) for r in read_records(results)}
    groups = find_groups(write_judging_world(study), ["val"], True).groups[:VAL_MASKS]
    for variant in chosen:
        for sampling in variant.settings:
            key = (variant.recipe, sampling.guidance, sampling.denoise_scale, variant.best_of)
            if key in done:
                continue
            start = time.perf_counter()
            for row in judge(study, variant.recipe, sampling, groups, seed=0, best_of=variant.best_of):
                record = {"recipe": variant.recipe, **sampling.to_dict(), "best_of": variant.best_of}
                append_record(results, {**record, **row})
            done.add(key)
            print(f"val {variant.name} {sampling}: {time.perf_counter() - start:.0f} s", flush=True)


def choose(study: Path, variant: Variant) -> dict[str, Any]:
    """The variant's val row of highest label consistency: its setting and temperature (a fair
    recipe's: its ``settings_from`` recipe's)."""
    candidates = [r for r in read_records(study / "quality-val.jsonl") if variant.matches(r)]
    scored = [r for r in candidates if r["consistency"] == r["consistency"]]  # NaN: every draw diverged
    if not scored:
        raise SystemExit(f"no usable validation figures for {variant.name}: run the quality phase")
    return max(scored, key=lambda r: r["consistency"])


def test_chosen(study: Path, chosen: list[Variant]) -> None:
    """The chosen setting of each variant on the test split, with every test seed."""
    results = study / "quality-test.jsonl"
    done = {(r["variant"], r["seed"]) for r in read_records(results)}
    groups = find_groups(write_judging_world(study), ["test"], True).groups[:TEST_MASKS]
    for variant in chosen:
        best = choose(study, variant)
        sampling = SamplingOptions(best["guidance"], best["denoise_scale"])
        for seed in TEST_SEEDS:
            if (variant.name, seed) in done:
                continue
            (row,) = judge(study, variant.recipe, sampling, groups, seed, (best["temperature"],), variant.best_of)
            record = {"variant": variant.name, "recipe": variant.recipe, "seed": seed, "best_of": variant.best_of}
            append_record(results, {**record, **sampling.to_dict(), **row})
            print(f"test {variant.name} seed {seed}: consistency {row['consistency']:.3f}", flush=True)


def write_grid(
    study: Path, chosen: list[Variant], sizes: tuple[int, ...] = (), name: str = "samples.png", masks: int = 4
) -> Path:
    """The same test masks sampled by every variant at its chosen setting, side by side (a fair
    variant's generator of each real-set size N in ``sizes``, one column "trained on N" each)."""
    groups = find_groups(write_judging_world(study), ["test"], True).groups[:masks]
    columns: list[list[np.ndarray]] = [[] for _ in groups]
    titles = ["mask", "real"]
    generators = [
        (
            variant.name if size is None else f"trained on {size}",
            variant,
            generator_checkpoint(study, variant.recipe, size),
        )
        for variant in chosen
        for size in (sizes if RECIPES[variant.recipe].fair else (None,))
    ]
    for title, variant, path in generators:
        best = choose(study, variant)
        checkpoint = load_checkpoint(path)
        sampler = SamplingOptions(best["guidance"], best["denoise_scale"]).bind(checkpoint.model)
        read = ReadOptions(checkpoint.model.config.image_size)
        titles.append(title)
        for row, group in zip(columns, groups, strict=True):
            condition, photo = load_pair(group, read)
            if not row:
                row.extend([condition, photo])
            drawn = draw_best(
                sampler, to_tensor(condition)[None], [group.key], [[0]], best["temperature"], 0, variant.best_of
            )
            draw = drawn[0][0]
            row.append(to_uint8_image(draw.image) if isinstance(draw, Draw) else np.zeros_like(photo))
    return save_grid(study / name, columns, titles)


SYNTHETIC_PER_MASK = 4
PROBE_RECIPE = probe_recipe(1000, schedules=2)
"""``evaluate augment --schedules 2``'s probe: the two-schedule baseline of issue 12."""


def synthesiser(study: Path, variant: Variant, strategy: str, best: dict[str, Any]) -> Synthesiser:
    """The synthetic pairs of N masks for fgaug's arm ``prior``, ``content-paste-prior`` or
    ``copy-paste-real``, or ``copy-paste-real+prior`` (both pooled), at the variant's chosen
    settings; made under ``synthetic/<variant>/<arm>/N<N>``, copy-paste (no model) once for every
    variant under ``synthetic/real-pixels``. Prior samples are drawn in fp32, layouts rendered
    in the CPU's native precision, as the study's first runs did."""
    supplies = Supplies(
        write_judging_world(study),
        study / "synthetic" / variant.name,
        load_preset("tiny").model.image_size,
        generators={"fair": lambda real: generator_checkpoint(study, variant.recipe, real.size)},
        precision=native_precision(),
        sampling=SamplingOptions(best["guidance"], best["denoise_scale"]),
    )
    own = {
        "prior": replace(supplies, precision="fp32"),
        "copy-paste-real": replace(supplies, folder=study / "synthetic" / "real-pixels"),
    }

    def pooled(real: RealSet) -> tuple[PairArrays, int]:
        made = [
            synthesise(name, real, own.get(name, supplies), SYNTHETIC_PER_MASK, best["temperature"])
            for name in strategy.split("+")
        ]
        return PairArrays.concat([pairs for pairs, _ in made]), sum(diverged for _, diverged in made)

    return pooled


def named_variants(names: list[str]) -> list[Variant]:
    """The variants of these names (``recipe``, ``recipe+denoise``, ``recipe+guidance``), in order."""
    by_name = {variant.name: variant for variant in variants(list(RECIPES))}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise SystemExit(
            f"unknown variant(s) {unknown} (a best-of variant's samples are the strategy filter-best-of-4 of its "
            f"plain variant); known: {sorted(by_name)}"
        )
    return [by_name[name] for name in names]


def augment(
    study: Path, chosen: list[Variant], strategies: list[str], sizes: list[int], seeds: list[int], real: bool = True
) -> None:
    """Probes trained on N real pairs alone and with each variant's synthetic pairs (at its chosen
    setting), paired by seed, as ``evaluate augment --schedules 2`` trains them; one record per
    (arm, N, seed) in ``augment-<seeds>.jsonl``. Each probe is claimed first (a file under
    ``claims/``), so several processes can share the work; a claim left by a killed process is
    removed by hand. ``real`` False leaves the real-only probes to another process."""
    results = study / f"augment-{'-'.join(map(str, seeds))}.jsonl"
    done = {(r["arm"], r["real"], r["seed"]) for path in study.glob("augment-*.jsonl") for r in read_records(path)}
    world = write_judging_world(study)
    size = load_preset("tiny").model.image_size
    pool = find_groups(world, ["train"], True).groups
    real_all = read_pairs(pool[: max(sizes)], size)
    val = read_pairs(find_groups(world, ["val"], True).groups, size)
    test = read_pairs(find_groups(world, ["test"], True).groups, size)

    def claim(arm: str, real_size: int, seed: int) -> bool:
        """Take the probe for this process (a file created exclusively), unless it is done or taken."""
        if (arm, real_size, seed) in done:
            return False
        claims = study / "claims"
        claims.mkdir(exist_ok=True)
        try:
            os.close(os.open(claims / f"{arm.replace('/', '_')}-N{real_size}-s{seed}", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True

    def run(arm: str, real_size: int, seed: int, synthetic: PairArrays | None) -> None:
        start = time.perf_counter()
        result = run_arm(arm, real_all.head(real_size), val, test, seed, PROBE_RECIPE, synthetic)
        append_record(results, result.to_dict())
        done.add((arm, real_size, seed))
        print(
            f"{arm} N={real_size} seed {seed}: test mIoU {result.test_miou:.4f} ({time.perf_counter() - start:.0f} s)"
        )

    for real_size in sizes:
        for seed in seeds if real else []:
            if claim(REAL_ONLY, real_size, seed):
                run(REAL_ONLY, real_size, seed, None)
        for variant in chosen:
            best = choose(study, variant)
            for strategy in strategies:
                arm = f"{variant.name}/{strategy}"
                synthetic = None
                for seed in seeds:
                    if not claim(arm, real_size, seed):
                        continue
                    if synthetic is None:
                        synthetic, _ = synthesiser(study, variant, strategy, best)(RealSet(pool[:real_size]))
                    run(arm, real_size, seed, synthetic)


def interval(values: list[float]) -> dict[str, float]:
    return mean_interval(values).to_dict()


COMPARISONS = (
    ("copy-paste-real+prior", "copy-paste-real"),
    ("copy-paste-real+content-paste-prior", "copy-paste-real"),
    ("content-paste-prior", "prior"),
)
"""Arms compared with each other, paired by seed: does the generator add to copy-paste, and do
pasted objects beat whole images?"""
MODEL_FREE = "copy-paste-real"
"""The arm that no generator touches: its pairs are made once for every variant and its probes are
deterministic by seed, so a variant without its own copy-paste probes is compared with another
variant's (the probes would repeat them to the digit)."""


def comparison_lines(records: list[dict[str, Any]]) -> list[str]:
    """One table row per variant, N and :data:`COMPARISONS` pair with probes of both arms: the
    difference of test mIoU over the seeds both have, with its paired 95% t interval."""
    scores = {(r["arm"], r["real"], r["seed"]): r["test_miou"] for r in records}
    for (arm, real, seed), score in list(scores.items()):
        if arm.endswith(f"/{MODEL_FREE}"):
            scores.setdefault((MODEL_FREE, real, seed), score)
    variants = sorted({arm.split("/")[0] for arm, _, _ in scores if "/" in arm})
    rows = []
    for variant in variants:
        for treated, baseline in COMPARISONS:
            for real in sorted({real for _, real, _ in scores}):
                own = (f"{variant}/{baseline}", real)
                shared = baseline == MODEL_FREE and not any(key[:2] == own for key in scores)
                keys = (f"{variant}/{treated}", baseline if shared else f"{variant}/{baseline}")
                seeds = sorted(s for a, n, s in scores if a == keys[0] and n == real and (keys[1], real, s) in scores)
                if len(seeds) < 2:
                    continue
                difference = paired_interval(
                    [scores[keys[0], real, s] for s in seeds], [scores[keys[1], real, s] for s in seeds]
                )
                compared = f"{treated} minus {baseline}"
                cells = [variant, compared, f"{real}", f"{len(seeds)}", signed_interval(difference)]
                rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    header = [
        "",
        "## Arms against each other (paired by seed)",
        "",
        "| variant | difference | N | seeds | Δ mIoU [95% CI] |",
    ]
    return [*header, "|---|---|---|---|---|", *rows]


def augment_figures(study: Path, summary: AugmentSummary) -> list[Path]:
    """Per variant, ``augment-VARIANT.png``: the two-schedule real-only curve and each of the
    variant's arms as a series over N, copy-paste (no model) at an N it lacks from another variant."""
    model_free = {row.real: row for row in summary.strategies if row.arm.endswith(f"/{MODEL_FREE}")}
    curve = [point.to_dict() for point in summary.curve]
    paths = []
    for variant in sorted({row.arm.split("/")[0] for row in summary.strategies}):
        rows = [row for row in summary.strategies if row.arm.startswith(f"{variant}/")]
        own = {row.real for row in rows if row.arm.endswith(f"/{MODEL_FREE}")}
        rows += [row for real, row in model_free.items() if real not in own]
        points = [{"label": row.arm.split("/", 1)[1], "real": row.real, **row.miou.to_dict()} for row in rows]
        title = f"generator {variant}; every arm trained with two schedules"
        paths.append(learning_curve_plot(study / f"augment-{variant}.png", curve, points, title=title))
    return paths


def report(study: Path) -> Path:
    """``report.md`` and ``summary.json``: the val sweep, the chosen settings' test figures with
    95% t intervals over the sampling seeds, and the augmentation rows."""
    tests = read_records(study / "quality-test.jsonl")
    names = list(dict.fromkeys(r["variant"] for r in tests))
    keys = ["consistency", *SMALL_CLASSES, "pairwise_l1", "pairwise_1_minus_ssim", "colour_w1"]
    summary: dict[str, Any] = {"variants": {}, "augment": {}}
    lines = [
        "# Sample-quality study (issue 21)",
        "",
        f"Generators: `tiny` preset, trained on {GENERATOR_WORLD['splits']['train']} toy scenes (seed "
        f"{GENERATOR_WORLD['seed']}), equal steps per recipe. Judged on the toy world of seed "
        f"{JUDGING_WORLD['seed']}: settings chosen on its first {VAL_MASKS} val masks, figures on its first "
        f"{TEST_MASKS} test masks, {SAMPLES_PER_MASK} samples per mask, mean and 95% t interval over "
        f"{len(TEST_SEEDS)} sampling seeds (one generator per recipe). Consistency = probe mIoU on samples / "
        "probe mIoU on the same masks' real photos.",
        "",
        "| variant | chosen (val) | consistency | " + " | ".join(keys[1:]) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for name in names:
        rows = [r for r in tests if r["variant"] == name]
        first = rows[0]
        setting = f"T={first['temperature']:g}"
        setting += f", w={first['guidance']:g}" if first["guidance"] else ""
        setting += f", s={first['denoise_scale']:g}" if first["denoise_scale"] is not None else ""
        figures_ = {key: interval([r[key] for r in rows]) for key in keys}
        summary["variants"][name] = {"setting": setting, **figures_}
        cells = [f"{f['mean']:.3f} ± {f['half_width']:.3f}" for f in figures_.values()]
        lines.append(f"| {name} | {setting} | " + " | ".join(cells) + " |")
    lines += ["", f"Real photos' probe mIoU on these masks: {tests[0]['real_miou']:.3f}." if tests else ""]
    lines += [
        "",
        "## Validation sweep (first seed, consistency)",
        "",
        "| recipe | guidance | denoise | best of | T | consistency |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for r in read_records(study / "quality-val.jsonl"):
        setting = [f"{r['guidance']:g}", str(r["denoise_scale"]), str(r.get("best_of", 1)), f"{r['temperature']:g}"]
        cells = [r["recipe"], *setting]
        lines.append("| " + " | ".join(cells) + f" | {r['consistency']:.3f} |")
    records = [r for path in sorted(study.glob("augment-*.jsonl")) for r in read_records(path)]
    if records:
        augment_summary = summarise([ArmResult.from_dict(record) for record in records])
        summary["augment"] = augment_summary.to_dict()
        lines += [
            "",
            "## Does it help a segmenter? (two-schedule probes, paired by seed, Δ test mIoU against real only)",
            "",
            *curve_table(augment_summary.curve),
            "",
            "| arm | N | seeds | Δ mIoU [95% CI] | traffic sign | person | pole | traffic light |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in augment_summary.strategies:
            per_class = row.per_class_difference
            cells = [
                f"{per_class.get(c, float('nan')):+.3f}" for c in ("traffic sign", "person", "pole", "traffic light")
            ]
            lines.append(
                f"| {row.arm} | {row.real} | {len(row.seeds)} | {signed_interval(row.difference)} | "
                + " | ".join(cells)
                + " |"
            )
        lines += comparison_lines(records)
        lines += ["", *(f"![{path.stem}]({path.name})" for path in augment_figures(study, augment_summary))]
    atomic_write_bytes(study / "summary.json", json.dumps(summary, indent=2).encode())
    atomic_write_bytes(study / "report.md", ("\n".join(lines) + "\n").encode())
    return study / "report.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["train", "probe", "quality", "augment", "grid", "report"])
    parser.add_argument("--study", type=Path, default=STUDY)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    parser.add_argument("--steps", type=int, default=1500, help="training steps of a 1x recipe")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--variants", default="", help="augment and grid phases: comma-separated variant names")
    parser.add_argument("--strategies", default="prior", help="augment phase: comma-separated strategies")
    parser.add_argument("--sizes", default="20,40", help="augment, train and grid phases: real-set sizes")
    parser.add_argument("--no-real", action="store_true", help="augment phase: leave real-only probes to another run")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="augment phase: probe seeds")
    parser.add_argument(
        "--best-of", type=int, default=1, help="quality phase: every sample the most likely of K draws (K > 1)"
    )
    args = parser.parse_args()
    names = [name for name in args.recipes.split(",") if name]
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {sorted(RECIPES)}")
    if args.phase == "train":
        train_generators(args.study, names, args.steps, args.batch, [int(v) for v in args.sizes.split(",")])
    elif args.phase == "probe":
        train_judging_probe(args.study)
    elif args.phase == "quality":
        usable = [name for name in names if trained(args.study, name)]
        chosen = best_of_variants(args.study, usable, args.best_of) if args.best_of > 1 else variants(usable)
        print(f"judging {', '.join(v.name for v in chosen) or 'nothing yet'} (generators trained so far)", flush=True)
        sweep_validation(args.study, chosen)
        test_chosen(args.study, chosen)
        if chosen:
            print(f"grid: {write_grid(args.study, chosen)}", flush=True)
    elif args.phase == "augment":
        sizes = [int(v) for v in args.sizes.split(",")]
        seeds = [int(v) for v in args.seeds.split(",")]
        chosen = named_variants([v for v in args.variants.split(",") if v])
        augment(args.study, chosen, args.strategies.split(","), sizes, seeds, real=not args.no_real)
    elif args.phase == "grid":
        chosen = named_variants([v for v in args.variants.split(",") if v])
        if not chosen:
            parser.error("--variants: give at least one variant")
        sizes = tuple(int(v) for v in args.sizes.split(","))
        name = "samples-" + "-".join(variant.name for variant in chosen) + ".png"
        print(f"grid: {write_grid(args.study, chosen, sizes, name)}")
    else:
        print(f"report: {report(args.study)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
