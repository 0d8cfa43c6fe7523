"""The Python API behind the CLI: ``train``, ``generate``, ``transfer``, ``prepare``, ``demo``, ``info``.

    from fgaug import api
    api.prepare("cityscapes/", "train.h5", size=(256, 512))
    result = api.train(api.TrainOptions(data="train.h5", run_dir="runs/city", preset="paper-256"))
    model = str(result.last_checkpoint)  # or "demo", the bundled toy-world model; one must be named
    summary = api.generate(api.GenerateOptions(masks="cityscapes/gtFine/val", out="augmented", n=5, model=model))

Every function reports long work through an optional :class:`fgaug.progress.Progress` and raises
one-line errors (``DataError``, ``ConfigError``, ``CheckpointError``) for bad input and
:class:`fgaug.usage.UsageError` for options that cannot work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgaug.data.cache import PrepareReport, prepare_cache
from fgaug.data.cityscapes import (
    LABEL_SUFFIXES,
    PHOTO_SUFFIX,
    ReadOptions,
    file_group,
    find_groups,
    is_cityscapes_root,
    load_mask,
    load_pair,
    looks_like_mask,
    looks_like_photo,
    resize_photo,
    to_tensor,
)
from fgaug.data.io import DataError, atomic_write_bytes, encode_png, file_digest
from fgaug.data.layouts import LayoutOptions, LayoutSummary, write_layouts
from fgaug.data.preview import to_uint8_image
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.evaluation.augment.protocol import MIXINGS, probe_recipe
from fgaug.evaluation.augment.strategies import STRATEGIES, describe_need
from fgaug.evaluation.augment.study import augmentation_study, write_augment_report
from fgaug.evaluation.augment.supplies import evaluation_supplies
from fgaug.evaluation.augment.synthesis import arm_synthesiser
from fgaug.evaluation.quality import evaluate_bpd, evaluate_samples
from fgaug.evaluation.reports import write_quality_report
from fgaug.finite import require_finite
from fgaug.flow import network_precision
from fgaug.flow.sampling import PLAIN_SAMPLING, SamplingOptions
from fgaug.generate.engine import generate
from fgaug.generate.options import DEMO_MODEL, GenerateOptions, GenerateSummary, ModelUsed, find_model, load_named_model
from fgaug.progress import Progress, SilentProgress
from fgaug.runtime import precision_name, resolve_device, resolve_precision
from fgaug.segmentation.probe import load_segmenter, load_user_module
from fgaug.training.checkpoint import Checkpoint, load_checkpoint, read_checkpoint_payload
from fgaug.training.options import TrainOptions, TrainResult
from fgaug.training.train import dry_run, train
from fgaug.usage import UsageError

__all__ = [
    "GenerateOptions",
    "GenerateSummary",
    "LayoutOptions",
    "LayoutSummary",
    "TrainOptions",
    "TrainResult",
    "demo",
    "dry_run",
    "evaluate_augment",
    "evaluate_quality",
    "generate",
    "info",
    "layouts",
    "prepare",
    "train",
    "transfer",
]


def layouts(
    masks: str | Path,
    out: str | Path,
    options: LayoutOptions | None = None,
    splits: Sequence[str] | None = None,
    mask_format: str = "auto",
    limit: int | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> LayoutSummary:
    """New label sets from the masks under ``masks`` (flips, scale-and-crop jitter, pasted objects,
    rare classes emphasised), written as a Cityscapes label tree under ``out``: a ``MASKS`` input
    for :func:`generate`. ``overwrite`` replaces a tree made with other settings. See
    :mod:`fgaug.data.layouts`."""
    root = Path(masks)
    groups = find_groups(root, splits, False, mask_format).groups  # type: ignore[arg-type]
    groups = groups[:limit] if limit else groups
    return write_layouts(groups, root, Path(out), options or LayoutOptions(), progress, overwrite)


def prepare(
    data: str | Path,
    out: str | Path,
    size: tuple[int, int],
    split: str = "train",
    boundary: bool = False,
    mask_format: str = "auto",
    snap_colors: bool = False,
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> PrepareReport:
    """Decode and resize one split of a Cityscapes tree into an HDF5 cache for training."""
    progress = progress or SilentProgress()
    root = Path(data)
    discovery = find_groups(root, [split] if is_cityscapes_root(root) else None, True, mask_format, skip_bad)  # type: ignore[arg-type]
    progress.start("preparing", len(discovery.groups))
    done = 0

    def advance(count: int, total: int) -> None:
        nonlocal done
        progress.advance(count - done)
        done = count

    report = prepare_cache(
        discovery.groups, ReadOptions(size, boundary, snap_colors), Path(out), root, skip_bad, advance
    )
    progress.stop()
    report.skipped = list(discovery.skipped) + report.skipped
    return report


@dataclass
class TransferResult:
    content: Path
    structure: Path
    output: Path


@dataclass
class TransferSummary:
    """The transfers written, and the model that made them."""

    model: ModelUsed
    transfers: list[TransferResult]

    def to_dict(self) -> dict[str, Any]:
        transfers = [
            {"content": str(r.content), "structure": str(r.structure), "output": str(r.output)} for r in self.transfers
        ]
        return {**self.model.to_dict(), "transfers": transfers}


def find_content_mask(photo: Path) -> Path:
    """The label file beside a Cityscapes photo (``leftImg8bit/.../X_leftImg8bit.png`` ->
    ``gtFine/.../X_gtFine_labelIds.png``, then labelTrainIds, then colour)."""
    if not photo.name.endswith(PHOTO_SUFFIX) or "leftImg8bit" not in photo.parts[:-1]:
        raise DataError(f"{photo}: not a Cityscapes photo name; give its mask with --content-mask")
    parts = list(photo.parts)
    index = len(parts) - 2 - parts[-2::-1].index("leftImg8bit")
    parts[index] = "gtFine"
    stem = photo.name[: -len(PHOTO_SUFFIX)]
    for suffix in LABEL_SUFFIXES[:3]:
        candidate = Path(*parts[:-1], f"{stem}{suffix}")
        if candidate.is_file():
            return candidate
    raise DataError(f"{photo}: no mask beside it in the gtFine tree; give it with --content-mask")


def transfer(
    content: str | Path,
    structure: str | Path,
    out: str | Path,
    content_mask: str | Path | None = None,
    pairs: str | Path | None = None,
    model: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    mask_format: str = "auto",
    snap_colors: bool = False,
    progress: Progress | None = None,
) -> TransferSummary:
    """Lay a real photo's content onto a new layout (paper section 5.4).

    Files: ``content`` is a photo (its mask is found beside it or given), ``structure`` a mask,
    ``out`` the output PNG. Folders: every content photo with every structure mask, or the pairs
    listed in ``pairs`` (one ``content structure`` pair per line), written into folder ``out``.
    The output has the structure mask's native size. ``model`` must be named (see
    :func:`fgaug.generate.options.find_model`).
    """
    progress = progress or SilentProgress()
    content, structure, out = Path(content), Path(structure), Path(out)
    jobs = _transfer_jobs(content, structure, out, Path(content_mask) if content_mask else None, pairs)
    torch_device = resolve_device(device)
    network_dtype = resolve_precision(precision, torch_device)
    checkpoint, model_used = load_named_model(model, torch_device)
    progress.log(f"model: {model_used}")
    flow = checkpoint.model
    read = ReadOptions(flow.config.image_size, boundary=flow.config.mask_channels == 4, snap_colors=snap_colors)
    results = []
    progress.start("transferring", len(jobs))
    for photo_path, photo_mask, structure_mask, target in jobs:
        content_condition, photo = load_pair(file_group(photo_mask, mask_format, photo_path), read)
        structure_ids, structure_condition = load_mask(file_group(structure_mask, mask_format), read)
        photo_tensor = to_tensor(photo)[None].to(torch_device)
        with network_precision(network_dtype):
            moved = flow.transfer(
                photo_tensor,
                to_tensor(content_condition)[None].to(torch_device),
                to_tensor(structure_condition)[None].to(torch_device),
            )
        image = resize_photo(to_uint8_image(moved[0]), structure_ids.shape)
        atomic_write_bytes(target, encode_png(image))
        results.append(TransferResult(photo_path, structure_mask, target))
        progress.advance(1)
    progress.stop()
    return TransferSummary(model_used, results)


def _transfer_jobs(
    content: Path, structure: Path, out: Path, content_mask: Path | None, pairs: str | Path | None
) -> list[tuple[Path, Path, Path, Path]]:
    """(photo, its mask, structure mask, output) for every transfer asked for."""
    if pairs is not None:
        listed = []
        for number, line in enumerate(Path(pairs).read_text(encoding="utf-8").splitlines(), 1):
            fields = line.replace(",", " ").split()
            if not fields or line.lstrip().startswith("#"):
                continue
            if len(fields) != 2:
                raise DataError(f"{pairs}:{number}: expected 'CONTENT STRUCTURE', got {line.strip()!r}")
            listed.append(
                (
                    content / fields[0] if content.is_dir() else Path(fields[0]),
                    structure / fields[1] if structure.is_dir() else Path(fields[1]),
                )
            )
    elif content.is_dir() or structure.is_dir():
        photos = sorted(content.rglob(f"*{PHOTO_SUFFIX}")) if content.is_dir() else [content]
        masks = (
            [g.mask for g in find_groups(structure, require_photos=False).groups] if structure.is_dir() else [structure]
        )
        if not photos:
            raise DataError(f"{content}: no *{PHOTO_SUFFIX} photos found")
        listed = [(photo, mask) for photo in photos for mask in masks]
    else:
        _refuse_swapped(content, structure)
        return [(content, content_mask or find_content_mask(content), structure, out)]
    if content_mask is not None:
        raise DataError("--content-mask applies to a single content photo; folders find each photo's mask")
    jobs = []
    for photo, mask in listed:
        for path in (photo, mask):
            if not path.is_file():
                raise DataError(f"{path}: file not found")
        name = f"{photo.name.removesuffix(PHOTO_SUFFIX).removesuffix('.png')}__on__{mask.stem}.png"
        jobs.append((photo, find_content_mask(photo), mask, out / name))
    return jobs


def _refuse_swapped(content: Path, structure: Path) -> None:
    """A mask given as the content photo is refused, saying so (and when the structure is a photo,
    that the two look swapped)."""
    if not (content.is_file() and looks_like_mask(content)):
        return
    if structure.is_file() and looks_like_photo(structure):
        problem = f"the arguments look swapped: {content} is a mask and {structure} a photo"
    else:
        problem = f"{content} is a mask, not a photo"
    raise DataError(f"{problem}; the content photo comes first: fgaug transfer PHOTO MASK")


def info(checkpoint: str | Path) -> dict[str, Any]:
    """What a checkpoint is (``demo``: the bundled model): preset, size, parameters, step, data
    fingerprint, versions, and the SHA-256 that outputs record it by."""
    path = find_model(checkpoint)[0]
    payload = read_checkpoint_payload(path)
    loaded = load_checkpoint(path)
    meta = payload["meta"]
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
        "noise": config.noise,
        "condition_dropout": config.condition_dropout,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "has_ema": payload.get("ema") is not None,
        "resumable": payload.get("training") is not None,
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


DEMO_TRAIN_SCENES = 12
"""The demo's train split holds at least this many scenes: a batch of `fgaug train`'s presets."""
DEMO_HELD_OUT_SCENES = 4
"""Scenes in each of the demo's val and test splits (validation; early stopping and scores)."""


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


def evaluate_quality(
    data: str | Path,
    out: str | Path,
    model: str | Path | None = None,
    segmenter: str | Path | None = None,
    split: str = "val",
    temperatures: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    n: int = 3,
    rounds: int = 1,
    limit: int | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    progress: Progress | None = None,
    features: str | Path | None = None,
    lpips: str | Path | None = None,
    sampling: SamplingOptions = PLAIN_SAMPLING,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Bits/dim, consistency, diversity and colour match over a temperature sweep (draws guided or
    denoised as ``sampling`` says); writes the report (JSON, Markdown, plots) under ``out`` and
    returns it with the written paths."""
    require_finite(temperatures=temperatures)
    checkpoint, torch_device, network_dtype, root, model_used = _evaluation_setup(data, model, device, precision)
    groups = find_groups(root, [split] if is_cityscapes_root(root) else None, True).groups
    groups = groups[:limit] if limit else groups
    probe = load_segmenter(Path(segmenter), torch_device) if segmenter else None
    feature_net = load_user_module(Path(features), "feature network", torch_device) if features else None
    lpips_net = load_user_module(Path(lpips), "LPIPS network", torch_device) if lpips else None
    report: dict[str, Any] = {
        "protocol": {
            **model_used.to_dict(),
            "segmenter": str(segmenter) if segmenter else None,
            "segmenter_sha256": file_digest(Path(segmenter)) if segmenter else None,
            "features": str(features) if features else None,
            "features_sha256": file_digest(Path(features)) if features else None,
            "lpips": str(lpips) if lpips else None,
            "lpips_sha256": file_digest(Path(lpips)) if lpips else None,
            "data": str(root),
            "split": split,
            "pairs": len(groups),
            "size": list(checkpoint.model.config.image_size),
            "samples_per_mask": n,
            "temperatures": list(temperatures),
            "bpd_rounds": rounds,
            "seed": seed,
            **sampling.to_dict(),
            "precision": precision_name(network_dtype),
        }
    }
    report["bpd"] = evaluate_bpd(checkpoint, groups, rounds, seed, network_dtype=network_dtype, progress=progress)
    report["samples"] = evaluate_samples(
        checkpoint, groups, temperatures, n, seed, probe, network_dtype, progress, feature_net, lpips_net, sampling
    )
    return report, write_quality_report(Path(out), report)


def _describe_sampling(sampling: SamplingOptions) -> str:
    guided = f", guidance {sampling.guidance:g}" if sampling.guidance else ""
    return guided + ("" if sampling.denoise_scale is None else f", denoised (scale {sampling.denoise_scale:g})")


def evaluate_augment(
    data: str | Path,
    out: str | Path,
    model: str | Path | None = None,
    sizes: Sequence[int] = (40,),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    n: int = 4,
    temperature: float = 0.8,
    mixing: str | None = None,
    strategy: str = "prior",
    val_split: str = "val",
    test_split: str = "test",
    width: int = 16,
    batch_size: int = 8,
    max_steps: int = 3000,
    device: str = "auto",
    precision: str = "auto",
    progress: Progress | None = None,
    min_steps: int = 1000,
    schedules: int = 1,
    overwrite: bool = False,
    sampling: SamplingOptions = PLAIN_SAMPLING,
) -> dict[str, Any]:
    """Does the model's synthetic data help a segmenter? The protocol of
    :mod:`fgaug.evaluation.augment.protocol` on a Cityscapes root: real pairs from its train split,
    early stopping on ``val_split``, scores on ``test_split`` (a labelled split used for nothing
    else). ``strategy`` is the arm that makes the synthetic data
    (:data:`~fgaug.evaluation.augment.strategies.STRATEGIES`), with ``n`` images per real mask at
    ``temperature``, mixed as ``mixing`` says (None: the arm's own), its trees under
    ``out/synthetic`` (:func:`~fgaug.evaluation.augment.supplies.evaluation_supplies` says what
    the model and the data supply; an arm needing a second generator is a usage error). A probe
    trains 40 epochs of its data, clamped to ``[min(min_steps, max_steps), max_steps]`` steps, and
    ``schedules`` such schedules back to back (2: a warm restart, the stronger baseline).
    ``overwrite`` replaces synthetic trees under ``out/synthetic`` that other settings made. Writes
    ``augment.json``, ``augment.md`` and plots under ``out``."""
    require_finite(temperature=temperature)
    if min_steps < 1 or max_steps < 1:
        raise UsageError(f"--min-steps and --max-steps must be at least 1, got {min_steps} and {max_steps}")
    if schedules < 1:
        raise UsageError(f"--schedules must be at least 1, got {schedules}")
    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    mixing = STRATEGIES[strategy].mixing if mixing is None else mixing
    if mixing not in MIXINGS:
        raise UsageError(f"--mixing must be one of {', '.join(MIXINGS)}, got {mixing!r}")
    if val_split == test_split:
        raise UsageError(
            f"the validation and test splits must differ (both {val_split!r}): nothing may pick on the test"
        )
    checkpoint, torch_device, network_dtype, root, model_used = _evaluation_setup(data, model, device, precision)
    pool = find_groups(root, ["train"], True).groups
    val_groups = find_groups(root, [val_split], True).groups
    test_groups = find_groups(root, [test_split], True).groups
    recipe = probe_recipe(
        min(min_steps, max_steps), width=width, batch_size=batch_size, max_steps=max_steps, schedules=schedules
    )
    size = checkpoint.model.config.image_size
    supplies = evaluation_supplies(
        root, Path(out) / "synthetic", size, model_used.path, val_groups, device, precision, sampling, overwrite
    )
    lacking = supplies.missing(strategy)
    if lacking:
        raise UsageError(
            f"--strategy {strategy} needs {' and '.join(map(describe_need, lacking))}, but evaluate augment has one "
            "generator, --model (the fair one); benchmarks/augmentation_study.py runs this arm"
        )
    synthesise = arm_synthesiser(strategy, supplies, n, temperature)
    report = augmentation_study(
        synthesise, pool, val_groups, test_groups, size, sizes, seeds, mixing, recipe, torch_device, progress
    )
    report.update(strategy=strategy, synthetic_per_mask=n, temperature=temperature, **sampling.to_dict())
    report["protocol"] = {
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
        f"{report['probe_precision']}",
        "generator precision": precision_name(network_dtype),
    }
    write_augment_report(Path(out), report)
    return report
