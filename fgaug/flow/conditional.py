"""Conditional invertible layers of Full-Glow's target side (paper section 4).

Every operation of a target flow step gets its parameters from the output of the *same*
operation in the source Glow, through a conditioning network (CN):

* :class:`ConditionalActNorm`:  ``log s, b = CN(source actnorm output)``
* :class:`ConditionalInvConv1x1`: ``L, U, log s = CN(source 1x1-conv output)``, a per-sample W
* :class:`ConditionalAffineCoupling`: ``o1, o2 = NN(x_a, embed(source coupling output))``

They keep the contract of :mod:`fgaug.flow.layers`. A condition batch may be smaller than the
data batch when several samples share one mask: ``Bc`` conditions serve ``B = k * Bc`` samples,
sample ``i`` using condition ``i // k``. The conditioning networks then run once per mask.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fgaug.flow.arithmetic import UsesArithmetic
from fgaug.flow.layers import (
    CouplingNetwork,
    DataDependentInit,
    InvertibleLayer,
    NetworkConv2d,
    PermutedLU,
    apply_channel_matrix,
    channel_statistics,
    channels_last_weights,
    random_rotation_lu,
    repeat_to_batch,
    run_network,
)


@dataclass(frozen=True)
class GuidedCondition:
    r"""A condition for classifier-free guidance: the real one, the null one and the weight w.

    A conditional layer given one runs each of its conditioning networks on both and extrapolates
    the network's output away from the null condition's,

    .. math:: o = o_c + w\,(o_c - o_\varnothing),

    before the output becomes actnorm's log-scale and shift, the 1x1 convolution's LU factors or
    the coupling's pre-sigmoid scale and shift. Every such output gives an invertible layer
    whatever its value (the scale is a sigmoid of it, the diagonal an exponential), so a guided
    flow is exactly invertible and its log-determinant exact; w = 0 is the unguided layer. The
    null condition may be a batch of one serving every condition."""

    condition: Tensor
    null: Tensor
    weight: float


Condition = Tensor | GuidedCondition


def guided_output(network_output: Callable[[Tensor], Tensor], cond: Condition | None) -> Tensor:
    """``network_output(cond)``, or for a :class:`GuidedCondition` the guided extrapolation of it."""
    if not isinstance(cond, GuidedCondition):
        return network_output(cond)  # type: ignore[arg-type]  # check_condition inside refuses None
    conditional, unconditional = network_output(cond.condition), network_output(cond.null)
    return conditional + cond.weight * (conditional - unconditional)


def check_condition(layer: nn.Module, cond: Tensor | None, expected: tuple[int, int, int]) -> Tensor:
    """Raise a clear error unless ``cond`` is a (B, C, H, W) tensor with (C, H, W) == ``expected``."""
    if cond is None:
        raise ValueError(
            f"{type(layer).__name__} needs a condition tensor of shape (B, {', '.join(map(str, expected))})"
        )
    if cond.dim() != 4 or tuple(cond.shape[1:]) != expected:
        raise ValueError(
            f"{type(layer).__name__} expects a condition of shape (B, {', '.join(map(str, expected))}), "
            f"got {tuple(cond.shape)}"
        )
    return cond


class ParameterNetwork(nn.Module):
    """CN of the conditional actnorm and 1x1 conv: three convolutions, then four fully connected
    layers (paper section 5: "three convolutional layers followed by four fully connected layers").

    Convolutions: 1x1, 3x3, 3x3 (padding 1), ReLU after each; the flattened map feeds the fully
    connected layers, so the network is tied to the spatial size it was built for. The last
    layer has zero weights: its output starts as its bias, the same for every condition, which is
    how the data-dependent and the random-rotation initialisations are set.

    ``forward`` calls the layers' functions on their weights: on layers this small, a module call
    per layer (and per ReLU) took a quarter of the network's time.
    """

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        out_features: int,
        conv_channels: tuple[int, int, int] = (8, 4, 2),
        hidden: tuple[int, int, int] = (32, 64, 48),
    ) -> None:
        super().__init__()
        c1, c2, c3 = conv_channels
        self.convs = every_other(
            nn.Conv2d(in_channels, c1, kernel_size=1),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
        )
        h1, h2, h3 = hidden
        self.fully_connected = every_other(nn.Linear(c3 * size[0] * size[1], h1), nn.Linear(h1, h2), nn.Linear(h2, h3))
        self.output = nn.Linear(h3, out_features)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, cond: Tensor) -> Tensor:
        hidden = cond
        for conv in cast(list[nn.Conv2d], self.convs):
            hidden = torch.relu_(F.conv2d(hidden, conv.weight, conv.bias, padding=conv.padding))
        hidden = hidden.flatten(1)
        for linear in cast(list[nn.Linear], self.fully_connected):
            hidden = torch.relu_(F.linear(hidden, linear.weight, linear.bias))
        return F.linear(hidden, self.output.weight, self.output.bias)


def every_other(*layers: nn.Module) -> nn.Sequential:
    """The layers in a Sequential under the names 0, 2, 4, ...: ReLU modules once sat between them,
    and saved models keep those state-dict keys."""
    return nn.Sequential(OrderedDict((str(2 * index), layer) for index, layer in enumerate(layers)))


class ConditionalActNorm(DataDependentInit, InvertibleLayer, UsesArithmetic):
    r"""Actnorm whose scale and shift come from the source side.

    .. math:: (\log s, b) = \mathrm{CN}(c), \quad y = (x + b) \odot e^{\log s},
              \quad \log|\det J| = H W \sum_c \log s_c \ \text{(per sample)}

    Initialisation (paper eq. 5): the CN's output weights are zero and its bias is set from the
    first batch so that the output has zero mean and unit variance per channel.
    """

    def __init__(
        self,
        channels: int,
        cond_channels: int,
        size: tuple[int, int],
        conv_channels: tuple[int, int, int] = (8, 4, 2),
        hidden: tuple[int, int, int] = (32, 64, 48),
    ) -> None:
        super().__init__()
        self.channels = channels
        self.cond_shape = (cond_channels, *size)
        self.param_net = ParameterNetwork(cond_channels, size, 2 * channels, conv_channels, hidden)
        self._register_init_flag()

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        mean, log_std = channel_statistics(x)
        self.param_net.output.bias.copy_(torch.cat([-log_std, -mean]))
        self._mark_initialized()

    def parameters_for(self, cond: Condition | None) -> tuple[Tensor, Tensor]:
        """``(log_scale, shift)``, each (Bc, C, 1, 1)."""
        raw = guided_output(lambda c: self.param_net(check_condition(self, c, self.cond_shape)), cond)
        log_scale, shift = raw.view(-1, 2, self.channels, 1, 1).unbind(1)
        return log_scale, shift

    def forward(self, x: Tensor, cond: Condition | None = None) -> tuple[Tensor, Tensor]:
        if not self.is_initialized():
            self.initialize(x)
        log_scale, shift = self.parameters_for(cond)
        log_scale, shift = repeat_to_batch(log_scale, x.shape[0]), repeat_to_batch(shift, x.shape[0])
        logdet = x.shape[2] * x.shape[3] * log_scale.sum(dim=(1, 2, 3))
        return self.arithmetic.scale_shift(x, log_scale, shift), logdet

    def inverse(self, y: Tensor, cond: Condition | None = None) -> tuple[Tensor, Tensor]:
        log_scale, shift = self.parameters_for(cond)
        inverse_log_scale, shift = -repeat_to_batch(log_scale, y.shape[0]), repeat_to_batch(shift, y.shape[0])
        logdet = y.shape[2] * y.shape[3] * inverse_log_scale.sum(dim=(1, 2, 3))
        return self.arithmetic.unscale_shift(y, inverse_log_scale, shift), logdet


class ConditionalInvConv1x1(PermutedLU, InvertibleLayer):
    r"""Invertible 1x1 convolution whose LU factors come from the source side (paper eq. 6).

    .. math:: (L, U, \log s) = \mathrm{CN}(c), \quad W = P (L + I)(U + \mathrm{diag}(\mathrm{sign}\,
              e^{\log s})), \quad \log|\det J| = H W \sum_c \log s_c \ \text{(per sample)}

    The CN outputs exactly the free entries: C(C-1)/2 below the diagonal of L, C(C-1)/2 above the
    diagonal of U and C log-scales. P and the signs are fixed buffers from a random rotation W0,
    and the CN's bias starts at W0's factors (its weights at zero), so W = W0 for every condition
    at first. Each sample has its own W, applied by one batched matrix product; the inverse uses
    triangular solves per sample.
    """

    sign: Tensor
    lower_index: Tensor
    upper_index: Tensor
    triangle_index: Tensor
    zero_one: Tensor

    def __init__(
        self,
        channels: int,
        cond_channels: int,
        size: tuple[int, int],
        conv_channels: tuple[int, int, int] = (8, 4, 2),
        hidden: tuple[int, int, int] = (32, 64, 48),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.cond_shape = (cond_channels, *size)
        factors = random_rotation_lu(channels, generator)
        self._register_permutation(factors["permutation"])
        self.register_buffer("sign", factors["sign"])
        self.register_buffer("lower_index", torch.tril_indices(channels, channels, -1))
        self.register_buffer("upper_index", torch.triu_indices(channels, channels, 1))
        self.register_buffer("triangle_index", triangle_gather_index(channels), persistent=False)
        self.register_buffer("zero_one", torch.tensor([[0.0, 1.0]]), persistent=False)
        self.param_net = ParameterNetwork(cond_channels, size, channels * channels, conv_channels, hidden)
        rows, cols = self.lower_index
        upper_rows, upper_cols = self.upper_index
        with torch.no_grad():
            self.param_net.output.bias.copy_(
                torch.cat(
                    [
                        factors["lower"][rows, cols],
                        factors["upper"][upper_rows, upper_cols],
                        factors["log_s"],
                    ]
                )
            )

    def triangles_for(self, cond: Condition | None) -> tuple[Tensor, Tensor, Tensor]:
        r"""Per condition :math:`L + I`, :math:`U + \mathrm{diag}(\mathrm{sign}\, e^{\log s})` and
        :math:`\log s`: (Bc, C, C), (Bc, C, C), (Bc, C). Both triangles are gathered in one indexing
        from the CN's output, its diagonal and the constants 0 and 1 (see :func:`triangle_gather_index`)."""
        raw = guided_output(lambda c: self.param_net(check_condition(self, c, self.cond_shape)), cond)
        batch, channels = raw.shape[0], self.channels
        log_s = raw[:, -channels:]
        values = torch.cat([self.zero_one.expand(batch, 2), raw, self.sign * torch.exp(log_s)], dim=1)
        unit_lower, upper = values.index_select(1, self.triangle_index).view(batch, 2, channels, channels).unbind(1)
        return unit_lower, upper, log_s

    def forward(self, x: Tensor, cond: Condition | None = None) -> tuple[Tensor, Tensor]:
        unit_lower, upper, log_s = self.triangles_for(cond)
        logdet = x.shape[2] * x.shape[3] * repeat_to_batch(log_s, x.shape[0]).sum(dim=1)
        return _apply_per_condition(x, self.compose(unit_lower, upper)), logdet

    def inverse(self, y: Tensor, cond: Condition | None = None) -> tuple[Tensor, Tensor]:
        unit_lower, upper, log_s = self.triangles_for(cond)
        logdet = -y.shape[2] * y.shape[3] * repeat_to_batch(log_s, y.shape[0]).sum(dim=1)
        return _apply_per_condition(y, self.compose_inverse(unit_lower, upper)), logdet


def triangle_gather_index(channels: int) -> Tensor:
    r"""Where each entry of :math:`L + I` and then of :math:`U + \mathrm{diag}(s)` (2 C^2 entries,
    row-major) is found in ``[0, 1, CN output, diagonal]``: the CN output holds L's entries below the
    diagonal (``tril_indices`` order), U's above it (``triu_indices`` order) and the C log-scales."""
    n_off = channels * (channels - 1) // 2
    lower = torch.zeros(channels, channels, dtype=torch.long)
    upper = torch.zeros(channels, channels, dtype=torch.long)
    lower[tuple(torch.tril_indices(channels, channels, -1))] = 2 + torch.arange(n_off)
    upper[tuple(torch.triu_indices(channels, channels, 1))] = 2 + n_off + torch.arange(n_off)
    diagonal = torch.arange(channels)
    lower[diagonal, diagonal] = 1
    upper[diagonal, diagonal] = 2 + channels * channels + diagonal
    return torch.cat([lower.flatten(), upper.flatten()])


def _apply_per_condition(x: Tensor, weight: Tensor) -> Tensor:
    """Apply (Bc, C, C) matrices to a batch of ``k * Bc`` samples: one batched matrix product, or
    one convolution where a single matrix serves several samples."""
    if weight.shape[0] == 1 and x.shape[0] > 1:
        return apply_channel_matrix(x, weight[0])
    return apply_channel_matrix(x, repeat_to_batch(weight, x.shape[0]))


class ConditionalAffineCoupling(InvertibleLayer, UsesArithmetic):
    r"""Affine coupling whose network also reads the source coupling output (paper eqs. 7-10).

    .. math:: x_a, x_b = \mathrm{split}(x), \quad o_1, o_2 = \mathrm{NN}(x_a, \mathrm{CN}(c)),
              \quad s = f + (1-f)\,\sigma(o_1 + 2), \quad y_b = (x_b + o_2) \odot s

    CN is two 3x3 convolutions (ReLU) mapping the source coupling output to ``channels`` feature
    maps, as in the paper's code; NN is the Glow coupling network on the channel concatenation.
    With several samples per condition the embedding runs once per condition.
    """

    def __init__(
        self, channels: int, cond_channels: int, hidden: int, embed_hidden: int, scale_floor: float = 1e-3
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"affine coupling needs an even channel count, got {channels}")
        self.cond_channels = cond_channels
        self.condition_embedding = nn.Sequential(
            NetworkConv2d(cond_channels, embed_hidden, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            NetworkConv2d(embed_hidden, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )
        channels_last_weights(self.condition_embedding)
        self.network = CouplingNetwork(channels // 2 + channels, channels, hidden)
        self.scale_floor = scale_floor

    def _coupling_params(self, kept_half: Tensor, cond: Condition | None) -> Tensor:
        def network_output(cond: Tensor | None) -> Tensor:
            cond = check_condition(self, cond, (self.cond_channels, *kept_half.shape[2:]))
            embedded = run_network(self.condition_embedding, cond).to(kept_half.dtype)
            return run_network(
                self.network, torch.cat([kept_half, repeat_to_batch(embedded, kept_half.shape[0])], dim=1)
            )

        return guided_output(network_output, cond)

    def forward(self, x: Tensor, cond: Condition | None = None) -> tuple[Tensor, Tensor]:
        params = self._coupling_params(x.chunk(2, dim=1)[0], cond)
        return self.arithmetic.coupling_forward(x, params, self.scale_floor)

    def inverse(self, y: Tensor, cond: Condition | None = None) -> tuple[Tensor, Tensor]:
        params = self._coupling_params(y.chunk(2, dim=1)[0], cond)
        return self.arithmetic.coupling_inverse(y, params, self.scale_floor)


__all__ = [
    "ConditionalActNorm",
    "ConditionalAffineCoupling",
    "ConditionalInvConv1x1",
    "GuidedCondition",
    "ParameterNetwork",
    "check_condition",
]
