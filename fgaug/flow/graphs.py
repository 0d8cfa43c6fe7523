"""CUDA-graph replay of :meth:`FullGlow.sample` and of a training step's forward and backward
passes, for fixed shapes.

A sampling call of a Full-Glow model is thousands of small kernels (every flow step of both
Glows: actnorm, 1x1 convolution, coupling network, element-wise arithmetic), so on a fast GPU
the host's kernel launches, not the arithmetic, can set the pace. Sampling has static shapes for
a given number of masks and samples per mask, and no data-dependent control flow, so the whole
call can be captured once into a CUDA graph and replayed: one launch per call.

:class:`GraphedSampler` keeps one graph per (masks, samples per mask, temperature, guidance
weight, network precision). Replays run exactly the captured kernels, so their images equal the eager call's
on the same device. ``fgaug generate`` uses it on CUDA by default (``--no-cuda-graphs`` turns it
off); it is measured by ``benchmarks/gpu_check.py``.

:class:`GraphedTrainingPass` does the same for training (``fgaug train --cuda-graphs``): the
objective's forward pass and its backward pass, for one batch shape, are one replay. The
optimiser's step, the gradient clipping and the moving average stay eager: they are a few
multi-tensor kernels each, and the skip decision reads the gradient norm on the host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from fgaug.flow.fullglow import DequantizationOffsets, FullGlow, FullGlowOutput, Samples, SamplingError
from fgaug.flow.precision import backward_precision, current_network_dtype

WARMUP_CALLS = 2
"""Eager calls on a side stream before capture: cuDNN and cuBLAS choose and allocate their
workspaces there, which must not happen inside the capture."""
CAPTURE_ERROR_MODE = "thread_local"
"""A capture fails on calls that are unsafe during capture made by the capturing thread only.
Under torch's default, ``"global"``, the pin-memory thread of ``fgaug train --workers N`` pinning
a batch (a new page-locked allocation) while the first step is captured would break the capture."""


@dataclass
class _CapturedCall:
    graph: torch.cuda.CUDAGraph
    mask: Tensor
    noise: list[Tensor]
    output: Samples


def _require_cuda(model: FullGlow) -> None:
    if next(model.parameters()).device.type != "cuda":
        raise ValueError("CUDA graphs need the model on a CUDA device")


class GraphedSampler:
    """``sampler.sample(mask, n, temperature, noise=...)`` like :meth:`FullGlow.sample`, replayed
    from a CUDA graph captured on the first call of each shape. ``sample_noise`` and every other
    attribute come from the model, so a sampler stands in for the model where samples are drawn."""

    def __init__(self, model: FullGlow, eager_when_out_of_memory: bool = False) -> None:
        _require_cuda(model)
        self.model = model
        # A capture that runs out of memory (each graph keeps its own memory pool) turns graphs off:
        # that call and every later one run eagerly, drawing the same images.
        self.eager_when_out_of_memory = eager_when_out_of_memory
        self.eager = False
        self._calls: dict[tuple, _CapturedCall] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def check_sampling(self, guidance: float, denoise_scale: float | None) -> None:
        """The model's checks, and denoising refused: its score step runs a backward pass, which a
        graph does not capture."""
        if denoise_scale is not None:
            raise SamplingError(
                "denoising runs a backward pass, which CUDA-graph sampling does not capture: drop --cuda-graphs"
            )
        self.model.check_sampling(guidance, None)

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
        guidance: float = 0.0,
        denoise_scale: float | None = None,
    ) -> Samples:
        """Denoising is not captured (its score step runs autograd): ``denoise_scale`` is refused."""
        self.check_sampling(guidance, denoise_scale)
        noise = self.model.sample_noise(mask.shape[0] * n, generator) if noise is None else noise
        key = (tuple(mask.shape), n, float(temperature), float(guidance), current_network_dtype(), mask.dtype)
        call = None if self.eager else self._calls.get(key)
        if call is None and not self.eager:
            try:
                call = self._capture(mask, n, temperature, guidance, noise)
            except torch.cuda.OutOfMemoryError:
                if not self.eager_when_out_of_memory:
                    raise
                self.eager, self._calls = True, {}
            if self.eager:  # outside the except, whose traceback holds the failed graph and its pool
                torch.cuda.empty_cache()
        if call is None:
            return self.model.sample(mask, n, temperature, noise=noise, guidance=guidance)
        self._calls[key] = call
        call.mask.copy_(mask, non_blocking=True)
        for static, given in zip(call.noise, noise, strict=True):
            static.copy_(given, non_blocking=True)
        call.graph.replay()
        return Samples(call.output.images.clone(), call.output.log_likelihood.clone(), call.output.diverged.clone())

    def _capture(
        self, mask: Tensor, n: int, temperature: float, guidance: float, noise: Sequence[Tensor]
    ) -> _CapturedCall:
        static_mask = mask.detach().clone()
        static_noise = [eps.to(device=mask.device, dtype=mask.dtype).clone() for eps in noise]
        side = torch.cuda.Stream(mask.device)
        side.wait_stream(torch.cuda.current_stream(mask.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self.model.sample(static_mask, n, temperature, noise=static_noise, guidance=guidance)
        torch.cuda.current_stream(mask.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode=CAPTURE_ERROR_MODE):
            output = self.model.sample(static_mask, n, temperature, noise=static_noise, guidance=guidance)
        return _CapturedCall(graph, static_mask, static_noise, output)


@dataclass
class _CapturedPass:
    graph: torch.cuda.CUDAGraph
    mask: Tensor
    photo: Tensor
    offsets: DequantizationOffsets
    output: FullGlowOutput
    gradients: list[Tensor]


class GraphedTrainingPass:
    """``graphed(mask, photo, offsets)`` does what

        output = model(mask, photo, offsets=offsets)
        scale(output.loss).backward()

    does on parameters whose ``.grad`` is None (the gradients are written, not accumulated), and
    returns ``output``, replayed from a CUDA graph captured on the first call of each batch shape
    and network precision. The returned tensors are overwritten by the next call.

    ``scale`` is a loss scaler's ``scale`` (the identity without one); it must keep its scale
    in a tensor that it updates in place, as :class:`torch.amp.GradScaler` does. The warm-up calls
    before a capture run eagerly on the same batch, so a model whose data-dependent layers have not
    seen a batch yet is initialised from this one, as an eager first step would initialise it.
    Gradient checkpointing, ``torch.compile`` and DistributedDataParallel are not captured: the
    trainer refuses ``--cuda-graphs`` with them."""

    def __init__(self, model: FullGlow, scale: Callable[[Tensor], Tensor] | None = None) -> None:
        _require_cuda(model)
        self.model = model
        self.scale = scale or (lambda loss: loss)
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self._captured: tuple[tuple, _CapturedPass] | None = None

    @property
    def captures(self) -> int:
        """1 once a graph is held (a new batch shape or precision replaces it)."""
        return int(self._captured is not None)

    def __call__(self, mask: Tensor, photo: Tensor, offsets: DequantizationOffsets) -> FullGlowOutput:
        key = (tuple(mask.shape), tuple(photo.shape), current_network_dtype())
        if self._captured is None or self._captured[0] != key:
            self._captured = None  # its memory pool goes before the next capture takes one
            self._captured = (key, self._capture(mask, photo, offsets))
        call = self._captured[1]
        call.mask.copy_(mask, non_blocking=True)
        call.photo.copy_(photo, non_blocking=True)
        for static, given in (
            (call.offsets.mask, offsets.mask),
            (call.offsets.photo, offsets.photo),
            (call.offsets.mask_keep, offsets.mask_keep),
        ):
            if static is not None and given is not None:
                static.copy_(_pinned(given), non_blocking=True)
        call.graph.replay()
        for parameter, gradient in zip(self.parameters, call.gradients, strict=True):
            parameter.grad = gradient  # the graph writes these; a zero_grad(set_to_none) in between is undone
        return call.output

    def _objective(self, mask: Tensor, photo: Tensor, offsets: DequantizationOffsets) -> FullGlowOutput:
        for parameter in self.parameters:
            parameter.grad = None
        output = self.model(mask, photo, offsets=offsets)
        with backward_precision():
            self.scale(output.loss).backward()
        return output

    def _capture(self, mask: Tensor, photo: Tensor, offsets: DequantizationOffsets) -> _CapturedPass:
        device = mask.device
        static_offsets = DequantizationOffsets(
            None if offsets.mask is None else offsets.mask.to(device, mask.dtype),
            offsets.photo.to(device, photo.dtype),
            None if offsets.mask_keep is None else offsets.mask_keep.to(device, mask.dtype),
        )
        static_mask, static_photo = mask.detach().clone(), photo.detach().clone()
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self._objective(static_mask, static_photo, static_offsets)
        torch.cuda.current_stream(device).wait_stream(side)
        for parameter in self.parameters:
            parameter.grad = None
        torch.cuda.empty_cache()  # the warm-ups' gradients and cached blocks, before the graph takes its own pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode=CAPTURE_ERROR_MODE):
            output = self._objective(static_mask, static_photo, static_offsets)
        output = replace(output, loss=output.loss.detach())
        gradients = [parameter.grad for parameter in self.parameters]
        if any(gradient is None for gradient in gradients):
            raise RuntimeError("a parameter got no gradient in the captured backward pass")
        return _CapturedPass(graph, static_mask, static_photo, static_offsets, output, gradients)  # type: ignore[arg-type]  # None refused above


def _pinned(tensor: Tensor) -> Tensor:
    return tensor.pin_memory() if tensor.device.type == "cpu" and not tensor.is_pinned() else tensor
