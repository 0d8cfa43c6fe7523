"""What ``fgaug evaluate quality`` is asked to do (:class:`QualityOptions`) and what it returns
(:class:`QualityResult`), and what ``fgaug evaluate augment`` is asked to do (:class:`AugmentOptions`).

Each field's default is the command line's: the CLI reads it from here. This module imports
neither numpy nor torch, so the CLI can do so without slowing ``--help``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fgaug.finite import require_finite
from fgaug.usage import UsageError, require_at_least, require_positive

if TYPE_CHECKING:  # the report's module imports torch
    from fgaug.evaluation.quality import QualityReport


@dataclass(frozen=True)
class QualityOptions:
    """Evaluate the model ``model`` (found as ``generate`` finds it) on split ``split`` of the
    Cityscapes root ``data`` (its first ``limit`` pairs) and write the report under ``out``."""

    data: str | Path
    out: str | Path = "evaluation"
    model: str | Path | None = None
    split: str = "val"
    limit: int | None = None
    temperatures: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    """The temperatures of the sweep (``--temps``)."""
    n: int = 3
    """Samples per mask at each temperature (``--samples``)."""
    seed: int = 0
    best_of: int = 1
    """Each sample the most likely of this many draws (``--best-of``, as ``generate``'s)."""
    guidance: float = 0.0
    """Classifier-free guidance weight of the draws (0: none)."""
    denoise_scale: float | None = None
    """One score step of this many times the noise variance after each draw (None: none)."""
    segmenter: str | Path | None = None
    """Segmenter for label consistency: fgaug's probe, TorchScript or ``torch.export`` (.pt2)."""
    features: str | Path | None = None
    """Local feature network for FID (photos in [0, 1] -> (B, D))."""
    lpips: str | Path | None = None
    """Local LPIPS network ((photos, photos) -> (B,))."""
    rounds: int = 1
    """Dequantisation rounds for bits/dim."""
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        require_finite(temperatures=self.temperatures, guidance=self.guidance, denoise_scale=self.denoise_scale)
        if not self.temperatures or min(self.temperatures) < 0:
            raise UsageError(f"--temps must be one or more numbers of at least 0, got {list(self.temperatures)}")
        for option, value, low in (
            ("--samples", self.n, 1),
            ("--best-of", self.best_of, 1),
            ("--rounds", self.rounds, 1),
            ("--limit", self.limit, 1),
            ("--seed", self.seed, 0),
            ("--guidance", self.guidance, 0),
        ):
            require_at_least(option, value, low)
        require_positive("--denoise-scale", self.denoise_scale)


@dataclass(frozen=True)
class QualityResult:
    """The report (protocol, bits/dim, the sweep's scores) and the files it was written to
    (``json``, ``markdown`` and the plots)."""

    report: QualityReport
    paths: dict[str, Path]

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()


@dataclass(frozen=True)
class AugmentOptions:
    """Does the model ``model``'s synthetic data help a segmenter on the Cityscapes root ``data``?
    Probes trained on the first R real train pairs (R in ``sizes``), alone and with the arm
    ``strategy``'s synthetic data, paired by seed, early-stopped on ``val_split`` and scored on
    ``test_split``; the report goes under ``out``. The arm and the mixing are checked against the
    registry when the study starts (:data:`~fgaug.evaluation.augment.strategies.STRATEGIES`)."""

    data: str | Path
    out: str | Path = "evaluation-augment"
    model: str | Path | None = None
    strategy: str = "prior"
    n: int = 4
    """Synthetic images per real training mask (``--samples``)."""
    mixing: str | None = None
    """``concat``, ``ratio`` or ``pretrain``; None: the arm's own."""
    temperature: float = 0.8
    guidance: float = 0.0
    """Classifier-free guidance weight of the draws (0: none)."""
    denoise_scale: float | None = None
    """One score step of this many times the noise variance after each draw (None: none)."""
    sizes: Sequence[int] = (40,)
    seeds: Sequence[int] = (0, 1, 2, 3, 4)
    val_split: str = "val"
    test_split: str = "test"
    width: int = 16
    """Probe width."""
    batch_size: int = 8
    """Probe batch size."""
    min_steps: int = 1000
    max_steps: int = 3000
    """A probe trains 40 epochs of its data, clamped to ``[min(min_steps, max_steps), max_steps]``."""
    schedules: int = 1
    """One-cycle schedules per probe, back to back (2: a warm restart, the stronger baseline)."""
    overwrite: bool = False
    """Replace a study under ``out`` that other settings made: its finished probes and report, and
    the synthetic trees under ``out/synthetic`` (see :mod:`fgaug.evaluation.augment.resume`)."""
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        require_finite(temperature=self.temperature, guidance=self.guidance, denoise_scale=self.denoise_scale)
        if self.min_steps < 1 or self.max_steps < 1:
            raise UsageError(
                f"--min-steps and --max-steps must be at least 1, got {self.min_steps} and {self.max_steps}"
            )
        if not self.sizes or not self.seeds:
            raise UsageError("--sizes and --seeds need one value or more")
        for option, values in (("--sizes", self.sizes), ("--seeds", self.seeds)):
            if len(set(values)) < len(values):  # a repeated size doubled its arms in augment.json, not its curve
                raise UsageError(f"{option} {','.join(map(str, values))} repeats a value")
        for option, value, low in (
            ("--samples", self.n, 1),
            ("--sizes", min(self.sizes), 1),
            ("--seeds", min(self.seeds), 0),
            ("--temp", self.temperature, 0),
            ("--guidance", self.guidance, 0),
            ("--width", self.width, 1),
            ("--batch-size", self.batch_size, 1),
            ("--schedules", self.schedules, 1),
        ):
            require_at_least(option, value, low)
        require_positive("--denoise-scale", self.denoise_scale)
        if self.val_split == self.test_split:
            raise UsageError(
                f"the validation and test splits must differ (both {self.val_split!r}): nothing may pick on the test"
            )
        if "train" in (self.val_split, self.test_split):
            raise UsageError(
                "--val-split and --test-split may not be train: the probes train on it, so they would be "
                "scored (or stopped) on their own images"
            )
