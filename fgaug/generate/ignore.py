"""Per-pixel ignore maps for synthetic photos: the pixels a segmenter trained on real photos
rejects (after FreeMask's filtering of noisy synthetic pixels).

A pixel is rejected when the segmenter gives its label a probability below ``below`` (default
0.05): the synthetic photo does not show there what the mask says. The map goes in an extra file
beside the copied labels, ``<stem>_gtFine_fgaugIgnore.png`` (8-bit, 255 = ignore, 0 = keep),
never in place of them; a training pipeline that wants it sets those pixels of ``labelTrainIds``
to 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fgaug.data.cityscapes import Group
from fgaug.data.io import DataError
from fgaug.data.labels import IGNORE_TRAIN_ID, N_TRAIN_IDS, ids_to_train_ids
from fgaug.segmentation.probe import load_segmenter

IGNORE_SUFFIX = "_gtFine_fgaugIgnore.png"


IGNORED = 255


@dataclass
class IgnoreRule:
    """A segmenter and the probability below which a pixel's label is rejected."""

    segmenter: torch.nn.Module
    path: Path
    below: float
    device: torch.device

    @classmethod
    def load(cls, path: Path, below: float, device: torch.device, size: tuple[int, int]) -> IgnoreRule:
        """The rule of the segmenter at ``path``, which must have been trained at the model's ``size``."""
        return cls(load_segmenter(path, device, size), path, below, device)

    @torch.no_grad()
    def rejected(self, photo: torch.Tensor, label_ids: np.ndarray) -> np.ndarray:
        """(H, W) bool at the labels' own size: where the segmenter, run on a photo (3, h, w) in
        [0, 1] and its logits resized bilinearly to the labels, disbelieves the label; pixels without
        a train id are never rejected (they are ignored anyway)."""
        device = self.device
        logits = self.segmenter(photo[None].to(device))
        if logits.dim() != 4 or logits.shape[1] != N_TRAIN_IDS:
            raise DataError(
                f"{self.path}: the segmenter gives {tuple(logits.shape)}; (1, {N_TRAIN_IDS}, h, w) is needed"
            )
        logits = F.interpolate(logits.float(), size=label_ids.shape, mode="bilinear", align_corners=False)
        train_ids = torch.from_numpy(ids_to_train_ids(label_ids)).long().to(device)
        labelled = train_ids != IGNORE_TRAIN_ID
        probabilities = logits.softmax(dim=1)[0].gather(0, train_ids.clamp(max=N_TRAIN_IDS - 1)[None])[0]
        return ((probabilities < self.below) & labelled).cpu().numpy()

    def files(self, photo: torch.Tensor, label_ids: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The extra label file of a sample and what its manifest line says about it."""
        rejected = self.rejected(photo, label_ids)
        ignore = np.where(rejected, IGNORED, 0).astype(np.uint8)
        return {IGNORE_SUFFIX: ignore}, {"ignored_fraction": float(rejected.mean()), "ignore_segmenter": self.path.name}


def ignore_map_file(group: Group) -> Path | None:
    """The ignore map written beside ``group``'s labels (same stem, :data:`IGNORE_SUFFIX`), if any."""
    name = group.mask.name
    for suffix in group.label_files:
        if name.endswith(suffix):
            path = group.mask.with_name(name[: -len(suffix)] + IGNORE_SUFFIX)
            return path if path.is_file() else None
    return None


def read_ignore_map(group: Group) -> np.ndarray | None:
    """(H, W) bool at the map's own size: the pixels of ``group`` its ignore map marks
    :data:`IGNORED`; None where no map was written (nothing is ignored)."""
    path = ignore_map_file(group)
    return None if path is None else np.asarray(Image.open(path)) == IGNORED
