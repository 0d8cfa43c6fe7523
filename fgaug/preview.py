"""Pictures people look at: grids of masks, photos and samples with column titles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from fgaug.data.io import atomic_output, atomic_write_bytes, encode_png

TITLE_HEIGHT = 14
GAP = 2


def image_grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str] = ()) -> np.ndarray:
    """Tile (H, W, 3) uint8 images into rows, with a title strip above the columns.

    Images of one grid are resized (nearest) to the first image's size."""
    height, width = rows[0][0].shape[:2]
    columns = max(len(row) for row in rows)
    top = TITLE_HEIGHT if titles else 0
    canvas = np.full((top + len(rows) * (height + GAP), columns * (width + GAP), 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if image.shape[:2] != (height, width):
                image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST))
            y, x = top + r * (height + GAP), c * (width + GAP)
            canvas[y : y + height, x : x + width] = image[..., :3]
    if titles:
        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        for c, title in enumerate(titles):
            draw.text((c * (width + GAP) + 2, 1), title, fill=(0, 0, 0))
        canvas = np.asarray(picture)
    return canvas


def save_grid(path: str | Path, rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str] = ()) -> Path:
    atomic_write_bytes(path, encode_png(image_grid(rows, titles)))
    return Path(path)


def to_uint8_image(tensor: torch.Tensor) -> np.ndarray:
    """A (C, H, W) float tensor in [0, 1] -> (H, W, 3) uint8 (first three channels)."""
    array = tensor.detach().cpu().clamp(0, 1).mul(255).round().byte().numpy()
    return np.ascontiguousarray(array[:3].transpose(1, 2, 0))


PLOT_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))


def line_plot(
    path: str | Path,
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    x_label: str,
    y_label: str,
    title: str = "",
    size: tuple[int, int] = (560, 360),
) -> Path:
    """A line chart with markers, ticks and a legend, drawn with PIL (no plotting dependency)."""
    width, height = size
    left, right, top, bottom = 64, 16, 24 + 14 * len(series), 44
    picture = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    values = [v for ys in series.values() for v in ys if np.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    x_low, x_high = min(x), max(x) if max(x) > min(x) else min(x) + 1

    def to_pixel(xv: float, yv: float) -> tuple[float, float]:
        px = left + (xv - x_low) / (x_high - x_low) * (width - left - right)
        py = top + (high - yv) / (high - low) * (height - top - bottom)
        return px, py

    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for index in range(5):
        yv = low + (high - low) * index / 4
        _, py = to_pixel(x_low, yv)
        draw.line([left - 4, py, left, py], fill=(0, 0, 0))
        draw.text((4, py - 6), f"{yv:.3g}", fill=(0, 0, 0))
    for xv in x:
        px, _ = to_pixel(xv, low)
        draw.line([px, height - bottom, px, height - bottom + 4], fill=(0, 0, 0))
        draw.text((px - 8, height - bottom + 6), f"{xv:g}", fill=(0, 0, 0))
    draw.text(((width - len(x_label) * 6) // 2, height - 16), x_label, fill=(0, 0, 0))
    draw.text((4, 6), f"{y_label}{'  -  ' + title if title else ''}", fill=(0, 0, 0))
    for number, (name, ys) in enumerate(series.items()):
        colour = PLOT_COLOURS[number % len(PLOT_COLOURS)]
        points = [to_pixel(xv, yv) for xv, yv in zip(x, ys, strict=True) if np.isfinite(yv)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        legend_y = 20 + 14 * number
        draw.line([left, legend_y + 6, left + 20, legend_y + 6], fill=colour, width=2)
        draw.text((left + 24, legend_y), name, fill=(0, 0, 0))
    with atomic_output(path) as temporary:
        picture.save(temporary, format="PNG")
    return Path(path)
