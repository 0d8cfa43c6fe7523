"""CUDA-graph replay of :meth:`FullGlow.sample`, for fixed shapes.

A sampling call of a Full-Glow model is thousands of small kernels (every flow step of both
Glows: actnorm, 1x1 convolution, coupling network, element-wise arithmetic), so on a fast GPU
the host's kernel launches, not the arithmetic, can set the pace. Sampling has static shapes for
a given number of masks and samples per mask, and no data-dependent control flow, so the whole
call can be captured once into a CUDA graph and replayed: one launch per call.

:class:`GraphedSampler` keeps one graph per (masks, samples per mask, temperature, network
precision). Replays run exactly the captured kernels, so their images equal the eager call's
on the same device. It is an option (``fgaug generate --cuda-graphs``), off by default, and
measured by ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fgaug.flow.fullglow import FullGlow, Samples
from fgaug.flow.precision import current_network_dtype

WARMUP_CALLS = 2
"""Eager calls on a side stream before capture: cuDNN and cuBLAS choose and allocate their
workspaces there, which must not happen inside the capture."""


@dataclass
class _CapturedCall:
    graph: torch.cuda.CUDAGraph
    mask: Tensor
    noise: list[Tensor]
    output: Samples


class GraphedSampler:
    """``sampler.sample(mask, n, temperature, noise=...)`` like :meth:`FullGlow.sample`, replayed
    from a CUDA graph captured on the first call of each shape. ``sample_noise`` and every other
    attribute come from the model, so a sampler stands in for the model where samples are drawn."""

    def __init__(self, model: FullGlow) -> None:
        if next(model.parameters()).device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self.model = model
        self._calls: dict[tuple, _CapturedCall] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)

    @property
    def captured(self) -> int:
        """How many graphs (distinct shapes and temperatures) have been captured."""
        return len(self._calls)

    @torch.no_grad()
    def sample(
        self,
        mask: Tensor,
        n: int = 1,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        noise: Sequence[Tensor] | None = None,
    ) -> Samples:
        noise = self.model.sample_noise(mask.shape[0] * n, generator) if noise is None else noise
        key = (tuple(mask.shape), n, float(temperature), current_network_dtype(), mask.dtype)
        call = self._calls.get(key) or self._capture(mask, n, temperature, noise)
        self._calls[key] = call
        call.mask.copy_(mask, non_blocking=True)
        for static, given in zip(call.noise, noise, strict=True):
            static.copy_(given, non_blocking=True)
        call.graph.replay()
        return Samples(call.output.images.clone(), call.output.log_likelihood.clone(), call.output.diverged.clone())

    def _capture(self, mask: Tensor, n: int, temperature: float, noise: Sequence[Tensor]) -> _CapturedCall:
        static_mask = mask.detach().clone()
        static_noise = [eps.to(device=mask.device, dtype=mask.dtype).clone() for eps in noise]
        side = torch.cuda.Stream(mask.device)
        side.wait_stream(torch.cuda.current_stream(mask.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self.model.sample(static_mask, n, temperature, noise=static_noise)
        torch.cuda.current_stream(mask.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.model.sample(static_mask, n, temperature, noise=static_noise)
        return _CapturedCall(graph, static_mask, static_noise, output)
