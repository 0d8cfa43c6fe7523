"""What ``fgaug segmenter train`` is asked to do (:class:`SegmenterTrainOptions`).

Each field's default is the command line's (and :func:`~fgaug.segmentation.probe.train_probe`'s):
both read it from here. This module imports neither numpy nor torch, so the CLI can do so
without slowing ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fgaug.finite import require_finite
from fgaug.usage import image_size, require_at_least, require_positive


@dataclass(frozen=True)
class SegmenterTrainOptions:
    """Train fgaug's probe segmenter on the real photos of split ``split`` of the Cityscapes root
    ``data`` at ``size`` (height, width), and save it to ``out``."""

    data: str | Path
    size: tuple[int, int]
    """Height and width to train at: the model's size, to score its samples."""
    out: str | Path = "probe.pt"
    split: str = "train"
    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-3
    """Peak learning rate of the one-cycle schedule."""
    width: int = 32
    """Channels of the first level, doubling per level."""
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        require_finite(lr=self.lr)
        object.__setattr__(self, "size", image_size("--size", self.size))  # frozen: set once, here
        for option, value, low in (
            ("--steps", self.steps, 1),
            ("--batch-size", self.batch_size, 1),
            ("--width", self.width, 1),
            ("--seed", self.seed, 0),
        ):
            require_at_least(option, value, low)
        require_positive("--lr", self.lr)
