"""How many samples each mask gets: the same for every mask, or more for masks holding rare or
hard classes (FreeMask's hardness-aware re-sampling).

A mask's weight is the sum of the weights of the train classes it holds (each class once). Class
weights are ``frequency ** -0.5`` for ``rare`` (frequency: the class's share of all labelled
pixels of the masks), or given by the user for ``weights`` (a JSON object ``{class name: weight}``,
for instance ``1 - IoU`` of a segmenter trained on real data, so classes it gets wrong count
more). ``n * masks`` samples are shared in proportion to the weights by largest remainders, every
mask keeping at least one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fgaug.data.cityscapes import Group, read_label_ids
from fgaug.data.io import DataError, read_json
from fgaug.data.labels import N_TRAIN_IDS, TRAIN_ID_NAMES, ids_to_train_ids
from fgaug.usage import UsageError

ALLOCATIONS = ("uniform", "rare", "weights")


def class_presence(groups: Sequence[Group], snap_colors: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per mask, which train classes it holds (masks, 19) bool; and every class's pixel count (19,)."""
    present = np.zeros((len(groups), N_TRAIN_IDS), dtype=bool)
    pixels = np.zeros(N_TRAIN_IDS, dtype=np.int64)
    for row, group in enumerate(groups):
        train_ids = ids_to_train_ids(read_label_ids(group.mask, group.mask_format, snap_colors))
        counts = np.bincount(train_ids[train_ids < N_TRAIN_IDS].ravel(), minlength=N_TRAIN_IDS)
        present[row] = counts > 0
        pixels += counts
    return present, pixels


def rarity_weights(pixels: np.ndarray) -> np.ndarray:
    """``frequency ** -0.5`` per class (0 for classes absent from every mask)."""
    frequency = pixels / max(int(pixels.sum()), 1)
    with np.errstate(divide="ignore"):
        return np.where(pixels > 0, frequency**-0.5, 0.0)


def read_class_weights(path: Path) -> np.ndarray:
    """Class weights from a JSON object ``{train class name: weight >= 0}``; unnamed classes weigh 0."""
    given = read_json(path, "JSON file of class weights")
    if not isinstance(given, Mapping):
        raise DataError(f"{path}: class weights must be a JSON object {{class name: weight}}")
    unknown = sorted(set(given) - set(TRAIN_ID_NAMES))
    if unknown:
        raise DataError(f"{path}: unknown class name(s) {', '.join(unknown)}; use {', '.join(TRAIN_ID_NAMES)}")
    weights = np.zeros(N_TRAIN_IDS)
    for name, value in given.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise DataError(f"{path}: the weight of {name!r} must be a finite number >= 0, got {value!r}")
        weights[TRAIN_ID_NAMES.index(name)] = float(value)
    return weights


def share_samples(mask_weights: np.ndarray, per_mask: int) -> list[int]:
    """``per_mask * len(mask_weights)`` samples shared in proportion to the weights (largest
    remainders), each mask at least one; equal weights (or all zero) give ``per_mask`` each."""
    count = len(mask_weights)
    total = per_mask * count
    if count == 0:
        return []
    if not np.isfinite(mask_weights).all() or mask_weights.max() <= 0:
        return [per_mask] * count
    mask_weights = mask_weights / mask_weights.max()  # in [0, 1]: no overflow below, whatever their scale
    if np.allclose(mask_weights, mask_weights[0]):
        return [per_mask] * count
    spare = total - count
    ideal = spare * mask_weights / mask_weights.sum()
    shares = np.floor(ideal).astype(int)
    for index in np.argsort(-(ideal - shares), kind="stable")[: spare - int(shares.sum())]:
        shares[index] += 1
    return [int(share) + 1 for share in shares]


def allocate(
    groups: Sequence[Group],
    per_mask: int,
    allocation: str = "uniform",
    class_weights: Path | None = None,
    snap_colors: bool = False,
) -> list[int]:
    """Samples per group for ``allocation`` (see the module docstring); colour masks read with
    ``snap_colors`` as generation reads them."""
    if allocation not in ALLOCATIONS:
        raise UsageError(f"unknown allocation {allocation!r}; choose from {', '.join(ALLOCATIONS)}")
    if allocation == "uniform":
        return [per_mask] * len(groups)
    if allocation == "weights" and class_weights is None:
        raise UsageError("--allocate weights needs --class-weights FILE")
    present, pixels = class_presence(groups, snap_colors)
    weights = (
        read_class_weights(Path(class_weights))
        if allocation == "weights" and class_weights is not None
        else rarity_weights(pixels)
    )
    return share_samples(present.astype(np.float64) @ weights, per_mask)
