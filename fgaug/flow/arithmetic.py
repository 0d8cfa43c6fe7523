"""The element-wise invertible arithmetic of the flow, eager or fused.

Every layer's full-size element-wise work is one of six functions: the actnorms' scale and shift
and its inverse, the affine coupling's transform of the second channel half in each direction,
and the split prior's log-density and draw. Eagerly each is a chain of separate kernels (the
coupling's forward about eight), each reading and writing the whole tensor; ``torch.compile``
makes each one kernel per direction (:func:`fused_arithmetic`).

A layer reads its functions from its ``arithmetic`` attribute, :data:`EAGER_ARITHMETIC` unless
:func:`~fgaug.flow.compile.fuse_arithmetic` set the fused bundle on it. The eager functions are
the flow's reference: fused ones compute the same formulas, rounded in another order (each
direction's own rounding, so the flow stays invertible to float precision; the tests hold both to
the same exactness checks).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def scale_shift(x: Tensor, log_scale: Tensor, shift: Tensor) -> Tensor:
    r"""Actnorm's forward, :math:`y = (x + b) \odot e^{\log s}`."""
    return (x + shift) * torch.exp(log_scale)


def unscale_shift(y: Tensor, inverse_log_scale: Tensor, shift: Tensor) -> Tensor:
    r"""Actnorm's inverse, :math:`x = y \odot e^{-\log s} - b`, given ``inverse_log_scale`` :math:`= -\log s`."""
    return y * torch.exp(inverse_log_scale) - shift


def coupling_log_scale(raw: Tensor, floor: float) -> Tensor:
    r""":math:`\log s` with :math:`s = f + (1 - f)\,\sigma(o_1 + 2)` (Full-Glow eq. 9 with a floor f).

    Computed in log space, so it is finite for any ``raw``; ``s`` lies in ``[f, 1)``.
    """
    log_scaled_sigmoid = math.log1p(-floor) + F.logsigmoid(raw + 2.0)
    return torch.logaddexp(log_scaled_sigmoid, raw.new_full((), math.log(floor)))


def affine_coupling_forward(x: Tensor, params: Tensor, floor: float) -> tuple[Tensor, Tensor]:
    r"""Coupling transform of the second channel half, given the network output ``(o1, o2)``.

    .. math:: y_b = (x_b + o_2) \odot s, \qquad \log|\det J| = \sum \log s
    """
    x_a, x_b = x.chunk(2, dim=1)
    raw_scale, shift = params.chunk(2, dim=1)
    log_s = coupling_log_scale(raw_scale, floor)
    y_b = (x_b + shift) * torch.exp(log_s)
    return torch.cat([x_a, y_b], dim=1), log_s.sum(dim=(1, 2, 3))


def affine_coupling_inverse(y: Tensor, params: Tensor, floor: float) -> tuple[Tensor, Tensor]:
    r""":math:`x_b = y_b \odot e^{-\log s} - o_2`; the scale floor bounds
    :math:`e^{-\log s}` by ``1/floor``."""
    y_a, y_b = y.chunk(2, dim=1)
    raw_scale, shift = params.chunk(2, dim=1)
    inverse_log_s = -coupling_log_scale(raw_scale, floor)
    x_b = y_b * torch.exp(inverse_log_s) - shift
    return torch.cat([y_a, x_b], dim=1), inverse_log_s.sum(dim=(1, 2, 3))


def gaussian_log_prob(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    r"""Per-sample :math:`\sum \log \mathcal N(z; \mu, \sigma^2)`."""
    log_prob = -0.5 * (LOG_2PI + 2 * log_std + (z - mean) ** 2 * torch.exp(-2 * log_std))
    return log_prob.flatten(1).sum(dim=1)


def gaussian_sample(mean: Tensor, log_std: Tensor, noise: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    r""":math:`z = \mu + T \sigma \epsilon` for standard normal ``noise``, and :math:`\log p(z)`
    under the untempered prior."""
    z = mean + temperature * torch.exp(log_std) * noise
    return z, gaussian_log_prob(z, mean, log_std)


@dataclass(frozen=True)
class Arithmetic:
    """One implementation of the six element-wise functions (see the module docstring)."""

    scale_shift: Callable[[Tensor, Tensor, Tensor], Tensor]
    unscale_shift: Callable[[Tensor, Tensor, Tensor], Tensor]
    coupling_forward: Callable[[Tensor, Tensor, float], tuple[Tensor, Tensor]]
    coupling_inverse: Callable[[Tensor, Tensor, float], tuple[Tensor, Tensor]]
    gaussian_log_prob: Callable[[Tensor, Tensor, Tensor], Tensor]
    gaussian_sample: Callable[[Tensor, Tensor, Tensor, float], tuple[Tensor, Tensor]]


EAGER_ARITHMETIC = Arithmetic(
    scale_shift,
    unscale_shift,
    affine_coupling_forward,
    affine_coupling_inverse,
    gaussian_log_prob,
    gaussian_sample,
)


class UsesArithmetic:
    """A layer whose element-wise work goes through ``self.arithmetic`` (the eager functions
    unless :func:`~fgaug.flow.compile.fuse_arithmetic` set the fused ones)."""

    arithmetic: Arithmetic = EAGER_ARITHMETIC


@functools.cache
def fused_arithmetic() -> Arithmetic:
    """The eager functions, each compiled by ``torch.compile`` into one kernel per direction
    (inductor: C++ on the CPU, Triton on CUDA), compiled on first use per shape and dtype; one
    bundle per process, so every layer shares its compiled code."""
    eager = [getattr(EAGER_ARITHMETIC, field.name) for field in fields(Arithmetic)]
    return Arithmetic(*(torch.compile(function, fullgraph=True) for function in eager))


__all__ = [
    "EAGER_ARITHMETIC",
    "Arithmetic",
    "UsesArithmetic",
    "affine_coupling_forward",
    "affine_coupling_inverse",
    "coupling_log_scale",
    "fused_arithmetic",
    "gaussian_log_prob",
    "gaussian_sample",
    "scale_shift",
    "unscale_shift",
]
