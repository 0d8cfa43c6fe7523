"""Non-finite floats: refused where a number is an option, written as ``null`` in JSON.

NaN and the infinities are no temperature, learning rate or clipping threshold, so the API
refuses them up front (:func:`require_finite`) instead of failing later, or never. And ``NaN``
is not JSON (strict parsers refuse Python's ``NaN`` token), so every JSON document fgaug writes
goes through :func:`to_json`, where a figure that could not be computed becomes ``null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from fgaug.usage import UsageError


def require_finite(**values: float | Iterable[float] | None) -> None:
    """Raise a :class:`UsageError` (a ``ValueError``) naming the first value (or element of a sequence) that is NaN or
    infinite; ``None`` (a default) passes."""
    for name, value in values.items():
        if value is None:
            continue
        numbers = list(value) if isinstance(value, Iterable) else [value]  # a NumPy scalar is a number too
        for number in numbers:
            if not math.isfinite(number):
                raise UsageError(f"{name} must be a finite number, got {number}")


def without_non_finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float, in nested dicts, lists and tuples, replaced by
    ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: without_non_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_non_finite(item) for item in value]
    return value


def to_json(value: Any, indent: int | None = None, sort_keys: bool = True) -> str:
    """Strict JSON of ``value``: non-finite floats written as ``null``."""
    return json.dumps(without_non_finite(value), indent=indent, sort_keys=sort_keys, allow_nan=False)
