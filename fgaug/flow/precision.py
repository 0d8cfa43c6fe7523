"""Reduced precision for the heavy networks only, never for the invertible arithmetic.

Inside ``with network_precision(torch.bfloat16):`` the coupling networks and the condition
embeddings run under autocast; their outputs return in the input's dtype, so scales, shifts,
1x1-conv weights, log-determinants and inverses are still computed in full precision and the
flow stays exactly invertible. ``None`` (the default) runs everything in the input's dtype.

``torch.float32`` (:data:`TF32`) keeps the networks in float32 but lets CUDA run their
convolutions and matrix products on TF32 tensor cores (10-bit mantissa products, float32
accumulation); outside the network calls TF32 stays off, so the invertible 1x1 convolution and
its inverse are never rounded. A network gives the same output for the same input in either
direction, which is all exact invertibility asks of it. A training step's backward pass runs
after the network calls have returned, so it enters :func:`backward_precision`: TF32 for the
whole pass, whose gradients are no part of the flow's exactness.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar

import torch

TF32 = torch.float32
"""The network dtype that means "float32 networks on TF32 tensor cores"."""

_network_dtype: ContextVar[torch.dtype | None] = ContextVar("fgaug_network_dtype", default=None)


@contextmanager
def network_precision(dtype: torch.dtype | None) -> Iterator[None]:
    """Run the coupling and condition-embedding networks in ``dtype`` (bf16, fp16 or :data:`TF32`) within the block."""
    token = _network_dtype.set(dtype)
    try:
        yield
    finally:
        _network_dtype.reset(token)


def current_network_dtype() -> torch.dtype | None:
    """The dtype set by the innermost active :func:`network_precision` (None: full precision)."""
    return _network_dtype.get()


def network_autocast(device_type: str) -> AbstractContextManager[None]:
    """Autocast (or TF32) for one network call, as set by :func:`network_precision`; nothing to
    enter (not even autocast switched off) where no precision is set and no autocast is on."""
    dtype = _network_dtype.get()
    if dtype is None and not torch.is_autocast_enabled(device_type):
        return _NOTHING
    if dtype == TF32:
        return tf32_allowed()
    # no weight cache: each network call is its own autocast region, so a cache would only be
    # refilled per call, and CUDA-graph capture (fgaug.flow.graphs) requires it off
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None, cache_enabled=False)


_NOTHING = nullcontext()


def backward_precision() -> AbstractContextManager[None]:
    """TF32 for a backward pass where :func:`network_precision` set :data:`TF32` (nothing else).
    The TF32 flags are read as each kernel runs, so the networks' backward kernels, which run
    after their forward calls have restored the flags, ran in full float32. The whole pass gets
    TF32: it computes gradients only, while the values and log-determinants of both directions
    come from the forward pass. (bf16 and fp16 need nothing: autocast records each network's
    dtype in its graph.)"""
    return tf32_allowed() if _network_dtype.get() == TF32 else _NOTHING


@contextmanager
def tf32_allowed() -> Iterator[None]:
    """Allow TF32 for CUDA float32 convolutions and matrix products within the block only."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
