"""Multi-scale Glow: the source side (unconditional) and the target side (conditioned step by step).

A Glow of ``n_block`` levels maps an image to one latent per level::

    level l:  squeeze 2x2 -> K flow steps (actnorm -> 1x1 conv -> coupling) -> split
              (half the channels leave as latent z_l with a learned prior; the last level keeps none)

Both sides use the same :class:`Glow`; only their flow steps differ. A source step reports the
output of each of its three operations (:class:`StepFeatures`); the target step at the same
position takes those as its conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from fgaug.flow.conditional import (
    ConditionalActNorm,
    ConditionalAffineCoupling,
    ConditionalInvConv1x1,
    GuidedCondition,
)
from fgaug.flow.config import FullGlowConfig
from fgaug.flow.layers import (
    ActNorm,
    AffineCoupling,
    DataDependentInit,
    InvConv1x1,
    InvertibleLayer,
    SplitPrior,
    squeeze2x2,
    unsqueeze2x2,
)
from fgaug.flow.precision import current_network_dtype, network_precision


@dataclass
class StepFeatures:
    """Outputs of the three operations of one flow step: what the target side is conditioned on."""

    actnorm: Tensor
    invconv: Tensor
    coupling: Tensor


Conditions = Sequence[Sequence[StepFeatures]]
"""Per level, per flow step: the source features a target step is conditioned on."""


@dataclass
class GlowEncoding:
    """Result of :meth:`Glow.encode`.

    ``latents[l]`` is level l's latent, ``logdet`` and ``log_prior`` are per sample, so
    ``log p(x) = log_prior + logdet``. ``features`` holds every step's outputs (source side).
    """

    latents: list[Tensor]
    logdet: Tensor
    log_prior: Tensor
    features: list[list[StepFeatures]]


class FlowStep(nn.Module):
    """One flow step: actnorm -> invertible 1x1 conv -> affine coupling (conditional or not)."""

    def __init__(self, actnorm: InvertibleLayer, invconv: InvertibleLayer, coupling: InvertibleLayer) -> None:
        super().__init__()
        self.actnorm = actnorm
        self.invconv = invconv
        self.coupling = coupling

    def forward(self, x: Tensor, cond: StepFeatures | None = None) -> tuple[Tensor, Tensor, StepFeatures]:
        normalized, logdet_actnorm = self.actnorm(x, cond.actnorm if cond else None)
        mixed, logdet_invconv = self.invconv(normalized, cond.invconv if cond else None)
        y, logdet_coupling = self.coupling(mixed, cond.coupling if cond else None)
        return y, logdet_actnorm + logdet_invconv + logdet_coupling, StepFeatures(normalized, mixed, y)

    def is_initialized(self) -> bool:
        """Whether every data-initialised layer of the step has seen its first batch."""
        return all(layer.is_initialized() for layer in self.modules() if isinstance(layer, DataDependentInit))

    def inverse(self, y: Tensor, cond: StepFeatures | None = None) -> tuple[Tensor, Tensor]:
        mixed, logdet_coupling = self.coupling.inverse(y, cond.coupling if cond else None)
        normalized, logdet_invconv = self.invconv.inverse(mixed, cond.invconv if cond else None)
        x, logdet_actnorm = self.actnorm.inverse(normalized, cond.actnorm if cond else None)
        return x, logdet_actnorm + logdet_invconv + logdet_coupling


def level_shapes(channels: int, size: tuple[int, int], n_block: int) -> list[tuple[int, int, int]]:
    """(C, H, W) inside each level, after its squeeze: channels x4 per squeeze, halved per split."""
    shapes = []
    height, width = size
    for _ in range(n_block):
        channels, height, width = channels * 4, height // 2, width // 2
        shapes.append((channels, height, width))
        channels //= 2
    return shapes


def latent_shapes(channels: int, size: tuple[int, int], n_block: int) -> list[tuple[int, int, int]]:
    """(C, H, W) of each level's latent: half the level's channels, all of them at the last level."""
    shapes = level_shapes(channels, size, n_block)
    return [(c // 2, h, w) for c, h, w in shapes[:-1]] + [shapes[-1]]


class Glow(nn.Module):
    """Multi-scale Glow over a list of levels, each a list of :class:`FlowStep` and a
    :class:`SplitPrior`. ``conditions`` (per level, per step) are passed to the steps unchanged,
    ``None`` for the unconditional source side."""

    def __init__(self, levels: Sequence[Sequence[FlowStep]], priors: Sequence[SplitPrior]) -> None:
        super().__init__()
        if len(levels) != len(priors):
            raise ValueError("a Glow needs one prior per level")
        self.levels = cast(Sequence[Sequence[FlowStep]], nn.ModuleList(nn.ModuleList(steps) for steps in levels))
        self.priors = cast(Sequence[SplitPrior], nn.ModuleList(priors))
        self.gradient_checkpointing = False
        """Recompute each flow step's activations in the backward pass instead of storing them
        (a run-time choice, not part of the model's state)."""

    def _step_forward(
        self, step: FlowStep, h: Tensor, cond: StepFeatures | None
    ) -> tuple[Tensor, Tensor, StepFeatures]:
        if not (self.gradient_checkpointing and torch.is_grad_enabled() and step.is_initialized()):
            return step(h, cond)
        dtype = current_network_dtype()
        return checkpoint(
            step, h, cond, use_reentrant=False, context_fn=lambda: (nullcontext(), network_precision(dtype))
        )

    def encode(self, x: Tensor, conditions: Conditions | None = None) -> GlowEncoding:
        """Image -> latents, with per-sample log-determinant and prior log-density."""
        logdet = x.new_zeros(x.shape[0])
        log_prior = x.new_zeros(x.shape[0])
        latents: list[Tensor] = []
        features: list[list[StepFeatures]] = []
        h = x
        for index, (steps, prior) in enumerate(zip(self.levels, self.priors, strict=True)):
            h = squeeze2x2(h)
            level_features = []
            for position, step in enumerate(steps):
                h, step_logdet, step_features = self._step_forward(
                    step, h, conditions[index][position] if conditions else None
                )
                logdet = logdet + step_logdet
                level_features.append(step_features)
            features.append(level_features)
            kept, z, z_log_prob = prior.split(h)
            latents.append(z)
            log_prior = log_prior + z_log_prob
            if kept is not None:
                h = kept
        return GlowEncoding(latents, logdet, log_prior, features)

    def decode(self, latents: Sequence[Tensor], conditions: Conditions | None = None) -> tuple[Tensor, Tensor]:
        """Latents -> image, reusing the given latents exactly. Returns ``(x, logdet)`` with
        ``logdet = log|det dx/dz|`` per sample."""

        def given(index: int, kept: Tensor | None) -> tuple[Tensor, Tensor]:
            merged = self.priors[index].merge(kept, latents[index])
            return merged, merged.new_zeros(merged.shape[0])

        x, logdet, _ = self._reverse(given, conditions)
        return x, logdet

    def sample(
        self, noise: Sequence[Tensor], temperature: float, conditions: Conditions | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""Draw :math:`z_l = \mu_l + T \sigma_l \epsilon_l` level by level from the top and decode.

        ``noise`` holds one standard-normal tensor per level (shapes of :func:`latent_shapes`).
        Returns ``(x, log p(x))`` with the log-density under the untempered model.
        """

        def drawn(index: int, kept: Tensor | None) -> tuple[Tensor, Tensor]:
            return self.priors[index].sample(kept, noise[index], temperature)

        x, logdet, log_prior = self._reverse(drawn, conditions)
        return x, log_prior - logdet

    def _reverse(
        self,
        latent_at: Callable[[int, Tensor | None], tuple[Tensor, Tensor]],
        conditions: Conditions | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        h: Tensor | None = None
        logdet: Tensor | None = None
        log_prior: Tensor | None = None
        for index in reversed(range(len(self.levels))):
            h, z_log_prob = latent_at(index, h)
            logdet = h.new_zeros(h.shape[0]) if logdet is None else logdet
            log_prior = z_log_prob if log_prior is None else log_prior + z_log_prob
            steps = self.levels[index]
            for position in reversed(range(len(steps))):
                h, step_logdet = steps[position].inverse(h, conditions[index][position] if conditions else None)
                logdet = logdet + step_logdet
            h = unsqueeze2x2(h)
        assert h is not None and logdet is not None and log_prior is not None
        return h, logdet, log_prior


def build_source_glow(config: FullGlowConfig, generator: torch.Generator | None = None) -> Glow:
    """The unconditional Glow over the colour-rendered mask."""
    shapes = level_shapes(config.mask_channels, config.image_size, config.n_block)
    levels = [
        [
            FlowStep(
                ActNorm(channels),
                InvConv1x1(channels, generator),
                AffineCoupling(channels, config.coupling_hidden, config.coupling_scale_floor),
            )
            for _ in range(n_flow)
        ]
        for (channels, _, _), n_flow in zip(shapes, config.n_flow, strict=True)
    ]
    priors = [SplitPrior(channels, keep_none=index == len(shapes) - 1) for index, (channels, _, _) in enumerate(shapes)]
    return Glow(levels, priors)


def condition_shapes(config: FullGlowConfig) -> list[tuple[int, int, int]]:
    """(C, H, W) of the target side's conditions per level: the source Glow's level shapes, or
    for ``raw`` conditioning the mask squeezed l + 1 times (never split)."""
    shapes = level_shapes(config.mask_channels, config.image_size, config.n_block)
    if config.conditioning != "raw":
        return shapes
    return [(config.mask_channels * 4 ** (level + 1), h, w) for level, (_, h, w) in enumerate(shapes)]


def build_target_glow(config: FullGlowConfig, generator: torch.Generator | None = None) -> Glow:
    """The photo Glow: every actnorm, 1x1 conv and coupling conditioned on the source side, or
    only the couplings with ``conditioning="coupling"``."""
    shapes = level_shapes(config.image_channels, config.image_size, config.n_block)
    source_shapes = condition_shapes(config)
    levels = []
    for (channels, height, width), (cond_channels, _, _), n_flow in zip(
        shapes, source_shapes, config.n_flow, strict=True
    ):
        size = (height, width)
        only_coupling = config.conditioning == "coupling"
        levels.append(
            [
                FlowStep(
                    ActNorm(channels)
                    if only_coupling
                    else ConditionalActNorm(
                        channels, cond_channels, size, config.param_net_channels, config.param_net_hidden
                    ),
                    InvConv1x1(channels, generator)
                    if only_coupling
                    else ConditionalInvConv1x1(
                        channels,
                        cond_channels,
                        size,
                        config.param_net_channels,
                        config.param_net_hidden,
                        generator,
                    ),
                    ConditionalAffineCoupling(
                        channels,
                        cond_channels,
                        config.coupling_hidden,
                        config.condition_embed_hidden,
                        config.coupling_scale_floor,
                    ),
                )
                for _ in range(n_flow)
            ]
        )
    priors = [SplitPrior(channels, keep_none=index == len(shapes) - 1) for index, (channels, _, _) in enumerate(shapes)]
    return Glow(levels, priors)


def guided_conditions(conditions: Conditions, null: Conditions, weight: float) -> list[list[StepFeatures]]:
    """Every step's conditions paired with the null condition's for guidance of weight ``weight``
    (see :class:`~fgaug.flow.conditional.GuidedCondition`)."""
    return [
        [
            StepFeatures(
                GuidedCondition(real.actnorm, empty.actnorm, weight),  # type: ignore[arg-type]  # fields hold a layer's condition
                GuidedCondition(real.invconv, empty.invconv, weight),  # type: ignore[arg-type]  # fields hold a layer's condition
                GuidedCondition(real.coupling, empty.coupling, weight),  # type: ignore[arg-type]  # fields hold a layer's condition
            )
            for real, empty in zip(level, null_level, strict=True)
        ]
        for level, null_level in zip(conditions, null, strict=True)
    ]


def raw_mask_conditions(mask: Tensor, n_flow: Sequence[int]) -> list[list[StepFeatures]]:
    """C-Glow-style conditions: at level l, the mask squeezed l + 1 times, for every operation
    of every step (the same shapes as the source Glow's outputs)."""
    conditions = []
    h = mask
    for steps in n_flow:
        h = squeeze2x2(h)
        conditions.append([StepFeatures(h, h, h) for _ in range(steps)])
    return conditions
