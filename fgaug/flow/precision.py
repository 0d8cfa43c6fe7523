"""Reduced precision for the heavy networks only, never for the invertible arithmetic.

Inside ``with network_precision(torch.bfloat16):`` the coupling networks and the condition
embeddings run under autocast; their outputs return in the input's dtype, so scales, shifts,
1x1-conv weights, log-determinants and inverses are still computed in full precision and the
flow stays exactly invertible. ``None`` (the default) runs everything in the input's dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_network_dtype: ContextVar[torch.dtype | None] = ContextVar("fgaug_network_dtype", default=None)


@contextmanager
def network_precision(dtype: torch.dtype | None) -> Iterator[None]:
    """Run the coupling and condition-embedding networks in ``dtype`` (bf16 or fp16) within the block."""
    token = _network_dtype.set(dtype)
    try:
        yield
    finally:
        _network_dtype.reset(token)


def current_network_dtype() -> torch.dtype | None:
    """The dtype set by the innermost active :func:`network_precision` (None: full precision)."""
    return _network_dtype.get()


@contextmanager
def network_autocast(device_type: str) -> Iterator[None]:
    """Autocast for one network call, as set by :func:`network_precision`."""
    dtype = _network_dtype.get()
    with torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        yield
