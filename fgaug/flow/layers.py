"""Invertible layers of Glow and the one contract they all keep.

Contract (shared with :mod:`fgaug.flow.conditional`)::

    y, logdet = layer(x, cond)          # logdet = log|det dy/dx|, one value per sample, shape (B,)
    x, logdet = layer.inverse(y, cond)  # logdet = log|det dx/dy| = -(forward logdet)

Unconditional layers take ``cond=None`` and ignore it. All non-trainable state (actnorm's
initialisation flag, LU permutation, masks and signs) lives in buffers, so it survives
``state_dict`` round trips.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import conv_flop_count, flop_registry, register_flop_formula

from fgaug.flow.arithmetic import UsesArithmetic
from fgaug.flow.precision import network_autocast


class InvertibleLayer(nn.Module, ABC):
    """Base class of every invertible layer: ``forward`` and ``inverse`` return ``(output, logdet)``."""

    @abstractmethod
    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]: ...

    @abstractmethod
    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]: ...


class DataDependentInit(nn.Module):
    """Mixin for layers initialised from the first batch they see (Glow's actnorm scheme).

    The flag is a buffer (saved and loaded with the weights); a Python-side copy avoids reading the
    buffer, a device synchronisation on CUDA, on every call once it is known to be set.
    """

    initialized: Tensor

    def _register_init_flag(self) -> None:
        self.register_buffer("initialized", torch.tensor(False))
        self._known_initialized = False

    def is_initialized(self) -> bool:
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return self._known_initialized

    def _mark_initialized(self) -> None:
        self.initialized.fill_(True)
        self._known_initialized = True

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._known_initialized = False
        super()._load_from_state_dict(*args, **kwargs)


def channel_statistics(x: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Per-channel mean and log standard deviation of ``x`` (B, C, H, W) over batch and space."""
    flat = x.detach().transpose(0, 1).reshape(x.shape[1], -1).double()
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False) if flat.shape[1] > 1 else torch.ones_like(mean)
    return mean.to(x.dtype), torch.log(std + eps).to(x.dtype)


def per_sample(value: Tensor, batch: int) -> Tensor:
    """Broadcast a scalar log-determinant to one value per sample."""
    return value.expand(batch) if value.dim() == 0 else value


class ActNorm(DataDependentInit, InvertibleLayer, UsesArithmetic):
    r"""Per-channel affine normalisation with data-dependent initialisation.

    .. math:: y = (x + b) \odot e^{\log s}, \qquad \log|\det J| = H W \sum_c \log s_c

    On the first forward pass (while ``initialized`` is false) ``b = -mean`` and
    ``log s = -log std`` of that batch, so its output has zero mean and unit variance per channel.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self._register_init_flag()

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        mean, log_std = channel_statistics(x)
        self.shift.copy_(-mean.view_as(self.shift))
        self.log_scale.copy_(-log_std.view_as(self.log_scale))
        self._mark_initialized()

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self.is_initialized():
            self.initialize(x)
        logdet = x.shape[2] * x.shape[3] * self.log_scale.sum()
        return self.arithmetic.scale_shift(x, self.log_scale, self.shift), per_sample(logdet, x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = -y.shape[2] * y.shape[3] * self.log_scale.sum()
        return self.arithmetic.unscale_shift(y, -self.log_scale, self.shift), per_sample(logdet, y.shape[0])


def random_rotation_lu(channels: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """LU factors of a random rotation ``W0 = P L (U + diag(sign * exp(log_s)))`` (Glow's init).

    Returns ``permutation``, ``lower`` (unit diagonal dropped), ``upper`` (strictly upper),
    ``sign`` and ``log_s``, all float32.
    """
    q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator, dtype=torch.float64))
    permutation, lower, upper = torch.linalg.lu(q)
    diagonal = torch.diagonal(upper)
    return {
        "permutation": permutation.float(),
        "lower": torch.tril(lower, -1).float(),
        "upper": torch.triu(upper, 1).float(),
        "sign": torch.sign(diagonal).float(),
        "log_s": torch.log(diagonal.abs()).float(),
    }


def lu_triangles(lower: Tensor, upper: Tensor, sign: Tensor, log_s: Tensor) -> tuple[Tensor, Tensor]:
    r"""The triangular factors :math:`L + I` and :math:`U + \mathrm{diag}(\mathrm{sign}\, e^{\log s})`.

    ``lower`` and ``upper`` are masked here, so any values on or beyond the diagonal are ignored.
    Works on single matrices (C, C) and on batches (B, C, C).
    """
    eye = torch.eye(lower.shape[-1], dtype=lower.dtype, device=lower.device)
    return torch.tril(lower, -1) + eye, torch.triu(upper, 1) + torch.diag_embed(sign * torch.exp(log_s))


def matrix_product(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for single matrices or equal batches, without ``matmul``'s broadcasting steps."""
    return torch.bmm(a, b) if a.dim() == 3 else torch.mm(a, b)


class PermutedLU(nn.Module):
    r"""The fixed permutation P of an LU-parameterised 1x1 convolution and the weight it composes.

    P is kept as the matrix (a buffer saved with the weights) and as the row order it stands
    for, :math:`(P A)_i = A_{\mathrm{order}(i)}` (derived, refreshed whenever P is loaded), so that
    it is applied by indexing, which is exact, rather than by a matrix product.
    """

    permutation: Tensor
    row_order: Tensor

    def _register_permutation(self, permutation: Tensor) -> None:
        self.register_buffer("permutation", permutation)
        self.register_buffer("row_order", permutation.argmax(dim=1), persistent=False)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.row_order.copy_(self.permutation.argmax(dim=1))

    def compose(self, unit_lower: Tensor, upper: Tensor) -> Tensor:
        r""":math:`W = P (L + I) (U + \mathrm{diag}(s))` from the two triangles, (C, C) or (B, C, C)."""
        return matrix_product(unit_lower, upper).index_select(-2, self.row_order)

    def compose_inverse(self, unit_lower: Tensor, upper: Tensor) -> Tensor:
        r""":math:`W^{-1} = (U + \mathrm{diag}(s))^{-1} (L + I)^{-1} P^\top`, by two triangular solves
        (the first with right-hand side :math:`P^\top`), never a general matrix inverse."""
        lower_solved = torch.linalg.solve_triangular(unit_lower, self.permutation.mT, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, lower_solved, upper=True)


def apply_channel_matrix(x: Tensor, weight: Tensor) -> Tensor:
    """Apply ``weight`` (C, C) or per-sample (B, C, C) to every pixel of ``x`` (B, C, H, W)."""
    if weight.dim() == 2:
        return F.conv2d(x, weight[:, :, None, None])
    batch, channels, height, width = x.shape
    return torch.bmm(weight, x.reshape(batch, channels, height * width)).view(batch, -1, height, width)


class InvConv1x1(PermutedLU, InvertibleLayer):
    r"""Invertible 1x1 convolution in LU form (Glow, section 3.2).

    .. math:: y_{:,h,w} = W x_{:,h,w}, \quad W = P L (U + \mathrm{diag}(\mathrm{sign}\, e^{\log s})),
              \quad \log|\det J| = H W \sum_c \log s_c

    P and the signs are fixed buffers; L, U and log s are learned. The inverse uses triangular
    solves, never a general matrix inverse.
    """

    sign: Tensor

    def __init__(self, channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        factors = random_rotation_lu(channels, generator)
        self._register_permutation(factors["permutation"])
        self.register_buffer("sign", factors["sign"])
        self.lower = nn.Parameter(factors["lower"])
        self.upper = nn.Parameter(factors["upper"])
        self.log_s = nn.Parameter(factors["log_s"])

    def triangles(self) -> tuple[Tensor, Tensor]:
        return lu_triangles(self.lower, self.upper, self.sign, self.log_s)

    def weight(self) -> Tensor:
        return self.compose(*self.triangles())

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = x.shape[2] * x.shape[3] * self.log_s.sum()
        return apply_channel_matrix(x, self.weight()), per_sample(logdet, x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = -y.shape[2] * y.shape[3] * self.log_s.sum()
        return apply_channel_matrix(y, self.compose_inverse(*self.triangles())), per_sample(logdet, y.shape[0])


class NetworkConv2d(nn.Conv2d):
    """The convolution of the networks: ``nn.Conv2d`` (zero padding), run by oneDNN on an AVX-512
    CPU in float32.

    For a batch of one, torch runs a 3x3 convolution over at most 20,480 input values, and on one
    thread any 1x1 convolution, as im2col and a BLAS product, which reached 80 GFLOP/s on one core
    of an AMD EPYC with AVX-512 where oneDNN reached 150-175: 1.4-2x faster on the coupling
    networks' input and hidden convolutions (``benchmarks/host_overhead.py``). On an
    AVX2-only EPYC (Zen 3) it was the other way round: a sampling call at 2x4 @ 32x64 took 81.0 ms
    of CPU time with torch's choice against 87.5 with oneDNN, timed interleaved. So there, as on
    every CPU whose torch kernels run below AVX-512 (:func:`onednn_convolves`), on other devices and
    dtypes, under autocast (which casts ``conv2d``, not this) and under ``torch.compile``, it is
    ``nn.Conv2d``. The backward pass is torch's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if not onednn_convolves(input, weight):
            return super()._conv_forward(input, weight, bias)
        return torch.ops.aten.mkldnn_convolution(
            input, weight, bias, self.padding, self.stride, self.dilation, self.groups
        )


def onednn_convolves(x: Tensor, weight: Tensor) -> bool:
    """Whether :class:`NetworkConv2d` calls oneDNN itself for this input and weight: float32 on a
    CPU where :func:`onednn_preferred`, outside autocast and ``torch.compile``."""
    return (
        not torch.compiler.is_compiling()
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and onednn_preferred()
    )


def onednn_preferred() -> bool:
    """Whether this CPU's float32 network convolutions go to oneDNN: torch's kernels run AVX-512
    (``torch.backends.cpu.get_cpu_capability()``; an AMX CPU reports AVX512 too) and oneDNN is
    available and enabled."""
    return (
        torch.backends.cpu.get_cpu_capability() == "AVX512"
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
    )


if torch.ops.aten.mkldnn_convolution not in flop_registry:  # FlopCounterMode counts what it does

    @register_flop_formula(torch.ops.aten.mkldnn_convolution)
    def _onednn_convolution_flops(x_shape: Any, w_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return conv_flop_count(x_shape, w_shape, out_shape)


class ZeroConv2d(nn.Module):
    r"""3x3 convolution initialised to output zero, with Glow's learned output gain
    :math:`e^{3 g}` so the layer starts as the identity-preserving zero map."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = NetworkConv2d(in_channels, out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(cast(Tensor, self.conv.bias))
        self.log_gain = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.exp(3 * self.log_gain)


class CouplingNetwork(nn.Module):
    """The network inside an affine coupling: conv3x3 -> ReLU -> conv1x1 -> ReLU -> zero conv3x3.

    A conditional coupling feeds it the channel concatenation of the kept half and the embedded
    condition: one convolution over the concatenation runs about twice as fast as two
    convolutions summed (measured with oneDNN), whatever the number of samples per condition.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int) -> None:
        super().__init__()
        self.input_conv = NetworkConv2d(in_channels, hidden, kernel_size=3, padding=1)
        self.hidden_conv = NetworkConv2d(hidden, hidden, kernel_size=1)
        self.output_conv = ZeroConv2d(hidden, out_channels)
        for conv in (self.input_conv, self.hidden_conv):
            nn.init.normal_(conv.weight, 0.0, 0.05)
            nn.init.zeros_(cast(Tensor, conv.bias))
        channels_last_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        hidden = F.relu(self.input_conv(x), inplace=True)
        hidden = F.relu(self.hidden_conv(hidden), inplace=True)
        return self.output_conv(hidden)


def run_network(network: nn.Module, x: Tensor) -> Tensor:
    """Run one of the heavy networks (a coupling network, a condition embedding) on channels-last
    input in the precision set by :func:`~fgaug.flow.precision.network_precision`; the output comes
    back contiguous and in ``x``'s dtype, for the invertible arithmetic."""
    with network_autocast(x.device.type):
        output = network(channels_last(x))
    return (output if output.dtype == x.dtype else output.to(x.dtype)).contiguous()


def channels_last(x: Tensor) -> Tensor:
    """Wide convolutions run 25-35% faster on channels-last input (oneDNN on CPU, cuDNN on GPU);
    measured in ``benchmarks/core_speed.py``."""
    return x.contiguous(memory_format=torch.channels_last)


def channels_last_weights(network: nn.Module) -> None:
    """Store the convolution weights of a network that :func:`run_network` runs in the layout of
    its input, channels-last: a convolution would otherwise copy its weight to that layout on
    every call. The values and so every output are unchanged; checkpoints load either way."""
    network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to's stubs lack it


def repeat_to_batch(value: Tensor, batch: int) -> Tensor:
    """Repeat each of the ``Bc`` entries of ``value`` ``batch // Bc`` times (many samples per mask)."""
    if value.shape[0] == batch:
        return value
    if value.shape[0] == 0 or batch % value.shape[0]:
        raise ValueError(f"a condition batch of {value.shape[0]} cannot serve a batch of {batch} samples")
    # expand + reshape rather than repeat_interleave, which may read its repeat count back from the GPU
    repeats = batch // value.shape[0]
    return value.unsqueeze(1).expand(-1, repeats, *value.shape[1:]).reshape(batch, *value.shape[1:])


class AffineCoupling(InvertibleLayer, UsesArithmetic):
    """Affine coupling layer of Glow: the first channel half parameterises a scale and shift of
    the second (see :func:`affine_coupling_forward`)."""

    def __init__(self, channels: int, hidden: int, scale_floor: float = 1e-3) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"affine coupling needs an even channel count, got {channels}")
        self.network = CouplingNetwork(channels // 2, channels, hidden)
        self.scale_floor = scale_floor

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        params = run_network(self.network, x.chunk(2, dim=1)[0])
        return self.arithmetic.coupling_forward(x, params, self.scale_floor)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        params = run_network(self.network, y.chunk(2, dim=1)[0])
        return self.arithmetic.coupling_inverse(y, params, self.scale_floor)


def squeeze2x2(x: Tensor) -> Tensor:
    """Space-to-depth: (B, C, H, W) -> (B, 4C, H/2, W/2)."""
    batch, channels, height, width = x.shape
    x = x.view(batch, channels, height // 2, 2, width // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(batch, channels * 4, height // 2, width // 2)


def unsqueeze2x2(y: Tensor) -> Tensor:
    """Depth-to-space, the exact inverse of :func:`squeeze2x2`."""
    batch, channels, height, width = y.shape
    y = y.view(batch, channels // 4, 2, 2, height, width)
    return y.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels // 4, height * 2, width * 2)


class Squeeze(InvertibleLayer):
    """Space-to-depth reshuffle of 2x2 neighbourhoods into channels; a permutation, so logdet = 0."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"squeeze needs even height and width, got {tuple(x.shape[2:])}")
        return squeeze2x2(x), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return unsqueeze2x2(y), y.new_zeros(y.shape[0])


class SplitPrior(nn.Module, UsesArithmetic):
    r"""Splits half the channels off into a latent with a learned Gaussian prior.

    ``z`` (the second channel half) is modelled as :math:`\mathcal N(\mu(h), \sigma(h)^2)` where
    ``h`` is the kept half and :math:`(\mu, \log\sigma)` come from a zero-initialised convolution
    (Glow's learned prior). With ``keep_none`` (the last level) the whole tensor is the latent and
    its prior is a learned per-channel Gaussian.
    """

    def __init__(self, channels: int, keep_none: bool = False) -> None:
        super().__init__()
        self.keep_none = keep_none
        if keep_none:
            self.prior_net = None
            self.top_mean = nn.Parameter(torch.zeros(1, channels, 1, 1))
            self.top_log_std = nn.Parameter(torch.zeros(1, channels, 1, 1))
        else:
            self.prior_net = ZeroConv2d(channels // 2, channels)

    def prior(self, kept: Tensor | None, like: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log std of the latent, given the kept half (or shaped ``like`` at the top)."""
        if self.prior_net is None:
            return self.top_mean.expand_as(like), self.top_log_std.expand_as(like)
        return self.prior_net(kept).chunk(2, dim=1)

    def split(self, x: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """Returns ``(kept, z, log p(z | kept))``; ``kept`` is None at the top level."""
        kept, z = (None, x) if self.keep_none else x.chunk(2, dim=1)
        mean, log_std = self.prior(kept, z)
        return kept, z, self.arithmetic.gaussian_log_prob(z, mean, log_std)

    def merge(self, kept: Tensor | None, z: Tensor) -> Tensor:
        """Exact inverse of :meth:`split` for a given latent (never re-sampled)."""
        return z if kept is None else torch.cat([kept, z], dim=1)

    def sample(self, kept: Tensor | None, noise: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
        r"""Draw :math:`z = \mu + T \sigma \epsilon` for standard normal ``noise``; returns
        ``(merged tensor, log p(z))`` with the log-density under the untempered prior."""
        mean, log_std = self.prior(kept, noise)
        z, log_prob = self.arithmetic.gaussian_sample(mean, log_std, noise, temperature)
        return self.merge(kept, z), log_prob
