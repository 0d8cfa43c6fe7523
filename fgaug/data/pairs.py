"""The (mask, photo) pairs of Cityscapes groups, read from their PNGs, as a torch ``Dataset``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

import torch
from torch.utils.data import Dataset

from fgaug.data.cityscapes import Group, ReadOptions, load_pair, to_tensor


class PairItem(TypedDict):
    """One (mask, photo) training pair: the condition image and the photo, float (C, H, W) in
    [0, 1], and its group's key."""

    mask: torch.Tensor
    photo: torch.Tensor
    key: str


class CityscapesPairs(Dataset):
    """(mask, photo) pairs read from PNGs: items are ``{"mask", "photo", "key"}`` with float
    tensors in [0, 1] at ``options.size`` (mask: colour-rendered, plus the boundary channel)."""

    def __init__(self, groups: Iterable[Group], options: ReadOptions) -> None:
        self.groups = list(groups)
        self.options = options

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> PairItem:
        group = self.groups[index]
        condition, photo = load_pair(group, self.options)
        return {"mask": to_tensor(condition), "photo": to_tensor(photo), "key": group.key}
