"""Pictures people look at: grids of masks, photos and samples with column titles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from fgaug.data.io import atomic_write_bytes, encode_png

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
