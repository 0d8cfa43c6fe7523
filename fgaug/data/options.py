"""What the data commands are asked to do: ``fgaug layouts`` (:class:`LayoutRunOptions`, each
layout made as :class:`LayoutOptions` says) and ``fgaug validate`` (:class:`ValidateOptions`).

Each field's default is the command line's: the CLI reads it from here. This module imports
neither numpy nor torch, so the CLI can do so without slowing ``--help``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fgaug.usage import UsageError, require_counts


@dataclass(frozen=True)
class LayoutOptions:
    """How new layouts are made (see :mod:`fgaug.data.layouts`); every field is recorded in the
    tree's ``fgaug-run.json``."""

    n: int = 4
    """New layouts per source mask (``--per-mask``)."""
    flip_probability: float = 0.5
    jitter_probability: float = 0.5
    scale_range: tuple[float, float] = (1.0, 1.5)
    """Scales of the jitter, drawn in ``[low, high]``; the CLI sets ``(1, --max-scale)``."""
    paste: int = 2
    """Objects pasted from other masks into each layout."""
    rare_boost: float = 0.0
    seed: int = 0
    split: str = "train"
    """The split folder the layouts are written into."""
    photos: bool = False
    """Also write each layout's photo from real pixels (copy-paste augmentation)."""
    snap_colors: bool = False
    """Map off-palette pixels of colour masks to the nearest palette colour present (else refused)."""

    def __post_init__(self) -> None:
        require_counts({"--per-mask": (self.n, 1), "--paste": (self.paste, 0), "--seed": (self.seed, 0)})
        for name in ("flip_probability", "jitter_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(self, name)}")
        low, high = self.scale_range
        if not (math.isfinite(low) and math.isfinite(high) and 1 <= low <= high):
            raise UsageError(f"the scale range (1, --max-scale) must satisfy 1 <= low <= high, got {self.scale_range}")
        if not (math.isfinite(self.rare_boost) and self.rare_boost >= 0):
            raise UsageError(f"--rare-boost must be a finite number >= 0, got {self.rare_boost}")


@dataclass(frozen=True)
class LayoutRunOptions:
    """One ``fgaug layouts`` run: the masks under ``masks`` (``splits`` of a Cityscapes root, the
    first ``limit``, read as ``mask_format``) become new layouts, made as ``layout`` says, in a
    label tree under ``out``; ``overwrite`` replaces a tree made with other settings."""

    masks: str | Path
    out: str | Path = "layouts"
    layout: LayoutOptions = field(default_factory=LayoutOptions)
    splits: Sequence[str] | None = None
    """Splits of a Cityscapes root (``--split``, repeatable); None: all."""
    limit: int | None = None
    mask_format: str = "auto"
    overwrite: bool = False
    write_threads: int | None = None
    """Threads writing the files (None: :func:`~fgaug.data.background.write_threads`; 0: in the loop)."""

    def __post_init__(self) -> None:
        require_counts({"--limit": (self.limit, 1), "--write-threads": (self.write_threads, 0)})


@dataclass(frozen=True)
class ValidateOptions:
    """One ``fgaug validate`` run: the tree ``augmented`` (written by ``generate`` or ``layouts``)
    checked against its manifest and, given ``source`` (the masks it was made from, as
    ``generate MASKS`` takes them), its copied label files byte for byte."""

    augmented: str | Path
    source: str | Path | None = None
