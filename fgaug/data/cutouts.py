"""Objects cut out of a labelled scene and pasted into another: connected instances, their
ground, depth ordering by foot row, and occlusion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fgaug.data.cityscapes import Group, check_same_size, read_instance_ids, read_label_ids
from fgaug.data.io import encode_png
from fgaug.data.labels import LABEL_BY_ID, LABEL_BY_NAME, ids_to_color, ids_to_train_ids
from fgaug.finite import to_json

INSTANCE_CLASSES = ("person", "rider", "car", "bicycle", "motorcycle")


GROUND: dict[str, tuple[str, ...]] = {
    "person": ("sidewalk",),
    "rider": ("road",),
    "car": ("road",),
    "bicycle": ("road", "sidewalk"),
    "motorcycle": ("road",),
    "traffic sign": ("sidewalk",),
    "traffic light": ("sidewalk",),
}
"""Where a pasted object may stand (the class under its foot row)."""


POLE_MOUNTED = ("traffic sign", "traffic light")


PASTED_CLASSES = INSTANCE_CLASSES + POLE_MOUNTED


OBJECT_CLASSES = (*PASTED_CLASSES, "pole", "truck", "bus", "train")
"""Classes whose connected parts occlude by depth (their foot row)."""


MIN_OBJECT_PIXELS = 24


MIN_FILL = 0.3


SCALE_LIMITS = (0.35, 2.5)


LABEL_FILE_SUFFIXES = (
    "_gtFine_labelIds.png",
    "_gtFine_instanceIds.png",
    "_gtFine_color.png",
    "_gtFine_labelTrainIds.png",
    "_gtFine_polygons.json",
)
"""The label files :meth:`LabelSet.files` writes, in its order."""


@dataclass
class LabelSet:
    """A frame's labels: ``label_ids`` (H, W) uint8 and ``instance_ids`` (H, W) int32 in the
    Cityscapes convention (``id * 1000 + k`` for instances of instance classes, the plain id
    elsewhere)."""

    label_ids: np.ndarray
    instance_ids: np.ndarray

    @classmethod
    def read(cls, group: Group, snap_colors: bool = False) -> LabelSet:
        """The group's labelIds (colour masks snapped to the palette with ``snap_colors``) and
        instanceIds; without an instanceIds file, the instances of instance classes are its
        connected parts."""
        label_ids = read_label_ids(group.mask, group.mask_format, snap_colors)
        if group.instance_ids is not None:
            instance_ids = read_instance_ids(group.instance_ids)
            check_same_size(group.instance_ids, instance_ids.shape, group.mask, label_ids.shape)
            return cls(label_ids, instance_ids)
        return cls(label_ids, instances_from_components(label_ids))

    @property
    def shape(self) -> tuple[int, int]:
        return self.label_ids.shape

    def flipped(self) -> LabelSet:
        return LabelSet(np.ascontiguousarray(self.label_ids[:, ::-1]), np.ascontiguousarray(self.instance_ids[:, ::-1]))

    def scaled_and_cropped(self, scale: float, top: int, left: int) -> LabelSet:
        """Enlarged ``scale`` times (nearest) and cropped to the original size at (top, left)."""
        height, width = self.shape
        big = (round(height * scale), round(width * scale))
        return LabelSet(
            _resize_nearest(self.label_ids, big)[top : top + height, left : left + width].copy(),
            _resize_nearest(self.instance_ids, big)[top : top + height, left : left + width].copy(),
        )

    def files(self) -> dict[str, bytes]:
        """Every label file of the set, by Cityscapes suffix (:data:`LABEL_FILE_SUFFIXES`)."""
        rgba = np.concatenate([ids_to_color(self.label_ids), np.full((*self.shape, 1), 255, np.uint8)], axis=2)
        contents = (
            encode_png(self.label_ids),
            encode_png(self.instance_ids.astype(np.uint16)),
            encode_png(rgba),
            encode_png(ids_to_train_ids(self.label_ids)),
            to_json(traced_polygons(self), indent=1, sort_keys=False).encode(),
        )
        return dict(zip(LABEL_FILE_SUFFIXES, contents, strict=True))


def _resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    work = image.astype(np.float32) if image.dtype == np.int32 else image
    resized = cv2.resize(work, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return resized.astype(image.dtype)


def instances_from_components(label_ids: np.ndarray) -> np.ndarray:
    """instanceIds for a mask without them: every connected part of an instance class is one
    instance (``id * 1000 + k``); other pixels keep their label id."""
    instance_ids = label_ids.astype(np.int32)
    for name in INSTANCE_CLASSES:
        label_id = LABEL_BY_NAME[name].id
        count, parts = cv2.connectedComponents((label_ids == label_id).astype(np.uint8), connectivity=8)
        for part in range(1, count):
            instance_ids[parts == part] = label_id * 1000 + part - 1
    return instance_ids


def horizon_row(label_ids: np.ndarray) -> float:
    """Where the ground meets the horizon: the top row of the road (of the sidewalk without road;
    mid-height without either). Object sizes scale with the distance of their foot below it."""
    for name in ("road", "sidewalk"):
        rows = np.nonzero((label_ids == LABEL_BY_NAME[name].id).any(axis=1))[0]
        if rows.size:
            return float(rows[0])
    return label_ids.shape[0] / 2


@dataclass
class Cutout:
    """An object cut from a mask: ``label_ids`` (h, w) of its box, 0 outside ``mask``; ``label``
    its class (the sign or light for a pole-mounted one); ``foot`` its bottom row in the source
    mask and ``horizon`` that mask's horizon row."""

    source: str
    label: str
    label_ids: np.ndarray
    mask: np.ndarray
    foot: int
    left: int
    horizon: float
    instance: int = 0
    pixels: np.ndarray | None = None
    """(h, w, 3) uint8: the source photo's pixels of the box, when photos travel with the labels."""


def find_cutouts(key: str, labels: LabelSet, photo: np.ndarray | None = None) -> list[Cutout]:
    """The objects of a mask that can be pasted elsewhere: whole instances of instance classes and
    traffic signs and lights with the poles they touch, away from the left, right and bottom
    borders (a cut-off object would look cut off anywhere), at least :data:`MIN_OBJECT_PIXELS`.
    With ``photo`` (at the labels' size) each cutout carries its pixels."""
    height, width = labels.shape
    horizon = horizon_row(labels.label_ids)
    cutouts = []
    for instance, (rows, columns) in _boxes(labels.instance_ids, labels.instance_ids >= 1000):
        label = LABEL_BY_ID[instance // 1000].name
        box = labels.instance_ids[rows, columns] == instance  # its bounding box: the image's work per object
        if label in INSTANCE_CLASSES and _whole(box):
            cutouts.append(
                _cut(key, label, labels.label_ids, box, (rows.start, columns.start), horizon, photo, instance)
            )
    pole = labels.label_ids == LABEL_BY_NAME["pole"].id
    for name in POLE_MOUNTED:
        count, parts = cv2.connectedComponents((labels.label_ids == LABEL_BY_NAME[name].id).astype(np.uint8))
        pole_parts = cv2.connectedComponents(pole.astype(np.uint8))[1]
        for part in range(1, count):
            region = parts == part
            touching = np.unique(pole_parts[cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0])
            for pole_part in touching[touching > 0]:
                region |= pole_parts == pole_part
            cutouts.append(_cut(key, name, labels.label_ids, region, (0, 0), horizon, photo))
    return [
        c
        for c in cutouts
        if c.mask.sum() >= MIN_OBJECT_PIXELS and c.foot < height - 1 and 0 < c.left < width - c.mask.shape[1]
    ]


def _boxes(values: np.ndarray, chosen: np.ndarray) -> list[tuple[int, tuple[slice, slice]]]:
    """Each value of ``values`` where ``chosen``, in increasing order, with its bounding box."""
    found = np.unique(values[chosen])
    if not len(found):
        return []
    from scipy import ndimage

    boxes = ndimage.find_objects(np.where(chosen, values, -1).astype(np.int64) + 1, max_label=int(found[-1]) + 1)
    return [(int(value), boxes[int(value)]) for value in found]


def _whole(region: np.ndarray) -> bool:
    """Whether an instance looks unoccluded: one connected part filling at least
    :data:`MIN_FILL` of its box (an instance seen through or behind others is fragments)."""
    rows, cols = np.nonzero(region)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    parts = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)[0] - 1
    return parts == 1 and region.sum() >= MIN_FILL * box


def _cut(
    key: str,
    label: str,
    label_ids: np.ndarray,
    region: np.ndarray,
    corner: tuple[int, int],
    horizon: float,
    photo: np.ndarray | None,
    instance: int = 0,
) -> Cutout:
    """The cutout of ``region``, a mask whose top-left pixel lies at ``corner`` (row, column) of the image."""
    rows, cols = np.nonzero(region)
    top, bottom = rows.min() + corner[0], rows.max() + 1 + corner[0]
    left, right = cols.min() + corner[1], cols.max() + 1 + corner[1]
    box = region[top - corner[0] : bottom - corner[0], left - corner[1] : right - corner[1]]
    cut = np.where(box, label_ids[top:bottom, left:right], 0).astype(np.uint8)
    pixels = photo[top:bottom, left:right].copy() if photo is not None else None
    return Cutout(key, label, cut, box.copy(), int(bottom - 1), int(left), horizon, instance, pixels)


def object_depth(labels: LabelSet) -> np.ndarray:
    """Per pixel, the foot row of the object covering it (its connected part's bottom row, an
    instance's for instance classes), -1 for background: a larger foot row is nearer the camera."""
    depth = np.full(labels.shape, -1, dtype=np.int32)
    for name in OBJECT_CLASSES:
        label_id = LABEL_BY_NAME[name].id
        region = labels.label_ids == label_id
        if not region.any():
            continue
        if LABEL_BY_NAME[name].has_instances:
            parts = np.where(region, labels.instance_ids, 0)
        else:
            parts = cv2.connectedComponents(region.astype(np.uint8))[1]
        for part, (rows, columns) in _boxes(parts, region):  # each within its bounding box
            where = (parts[rows, columns] == part) & region[rows, columns]
            depth[rows, columns][where] = rows.start + np.nonzero(where.any(axis=1))[0].max()
    return depth


@dataclass
class Placement:
    """Where and how a cutout was pasted (recorded in ``layouts.jsonl``)."""

    source: str
    label: str
    foot: tuple[int, int]
    scale: float
    instance: int


def paste(
    labels: LabelSet, cutout: Cutout, rng: np.random.Generator, photo: np.ndarray | None = None
) -> tuple[LabelSet, Placement] | None:
    """``labels`` with ``cutout`` standing on its :data:`GROUND`, scaled with depth, occluded by
    nearer objects; None when the mask has no such ground or the object would be too small. With
    ``photo`` (the layout's photo so far, written in place) the cutout's pixels are pasted into it
    where its labels are (resized bilinearly, the same visible pixels)."""
    height, width = labels.shape
    horizon = horizon_row(labels.label_ids)
    ground = np.isin(labels.label_ids, [LABEL_BY_NAME[name].id for name in GROUND[cutout.label]])
    ground[: math.ceil(horizon) + 2] = False
    rows, cols = np.nonzero(ground)
    if rows.size == 0:
        return None
    pick = int(rng.integers(rows.size))
    foot_y, foot_x = int(rows[pick]), int(cols[pick])
    source_depth = max(cutout.foot - cutout.horizon, 1.0)
    scale = float(np.clip((foot_y - horizon) / source_depth, *SCALE_LIMITS))
    box_h, box_w = cutout.mask.shape
    size = (max(1, round(box_h * scale)), max(1, round(box_w * scale)))
    mask = _resize_nearest(cutout.mask.astype(np.uint8), size).astype(bool)
    ids = _resize_nearest(cutout.label_ids, size)
    if mask.sum() < MIN_OBJECT_PIXELS // 2:
        return None
    top, left = foot_y - size[0] + 1, foot_x - size[1] // 2
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size[0], height), min(left + size[1], width)
    if y1 <= y0 or x1 <= x0:
        return None
    window = (slice(y0, y1), slice(x0, x1))
    piece = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    visible = mask[piece] & (object_depth(labels)[window] < foot_y)
    if not visible.any():
        return None
    label_id = LABEL_BY_NAME[cutout.label].id
    instance = label_id
    if LABEL_BY_NAME[cutout.label].has_instances:
        taken = labels.instance_ids[labels.instance_ids // 1000 == label_id] % 1000
        instance = label_id * 1000 + (int(taken.max()) + 1 if taken.size else 0)
    label_ids, instance_ids = labels.label_ids.copy(), labels.instance_ids.copy()
    label_ids[window][visible] = ids[piece][visible]
    if photo is not None and cutout.pixels is not None:
        pixels = cv2.resize(cutout.pixels, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        photo[window][visible] = pixels[piece][visible]
    pasted_ids = ids[piece][visible].astype(np.int32)
    instance_ids[window][visible] = np.where(pasted_ids == label_id, instance, pasted_ids)
    return LabelSet(label_ids, instance_ids), Placement(cutout.source, cutout.label, (foot_y, foot_x), scale, instance)


def traced_polygons(labels: LabelSet) -> dict[str, Any]:
    """A ``gtFine_polygons.json`` document traced from the maps: one polygon per connected part of
    each stuff class (larger areas first, so enclosed ones are drawn over them), then each object
    and instance from the farthest to the nearest; drawn in order they repaint the label map.

    Each value and each part is worked on within its bounding box, so the time and memory go with
    the parts' areas, not with the image's times the number of parts (a full-size frame of 300
    objects took 4 s and 624 MB that way)."""
    from scipy import ndimage

    height, width = labels.shape
    boxes = ndimage.find_objects(labels.instance_ids.astype(np.int64) + 1)  # the box of value v at v
    objects: list[tuple[int, int, str, np.ndarray, tuple[int, int]]] = []
    for value in np.unique(labels.instance_ids):
        label_id = int(value) // 1000 if value >= 1000 else int(value)
        name = LABEL_BY_ID[label_id].name if label_id in LABEL_BY_ID else "unlabeled"
        rows, columns = boxes[int(value)]
        region = (labels.instance_ids[rows, columns] == value).astype(np.uint8)
        count, parts, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
        for part in range(1, count):
            left, top, part_width, part_height, area = (int(v) for v in stats[part, :5])
            mask = (parts[top : top + part_height, left : left + part_width] == part).astype(np.uint8)
            corner = (columns.start + left, rows.start + top)
            far_to_near = (1, corner[1] + part_height - 1)  # the part's lowest row
            order = far_to_near if name in OBJECT_CLASSES else (0, -area)
            objects.append((*order, name, mask, corner))
    objects.sort(key=lambda item: (item[0], item[1]))
    document: dict[str, Any] = {"imgHeight": height, "imgWidth": width, "objects": []}
    for _, _, name, mask, (left, top) in objects:
        framed = np.pad(mask, 1)  # a border of background, as the image's edge is to the tracer
        contours, _ = cv2.findContours(framed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(left - 1, top - 1))
        for contour in contours:
            points = contour[:, 0, :].tolist()
            if len(points) >= 3:
                document["objects"].append({"label": name, "polygon": points})
    return document
