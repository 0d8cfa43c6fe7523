"""The Python API behind the CLI: one function per command, each taking the command's options
dataclass (whose defaults are the command line's) and returning a result with ``to_dict()`` (what
the command's ``--json`` prints).

    from fgaug import api
    api.prepare("cityscapes/", "train.h5", size=(256, 512))
    result = api.train(api.TrainOptions(data="train.h5", run_dir="runs/city", preset="paper-256"))
    model = str(result.last_checkpoint)  # or "demo", the bundled toy-world model; one must be named
    summary = api.generate(api.GenerateOptions(masks="cityscapes/gtFine/val", out="augmented", n=5, model=model))
    api.transfer(api.TransferOptions("photo_leftImg8bit.png", "layout_gtFine_labelIds.png", model=model))

Every function reports long work through an optional :class:`fgaug.progress.Progress` and raises
one-line errors (``DataError``, ``ConfigError``, ``CheckpointError``) for bad input and
:class:`fgaug.usage.UsageError`, naming the command-line option, for options that cannot work
(most as the options dataclass is made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fgaug.data.cache import PrepareReport, check_cache_target, prepare_cache
from fgaug.data.cityscapes import ReadOptions, find_groups, tree_root
from fgaug.data.headers import check_headers
from fgaug.data.io import DataError, check_file_to_write, file_digest
from fgaug.data.layouts import LayoutSummary, write_layouts
from fgaug.data.options import LayoutOptions, LayoutRunOptions, ValidateOptions
from fgaug.data.record import RunOutcome, check_output, clear_folder, finish_output, forgotten_if_unwritten, take_output
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.data.validate import ValidationReport, validate_tree
from fgaug.data.writer import TREE_OUTPUTS, check_outside_input
from fgaug.evaluation.augment.protocol import MIXINGS, probe_recipe
from fgaug.evaluation.augment.resume import STUDY_OUTPUTS, FinishedProbes, study_record
from fgaug.evaluation.augment.strategies import STRATEGIES, describe_need
from fgaug.evaluation.augment.study import AugmentReport, augmentation_study, write_augment_report
from fgaug.evaluation.augment.supplies import evaluation_supplies
from fgaug.evaluation.augment.synthesis import arm_synthesiser
from fgaug.evaluation.options import AugmentOptions, QualityOptions, QualityResult
from fgaug.evaluation.quality import QualityReport, evaluate_bpd, evaluate_samples
from fgaug.evaluation.reports import write_quality_report
from fgaug.flow.sampling import SamplingOptions
from fgaug.generate.engine import generate
from fgaug.generate.interpolate import InterpolateOptions, Walk, WalkOptions, interpolate
from fgaug.generate.options import GenerateOptions, GenerateSummary, ModelUsed, find_model, load_named_model
from fgaug.generate.transfer import TransferOptions, TransferSummary, transfer
from fgaug.progress import Progress, SilentProgress
from fgaug.resources import DEMO_MODEL
from fgaug.runtime import precision_name, resolve_device, resolve_precision
from fgaug.segmentation.options import SegmenterTrainOptions
from fgaug.segmentation.probe import (
    SegmentationPairs,
    SegmenterTrainReport,
    check_probe_output,
    load_segmenter,
    load_user_module,
    train_probe,
)
from fgaug.training.checkpoint import Checkpoint, load_checkpoint
from fgaug.training.dry_run import dry_run
from fgaug.training.options import TrainOptions, TrainResult
from fgaug.training.train import train
from fgaug.usage import UsageError, image_size

__all__ = [
    "GenerateOptions",
    "GenerateSummary",
    "InterpolateOptions",
    "LayoutOptions",
    "LayoutRunOptions",
    "LayoutSummary",
    "PrepareReport",
    "QualityOptions",
    "QualityResult",
    "SegmenterTrainOptions",
    "SegmenterTrainReport",
    "TrainOptions",
    "TrainResult",
    "TransferOptions",
    "TransferSummary",
    "ValidateOptions",
    "ValidationReport",
    "Walk",
    "WalkOptions",
    "demo",
    "dry_run",
    "evaluate_augment",
    "evaluate_quality",
    "generate",
    "info",
    "interpolate",
    "layouts",
    "prepare",
    "train",
    "train_segmenter",
    "transfer",
    "validate",
]


def layouts(options: LayoutRunOptions, progress: Progress | None = None) -> LayoutSummary:
    """New label sets from the masks under ``options.masks`` (flips, scale-and-crop jitter, pasted
    objects, rare classes emphasised), written as a Cityscapes label tree under ``options.out``: a
    ``MASKS`` input for :func:`generate`. See :mod:`fgaug.data.layouts`."""
    root = Path(options.masks)
    groups = find_groups(root, options.splits, False, options.mask_format).groups
    groups = groups[: options.limit] if options.limit else groups
    out = Path(options.out)
    with forgotten_if_unwritten(out, TREE_OUTPUTS):
        return write_layouts(groups, root, out, options.layout, progress, options.overwrite, options.write_threads)


def prepare(
    data: str | Path,
    out: str | Path,
    size: tuple[int, int],
    split: str | None = None,
    boundary: bool = False,
    mask_format: str = "auto",
    snap_colors: bool = False,
    skip_bad: bool = False,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """Decode and resize one split of a Cityscapes tree into an HDF5 cache for training: ``split``
    of a root (``train`` by default), or the split of a split or city folder (refused when
    ``split`` names another). An existing ``out`` is refused unless ``overwrite``, and then
    replaced only if it is an fgaug cache."""
    size = image_size("--size", size)
    progress = progress or SilentProgress()
    tree = tree_root(data)
    root = tree or Path(data)  # the gtFine folder's tree: the cache's paths are relative to its root
    splits = [split or "train"] if tree else [split] if split else None
    check_cache_target(Path(out), root, overwrite)  # before the tree is listed and the progress starts
    discovery = find_groups(root, splits, True, mask_format, skip_bad)
    progress.start("preparing", len(discovery.groups))
    done = 0

    def advance(count: int, total: int) -> None:
        nonlocal done
        progress.advance(count - done)
        done = count

    report = prepare_cache(
        discovery.groups, ReadOptions(size, boundary, snap_colors), Path(out), root, skip_bad, advance, overwrite
    )
    progress.stop()
    report.skipped = list(discovery.skipped) + report.skipped
    return report


def validate(options: ValidateOptions) -> ValidationReport:
    """Check the tree ``options.augmented`` against its manifest (and, given ``options.source``,
    its copied label files against their sources); see :func:`fgaug.data.validate.validate_tree`."""
    return validate_tree(options.augmented, options.source)


def train_segmenter(options: SegmenterTrainOptions, progress: Progress | None = None) -> SegmenterTrainReport:
    """Train fgaug's probe segmenter on the real photos of one split (flipped copies added), for
    ``evaluate quality --segmenter``; saved to ``options.out``."""
    check_file_to_write(options.out, "--out", "probe.pt")  # found now, not after the training
    data = Path(options.data)
    check_outside_input(options.out, data)
    check_probe_output(options.out)
    groups = find_groups(data, [options.split] if tree_root(data) else None).groups
    check_headers(groups, boundary=False, skip_bad=False)  # a photo cut short is named now, not at its batch
    dataset = SegmentationPairs(groups, options.size, flip=True)
    report = train_probe(
        dataset,
        options.out,
        options.steps,
        options.batch_size,
        options.lr,
        options.width,
        options.seed,
        resolve_device(options.device),
        progress,
    )
    return replace(report, photos=len(groups))


def info(checkpoint: str | Path) -> dict[str, Any]:
    """What a checkpoint is (``demo``: the bundled model): preset, size, parameters, step, data
    fingerprint, versions, and the SHA-256 that outputs record it by."""
    path = find_model(checkpoint)[0]
    loaded = load_checkpoint(path)
    meta = loaded.meta
    config = loaded.model.config
    return {
        "path": str(path),
        "sha256": loaded.sha256,
        "run": meta.get("run"),
        "preset": meta.get("preset"),
        "step": meta.get("step"),
        "image_size": list(config.image_size),
        "levels": config.n_block,
        "flow_steps": list(config.n_flow),
        "mask_channels": config.mask_channels,
        "conditioning": config.conditioning,
        "noise": config.noise,
        "condition_dropout": config.condition_dropout,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "has_ema": loaded.ema_state is not None,
        "resumable": loaded.training is not None,
        "data_fingerprint": meta.get("data_fingerprint"),
        "label_table": meta.get("label_table"),
        "versions": meta.get("versions"),
    }


@dataclass
class DemoResult:
    """What :func:`demo` wrote: the toy tree ``masks`` (``splits``: its scenes per split), the
    augmented tree, the preview, and the ``seconds`` the toy data and the generation took."""

    masks: Path
    augmented: Path
    preview: Path | None
    summary: GenerateSummary
    seconds: float
    splits: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The trees and the preview, the images in the augmented tree, the model, the seconds."""
        return {
            "data": str(self.masks),
            "augmented": str(self.augmented),
            "preview": str(self.preview) if self.preview else None,
            "preview_masks": self.summary.preview_masks,
            "images": self.summary.written + self.summary.skipped,
            "seconds": round(self.seconds, 2),
            **self.summary.model.to_dict(),
        }


DEMO_TRAIN_SCENES = 12
"""The demo's train split holds at least this many scenes: a batch of `fgaug train`'s presets."""
DEMO_HELD_OUT_SCENES = 4
"""Scenes in each of the demo's val and test splits (validation; early stopping and scores)."""


DEMO_DENOISE_SCALE = 1.0
"""The bundled model is trained with Gaussian noise (``gaussian:0.16``), so the demo takes one
denoising step after each draw, at the scale the sample-quality study chose on its validation
split for this model, with T = 0.8 (Tweedie's own; benchmarks/RESULTS.md, issue 21)."""


def demo(
    out: str | Path = "fgaug-demo",
    n: int = 4,
    masks: int = 6,
    temperature: float = 0.8,
    seed: int = 0,
    progress: Progress | None = None,
) -> DemoResult:
    """The first thing to run: a toy Cityscapes tree with train, val and test splits (so that
    `fgaug train`, `layouts` and `evaluate augment` run on it), ``n`` samples from the bundled
    model for each of the first ``masks`` training masks, the augmented tree and a preview grid,
    all under ``out``. A rerun with other options replaces the demo's own output."""
    start = time.perf_counter()
    root = Path(out)
    toy = root / "toy-cityscapes"
    splits = {"train": max(masks, DEMO_TRAIN_SCENES), "val": DEMO_HELD_OUT_SCENES, "test": DEMO_HELD_OUT_SCENES}
    write_toy_cityscapes(toy, splits, size=(128, 256), seed=seed + 7)
    summary = generate(
        GenerateOptions(
            masks=str(toy / "gtFine" / "train"),
            out=str(root / "augmented"),
            n=n,
            temperature=temperature,
            denoise_scale=DEMO_DENOISE_SCALE,
            model=DEMO_MODEL,
            seed=seed,
            preview=str(root / "preview.png"),
            device="auto",
            limit=masks,
            overwrite=True,
        ),
        progress,
    )
    seconds = time.perf_counter() - start
    return DemoResult(toy, root / "augmented", summary.preview, summary, seconds, splits)


def _evaluation_setup(
    data: str | Path, model: str | Path | None, device: str, precision: str
) -> tuple[Checkpoint, Any, Any, Path, ModelUsed]:
    torch_device = resolve_device(device)
    network_dtype = resolve_precision(precision, torch_device)
    checkpoint, model_used = load_named_model(model, torch_device)
    return checkpoint, torch_device, network_dtype, Path(data), model_used


def _check_report_folder(out: str | Path, data: str | Path, whose: str) -> None:
    """Refuse, before any work, an ``--out`` that is a file, cannot be written, or lies inside the
    dataset (fgaug never writes into its input)."""
    if Path(out).is_file():
        raise DataError(f"{out}: a file; --out names {whose} folder")
    check_file_to_write(Path(out) / "report.json", "--out", "evaluation/")
    if Path(data).is_dir():
        check_outside_input(out, data)


def evaluate_quality(options: QualityOptions, progress: Progress | None = None) -> QualityResult:
    """Bits/dim, consistency, diversity and colour match over a temperature sweep (draws guided or
    denoised as the options say); writes the report (JSON, Markdown, plots) under ``options.out``
    and returns it with the written paths."""
    _check_report_folder(options.out, options.data, "the report's")
    checkpoint, torch_device, network_dtype, root, model_used = _evaluation_setup(
        options.data, options.model, options.device, options.precision
    )
    groups = find_groups(root, [options.split] if tree_root(root) else None, True).groups
    groups = groups[: options.limit] if options.limit else groups
    segmenter, features, lpips = (
        Path(path) if path else None for path in (options.segmenter, options.features, options.lpips)
    )
    probe = load_segmenter(segmenter, torch_device, checkpoint.model.config.image_size) if segmenter else None
    feature_net = load_user_module(features, "feature network", torch_device) if features else None
    lpips_net = load_user_module(lpips, "LPIPS network", torch_device) if lpips else None
    sampling = SamplingOptions(options.guidance, options.denoise_scale)
    protocol = {
        **model_used.to_dict(),
        **_named_file("segmenter", segmenter),
        **_named_file("features", features),
        **_named_file("lpips", lpips),
        "data": str(root),
        "split": options.split,
        "pairs": len(groups),
        "size": list(checkpoint.model.config.image_size),
        "samples_per_mask": options.n,
        "temperatures": list(options.temperatures),
        "bpd_rounds": options.rounds,
        "seed": options.seed,
        "best_of": options.best_of,
        **sampling.to_dict(),
        "precision": precision_name(network_dtype),
    }
    bpd = evaluate_bpd(checkpoint, groups, options.rounds, options.seed, network_dtype=network_dtype, progress=progress)
    samples = evaluate_samples(
        checkpoint,
        groups,
        options.temperatures,
        options.n,
        options.seed,
        probe,
        network_dtype,
        progress,
        feature_net,
        lpips_net,
        sampling,
        options.best_of,
    )
    report = QualityReport(protocol, bpd, samples)
    return QualityResult(report, write_quality_report(Path(options.out), report))


def _named_file(key: str, path: Path | None) -> dict[str, str | None]:
    """``{key: path, key_sha256: its digest}`` for a report's protocol (both None without a file)."""
    return {key: str(path) if path else None, f"{key}_sha256": file_digest(path) if path else None}


def _describe_sampling(sampling: SamplingOptions) -> str:
    guided = f", guidance {sampling.guidance:g}" if sampling.guidance else ""
    return guided + ("" if sampling.denoise_scale is None else f", denoised (scale {sampling.denoise_scale:g})")


def evaluate_augment(options: AugmentOptions, progress: Progress | None = None) -> AugmentReport:
    """Does the model's synthetic data help a segmenter? The protocol of
    :mod:`fgaug.evaluation.augment.protocol` on a Cityscapes root (:class:`AugmentOptions`): real
    pairs from its train split, early stopping on the validation split, scores on the test split (a
    labelled split used for nothing else). The arm makes the synthetic data
    (:data:`~fgaug.evaluation.augment.strategies.STRATEGIES`), its trees under ``out/synthetic``
    (:func:`~fgaug.evaluation.augment.supplies.evaluation_supplies` says what the model and the
    data supply; an arm needing a second generator is a usage error). Writes ``augment.json``,
    ``augment.md`` and plots under ``out``, and returns the report. A study that fails before its
    first probe is recorded leaves no record of itself (:func:`~fgaug.data.record.forgotten_if_unwritten`)."""
    with forgotten_if_unwritten(options.out, STUDY_OUTPUTS):
        return _evaluate_augment(options, progress)


def _evaluate_augment(options: AugmentOptions, progress: Progress | None) -> AugmentReport:
    strategy, n, temperature = options.strategy, options.n, options.temperature
    val_split, test_split, width, batch_size = options.val_split, options.test_split, options.width, options.batch_size
    sizes, seeds, out = options.sizes, options.seeds, options.out
    sampling = SamplingOptions(options.guidance, options.denoise_scale)
    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    mixing = STRATEGIES[strategy].mixing if options.mixing is None else options.mixing
    if mixing not in MIXINGS:
        raise UsageError(f"--mixing must be one of {', '.join(MIXINGS)}, got {mixing!r}")
    device, precision = options.device, options.precision
    data, model = options.data, options.model
    _check_report_folder(out, data, "the study's")
    checkpoint, torch_device, network_dtype, root, model_used = _evaluation_setup(data, model, device, precision)
    checkpoint.model.check_sampling(sampling.guidance, sampling.denoise_scale)  # before any probe is trained
    pool = find_groups(root, ["train"], True).groups
    val_groups = find_groups(root, [val_split], True).groups
    test_groups = find_groups(root, [test_split], True).groups
    recipe = probe_recipe(
        min(options.min_steps, options.max_steps),
        width=width,
        batch_size=batch_size,
        max_steps=options.max_steps,
        schedules=options.schedules,
    )
    size = checkpoint.model.config.image_size
    supplies = evaluation_supplies(
        root, Path(out) / "synthetic", size, model_used.path, val_groups, device, precision, sampling, options.overwrite
    )
    lacking = supplies.missing(strategy)
    if lacking:
        raise UsageError(
            f"--strategy {strategy} needs {' and '.join(map(describe_need, lacking))}, but evaluate augment has one "
            "generator, --model (the fair one); benchmarks/augmentation_study.py runs this arm"
        )
    record = study_record(options, model_used, root)
    clear = check_output(out, record, STUDY_OUTPUTS, options.overwrite)
    take_output(out, root, record, STUDY_OUTPUTS, clear)
    if clear:  # every size's trees and probes, not only this run's sizes; never an input put there
        clear_folder(Path(out) / "synthetic", [root, model_used.path])
    finished = FinishedProbes(Path(out))
    synthesise = arm_synthesiser(strategy, supplies, n, temperature)
    study = augmentation_study(
        synthesise, pool, val_groups, test_groups, size, sizes, seeds, mixing, recipe, torch_device, progress, finished
    )
    protocol = {
        **model_used.to_dict(),
        "data": str(root),
        "splits": f"train (real pool), {val_split} (early stopping), {test_split} (scores)",
        "size": list(size),
        "real sizes": list(sizes),
        "seeds": list(seeds),
        "synthetic": f"{strategy}: {n} per mask at T={temperature:g}{_describe_sampling(sampling)}, mixing {mixing} "
        f"({STRATEGIES[strategy].description})",
        "probe": f"width {width}, batch {batch_size}, {recipe.schedules} x {recipe.min_steps}-{recipe.max_steps} "
        f"steps, early stopping on {val_split} after {recipe.patience} validations without gain, "
        f"{study.probe_precision}",
        "generator precision": precision_name(network_dtype),
    }
    report = AugmentReport(study, protocol, strategy, n, temperature, sampling)
    write_augment_report(Path(out), report)
    probes = 2 * len(sizes) * len(seeds)
    finish_output(out, record, RunOutcome(probes, finished.count(sizes, seeds), accepted=True))
    return report
