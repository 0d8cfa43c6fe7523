"""Where a training run stands (:class:`TrainState`): the counters a checkpoint carries and
``--resume`` reads back, listed once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fgaug.usage import UsageError


@dataclass
class TrainState:
    """The counters of a run. A checkpoint's ``training`` entry holds them as keys of their own
    names, beside the optimiser's, the gradient scaler's and the weight average's states; a counter
    added here is saved and restored with no other edit, and a checkpoint written before it existed
    resumes with its default."""

    step: int = 0
    """Optimiser steps taken (a skipped step is not one)."""
    skipped: int = 0
    """Steps skipped because the loss or its gradient was not finite."""
    best_val: float = math.inf
    """The lowest validation bits/dim so far: that of ``checkpoints/best.pt``."""
    since_best: int = 0
    """Validations since the best one, which ``patience`` counts."""
    first_val: float | None = None
    """The first validation bits/dim of the run (None before any)."""
    last_val: float | None = None
    """The latest validation bits/dim (None before any)."""
    stand_ins: list[str] = field(default_factory=list)
    """The pairs ``--skip-bad`` replaced because their pixels failed, one message each, as this
    process read them (a resumed run lists them again, though it may not read them again)."""

    def record_validation(self, value: float) -> bool:
        """Count a validation's bits/dim ``value``; whether it is the best so far."""
        self.first_val = value if self.first_val is None else self.first_val
        self.last_val = value
        if value < self.best_val:
            self.best_val, self.since_best = value, 0
            return True
        self.since_best += 1
        return False

    def refuse_fewer_steps(self, total_steps: int, run_dir: str | Path) -> None:
        """Refuse to resume a run already past ``total_steps`` (``--resume --steps 3`` at step 12
        exited 0 and recorded 3 steps for a checkpoint of 12)."""
        if self.step > total_steps:
            raise UsageError(
                f"--steps {total_steps}: {run_dir} is at step {self.step} already; give more, or leave --steps out"
            )

    def to_dict(self) -> dict[str, Any]:
        """The counters as a checkpoint's ``training`` entry holds them."""
        return asdict(self)

    @classmethod
    def from_dict(cls, training: Mapping[str, Any]) -> TrainState:
        """The counters of a checkpoint's ``training`` entry; its other keys are left alone, and a
        counter it lacks takes its default."""
        return cls(**{field.name: training[field.name] for field in fields(cls) if field.name in training})
