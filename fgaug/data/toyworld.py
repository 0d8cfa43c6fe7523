"""Toy street world: procedural street scenes written as a complete Cityscapes tree.

A scene is a *layout* (z-ordered labelled polygons: sky, buildings, vegetation, sidewalks, road,
poles with signs and traffic lights, cars, persons) and an *appearance* (colours, textures,
time-of-day tint) drawn from separate random streams, so one layout has many plausible photos.
The label images are rasterised from the polygons with PIL's polygon fill, exactly as
cityscapesScripts' ``json2labelImg`` does, so its derived files agree with ours pixel for pixel.

The appearance distribution is known by construction: :data:`APPEARANCE` lists each class's
base-colour palette (RGB means and spread before texture, tint and noise), and
:func:`render_photo` can draw as many photos of one layout as an evaluation needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fgaug.data.io import atomic_write_bytes, encode_png
from fgaug.data.labels import LABEL_BY_NAME, ids_to_color
from fgaug.finite import to_json

TOY_CITIES = {"train": ("toyville", "glowburg"), "val": ("flowdorf",), "test": ("pixelheim",)}

Polygon = list[tuple[float, float]]


@dataclass(frozen=True)
class ColorPalette:
    """A class's base colour: one of ``means`` (RGB 0-255, chosen uniformly) plus Gaussian
    jitter of ``spread`` per channel, before texture, tint and sensor noise."""

    means: tuple[tuple[int, int, int], ...]
    spread: float

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        mean = np.asarray(self.means[rng.integers(len(self.means))], dtype=np.float64)
        return np.clip(mean + rng.normal(0, self.spread, 3), 0, 255)


APPEARANCE: dict[str, ColorPalette] = {
    "sky": ColorPalette(((110, 160, 215), (150, 180, 210), (185, 190, 200), (95, 135, 200)), 12),
    "building": ColorPalette(((200, 180, 150), (160, 80, 60), (130, 130, 135), (225, 220, 205), (175, 150, 120)), 14),
    "vegetation": ColorPalette(((70, 110, 40), (95, 130, 50), (55, 85, 45)), 10),
    "road": ColorPalette(((85, 85, 90), (105, 100, 100), (70, 70, 75)), 8),
    "sidewalk": ColorPalette(((165, 160, 155), (175, 135, 125), (140, 140, 145)), 10),
    "pole": ColorPalette(((120, 120, 120), (90, 95, 100)), 8),
    "traffic sign": ColorPalette(((30, 80, 170), (200, 40, 40), (230, 200, 40)), 12),
    "traffic light": ColorPalette(((40, 40, 40), (60, 60, 50)), 6),
    "car": ColorPalette(
        ((235, 235, 235), (30, 30, 35), (170, 170, 175), (170, 30, 30), (40, 70, 150), (70, 120, 80)), 15
    ),
    "person": ColorPalette(((50, 50, 60), (150, 40, 40), (60, 80, 140), (200, 190, 170), (90, 110, 60)), 15),
}
"""Per-class base-colour distributions of the toy world (the ground truth for evaluation)."""

TINTS = {
    "noon": (1.0, 1.0, 1.0),
    "morning": (1.05, 1.0, 0.9),
    "dusk": (1.1, 0.85, 0.7),
    "overcast": (0.88, 0.9, 0.95),
}
"""Time-of-day tints; a scene picks one uniformly and a brightness in [0.7, 1.1]."""


@dataclass
class ToyObject:
    """One labelled polygon of a layout (pixel coordinates, drawn in list order)."""

    label: str
    polygon: Polygon
    instance: int = 0


@dataclass
class ToyLayout:
    height: int
    width: int
    horizon: float
    objects: list[ToyObject] = field(default_factory=list)

    def add(self, label: str, polygon: Polygon, instance: int = 0) -> None:
        self.objects.append(ToyObject(label, [(round(x, 1), round(y, 1)) for x, y in polygon], instance))

    def polygons_json(self) -> dict:
        """The Cityscapes ``gtFine_polygons.json`` document of this layout."""
        return {
            "imgHeight": self.height,
            "imgWidth": self.width,
            "objects": [{"label": obj.label, "polygon": [[x, y] for x, y in obj.polygon]} for obj in self.objects],
        }


def _ellipse(cx: float, cy: float, rx: float, ry: float, points: int = 14) -> Polygon:
    return [
        (cx + rx * math.cos(2 * math.pi * k / points), cy + ry * math.sin(2 * math.pi * k / points))
        for k in range(points)
    ]


def _rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def make_layout(height: int, width: int, rng: np.random.Generator) -> ToyLayout:
    """A random street layout: the scene's geometry and labels, no colours."""
    horizon = height * rng.uniform(0.38, 0.5)
    layout = ToyLayout(height, width, horizon)
    vanishing_x = width * rng.uniform(0.4, 0.6)
    road_half_top = width * 0.02
    road_left_bottom = width * rng.uniform(-0.25, 0.1)
    road_right_bottom = width * rng.uniform(0.9, 1.25)

    layout.add("sky", _rect(0, 0, width, horizon + 2))
    x = -rng.uniform(0, 0.1) * width
    while x < width:
        building_width = width * rng.uniform(0.08, 0.22)
        top = height * rng.uniform(0.05, 0.3)
        layout.add("building", _rect(x, top, x + building_width, horizon + 4))
        x += building_width + (width * rng.uniform(0, 0.06) if rng.random() < 0.3 else 0)
    for _ in range(rng.integers(1, 5)):
        cx, radius = width * rng.uniform(0, 1), width * rng.uniform(0.03, 0.09)
        layout.add("vegetation", _ellipse(cx, horizon - radius * 0.6, radius, radius * 0.9))

    sidewalk_top = horizon + 1
    layout.add("sidewalk", [(0, sidewalk_top), (vanishing_x, sidewalk_top), (road_left_bottom, height), (0, height)])
    layout.add(
        "sidewalk", [(vanishing_x, sidewalk_top), (width, sidewalk_top), (width, height), (road_right_bottom, height)]
    )
    layout.add(
        "road",
        [
            (vanishing_x - road_half_top, horizon),
            (vanishing_x + road_half_top, horizon),
            (road_right_bottom, height),
            (road_left_bottom, height),
        ],
    )

    def depth_scale(y: float) -> float:
        return max((y - horizon) / (height - horizon), 0.05)

    def road_edge(y: float, side: int) -> float:
        t = (y - horizon) / (height - horizon)
        bottom = road_left_bottom if side < 0 else road_right_bottom
        return vanishing_x + side * road_half_top + t * (bottom - vanishing_x - side * road_half_top)

    for _ in range(rng.integers(1, 4)):
        side = -1 if rng.random() < 0.5 else 1
        base_y = horizon + (height - horizon) * rng.uniform(0.15, 0.6)
        scale = depth_scale(base_y)
        pole_x = road_edge(base_y, side) + side * width * 0.03 * scale
        pole_half, pole_height = max(width * 0.004 * scale, 1.0), height * 0.55 * scale
        layout.add("pole", _rect(pole_x - pole_half, base_y - pole_height, pole_x + pole_half, base_y))
        if rng.random() < 0.5:
            size = width * 0.025 * scale + 2
            top = base_y - pole_height
            layout.add("traffic sign", _rect(pole_x - size, top - size, pole_x + size, top + size))
        else:
            half_w, half_h = width * 0.012 * scale + 1.5, height * 0.06 * scale + 3
            top = base_y - pole_height
            layout.add("traffic light", _rect(pole_x - half_w, top - half_h, pole_x + half_w, top + half_h))

    cars = []
    for _ in range(rng.integers(1, 5)):
        base_y = horizon + (height - horizon) * rng.uniform(0.12, 0.95)
        left, right = road_edge(base_y, -1), road_edge(base_y, 1)
        cars.append((base_y, rng.uniform(left, right)))
    for instance, (base_y, center_x) in enumerate(sorted(cars)):
        scale = depth_scale(base_y)
        half_w, body_h = width * 0.09 * scale + 2, height * 0.16 * scale + 2
        cabin_top = base_y - body_h * 1.6
        layout.add(
            "car",
            [
                (center_x - half_w, base_y),
                (center_x - half_w, base_y - body_h),
                (center_x - half_w * 0.6, base_y - body_h),
                (center_x - half_w * 0.45, cabin_top),
                (center_x + half_w * 0.45, cabin_top),
                (center_x + half_w * 0.6, base_y - body_h),
                (center_x + half_w, base_y - body_h),
                (center_x + half_w, base_y),
            ],
            instance=LABEL_BY_NAME["car"].id * 1000 + instance,
        )

    people = []
    for _ in range(rng.integers(0, 4)):
        side = -1 if rng.random() < 0.5 else 1
        base_y = horizon + (height - horizon) * rng.uniform(0.1, 0.9)
        edge = road_edge(base_y, side)
        outer = 0.0 if side < 0 else width
        people.append((base_y, edge + (outer - edge) * rng.uniform(0.15, 0.85)))
    for instance, (base_y, center_x) in enumerate(sorted(people)):
        scale = depth_scale(base_y)
        body_h, half_w = height * 0.45 * scale + 4, width * 0.016 * scale + 1.5
        head_r = half_w * 0.9
        body = _rect(center_x - half_w, base_y - body_h, center_x + half_w, base_y)
        head = _ellipse(center_x, base_y - body_h - head_r * 0.8, head_r, head_r, points=8)
        polygon = body[:2] + [p for p in head if p[1] < base_y - body_h] + body[2:]
        layout.add("person", _ordered_around(polygon), instance=LABEL_BY_NAME["person"].id * 1000 + instance)
    return layout


def _ordered_around(points: Polygon) -> Polygon:
    cx = sum(p[0] for p in points) / len(points)
    cy = sum(p[1] for p in points) / len(points)
    return sorted(points, key=lambda p: math.atan2(p[1] - cy, p[0] - cx))


def rasterize(layout: ToyLayout) -> tuple[np.ndarray, np.ndarray]:
    """labelIds (uint8) and instanceIds (int32) images of a layout, cityscapesScripts-style."""
    size = (layout.width, layout.height)
    label_image = Image.new("L", size, LABEL_BY_NAME["unlabeled"].id)
    instance_image = Image.new("I", size, LABEL_BY_NAME["unlabeled"].id)
    label_draw, instance_draw = ImageDraw.Draw(label_image), ImageDraw.Draw(instance_image)
    for obj in layout.objects:
        label_id = LABEL_BY_NAME[obj.label].id
        label_draw.polygon(obj.polygon, fill=label_id)
        instance_draw.polygon(obj.polygon, fill=obj.instance or label_id)
    return np.asarray(label_image, dtype=np.uint8), np.asarray(instance_image, dtype=np.int32)


def render_photo(
    layout: ToyLayout, label_ids: np.ndarray, instance_ids: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One photo (H, W, 3) uint8 of a layout, appearance drawn from ``rng``."""
    height, width = label_ids.shape
    photo = np.zeros((height, width, 3), dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]

    def fill(region: np.ndarray, color: np.ndarray, texture: float = 0.0) -> None:
        if not region.any():
            return
        shade = 1.0 + texture * rng.standard_normal(int(region.sum()))[:, None]
        photo[region] = color[None, :] * shade

    for label in ("sky", "building", "vegetation", "road", "sidewalk", "pole", "traffic sign", "traffic light"):
        region = label_ids == LABEL_BY_NAME[label].id
        base = APPEARANCE[label].draw(rng)
        if label == "sky":
            fade = np.clip(rows / max(layout.horizon, 1.0), 0, 1)[:, :, None]
            gradient = base[None, None] * (1 - 0.25 * fade) + 235 * 0.25 * fade
            photo[region] = np.broadcast_to(gradient, (height, width, 3))[region]
        else:
            fill(region, base, texture={"vegetation": 0.18, "road": 0.05, "sidewalk": 0.06}.get(label, 0.02))
        if label == "sidewalk" and region.any():
            tiles = ((rows // max(height // 40, 2) + cols // max(width // 60, 2)) % 2 == 0)[..., None]
            photo[:] = np.where(region[..., None] & tiles, photo * 0.93, photo)
        if label == "road" and region.any():
            _paint_lane_marks(photo, region, layout, rng)

    buildings = [obj for obj in layout.objects if obj.label == "building"]
    building_region = label_ids == LABEL_BY_NAME["building"].id
    for obj in buildings:
        _paint_facade(photo, building_region, obj.polygon, rng)

    for label in ("car", "person"):
        label_id = LABEL_BY_NAME[label].id
        for instance in np.unique(instance_ids[instance_ids // 1000 == label_id]):
            region = instance_ids == instance
            fill(region, APPEARANCE[label].draw(rng), texture=0.03)
            if label == "car":
                _paint_car_details(photo, region, rng)
            else:
                _paint_person_head(photo, region, rng)

    tint = np.asarray(TINTS[list(TINTS)[rng.integers(len(TINTS))]]) * rng.uniform(0.7, 1.1)
    photo = photo * tint[None, None] + rng.normal(0, 3.0, photo.shape)
    return np.clip(np.round(photo), 0, 255).astype(np.uint8)


def _paint_lane_marks(photo: np.ndarray, road: np.ndarray, layout: ToyLayout, rng: np.random.Generator) -> None:
    ys, xs = np.nonzero(road)
    if ys.size == 0:
        return
    height = layout.height
    dash = max(height // 24, 2)
    for y in np.unique(ys):
        if (y // dash) % 2:
            continue
        row = xs[ys == y]
        center = (row.min() + row.max()) / 2
        half = max((y - layout.horizon) / max(height - layout.horizon, 1) * layout.width * 0.006, 0.5)
        lo, hi = max(round(center - half), 0), round(center + half) + 1
        mask_row = road[y, lo:hi]
        photo[y, lo:hi][mask_row] = np.array([235.0, 235.0, 225.0]) * rng.uniform(0.9, 1.0)


def _paint_facade(photo: np.ndarray, building_region: np.ndarray, polygon: Polygon, rng: np.random.Generator) -> None:
    x0, y0 = (int(v) for v in polygon[0])
    x1, y1 = (int(v) for v in polygon[2])
    height, width = building_region.shape
    x0, x1, y0, y1 = max(x0, 0), min(x1, width), max(y0, 0), min(y1, height)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    color = APPEARANCE["building"].draw(rng)
    block = building_region[y0:y1, x0:x1]
    photo[y0:y1, x0:x1][block] = color * (1 + 0.03 * rng.standard_normal((int(block.sum()), 1)))
    window = np.array([60.0, 75.0, 95.0]) * rng.uniform(0.7, 1.3)
    step_x, step_y = max((x1 - x0) // 5, 3), max((y1 - y0) // 7, 3)
    for wy in range(y0 + step_y // 2, y1 - step_y, step_y):
        for wx in range(x0 + step_x // 3, x1 - step_x // 2, step_x):
            cell = (slice(wy, wy + max(step_y // 2, 1)), slice(wx, wx + max(step_x // 2, 1)))
            photo[cell][building_region[cell]] = window


def _paint_car_details(photo: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> None:
    ys = np.nonzero(region)[0]
    top, bottom = ys.min(), ys.max()
    height = bottom - top + 1
    glass = region & (np.arange(photo.shape[0])[:, None] < top + height * 0.35)
    photo[glass] = np.array([50.0, 60.0, 75.0]) * rng.uniform(0.8, 1.2)
    wheels = region & (np.arange(photo.shape[0])[:, None] > bottom - height * 0.15)
    photo[wheels] = np.array([25.0, 25.0, 25.0])


def _paint_person_head(photo: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> None:
    ys, _ = np.nonzero(region)
    top, bottom = ys.min(), ys.max()
    head = region & (np.arange(photo.shape[0])[:, None] < top + (bottom - top + 1) * 0.2)
    skin = np.array([[230.0, 190.0, 160.0], [170, 120, 90], [110, 75, 55]])[rng.integers(3)]
    photo[head] = skin


@dataclass(frozen=True)
class ToyScene:
    """A layout with its label images and one photo."""

    layout: ToyLayout
    label_ids: np.ndarray
    instance_ids: np.ndarray
    photo: np.ndarray


def make_scene(height: int, width: int, layout_seed: int, appearance_seed: int | None = None) -> ToyScene:
    """One scene; the same ``layout_seed`` with another ``appearance_seed`` gives another photo
    of the same labels."""
    layout = make_layout(height, width, np.random.default_rng(layout_seed))
    label_ids, instance_ids = rasterize(layout)
    seed = layout_seed if appearance_seed is None else appearance_seed
    photo = render_photo(layout, label_ids, instance_ids, np.random.default_rng([seed, 1]))
    return ToyScene(layout, label_ids, instance_ids, photo)


def scene_names(n: int, split: str) -> Iterator[tuple[str, str]]:
    """(city, stem) for ``n`` scenes of a split, spread over the split's toy cities."""
    cities = TOY_CITIES[split]
    for index in range(n):
        city = cities[index % len(cities)]
        yield city, f"{city}_{index // len(cities):06d}_000019"


def write_toy_cityscapes(
    root: str | Path,
    splits: dict[str, int],
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
) -> list[Path]:
    """Write a Cityscapes tree of toy scenes under ``root``: for each scene the photo and its
    labelIds, instanceIds, color and polygons files. ``splits`` maps split name -> scene count.
    Deterministic for ``seed``; files already present are rewritten identically. Returns the
    photo paths."""
    root = Path(root)
    height, width = size
    photos = []
    for split_index, (split, count) in enumerate(sorted(splits.items())):
        for index, (city, stem) in enumerate(scene_names(count, split)):
            scene = make_scene(height, width, layout_seed=seed * 1_000_003 + split_index * 100_003 + index)
            photo_path = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            label_dir = root / "gtFine" / split / city
            atomic_write_bytes(photo_path, encode_png(scene.photo))
            atomic_write_bytes(label_dir / f"{stem}_gtFine_labelIds.png", encode_png(scene.label_ids))
            atomic_write_bytes(
                label_dir / f"{stem}_gtFine_instanceIds.png", encode_png(scene.instance_ids.astype(np.uint16))
            )
            color = np.concatenate(
                [ids_to_color(scene.label_ids), np.full((*scene.label_ids.shape, 1), 255, np.uint8)], axis=2
            )
            atomic_write_bytes(label_dir / f"{stem}_gtFine_color.png", encode_png(color))
            polygons = to_json(scene.layout.polygons_json(), indent=1, sort_keys=False).encode()
            atomic_write_bytes(label_dir / f"{stem}_gtFine_polygons.json", polygons)
            photos.append(photo_path)
    return photos
