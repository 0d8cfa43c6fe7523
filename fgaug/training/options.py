"""What a training run is asked to do (:class:`TrainOptions`), what it returns
(:class:`TrainResult`), and how it stops early (:class:`TrainingStoppedError`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from fgaug.errors import FgaugError
from fgaug.finite import require_finite
from fgaug.usage import UsageError, image_size, require_at_least, require_counts, require_positive

StopReason = Literal["signal", "non-finite loss"]
"""Why a run stopped before its last step: a SIGINT or SIGTERM asked it to (it resumes where it
stopped), or the loss or its gradient was not finite for ``max_bad_steps`` steps in a row (lower
the learning rate or check the data). Validation that stops improving is no error: see
:attr:`TrainResult.stopped_early`."""


class TrainingStoppedError(FgaugError, RuntimeError):
    """Training ended early; the checkpoint ``checkpoint`` was saved. ``reason`` says why."""

    def __init__(self, message: str, checkpoint: Path | None, reason: StopReason) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.reason: StopReason = reason


CLI_NAMES = {"source_weight": "lambda", "val_data": "val", "gradient_checkpointing": "checkpointing"}
""":class:`TrainOptions` fields that ``fgaug train`` spells otherwise (``--lambda``, ...)."""


@dataclass
class TrainOptions:
    """Everything a training run depends on (``None`` means: the preset's value)."""

    data: str | Path
    run_dir: str | Path = "runs/fullglow"
    preset: str = "tiny"
    size: tuple[int, int] | None = None
    batch_size: int | None = None
    lr: float | None = None
    steps: int | None = None
    epochs: float | None = None
    source_weight: float | None = None
    conditioning: str | None = None
    noise: str | None = None
    """``uniform`` or ``gaussian:SIGMA`` (see :attr:`~fgaug.flow.config.FullGlowConfig.gaussian_noise`);
    None: the preset's (uniform)."""
    condition_dropout: float | None = None
    init_from: str | Path | None = None
    """A trained checkpoint whose weights (its EMA weights where it has them) the run starts from,
    in place of a random initialisation: fine-tuning. Its model must be the run's (same preset and
    model options); the optimiser, the warm-up and the step count start afresh."""
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    warmup_steps: int = 200
    grad_clip: float = 50.0
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    validate_every: int = 250
    sample_every: int = 500
    log_every: int = 10
    val_data: str | Path | None = None
    val_limit: int = 16
    workers: int = 2
    boundary: bool = False
    train_split: str = "train"
    val_split: str = "val"
    mask_format: str = "auto"
    snap_colors: bool = False
    skip_bad: bool = False
    max_bad_steps: int = 20
    patience: int | None = None
    """Stop after this many validations in a row without a new best validation bits/dim (None or
    0: never; 0 also switches off a patience saved in a resumed run's config)."""
    gradient_checkpointing: bool = False
    compile: bool = False
    cuda_graphs: bool | None = None
    """Replay each step's forward and backward passes from a CUDA graph (see
    :class:`~fgaug.flow.graphs.GraphedTrainingPass`): for small batches, where the host's kernel
    launches set the pace. CUDA only, one process, without checkpointing or compilation. ``None``
    (auto): on wherever that holds, falling back to eager steps with a log line where the graph's
    memory pool does not fit; ``True`` refuses a run where it cannot hold."""
    tensorboard: bool | None = None
    resume: bool = False
    exist_ok: bool = False
    given: frozenset[str] = frozenset()
    """The options given explicitly (``fgaug train`` names those on its command line or in a
    ``--config`` file): ``--resume`` compares these with the run's even where they equal the
    default, so that ``--resume --preset tiny`` on a run of another preset is refused. Not recorded
    in ``config.json``."""

    def __post_init__(self) -> None:
        """Paths are kept as text, as ``config.json`` records them; NaN, infinities and values out
        of ``fgaug train``'s ranges are refused, naming its option (:class:`UsageError`)."""
        require_finite(
            lr=self.lr,
            epochs=self.epochs,
            source_weight=self.source_weight,
            condition_dropout=self.condition_dropout,
            grad_clip=self.grad_clip,
            ema_decay=self.ema_decay,
        )
        self._check_ranges()
        self.data, self.run_dir = str(self.data), str(self.run_dir)
        self.val_data = None if self.val_data is None else str(self.val_data)
        self.init_from = None if self.init_from is None else str(self.init_from)
        self.given = frozenset(self.given)

    def _check_ranges(self) -> None:
        """The ranges ``fgaug train``'s options take, for the API too: a step count of 0 trained
        the default count, an interval of 0 divided by zero after the run folder was made."""
        counts = {
            "--steps": (self.steps, 1),
            "--batch-size": (self.batch_size, 1),
            "--checkpoint-every": (self.checkpoint_every, 1),
            "--validate-every": (self.validate_every, 1),
            "--sample-every": (self.sample_every, 1),
            "--log-every": (self.log_every, 1),
            "--seed": (self.seed, 0),
            "--warmup-steps": (self.warmup_steps, 0),
            "--patience": (self.patience, 0),
            "--workers": (self.workers, 0),
        }
        require_counts(counts)
        require_at_least("--lambda", self.source_weight, 0)
        for option, positive in (("--lr", self.lr), ("--epochs", self.epochs), ("--grad-clip", self.grad_clip)):
            require_positive(option, positive)
        for option, fraction in (("--ema-decay", self.ema_decay), ("--condition-dropout", self.condition_dropout)):
            if fraction is not None and not 0 <= fraction < 1:
                raise UsageError(f"{option} must lie in [0, 1), got {fraction:g}")
        if self.size is not None:
            self.size = image_size("--size", self.size)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        del values["given"]
        values["size"] = list(self.size) if self.size else None
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known - {"given"}}
        if values.get("size"):
            values["size"] = tuple(values["size"])
        return cls(**values)


@dataclass
class TrainResult:
    """What a training call did: its run folder and checkpoints, validation bits/dim at the first
    and last validation, and its throughput and peak memory."""

    run_dir: Path
    steps: int
    last_checkpoint: Path
    best_checkpoint: Path | None
    first_val_bpd: float | None
    last_val_bpd: float | None
    skipped_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    images: int = 0
    """Images trained on by this call's steps, over every process."""
    seconds: float = 0.0
    """Wall time of this call, start-up, validation and checkpoints included."""
    peak_memory_mib: float = 0.0
    peak_memory_kind: str = ""
    """What ``peak_memory_kind`` counts (see :func:`fgaug.runtime.peak_memory`)."""
    stopped_early: bool = False
    """Validation stopped improving for ``patience`` validations before the last step."""
    precision: str = "fp32"
    """The coupling networks' precision in this call (``auto`` resolved on its device)."""
    cuda_graphs: bool = False
    """Whether this call's steps were replayed from a CUDA graph (``auto`` resolved)."""
    skipped_groups: list[str] = field(default_factory=list)
    """Groups of the training or validation data left out by ``skip_bad``, one message each."""

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Everything but ``history`` (``fgaug train --json``)."""
        return {
            "run_dir": str(self.run_dir),
            "steps": self.steps,
            "last_checkpoint": str(self.last_checkpoint),
            "best_checkpoint": str(self.best_checkpoint) if self.best_checkpoint else None,
            "first_val_bpd": self.first_val_bpd,
            "last_val_bpd": self.last_val_bpd,
            "skipped_steps": self.skipped_steps,
            "images": self.images,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_second, 3),
            "peak_memory_mib": round(self.peak_memory_mib, 1),
            "peak_memory_kind": self.peak_memory_kind,
            "stopped_early": self.stopped_early,
            "precision": self.precision,
            "cuda_graphs": self.cuda_graphs,
            "skipped_groups": self.skipped_groups,
        }
