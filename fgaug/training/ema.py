"""An exponential moving average of the model's weights (CAFLOW; Polyak averaging)."""

from __future__ import annotations

import copy

import torch

from fgaug.flow import FullGlow


class ExponentialMovingAverage:
    r"""A copy of the model whose parameters follow :math:`\bar\theta \leftarrow d_t\,\bar\theta + (1-d_t)\,\theta`
    (buffers copied), used for validation, samples and the saved weights.

    :math:`d_t = \min(d, (1 + t) / (10 + t))` after t updates, so the average tracks the model
    early in training instead of lagging behind its random start.
    """

    def __init__(self, model: FullGlow, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: FullGlow) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averages: list[torch.Tensor] = list(self.model.parameters())
        currents = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(averages, currents, 1.0 - decay)  # one fused kernel per group, not one per tensor
        torch._foreach_copy_(list(self.model.buffers()), list(model.buffers()))
