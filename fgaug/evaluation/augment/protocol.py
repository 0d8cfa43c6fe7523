"""The augmentation protocol: does synthetic data make a segmenter better, and by how much?

One *arm* trains fgaug's probe segmenter on a training set (real pairs, optionally with synthetic
ones), picks its weights by early stopping on a real validation split, and scores them on a
real test split that nothing else looks at. The protocol runs

* the **learning curve**: real-only arms at several real-set sizes N, several seeds each;
* **strategies**: arms with synthetic data, paired by seed with the real-only arm at the same N,

and summarises them as the issue asks: mean test mIoU with a 95% t interval per N, where the
curve is steep enough to see a gain (*valid*), and per strategy the paired mIoU difference with
its interval, the per-class IoU differences and the *worth in real images* (the N' on the curve
with the same mIoU).

Training is the same for every arm: random horizontal flips, AdamW with a one-cycle schedule over
``epochs`` passes of its training set (clamped to ``[min_steps, max_steps]``), validation every
``evaluate_every`` steps and a stop after ``patience`` validations without improvement, the whole
repeated ``schedules`` times from the best weights (a warm restart). Mixing
synthetic data: ``concat`` (one shuffled pool), ``ratio`` (a fixed share of real images in every
batch) or ``pretrain`` (synthetic only, then fine-tuned on real).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from fgaug.data.cityscapes import Group, read_label_ids, resize_labels, resize_photo
from fgaug.data.io import DataError, read_rgb
from fgaug.data.labels import TRAIN_ID_NAMES, ids_to_train_ids
from fgaug.evaluation.stats import (
    Interval,
    RealWorth,
    mean_interval,
    paired_interval,
    plus_minus,
    worth_in_real_images,
)
from fgaug.runtime import native_bf16
from fgaug.segmentation.probe import Batch, fit_probe, new_probe, probe_confusion
from fgaug.segmentation.scores import SegmentationScores, segmentation_scores
from fgaug.usage import UsageError

MIXINGS = ("concat", "ratio", "pretrain")


STREAM_SEED_STEP = 7919
"""Added to an arm's seed for the batch order of each further schedule or phase."""


SMALL_CLASSES = ("pole", "traffic light", "traffic sign", "person")
"""Reported first: the thin and small classes a segmenter needs help with."""


@dataclass
class PairArrays:
    """Segmentation pairs in memory: ``photos`` (N, 3, H, W) uint8, ``labels`` (N, H, W) uint8 train
    ids (255: ignored, also where a filter rejected a synthetic pixel)."""

    photos: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.photos.dtype != torch.uint8 or self.labels.dtype != torch.uint8:
            raise ValueError("PairArrays hold uint8 photos and uint8 train ids")
        if len(self.photos) != len(self.labels) or self.photos.shape[-2:] != self.labels.shape[-2:]:
            raise ValueError(f"photos {tuple(self.photos.shape)} and labels {tuple(self.labels.shape)} do not pair")

    def __len__(self) -> int:
        return len(self.photos)

    def head(self, count: int) -> PairArrays:
        return PairArrays(self.photos[:count], self.labels[:count])

    def batch(self, indices: torch.Tensor, flips: torch.Tensor | None = None) -> Batch:
        """Float photos in [0, 1] and long labels of ``indices``, mirrored where ``flips``."""
        photos = self.photos[indices].float() / 255
        labels = self.labels[indices].long()
        if flips is not None and bool(flips.any()):
            photos[flips] = photos[flips].flip(-1)
            labels[flips] = labels[flips].flip(-1)
        return photos, labels

    def everything(self) -> Batch:
        return self.batch(torch.arange(len(self)))

    @staticmethod
    def concat(parts: Sequence[PairArrays]) -> PairArrays:
        return PairArrays(torch.cat([p.photos for p in parts]), torch.cat([p.labels for p in parts]))

    @staticmethod
    def from_arrays(photos: Sequence[np.ndarray], train_ids: Sequence[np.ndarray]) -> PairArrays:
        """From (H, W, 3) uint8 photos and (H, W) uint8 train-id maps."""
        stacked = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).contiguous()
        return PairArrays(stacked, torch.from_numpy(np.stack(train_ids)).to(torch.uint8))


def read_pairs(groups: Sequence[Group], size: tuple[int, int]) -> PairArrays:
    """The real photo and train ids of each group, resized to ``size`` (photos anti-aliased, labels
    nearest)."""
    photos, labels = [], []
    for group in groups:
        if group.photo is None:
            raise DataError(f"{group.mask}: no photo beside this mask")
        photos.append(resize_photo(read_rgb(group.photo), size))
        labels.append(ids_to_train_ids(resize_labels(read_label_ids(group.mask, group.mask_format), size)))
    return PairArrays.from_arrays(photos, labels)


def mixed_batches(sources: Sequence[tuple[PairArrays, int]], seed: int) -> Iterator[Batch]:
    """Endless batches taking ``count`` items from each ``(pairs, count)`` source, each source walked
    in a fresh random order per pass, every item mirrored with probability 1/2."""
    generator = torch.Generator().manual_seed(seed)
    streams = [_index_stream(len(pairs), generator) for pairs, _ in sources]
    while True:
        parts = []
        for (pairs, count), stream in zip(sources, streams, strict=True):
            indices = torch.tensor([next(stream) for _ in range(count)], dtype=torch.long)
            parts.append(pairs.batch(indices, torch.rand(count, generator=generator) < 0.5))
        yield torch.cat([p for p, _ in parts]), torch.cat([lab for _, lab in parts])


def _index_stream(size: int, generator: torch.Generator) -> Iterator[int]:
    while True:
        yield from torch.randperm(size, generator=generator).tolist()


@dataclass(frozen=True)
class ProbeRecipe:
    """How every arm's probe is trained (see the module docstring). At least 1000 steps: on the toy
    world a probe on 40 real images went from test mIoU 0.62 after 400 steps to 0.83 after 900
    (its best validation step of 1200), so shorter schedules measure under-training, not data."""

    width: int = 16
    batch_size: int = 8
    lr: float = 3e-3
    epochs: float = 40.0
    min_steps: int = 1000
    max_steps: int = 3000
    evaluate_every: int = 100
    patience: int = 5
    bf16: bool | None = None
    """bf16 autocast for the probe's forward passes; None: where the probe's device computes bf16
    natively (:func:`fgaug.runtime.native_bf16`), fp32 elsewhere."""
    schedules: int = 1
    """One-cycle schedules per training phase, back to back, each from the previous one's best
    weights with a fresh optimiser and its own batch order: 2 is a warm restart, which on the toy
    world adds about 2.5 mIoU at N <= 40 (RESULTS.md), so a gain is checked against it too."""

    def __post_init__(self) -> None:
        if self.schedules < 1:
            raise ValueError(f"a probe trains at least one schedule, got schedules={self.schedules}")

    def steps_for(self, images: int) -> int:
        return int(min(self.max_steps, max(self.min_steps, math.ceil(self.epochs * images / self.batch_size))))

    def network_dtype(self, device: torch.device | str) -> torch.dtype | None:
        """bf16 or None (fp32) for a probe on ``device``."""
        bf16 = native_bf16(torch.device(device)) if self.bf16 is None else self.bf16
        return torch.bfloat16 if bf16 else None


def probe_recipe(min_steps: int = ProbeRecipe.min_steps, **fields: Any) -> ProbeRecipe:
    """A :class:`ProbeRecipe` of at least ``min_steps`` steps whose patience grows alike (5
    validations per 1000 steps, never fewer than 5), so a longer probe is not cut off while its
    one-cycle learning rate is still high. ``fields`` are the recipe's other fields."""
    patience = max(ProbeRecipe.patience, round(ProbeRecipe.patience * min_steps / ProbeRecipe.min_steps))
    return ProbeRecipe(min_steps=min_steps, patience=patience, **fields)


@dataclass(frozen=True)
class ArmResult:
    """One trained probe scored on the test split."""

    arm: str
    real: int
    seed: int
    test_miou: float
    per_class_iou: dict[str, float]
    val_miou: float | None
    val_per_class_iou: dict[str, float]
    steps: int
    best_step: int
    seconds: float
    synthetic: int = 0
    mixing: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ArmResult:
        """The result a :meth:`to_dict` record (a line of a results file) holds; a test mIoU that
        could not be computed, written as ``null``, reads back as NaN."""
        values = dict(record)
        if values.get("test_miou") is None:
            values["test_miou"] = math.nan
        return cls(**values)


def run_arm(
    arm: str,
    real: PairArrays,
    val: PairArrays,
    test: PairArrays,
    seed: int,
    recipe: ProbeRecipe,
    synthetic: PairArrays | None = None,
    mixing: str = "concat",
    real_fraction: float = 0.5,
    device: torch.device | str = "cpu",
) -> ArmResult:
    """Train one probe (real only, or real with ``synthetic`` mixed as ``mixing`` says) and score it."""
    if mixing not in MIXINGS:
        raise UsageError(f"unknown mixing {mixing!r}; choose from {', '.join(MIXINGS)}")
    start = time.perf_counter()
    model = new_probe(recipe.width, seed, device)
    network_dtype = recipe.network_dtype(device)
    val_batch = val.everything()

    steps = 0

    def fit(sources: Sequence[tuple[PairArrays, int]], images: int, stream_seed: int) -> Any:
        nonlocal steps
        for schedule in range(recipe.schedules):
            fitted = fit_probe(
                model,
                mixed_batches(sources, stream_seed + schedule * STREAM_SEED_STEP),
                recipe.steps_for(images),
                recipe.lr,
                val_batch,
                recipe.evaluate_every,
                recipe.patience,
                network_dtype,
            )
            steps += fitted.steps
        return fitted

    batch = recipe.batch_size
    if synthetic is None or len(synthetic) == 0:
        fitted = fit([(real, batch)], len(real), seed)
    elif mixing == "concat":
        pool = PairArrays.concat([real, synthetic])
        fitted = fit([(pool, batch)], len(pool), seed)
    elif mixing == "ratio":
        real_count = min(batch - 1, max(1, round(batch * real_fraction)))
        fitted = fit([(real, real_count), (synthetic, batch - real_count)], len(real) + len(synthetic), seed)
    else:
        fit([(synthetic, batch)], len(synthetic), seed)
        fitted = fit([(real, batch)], len(real), seed + STREAM_SEED_STEP)
    scores = segmentation_scores(probe_confusion(model, test.everything(), network_dtype))
    val_scores = segmentation_scores(probe_confusion(model, val_batch, network_dtype))
    return ArmResult(
        arm=arm,
        real=len(real),
        seed=seed,
        test_miou=scores.mean_iou,
        per_class_iou=_named(scores),
        val_miou=fitted.best_val_miou,
        val_per_class_iou=_named(val_scores),
        steps=steps,
        best_step=fitted.best_step,
        seconds=time.perf_counter() - start,
        synthetic=0 if synthetic is None else len(synthetic),
        mixing=None if synthetic is None else mixing,
    )


def _named(scores: SegmentationScores) -> dict[str, float]:
    """Per-class IoU by class name, classes without a union left out."""
    return {name: value for name, value in scores.named_iou().items() if not math.isnan(value)}


REAL_ONLY = "real only"


@dataclass(frozen=True)
class CurvePoint:
    """The real-only arms at one real-set size: their test mIoU's mean and interval, its rise to
    the next size and whether that rise exceeds the interval's half-width (None at the last size)."""

    real: int
    seeds: list[int]
    miou: Interval
    rise_to_next: float | None = None
    valid: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """``real``, ``seeds``, the interval's keys and, but at the last size, ``rise_to_next`` and ``valid``."""
        point: dict[str, Any] = {"real": self.real, "seeds": self.seeds, **self.miou.to_dict()}
        if self.rise_to_next is not None:
            point["rise_to_next"] = self.rise_to_next
        if self.valid is not None:
            point["valid"] = self.valid
        return point


@dataclass(frozen=True)
class StrategySummary:
    """An arm with synthetic data against the real-only arm at the same real-set size, paired by
    seed: its test mIoU, the paired difference, the per-class IoU differences (the small classes
    first) and its worth in real images (None without a learning curve)."""

    arm: str
    real: int
    seeds: list[int]
    miou: Interval
    difference: Interval
    per_class_difference: dict[str, float]
    worth: RealWorth | None
    synthetic: int
    mixing: str | None
    notes: dict[str, Any]

    @property
    def worth_described(self) -> str | None:
        """The worth as reports print it (:meth:`~fgaug.evaluation.stats.RealWorth.describe`)."""
        return None if self.worth is None else self.worth.describe()

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "real": self.real,
            "seeds": self.seeds,
            "miou": self.miou.to_dict(),
            "difference": self.difference.to_dict(),
            "per_class_difference": self.per_class_difference,
            "worth_in_real_images": None if self.worth is None else self.worth.images,
            "worth": self.worth_described,
            "synthetic": self.synthetic,
            "mixing": self.mixing,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class AugmentSummary:
    """:func:`summarise`'s result: the learning curve by size and every strategy against real-only."""

    confidence: float
    curve: list[CurvePoint]
    strategies: list[StrategySummary]

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "curve": [point.to_dict() for point in self.curve],
            "strategies": [strategy.to_dict() for strategy in self.strategies],
        }


def summarise(results: Sequence[ArmResult], confidence: float = 0.95) -> AugmentSummary:
    """The learning curve, where the protocol can see a gain, and every strategy against real-only
    (the arm :data:`REAL_ONLY`)."""
    by_arm: dict[tuple[str, int], dict[int, ArmResult]] = defaultdict(dict)
    for result in results:
        by_arm[(result.arm, result.real)][result.seed] = result
    real_only = sorted(((size, runs) for (arm, size), runs in by_arm.items() if arm == REAL_ONLY), key=lambda x: x[0])
    intervals = [mean_interval([r.test_miou for r in runs.values()], confidence) for _, runs in real_only]
    curve = []
    for index, (size, runs) in enumerate(real_only):
        interval = intervals[index]
        rise = intervals[index + 1].mean - interval.mean if index + 1 < len(intervals) else None
        valid = None if rise is None else bool(len(runs) > 1 and rise > interval.half_width)
        curve.append(CurvePoint(size, sorted(runs), interval, rise, valid))
    sizes, means = [point.real for point in curve], [point.miou.mean for point in curve]
    strategies = []
    for (arm, size), runs in sorted(by_arm.items()):
        baseline = by_arm.get((REAL_ONLY, size), {})
        seeds = sorted(set(runs) & set(baseline))
        if arm == REAL_ONLY or not seeds:
            continue
        treated = [runs[s].test_miou for s in seeds]
        difference = paired_interval(treated, [baseline[s].test_miou for s in seeds], confidence)
        per_class = {}
        for name in TRAIN_ID_NAMES:
            pairs = [
                (runs[s].per_class_iou[name], baseline[s].per_class_iou[name])
                for s in seeds
                if name in runs[s].per_class_iou and name in baseline[s].per_class_iou
            ]
            if pairs:
                per_class[name] = float(np.mean([a - b for a, b in pairs]))
        ordered = {name: per_class[name] for name in SMALL_CLASSES if name in per_class}
        ordered.update({name: value for name, value in per_class.items() if name not in ordered})
        worth = worth_in_real_images(sizes, means, float(np.mean(treated))) if curve else None
        first = runs[seeds[0]]
        strategies.append(
            StrategySummary(
                arm=arm,
                real=size,
                seeds=seeds,
                miou=mean_interval(treated, confidence),
                difference=difference,
                per_class_difference=ordered,
                worth=worth,
                synthetic=first.synthetic,
                mixing=first.mixing,
                notes=first.notes,
            )
        )
    return AugmentSummary(confidence, curve, strategies)


def curve_table(curve: Sequence[CurvePoint]) -> list[str]:
    """The learning curve of :func:`summarise` as Markdown table lines."""
    lines = [
        "| real images | seeds | test mIoU | 95% CI | rise to next | valid |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for point in curve:
        rise, valid = point.rise_to_next, point.valid
        lines.append(
            f"| {point.real} | {len(point.seeds)} | {point.miou.mean:.4f} | {plus_minus(point.miou)} | "
            f"{'' if rise is None else f'{rise:+.4f}'} | {'' if valid is None else valid} |"
        )
    return lines
