"""What ``generate`` is asked to do (:class:`GenerateOptions`), which model it uses (named,
never guessed) and what it returns (:class:`GenerateSummary`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fgaug.finite import require_finite
from fgaug.flow.sampling import SamplingOptions
from fgaug.generate.draws import DrawSeeds
from fgaug.resources import DEMO_MODEL, model_path
from fgaug.training.checkpoint import Checkpoint, load_checkpoint
from fgaug.usage import UsageError, require_at_least, require_counts, require_positive, whole_number

MODEL_ENVIRONMENT_VARIABLE = "FGAUG_MODEL"


CONTENT_FILLS = ("transfer", "prior")
DEFAULT_SAMPLES = 5
"""Samples per mask when neither ``n``, style seeds nor ``content_from`` say otherwise."""


@dataclass
class GenerateOptions:
    masks: str | Path
    out: str | Path = "augmented"
    model: str | Path | None = None
    n: int | None = None
    """Samples per mask; None (the default): one per style seed with ``style_seeds``, 1 with
    ``content_from``, else :data:`DEFAULT_SAMPLES`. Read it as :attr:`samples_per_mask`."""
    temperature: float = 0.8
    seed: int = 0
    batch_size: int = 8
    best_of: int = 1
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    write_threads: int | None = None
    """Threads that encode and write the samples' files while the drawing goes on
    (:mod:`fgaug.data.background`); ``None``: :func:`~fgaug.data.background.write_threads`;
    0: each sample written in the drawing loop."""
    cuda_graphs: bool | None = None
    """Sampling replayed from CUDA graphs (:class:`~fgaug.flow.graphs.GraphedSampler`, the same
    images). ``None`` (auto): on a CUDA device unless denoising (whose score step is not captured),
    eager from the first capture that runs out of memory; ``True`` refuses where it cannot hold."""
    allocate: str = "uniform"
    class_weights: str | None = None
    reject_fraction: float = 0.0
    content_from: str | None = None
    keep_unchanged: bool = True
    content_fill: str = "transfer"
    ignore_segmenter: str | None = None
    ignore_below: float = 0.05
    splits: Sequence[str] | None = None
    mask_format: str = "auto"
    snap_colors: bool = False
    skip_bad: bool = False
    at_model_resolution: bool = False
    preview: str | Path | None = None
    limit: int | None = None
    allowed_failed: float = 0.0
    """The fraction of requested samples that may go unwritten (diverged on every redraw, or of
    a mask skipped with ``skip_bad``) for the run to count as :attr:`GenerateSummary.accepted`."""
    guidance: float = 0.0
    """Classifier-free guidance weight (a model trained with condition dropout; 0: none)."""
    denoise_scale: float | None = None
    """One score step of this many times the noise variance after each draw (a model trained with
    Gaussian noise; None: no denoising)."""

    style_seeds: Sequence[int] | None = None
    """Style seeds: sample ``i`` of every mask is drawn with style ``style_seeds[i]``'s noise, the
    same for every mask (one look across all masks); ``n`` must equal their number."""
    overwrite: bool = False
    """Replace an output tree made with other settings (see :mod:`fgaug.data.record`); without it
    such a tree is refused."""

    def __post_init__(self) -> None:
        if self.style_seeds is not None:
            self.style_seeds = [whole_number("--style-seed", seed) for seed in self.style_seeds]
        if self.n is None:
            self.n = len(self.style_seeds) if self.style_seeds else 1 if self.content_from else DEFAULT_SAMPLES
        self.check_ranges()

    def check_ranges(self) -> None:
        """The ranges ``fgaug generate``'s options take, for the API too (``n=0`` drew the default
        count and ``limit=0`` every mask): checked when the options are made and again when
        :func:`~fgaug.generate.engine.generate` starts, as a field may be set in between."""
        counts = {
            "--samples": (self.n, 1),
            "--best-of": (self.best_of, 1),
            "--batch-size": (self.batch_size, 1),
            "--seed": (self.seed, 0),
            "--limit": (self.limit, 1),
            "--write-threads": (self.write_threads, 0),
            "--style-seed": (min(self.style_seeds or (), default=None), 0),
        }
        require_counts(counts)
        denoise = OPTION_NAMES["denoise_scale"]
        numbers = {"--temp": self.temperature, "--guidance": self.guidance, denoise: self.denoise_scale}
        fractions = {"--allow-failed": self.allowed_failed, "--reject": self.reject_fraction}
        require_finite(**numbers, **fractions, **{"--ignore-below": self.ignore_below})
        require_at_least("--temp", self.temperature, 0)
        require_at_least("--guidance", self.guidance, 0)
        require_positive(denoise, self.denoise_scale)
        for option, fraction, interval, inside in (
            ("--allow-failed", self.allowed_failed, "[0, 1]", 0 <= self.allowed_failed <= 1),
            ("--reject", self.reject_fraction, "[0, 1)", 0 <= self.reject_fraction < 1),
            ("--ignore-below", self.ignore_below, "(0, 1)", 0 < self.ignore_below < 1),
        ):
            if not inside:
                raise UsageError(f"{option} must lie in {interval}, got {fraction:g}")

    @property
    def samples_per_mask(self) -> int:
        """``n``, resolved from its default when the options were made."""
        return whole_number("--samples", self.n)

    @property
    def sampling(self) -> SamplingOptions:
        return SamplingOptions(self.guidance, self.denoise_scale)

    @property
    def draw_seeds(self) -> DrawSeeds:
        return DrawSeeds(self.seed, tuple(self.style_seeds) if self.style_seeds is not None else None)


NOT_SHAPING = (
    "out",
    "batch_size",
    "device",
    "precision",
    "compile",
    "write_threads",
    "cuda_graphs",
    "preview",
    "allowed_failed",
    "overwrite",
)
""":class:`GenerateOptions` fields that do not shape the samples a tree holds: where it is, how
fast and on what the same draws are computed (which changes a pixel by float rounding at most:
see the module docstring), a side preview, the exit status, what to do with an existing tree.
Every other field, a new one included, is recorded in ``fgaug-run.json`` and must be equal for
a rerun to resume."""


MASK_SELECTION = ("masks", "splits", "limit", "skip_bad")
"""Fields choosing which masks are used, the folder holding them included. A mask's samples
depend on them only through a non-uniform ``allocate`` (N x masks samples spread over the masks
used), so they are not recorded; the masks used are, with such an allocation. Each sample's line
in the manifest records the SHA-256 of its mask and label files instead, so that a rerun resumes
the same masks wherever they now are (a dataset mounted elsewhere) and refuses other masks or
label files under the same keys (:func:`~fgaug.data.record.other_sources`)."""


FILE_FIELDS = ("model", "class_weights", "ignore_segmenter")
"""Fields naming a file whose content shapes the output: recorded by its SHA-256."""


def idle_fields(options: GenerateOptions) -> frozenset[str]:
    """Fields that shape nothing under ``options``, so a tree does not record them and a rerun
    may change them: the global seed where style seeds choose every draw, the ignore threshold
    without a segmenter to apply it."""
    idle = {"seed"} if options.style_seeds is not None else set()
    return frozenset(idle | ({"ignore_below"} if options.ignore_segmenter is None else set()))


OPTION_NAMES = {
    "masks": "MASKS",
    "n": "--samples",
    "temperature": "--temp",
    "reject_fraction": "--reject",
    "ignore_segmenter": "--ignore-map",
    "style_seeds": "--style-seed",
    "denoise_scale": "--denoise --denoise-scale",
}
"""Command-line names of fields whose name is not ``--field-name``."""


@dataclass(frozen=True)
class ModelUsed:
    """The checkpoint a run sampled with: its path, how it was named, its id (``run@step``) and the
    SHA-256 of its file, which identifies it wherever the run's output is recorded."""

    path: Path
    source: str
    id: str
    sha256: str

    @classmethod
    def of(cls, checkpoint: Checkpoint, source: str) -> ModelUsed:
        return cls(checkpoint.path, source, checkpoint.model_id, checkpoint.sha256)

    def __str__(self) -> str:
        return f"{self.path} ({self.source}), {self.id}"

    def to_dict(self) -> dict[str, str]:
        """The keys :data:`MODEL_KEYS` names."""
        return {"model": str(self.path), "model_source": self.source, "model_id": self.id, "model_sha256": self.sha256}


MODEL_KEYS = ("model", "model_source", "model_id", "model_sha256")
"""The keys naming the model in the ``--json`` of every command that samples (:meth:`ModelUsed.to_dict`)."""


@dataclass
class GenerateSummary:
    """What a run did. ``skipped``: samples already written by an earlier run; ``failed``: one
    message per failure; ``failed_samples``: the requested samples not written, of ``requested``
    (``n`` for every mask found, skipped bad masks included)."""

    out: Path
    model: ModelUsed
    masks: int
    written: int
    skipped: int
    failed: list[str] = field(default_factory=list)
    diverged_draws: int = 0
    seconds: float = 0.0
    preview: Path | None = None
    preview_masks: int = 0
    """Masks shown in the preview (the first :data:`PREVIEW_MASKS` with samples)."""
    requested: int = 0
    failed_samples: int = 0
    allowed_failed: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Every requested sample is written (now or by an earlier run)."""
        return self.failed_samples == 0

    @property
    def accepted(self) -> bool:
        """Complete, or the samples not written are at most the ``allowed_failed`` fraction."""
        return self.complete or self.failed_samples / self.requested <= self.allowed_failed

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            **self.model.to_dict(),
            "masks": self.masks,
            "written": self.written,
            "skipped": self.skipped,
            "requested": self.requested,
            "failed": self.failed_samples,
            "failures": self.failed,
            "complete": self.complete,
            "allowed_failed_fraction": self.allowed_failed,
            "accepted": self.accepted,
            "diverged_draws": self.diverged_draws,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_second, 3),
            "preview": str(self.preview) if self.preview else None,
            "preview_masks": self.preview_masks,
        }


def find_model(named: str | Path | None) -> tuple[Path, str]:
    """The checkpoint a command samples with, and how it was named: ``--model``, else
    ``$FGAUG_MODEL``; :data:`DEMO_MODEL` in either names the bundled toy-world demo model. fgaug
    never picks a model nobody named: naming none is a :class:`UsageError`."""
    if named:
        given, source = str(named), "--model"
    elif os.environ.get(MODEL_ENVIRONMENT_VARIABLE):
        given, source = os.environ[MODEL_ENVIRONMENT_VARIABLE], f"${MODEL_ENVIRONMENT_VARIABLE}"
    else:
        raise UsageError(
            f"no model named: pass --model CHECKPOINT (--model {DEMO_MODEL} for the bundled toy-world model) "
            f"or set ${MODEL_ENVIRONMENT_VARIABLE}"
        )
    if given == DEMO_MODEL:
        source = f"{source} {DEMO_MODEL}: the bundled toy-world model"
    return model_path(given), source


def load_named_model(named: str | Path | None, device: torch.device | str = "cpu") -> tuple[Checkpoint, ModelUsed]:
    """The checkpoint :func:`find_model` finds, loaded on ``device``, and what identifies it."""
    path, source = find_model(named)
    checkpoint = load_checkpoint(path, device)
    return checkpoint, ModelUsed.of(checkpoint, source)


def check_modes(options: GenerateOptions) -> None:
    """Refuse option combinations that mean nothing, in one line each."""
    plain = (
        options.samples_per_mask == 1
        and options.best_of == 1
        and not options.reject_fraction
        and options.allocate == "uniform"
    )
    if options.content_from and not plain:
        raise UsageError(
            "--content-from writes one content-transferred photo per layout: use it with --samples 1 alone"
        )
    if options.content_fill not in CONTENT_FILLS:
        raise UsageError(f"--content-fill must be one of {', '.join(CONTENT_FILLS)}, got {options.content_fill!r}")
    if options.content_fill != "transfer" and not (options.content_from and options.keep_unchanged):
        raise UsageError("--content-fill prior draws the edited regions of --content-from with the rest kept real")
    if not options.keep_unchanged and not options.content_from:
        raise UsageError("--no-keep-unchanged is an option of --content-from: name the tree the layouts came from")
    if options.ignore_segmenter and options.content_from:
        raise UsageError("--ignore-map marks drawn samples; --content-from keeps real pixels and writes no ignore map")
    if options.class_weights is not None and options.allocate != "weights":
        raise UsageError("--class-weights is read by --allocate weights alone; add it, or drop --class-weights")
    if options.style_seeds is not None:
        check_styles(options)


def check_styles(options: GenerateOptions) -> None:
    """Style seeds give every mask one sample per style: refuse what would break that."""
    styles = list(options.style_seeds or [])
    if not styles:
        raise UsageError("give at least one style seed")
    if len(set(styles)) != len(styles):
        raise UsageError(f"the style seeds {styles} repeat a style")
    if options.samples_per_mask != len(styles):
        raise UsageError(f"--samples {options.n} differs from the {len(styles)} style seeds: each style is one sample")
    for name, used in {
        "--allocate": options.allocate != "uniform",
        "--reject": bool(options.reject_fraction),
        "--content-from": bool(options.content_from),
    }.items():
        if used:
            raise UsageError(f"{name} cannot be combined with style seeds: every mask gets one sample per style")
