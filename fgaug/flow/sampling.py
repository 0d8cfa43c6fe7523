"""How draws are made beyond their noise and temperature: classifier-free guidance and denoising.

:class:`SamplingOptions` holds the two settings once; :meth:`SamplingOptions.bind` wraps a sampler
(a :class:`~fgaug.flow.FullGlow` or its CUDA-graph replay) so that every ``sample`` call of the
generation engine, the quality evaluation and the augmentation protocol uses them, while those
callers keep calling ``sampler.sample(mask, n, temperature, noise=...)`` as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fgaug.flow.fullglow import FullGlow, Samples
from fgaug.flow.graphs import GraphedSampler


@dataclass(frozen=True)
class SamplingOptions:
    """``guidance`` w: classifier-free guidance weight (0: none; a model trained with condition
    dropout); ``denoise_scale`` s: one Tweedie score step of s times the model's noise variance
    after each draw (None: none; a model trained with Gaussian noise). See
    :meth:`~fgaug.flow.FullGlow.sample`."""

    guidance: float = 0.0
    denoise_scale: float | None = None

    def bind(self, sampler: FullGlow | GraphedSampler) -> FullGlow | GraphedSampler | BoundSampler:
        """``sampler`` drawing with these options; refused at once where the model cannot."""
        sampler.check_sampling(self.guidance, self.denoise_scale)
        return sampler if self == PLAIN_SAMPLING else BoundSampler(sampler, self)

    def to_dict(self) -> dict[str, Any]:
        return {"guidance": self.guidance, "denoise_scale": self.denoise_scale}


PLAIN_SAMPLING = SamplingOptions()
"""Neither guidance nor denoising: the paper's sampling."""


class BoundSampler:
    """A sampler whose every ``sample`` call uses fixed :class:`SamplingOptions`; every other
    attribute comes from the wrapped sampler."""

    def __init__(self, sampler: FullGlow | GraphedSampler, options: SamplingOptions) -> None:
        self.sampler = sampler
        self.options = options

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sampler, name)

    def sample(
        self,
        mask: Tensor,
        n: int = 1,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        noise: Sequence[Tensor] | None = None,
    ) -> Samples:
        return self.sampler.sample(
            mask,
            n,
            temperature,
            generator,
            noise,
            guidance=self.options.guidance,
            denoise_scale=self.options.denoise_scale,
        )


Sampler = FullGlow | GraphedSampler | BoundSampler
"""What draws samples: the model, its CUDA-graph replay, or either bound to options."""
