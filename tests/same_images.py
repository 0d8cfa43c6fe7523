"""Comparing the photos of two generated trees, which agree up to float rounding (issue 14, item 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def photos(out: Path) -> dict[str, np.ndarray]:
    """Every photo of a generated tree, by its path under ``out``."""
    return {
        p.relative_to(out).as_posix(): np.asarray(Image.open(p)).astype(int)
        for p in sorted((out / "leftImg8bit").rglob("*.png"))
    }


def assert_same_up_to_rounding(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
    """The same photos, every pixel within one 8-bit level and most photos bitwise equal: what
    README.md promises where the batch composition changes (``--batch-size``, torchrun), since
    batched convolutions round differently."""
    assert first.keys() == second.keys() and first
    equal = 0
    for name in first:
        difference = np.abs(first[name] - second[name]).max()
        assert difference <= 1, f"{name}: differs by {difference} levels"
        equal += int(difference == 0)
    assert equal > len(first) / 2, f"only {equal} of {len(first)} photos are bitwise equal"
