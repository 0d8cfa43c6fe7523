"""Evaluation of a trained model: what users care about before they adopt fgaug.

* :func:`evaluate_bpd`: conditional bits per dimension on a split (the paper's likelihood
  metric), averaged over ``rounds`` dequantisation draws.
* :func:`evaluate_samples`: for each temperature, ``n`` samples per mask (drawn with the same
  per-sample seeds as ``fgaug generate``), scored for label consistency by a segmenter (and the
  same segmenter on the real photos as the ceiling), for diversity (pairwise L1, 1 - SSIM, class
  colour spread) and for the match of per-class colour distributions to the real photos' (1-D
  Wasserstein per class and channel; on the toy world the real photos are draws from the known
  appearance distribution).

Whether the samples help a segmenter is :mod:`fgaug.evaluation.augment`'s question.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import torch

from fgaug.data.cityscapes import Group, ReadOptions, load_mask, load_pair, read_label_ids, resize_labels, to_tensor
from fgaug.data.labels import LABEL_BY_ID, N_TRAIN_IDS, ids_to_train_ids
from fgaug.data.preview import to_uint8_image
from fgaug.evaluation.metrics import (
    class_colour_spread,
    frechet_distance,
    mean_pairwise_dissimilarity,
    mean_pairwise_l1,
    wasserstein_1d,
)
from fgaug.flow import network_precision
from fgaug.flow.sampling import PLAIN_SAMPLING, SamplingOptions
from fgaug.generate.draws import Draw, draw_best
from fgaug.progress import Progress, SilentProgress
from fgaug.segmentation.probe import network_error, predict_train_ids
from fgaug.segmentation.scores import SegmentationScores, confusion_matrix, segmentation_scores
from fgaug.training.checkpoint import Checkpoint


@dataclass(frozen=True)
class BpdScores:
    """:func:`evaluate_bpd`'s result: the mean over rounds of the conditional bits/dim, its
    standard deviation over the rounds, and what was averaged."""

    conditional_bpd: float
    std_over_rounds: float
    rounds: int
    pairs: int
    seed: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class TemperatureScores:
    """The figures of one temperature of :func:`evaluate_samples`. ``consistency``, ``fid`` and
    ``pairwise_lpips`` are None where their network was not given (and absent from the JSON); a
    figure that could not be computed is NaN."""

    temperature: float
    diverged_fraction: float
    masks_all_diverged: int
    pairwise_l1: float
    pairwise_1_minus_ssim: float
    class_colour_spread: dict[str, float]
    """By label name."""
    colour_w1: dict[str, list[float]]
    """By label name: the W1 distance of each colour channel to the real photos'."""
    colour_w1_mean: float
    consistency: SegmentationScores | None = None
    fid: float | None = None
    pairwise_lpips: float | None = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "temperature": self.temperature,
            "diverged_fraction": self.diverged_fraction,
            "masks_all_diverged": self.masks_all_diverged,
            "pairwise_l1": self.pairwise_l1,
            "pairwise_1_minus_ssim": self.pairwise_1_minus_ssim,
            "class_colour_spread": self.class_colour_spread,
            "colour_w1": self.colour_w1,
            "colour_w1_mean": self.colour_w1_mean,
        }
        if self.consistency is not None:
            row["consistency"] = self.consistency.to_dict()
        if self.fid is not None:
            row["fid"] = self.fid
        if self.pairwise_lpips is not None:
            row["pairwise_lpips"] = self.pairwise_lpips
        return row


@dataclass(frozen=True)
class SampleScores:
    """:func:`evaluate_samples`'s result: a row per temperature, and the segmenter's scores on the
    real photos (None without a segmenter or real photos)."""

    samples_per_mask: int
    masks: int
    seed: int
    temperatures: tuple[TemperatureScores, ...]
    real_photos: SegmentationScores | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "samples_per_mask": self.samples_per_mask,
            "masks": self.masks,
            "seed": self.seed,
            "temperatures": [row.to_dict() for row in self.temperatures],
        }
        if self.real_photos is not None:
            result["real_photos"] = self.real_photos.to_dict()
        return result


@dataclass(frozen=True)
class QualityReport:
    """``fgaug evaluate quality``'s report: the ``protocol`` (what was evaluated, how: a key per
    line of the report), the bits/dim and the samples' scores (either None where not evaluated)."""

    protocol: dict[str, Any]
    bpd: BpdScores | None = None
    samples: SampleScores | None = None

    def to_dict(self) -> dict[str, Any]:
        """``report.json``: ``protocol``, ``bpd`` and ``samples``, the last two where evaluated."""
        report: dict[str, Any] = {"protocol": self.protocol}
        if self.bpd is not None:
            report["bpd"] = self.bpd.to_dict()
        if self.samples is not None:
            report["samples"] = self.samples.to_dict()
        return report


def _read_options(checkpoint: Checkpoint) -> ReadOptions:
    config = checkpoint.model.config
    return ReadOptions(config.image_size, boundary=config.mask_channels == 4)


@torch.no_grad()
def evaluate_bpd(
    checkpoint: Checkpoint,
    groups: Sequence[Group],
    rounds: int = 1,
    seed: int = 0,
    batch_size: int = 8,
    network_dtype: torch.dtype | None = None,
    progress: Progress | None = None,
) -> BpdScores:
    """Mean conditional bits per dimension over the groups, averaged over ``rounds`` draws of
    the dequantisation noise (round r uses generator seed ``seed + r``)."""
    progress = progress or SilentProgress()
    model, read = checkpoint.model, _read_options(checkpoint)
    device = next(model.parameters()).device
    values = []
    progress.start("bits/dim", len(groups) * rounds)
    for round_index in range(rounds):
        generator = torch.Generator().manual_seed(seed + round_index)
        for start in range(0, len(groups), batch_size):
            pairs = [load_pair(group, read) for group in groups[start : start + batch_size]]
            masks = torch.stack([to_tensor(mask) for mask, _ in pairs]).to(device)
            photos = torch.stack([to_tensor(photo) for _, photo in pairs]).to(device)
            with network_precision(network_dtype):
                values.extend(model.conditional_bpd(masks, photos, generator=generator).tolist())
            progress.advance(len(pairs))
    progress.stop()
    per_round = np.array(values).reshape(rounds, len(groups)).mean(axis=1)
    return BpdScores(float(per_round.mean()), float(per_round.std()), rounds, len(groups), seed)


@dataclass
class _Accumulator:
    """Running sums of one temperature's scores."""

    confusion: np.ndarray = field(default_factory=lambda: np.zeros((N_TRAIN_IDS, N_TRAIN_IDS + 1), np.int64))
    l1: list[float] = field(default_factory=list)
    dissimilarity: list[float] = field(default_factory=list)
    spread: dict[int, list[float]] = field(default_factory=dict)
    colours: dict[int, list[np.ndarray]] = field(default_factory=dict)
    features: list[np.ndarray] = field(default_factory=list)
    perceptual: list[float] = field(default_factory=list)
    delivered: int = 0
    diverged: int = 0
    masks_all_diverged: int = 0


def _collect_colours(
    store: dict[int, list[np.ndarray]], photo: np.ndarray, label_ids: np.ndarray, rng: np.random.Generator
) -> None:
    """Keep a random subset of each class's pixel colours (bounded memory)."""
    for label in np.unique(label_ids):
        pixels = photo[label_ids == label]
        if len(pixels) > 512:
            pixels = pixels[rng.choice(len(pixels), 512, replace=False)]
        store.setdefault(int(label), []).append(pixels)


def _pixel_rng(seed: int, key: str, temperature: float | None) -> np.random.Generator:
    """The generator picking the pixels of one mask's photos that enter the colour W1: one per
    mask and temperature (None: the real photo), so a temperature's figures do not depend on which
    other temperatures are evaluated beside it."""
    digest = hashlib.sha256(f"colours\0{seed}\0{key}\0{temperature}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _colour_distances(
    samples: dict[int, list[np.ndarray]], real: dict[int, list[np.ndarray]]
) -> dict[str, list[float]]:
    distances = {}
    for label in sorted(set(samples) & set(real)):
        # every mask on both sides (at most 512 pixels per image and class), so both describe the same scenes
        ours = np.concatenate(samples[label]).astype(np.float64)
        truth = np.concatenate(real[label]).astype(np.float64)
        distances[LABEL_BY_ID[label].name] = [wasserstein_1d(ours[:, c], truth[:, c]) for c in range(3)]
    return distances


@torch.no_grad()
def evaluate_samples(
    checkpoint: Checkpoint,
    groups: Sequence[Group],
    temperatures: Sequence[float],
    n: int = 3,
    seed: int = 0,
    segmenter: torch.nn.Module | None = None,
    network_dtype: torch.dtype | None = None,
    progress: Progress | None = None,
    features: torch.nn.Module | None = None,
    perceptual: torch.nn.Module | None = None,
    sampling: SamplingOptions = PLAIN_SAMPLING,
    best_of: int = 1,
) -> SampleScores:
    """Consistency, diversity and colour match of ``n`` samples per mask at each temperature, each
    the most likely of ``best_of`` draws (``generate --best-of``).

    With ``features`` (a user's local feature network, photos in [0, 1] -> (B, D), e.g.
    Inception pool features) the Fréchet distance of samples to real photos (FID) is added; with
    ``perceptual`` (a user's LPIPS network, (photos_a, photos_b) -> (B,) distances) the mean
    pairwise perceptual distance among the samples of a mask. Nothing is downloaded. ``sampling``:
    guidance and denoising of the draws."""
    progress = progress or SilentProgress()
    model, read = checkpoint.model, _read_options(checkpoint)
    sampler = sampling.bind(model)
    device = next(model.parameters()).device
    size = model.config.image_size
    real_colours: dict[int, list[np.ndarray]] = {}
    real_features: list[np.ndarray] = []
    real_confusion = np.zeros((N_TRAIN_IDS, N_TRAIN_IDS + 1), np.int64)
    accumulators = {t: _Accumulator() for t in temperatures}
    progress.start("evaluating", len(groups) * len(temperatures))
    for group in groups:
        condition = to_tensor(load_mask(group, read)[1])[None].to(device)
        label_ids = resize_labels(read_label_ids(group.mask, group.mask_format), size)
        train_ids = ids_to_train_ids(label_ids)
        if group.photo is not None:
            _, real_photo = load_pair(group, read)
            _collect_colours(real_colours, real_photo, label_ids, _pixel_rng(seed, group.key, None))
            if features is not None:
                real_features.append(_feature_rows(features, to_tensor(real_photo)[None].to(device)))
            if segmenter is not None:
                predicted = predict_train_ids(segmenter, to_tensor(real_photo)[None].to(device), size)[0]
                real_confusion += confusion_matrix(predicted, train_ids)
        for temperature in temperatures:
            with network_precision(network_dtype):
                row = draw_best(sampler, condition, [group.key], [range(n)], temperature, seed, best_of)[0]
            totals = accumulators[temperature]
            totals.diverged += sum(draw.diverged for draw in row)
            delivered = [draw.image for draw in row if isinstance(draw, Draw)]
            if not delivered:  # every draw of every sample diverged: nothing of this mask to score at this T
                totals.masks_all_diverged += 1
                progress.advance(1)
                continue
            images = torch.stack(delivered)
            totals.delivered += len(images)
            photos = [to_uint8_image(image) for image in images]
            if len(photos) > 1:
                totals.l1.append(mean_pairwise_l1(photos))
                totals.dissimilarity.append(mean_pairwise_dissimilarity(photos))
            for label, value in class_colour_spread(photos, label_ids).items():
                totals.spread.setdefault(label, []).append(value)
            rng = _pixel_rng(seed, group.key, temperature)
            for photo in photos:
                _collect_colours(totals.colours, photo, label_ids, rng)
            if features is not None:
                totals.features.append(_feature_rows(features, images.to(device)))
            if perceptual is not None and len(images) > 1:
                pairs = list(combinations(range(len(images)), 2))
                first = images[[a for a, _ in pairs]].to(device)
                second = images[[b for _, b in pairs]].to(device)
                totals.perceptual.append(_mean_distance(perceptual, first, second))
            if segmenter is not None:
                predicted = predict_train_ids(segmenter, images.to(device), size)
                for prediction in predicted:
                    totals.confusion += confusion_matrix(prediction, train_ids)
            progress.advance(1)
    progress.stop()
    rows = []
    for temperature in temperatures:
        totals = accumulators[temperature]
        distances = _colour_distances(totals.colours, real_colours)
        fid = None
        if features is not None and real_features:  # NaN where no sample was delivered: every row has the figure
            samples = np.concatenate(totals.features) if totals.features else None
            fid = math.nan if samples is None else frechet_distance(samples, np.concatenate(real_features))
        rows.append(
            TemperatureScores(
                temperature=temperature,
                diverged_fraction=totals.diverged / (totals.diverged + totals.delivered),
                masks_all_diverged=totals.masks_all_diverged,
                pairwise_l1=_mean(totals.l1),
                pairwise_1_minus_ssim=_mean(totals.dissimilarity),
                class_colour_spread={
                    LABEL_BY_ID[label].name: float(np.mean(values)) for label, values in sorted(totals.spread.items())
                },
                colour_w1=distances,
                colour_w1_mean=float(np.mean([np.mean(v) for v in distances.values()])) if distances else math.nan,
                consistency=None if segmenter is None else segmentation_scores(totals.confusion),
                fid=fid,
                pairwise_lpips=None if perceptual is None else _mean(totals.perceptual),
            )
        )
    real = segmentation_scores(real_confusion) if segmenter is not None and real_confusion.sum() else None
    return SampleScores(n, len(groups), seed, tuple(rows), real)


def _feature_rows(network: torch.nn.Module, photos: torch.Tensor) -> np.ndarray:
    """(B, D) features of ``photos`` from a user's feature network, its output shape checked."""
    output = network(photos)
    if output.ndim < 2 or len(output) != len(photos):
        raise network_error(
            network, "feature network", f"outputs {tuple(output.shape)} for {len(photos)} photos; (B, D) is needed"
        )
    return output.flatten(1).cpu().numpy()


def _mean_distance(network: torch.nn.Module, first: torch.Tensor, second: torch.Tensor) -> float:
    """The mean of a user's LPIPS network's distances between pairs of photos, its output shape checked."""
    output = network(first, second)
    if output.numel() != len(first):
        shape = tuple(output.shape)
        raise network_error(
            network, "LPIPS network", f"outputs {shape} for {len(first)} pairs; one distance each is needed"
        )
    return float(output.flatten().mean())


def _mean(values: Sequence[float]) -> float:
    """The mean, NaN for no values (one sample per mask has no pairs; no mask may have delivered)."""
    return float(np.mean(values)) if len(values) else math.nan
