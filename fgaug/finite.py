"""Non-finite floats: refused where a number is an option.

NaN and the infinities are no temperature, learning rate or clipping threshold, so the API
refuses them up front (:func:`require_finite`) instead of failing later, or never.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def require_finite(**values: float | Iterable[float] | None) -> None:
    """Raise :class:`ValueError` naming the first value (or element of a sequence) that is NaN or
    infinite; ``None`` (a default) passes."""
    for name, value in values.items():
        numbers = [] if value is None else [value] if isinstance(value, int | float) else list(value)
        for number in numbers:
            if not math.isfinite(number):
                raise ValueError(f"{name} must be a finite number, got {number}")
