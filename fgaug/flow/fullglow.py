"""Full-Glow: a source Glow over the mask beside a target Glow over the photo, conditioned on it.

Images enter and leave as float tensors in [0, 1] holding 8-bit values (``k / 255``). Inside,
they are dequantised to ``y = (k + u) / 256 - 0.5``: ``u ~ U(0, 1)`` for the training objective
and likelihoods, ``u = 1/2`` (the bin centre) where a deterministic encoding is needed (the
condition of :meth:`FullGlow.sample`, :meth:`FullGlow.encode`).

The objective (paper eq. 11), per pair, in bits per dimension::

    loss = lambda * bpd(x_a) + bpd(x_b | x_a),
    bpd(x) = (-log p(y) + D log 256) / (D log 2)   (D = number of dimensions of x)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fgaug.errors import FgaugError
from fgaug.flow.config import FullGlowConfig
from fgaug.flow.glow import (
    GlowEncoding,
    StepFeatures,
    build_source_glow,
    build_target_glow,
    guided_conditions,
    latent_shapes,
    raw_mask_conditions,
)


class SamplingError(FgaugError, ValueError):
    """A sampling setting out of its range, or one this model cannot honour (guidance without
    condition dropout, denoising without Gaussian noise, denoising in a CUDA-graph replay)."""


@dataclass
class FullGlowOutput:
    """Training objective and its parts; the per-sample terms have shape (B,)."""

    loss: Tensor
    source_bpd: Tensor
    conditional_bpd: Tensor


DIVERGED_MAGNITUDE = 50.0
"""A reverse pass whose output leaves ``[-50, 50]`` anywhere (the data lies in ``[-0.5, 0.5]``)
has diverged: an affine coupling amplified a patch until it saturates or overflows. Healthy
samples of a trained model stay within a few units; diverged ones reach 1e3 to inf."""


@dataclass
class Samples:
    """``images`` (B, n, C, H, W) in [0, 1]; ``log_likelihood`` (B, n): log p(sample | mask) in nats
    under the model (the dequantised continuous density), for best-of-K selection; ``diverged``
    (B, n): the reverse pass blew up (see :data:`DIVERGED_MAGNITUDE`), and the log-likelihood is
    then ``-inf`` so that no selection picks it.

    With guidance the log-likelihood is the guided flow's density of the draw; with denoising it
    is the density of the draw before its score step (the denoised image is not a draw of the
    flow, and its density would cost one more forward pass)."""

    images: Tensor
    log_likelihood: Tensor
    diverged: Tensor


@dataclass
class DequantizationOffsets:
    """The random parts of one training batch, as :meth:`FullGlow.forward` draws them from a
    generator, in this order: the mask's dequantisation offsets ``u`` (None without a source Glow,
    whose ``raw`` conditioning is never noised), the photo's offsets from the bin's lower edge in
    bins (uniform ``u``, or ``1/2 + 256 sigma eps`` for a Gaussian-noise model), and, for a model
    trained with condition dropout, ``mask_keep`` (B,): 1 where the mask is kept, 0 where it is
    replaced by the null condition."""

    mask: Tensor | None
    photo: Tensor
    mask_keep: Tensor | None = None


def dequantize(
    images: Tensor, noise: bool, generator: torch.Generator | None = None, offset: Tensor | None = None
) -> Tensor:
    """[0, 1] 8-bit images -> ``(k + u) / 256 - 0.5`` with uniform ``u`` (``noise``) or ``u = 1/2``.
    ``offset`` gives ``u`` itself; else a ``generator`` draws it on the CPU, the same on every device."""
    bins = torch.round(images.clamp(0, 1) * 255)
    if noise and generator is not None:
        offset = torch.rand(bins.shape, generator=generator)
    if noise and offset is not None:
        offset = to_device(offset, bins)
    elif noise:
        offset = torch.rand(bins.shape, device=bins.device, dtype=bins.dtype)
    else:
        offset = torch.full_like(bins, 0.5)
    return (bins + offset) / 256 - 0.5


def to_device(tensor: Tensor, like: Tensor) -> Tensor:
    """``tensor`` (drawn on the CPU) on ``like``'s device and dtype, copied without a host sync."""
    tensor = tensor.pin_memory() if like.is_cuda and not tensor.is_cuda else tensor
    return tensor.to(like.device, like.dtype, non_blocking=True)


def quantize(y: Tensor) -> Tensor:
    """Inverse of :func:`dequantize`: the 8-bit bin of ``y``, as a float image in [0, 1]. A NaN
    (from a diverged reverse pass) becomes mid-grey, so that every image is a valid 8-bit one.

    ``k / 255`` is divided in float64 and rounded once to float32: CUDA divides a float32 tensor
    by a scalar as a product with the reciprocal, one unit in the last place away from the CPU's
    quotient, and the same 8-bit image must be the same float tensor on every device."""
    bins = torch.floor((torch.nan_to_num(y, nan=0.0) + 0.5) * 256).clamp(0, 255)
    return (bins.double() / 255).to(y.dtype)


def bits_per_dim(log_density: Tensor, dims: int) -> Tensor:
    """Discrete bits per dimension from the continuous log-density of the dequantised data."""
    return (-log_density + dims * math.log(256)) / (dims * math.log(2))


class FullGlow(nn.Module):
    """The Full-Glow model (Sorkhei et al., 2021): learns p(photo | mask) and p(mask).

    All methods take ``mask`` as (B, mask_channels, H, W) and photos as (B, 3, H, W), in [0, 1],
    at ``config.image_size``.
    """

    def __init__(self, config: FullGlowConfig, seed: int = 0) -> None:
        """All initial weights derive from ``seed`` (the global random state is left untouched)."""
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.source = build_source_glow(config, generator) if config.conditioning != "raw" else None
            self.target = build_target_glow(config, generator)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute every flow step in the backward pass (both Glows): activation memory falls
        from all steps' to about one step's, for roughly one more forward pass of compute."""
        for glow in (self.source, self.target):
            if glow is not None:
                glow.gradient_checkpointing = enabled

    # ----------------------------------------------------------------------------- helpers
    def _check(self, tensor: Tensor, channels: int, what: str) -> None:
        """A ``what`` tensor this model reads: shape (B >= 1, channels, H, W) at its size, and
        floating point in the model's dtype (a uint8 photo of 0-255 gave a loss and latents of
        nonsense without a word)."""
        expected = (channels, *self.config.image_size)
        if tensor.dim() != 4 or tuple(tensor.shape[1:]) != expected or tensor.shape[0] == 0:
            raise ValueError(
                f"{what} must have shape (B, {', '.join(map(str, expected))}) for this model, B >= 1, "
                f"got {tuple(tensor.shape)}"
            )
        if not tensor.is_floating_point():
            raise ValueError(f"{what} must be a float tensor in [0, 1] (image / 255), got {tensor.dtype}")
        dtype = next(self.parameters()).dtype
        if tensor.dtype != dtype:
            raise ValueError(f"{what} is {tensor.dtype} and this model {dtype}: convert one, e.g. {what}.to({dtype})")

    def _check_pair(self, mask: Tensor, photo: Tensor) -> None:
        self._check(mask, self.config.mask_channels, "mask")
        self._check(photo, self.config.image_channels, "photo")
        if mask.shape[0] != photo.shape[0]:
            raise ValueError(f"mask batch {mask.shape[0]} and photo batch {photo.shape[0]} differ")

    @property
    def target_dims(self) -> int:
        height, width = self.config.image_size
        return self.config.image_channels * height * width

    @property
    def source_dims(self) -> int:
        height, width = self.config.image_size
        return self.config.mask_channels * height * width

    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes (C, H, W) of the photo latents, one per level."""
        return latent_shapes(self.config.image_channels, self.config.image_size, self.config.n_block)

    # ----------------------------------------------------------------------------- likelihood
    def forward(
        self,
        mask: Tensor,
        photo: Tensor,
        generator: torch.Generator | None = None,
        offsets: DequantizationOffsets | None = None,
    ) -> FullGlowOutput:
        """The training objective on a batch of (mask, photo) pairs, with fresh dequantisation
        noise: drawn from ``generator`` (on the CPU), or given as ``offsets`` (see
        :meth:`dequantization_offsets`), or else drawn on the batch's device. In training mode a
        model with ``condition_dropout`` replaces the dropped rows' masks by :meth:`null_condition`
        (their source bits/dim are then the null mask's)."""
        self._check_pair(mask, photo)
        if offsets is None:
            offsets = self.dequantization_offsets(mask.shape[0], generator, mask.device)
        mask_offset, photo_offset = offsets.mask, offsets.photo
        if self.training and offsets.mask_keep is not None:
            mask = mask * to_device(offsets.mask_keep, mask).view(-1, 1, 1, 1)  # the null condition is all zeros
        features, source_log_density = self._source_side(mask, noise=True, offset=mask_offset)
        target = self.target.encode(dequantize(photo, noise=True, offset=photo_offset), features)
        source_bpd = (
            bits_per_dim(source_log_density, self.source_dims)
            if source_log_density is not None
            else mask.new_zeros(mask.shape[0])
        )
        conditional_bpd = bits_per_dim(target.log_prior + target.logdet, self.target_dims)
        loss = (self.config.source_weight * source_bpd + conditional_bpd).mean()
        return FullGlowOutput(loss, source_bpd, conditional_bpd)

    @torch.no_grad()
    def conditional_bpd(self, mask: Tensor, photo: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """-log2 p(photo | mask) per dimension, per sample (one dequantisation draw)."""
        self._check_pair(mask, photo)
        features = self.condition_features(mask)
        if self.config.gaussian_noise > 0:
            offset = self.dequantization_offsets(photo.shape[0], generator, photo.device).photo
            noisy = dequantize(photo, noise=True, offset=offset)
        else:
            noisy = dequantize(photo, noise=True, generator=generator)
        target = self.target.encode(noisy, features)
        return bits_per_dim(target.log_prior + target.logdet, self.target_dims)

    # ----------------------------------------------------------------------------- encode / decode
    def condition_features(self, mask: Tensor) -> list[list[StepFeatures]]:
        """Deterministic source-side encoding of the masks: every step's outputs."""
        self._check(mask, self.config.mask_channels, "mask")
        return self._source_side(mask, noise=False)[0]

    def dequantization_offsets(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | None = None
    ) -> DequantizationOffsets:
        """The random parts :meth:`forward` draws for a batch, in its order: from ``generator`` on
        the CPU (the same on every device), or without one on ``device``."""
        height, width = self.config.image_size
        shape = (batch, self.config.image_channels, height, width)
        on = {"generator": generator} if generator is not None else {"device": device}
        mask = None
        if self.source is not None:
            mask = torch.rand(batch, self.config.mask_channels, height, width, **on)
        if self.config.gaussian_noise > 0:
            photo = 0.5 + 256 * self.config.gaussian_noise * torch.randn(shape, **on)
        else:
            photo = torch.rand(shape, **on)
        mask_keep = None
        if self.config.condition_dropout > 0:
            mask_keep = (torch.rand(batch, **on) >= self.config.condition_dropout).float()
        return DequantizationOffsets(mask, photo, mask_keep)

    def null_condition(self, device: torch.device | None = None) -> Tensor:
        """The condition a dropped mask is replaced by: one all-zero mask (every pixel unlabelled,
        rendered black), shape (1, mask_channels, H, W)."""
        return torch.zeros(1, self.config.mask_channels, *self.config.image_size, device=device)

    def _source_side(
        self, mask: Tensor, noise: bool, offset: Tensor | None = None
    ) -> tuple[list[list[StepFeatures]], Tensor | None]:
        """The target side's conditions and the mask's log-density (None without a source Glow:
        ``raw`` conditioning feeds the bin-centred mask itself)."""
        if self.source is None:
            return raw_mask_conditions(dequantize(mask, noise=False), self.config.n_flow), None
        encoding = self.source.encode(dequantize(mask, noise=noise, offset=offset))
        return encoding.features, encoding.log_prior + encoding.logdet

    def encode(self, mask: Tensor, photo: Tensor) -> list[Tensor]:
        """Photo -> its latents given the mask (bin-centre dequantisation, deterministic)."""
        self._check_pair(mask, photo)
        return self.encode_with(self.condition_features(mask), photo).latents

    def encode_with(self, features: Sequence[Sequence[StepFeatures]], photo: Tensor) -> GlowEncoding:
        self._check(photo, self.config.image_channels, "photo")
        return self.target.encode(dequantize(photo, noise=False), features)

    def decode(self, mask: Tensor, latents: Sequence[Tensor]) -> Tensor:
        """Latents -> photo given the mask; ``decode(m, encode(m, x)) == x`` for 8-bit x."""
        features = self.condition_features(mask)
        y, _ = self.target.decode(latents, features)
        return quantize(y)

    # ----------------------------------------------------------------------------- generation
    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> list[Tensor]:
        """Standard-normal noise for ``batch`` samples, drawn on the CPU so that a seed gives the
        same images on every device."""
        return [torch.randn(batch, *shape, generator=generator) for shape in self.latent_shapes()]

    @torch.no_grad()
    def sample(
        self,
        mask: Tensor,
        n: int = 1,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        noise: Sequence[Tensor] | None = None,
        guidance: float = 0.0,
        denoise_scale: float | None = None,
    ) -> Samples:
        """``n`` photos per mask at temperature T (latents ~ prior with std scaled by T).

        The source side runs once per mask and its conditioning networks once per mask; the
        ``B * n`` targets decode in one batch. ``noise`` (per level, (B * n, C, H, W), sample
        ``i`` of mask ``b`` at row ``b * n + i``) overrides ``generator``.

        ``guidance`` w > 0 (a model trained with condition dropout): classifier-free guidance,
        every conditioning network's output extrapolated from the null condition's towards the
        mask's (see :class:`~fgaug.flow.conditional.GuidedCondition`); w = 0 is plain sampling.
        ``denoise_scale`` s (a model trained with Gaussian noise): one score step on each draw,
        see :meth:`denoise`.
        """
        if n < 1:
            raise SamplingError(f"n must be at least 1, got {n}")
        if not 0 <= temperature < math.inf:
            raise SamplingError(f"temperature must be a finite number >= 0, got {temperature}")
        self.check_sampling(guidance, denoise_scale)
        features = self.condition_features(mask)
        batch = mask.shape[0] * n
        noise = self.sample_noise(batch, generator) if noise is None else noise
        noise = [eps.to(device=mask.device, dtype=mask.dtype, non_blocking=True) for eps in noise]
        for eps, shape in zip(noise, self.latent_shapes(), strict=True):
            if tuple(eps.shape) != (batch, *shape):
                raise ValueError(f"noise of shape {tuple(eps.shape)} given where {(batch, *shape)} is needed")
        conditions = features
        if guidance:
            null = self.condition_features(self.null_condition(mask.device).to(mask.dtype))
            conditions = guided_conditions(features, null, guidance)
        y, log_likelihood = self.target.sample(noise, temperature, conditions)
        diverged = self._diverged(y) | ~torch.isfinite(log_likelihood)
        if denoise_scale is not None:
            y = self.denoise(y.masked_fill(diverged.view(-1, 1, 1, 1), 0.0), features, denoise_scale)
            diverged = diverged | self._diverged(y)
        log_likelihood = log_likelihood.masked_fill(diverged, -math.inf)
        images = quantize(y).view(mask.shape[0], n, *y.shape[1:])
        return Samples(images, log_likelihood.view(mask.shape[0], n), diverged.view(mask.shape[0], n))

    def check_sampling(self, guidance: float, denoise_scale: float | None) -> None:
        """Refuse guidance for a model trained without condition dropout, denoising for one
        trained without Gaussian noise, and values outside their ranges."""
        if not math.isfinite(guidance) or guidance < 0:
            raise SamplingError(f"guidance must be a finite number >= 0, got {guidance}")
        if guidance and not self.config.condition_dropout:
            raise SamplingError(
                "guidance needs a model trained with condition dropout (fgaug train --condition-dropout P); "
                "this model was trained without it"
            )
        if denoise_scale is None:
            return
        if not math.isfinite(denoise_scale) or denoise_scale <= 0:
            raise SamplingError(f"the denoising scale must be a finite number > 0, got {denoise_scale}")
        if not self.config.gaussian_noise:
            raise SamplingError(
                "denoising needs a model trained with Gaussian noise (fgaug train --noise gaussian:SIGMA); "
                "this model was trained with uniform dequantisation"
            )

    @staticmethod
    def _diverged(y: Tensor) -> Tensor:
        magnitude = y.flatten(1).abs().amax(dim=1)
        return ~(torch.isfinite(magnitude) & (magnitude <= DIVERGED_MAGNITUDE))

    def denoise(self, y: Tensor, features: Sequence[Sequence[StepFeatures]], scale: float = 1.0) -> Tensor:
        r"""One score step towards the clean photo (Tweedie's formula), for a model of noisy photos:

        .. math:: \hat x = y + s\,\sigma^2\,\nabla_y \log p(y \mid \text{mask})

        with :math:`\sigma` the model's training noise and ``scale`` s (1 is Tweedie's value). The
        gradient is taken by autograd through the target Glow's forward pass; ``y`` (B, C, H, W)
        is on the model's scale (``[-0.5, 0.5]`` for the data), ``features`` the masks'
        :meth:`condition_features` (a batch of ``B / k`` serving ``k`` samples each)."""
        sigma = self.config.gaussian_noise
        with torch.enable_grad():
            noisy = y.detach().requires_grad_(True)
            encoding = self.target.encode(noisy, features)
            (score,) = torch.autograd.grad((encoding.log_prior + encoding.logdet).sum(), noisy)
        return y + scale * sigma**2 * score.detach()

    @torch.no_grad()
    def transfer(self, content_photo: Tensor, content_mask: Tensor, new_mask: Tensor) -> Tensor:
        """Content transfer (paper section 5.4): ``z = f(x_b^1 | g(x_a^1))``, then
        ``x_new = f^-1(z | g(x_a^2))``: the photo's appearance laid onto a new layout."""
        self._check_pair(content_mask, content_photo)
        self._check(new_mask, self.config.mask_channels, "new mask")
        if new_mask.shape[0] != content_photo.shape[0]:
            raise ValueError("transfer needs one new mask per content photo")
        latents = self.encode(content_mask, content_photo)
        return self.decode(new_mask, latents)
