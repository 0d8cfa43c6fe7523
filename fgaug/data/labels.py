"""The Cityscapes label table and conversions between labelIds, trainIds and colour images.

The 35 entries are those of cityscapesScripts' ``helpers/labels.py`` (a test checks them
against the installed package). Colour -> labelId is ambiguous where ids share a colour; fgaug
picks the id that is evaluated (or the lowest):

* (0, 0, 0): ids 0-4 (unlabeled, ego vehicle, rectification border, out of roi, static) -> 0
* (0, 0, 142): car (26) and license plate (-1) -> 26 (car)
* (153, 153, 153): pole (17) and polegroup (18) -> 17 (pole)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

LABEL_TABLE_VERSION = "cityscapes-v1"
IGNORE_TRAIN_ID = 255
N_TRAIN_IDS = 19


class Label(NamedTuple):
    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


LABELS: tuple[Label, ...] = (
    Label("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    Label("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    Label("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    Label("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    Label("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    Label("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    Label("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    Label("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    Label("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    Label("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    Label("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    Label("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    Label("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    Label("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    Label("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    Label("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    Label("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    Label("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    Label("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    Label("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    Label("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    Label("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    Label("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    Label("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    Label("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    Label("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    Label("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    Label("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    Label("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    Label("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    Label("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    Label("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    Label("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    Label("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
    Label("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
)

LABEL_BY_ID = {label.id: label for label in LABELS if label.id >= 0}
LABEL_BY_NAME = {label.name: label for label in LABELS}
VALID_LABEL_IDS = frozenset(LABEL_BY_ID)
TRAIN_ID_NAMES = tuple(
    label.name for label in sorted(LABELS, key=lambda lab: lab.train_id) if 0 <= label.train_id < N_TRAIN_IDS
)


def _lookup(values: dict[int, int | tuple[int, int, int]], fill: int | tuple[int, ...], width: int) -> np.ndarray:
    table = np.tile(np.asarray(fill, dtype=np.uint8), (256, 1)) if width > 1 else np.full(256, fill, np.uint8)
    for key, value in values.items():
        table[key] = value
    return table


ID_TO_TRAIN_ID = _lookup({label.id: label.train_id for label in LABELS if label.id >= 0}, IGNORE_TRAIN_ID, 1)
"""256-entry lookup: labelId -> trainId (255 for ignored ids and for values that are no id)."""

ID_TO_COLOR = _lookup({label.id: label.color for label in LABELS if label.id >= 0}, (0, 0, 0), 3)
"""256-entry lookup: labelId -> RGB colour."""

TRAIN_ID_TO_ID = _lookup({label.train_id: label.id for label in LABELS if 0 <= label.train_id < N_TRAIN_IDS}, 0, 1)
"""256-entry lookup: trainId -> labelId (255, ignore, -> 0 unlabeled)."""


def _color_key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _preferred_id_per_color() -> dict[int, int]:
    """Colour key -> id, preferring an evaluated id, then the lowest id."""
    chosen: dict[int, Label] = {}
    for label in LABELS:
        if label.id < 0:
            continue
        key = int(_color_key(np.asarray(label.color)))
        current = chosen.get(key)
        if current is None or (current.ignore_in_eval and not label.ignore_in_eval):
            chosen[key] = label
    return {key: label.id for key, label in chosen.items()}


COLOR_KEY_TO_ID = _preferred_id_per_color()
_PALETTE_KEYS = np.array(sorted(COLOR_KEY_TO_ID), dtype=np.int64)
_PALETTE_IDS = np.array([COLOR_KEY_TO_ID[k] for k in _PALETTE_KEYS], dtype=np.uint8)
_PALETTE_RGB = np.stack([(_PALETTE_KEYS >> 16) & 255, (_PALETTE_KEYS >> 8) & 255, _PALETTE_KEYS & 255], axis=1)


def ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """labelIds (uint8 array) -> trainIds, ignored classes as 255."""
    return ID_TO_TRAIN_ID[label_ids]


def train_ids_to_ids(train_ids: np.ndarray) -> np.ndarray:
    """trainIds -> labelIds (the evaluated id of each train class; 255 -> 0 unlabeled)."""
    return TRAIN_ID_TO_ID[train_ids]


def ids_to_color(label_ids: np.ndarray) -> np.ndarray:
    """labelIds (H, W) -> RGB colour image (H, W, 3) uint8, Cityscapes palette."""
    return ID_TO_COLOR[label_ids]


def invalid_label_ids(label_ids: np.ndarray) -> list[int]:
    """Values of a labelIds image that are not Cityscapes ids (0-33), sorted."""
    present = np.unique(label_ids)
    return [int(v) for v in present if int(v) not in VALID_LABEL_IDS]


def color_to_ids(rgb: np.ndarray, snap: bool = False) -> tuple[np.ndarray, float]:
    """RGB colour mask (H, W, 3) -> labelIds, and the fraction of pixels off the palette.

    Off-palette pixels (smooth resizing leaves them at edges) map, when ``snap`` is true, to the
    nearest of the palette colours that the mask itself holds exactly (a blend of road and sky
    must not become wall); otherwise they are left as 0 and the caller decides. Their fraction is
    returned either way.
    """
    keys = _color_key(rgb[..., :3])
    positions = np.searchsorted(_PALETTE_KEYS, keys).clip(0, len(_PALETTE_KEYS) - 1)
    on_palette = _PALETTE_KEYS[positions] == keys
    ids = np.where(on_palette, _PALETTE_IDS[positions], 0).astype(np.uint8)
    off_fraction = float(1.0 - on_palette.mean()) if on_palette.size else 0.0
    if snap and off_fraction > 0:
        off = ~on_palette
        present = np.unique(positions[on_palette])
        candidates = present if present.size else np.arange(len(_PALETTE_KEYS))
        distances = ((rgb[off][:, None, :3].astype(np.int64) - _PALETTE_RGB[candidates][None]) ** 2).sum(-1)
        ids[off] = _PALETTE_IDS[candidates[distances.argmin(axis=1)]]
    return ids, off_fraction
