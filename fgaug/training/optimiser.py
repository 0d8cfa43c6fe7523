"""The trainer's optimiser: Adam, fused where torch has a fused kernel for the device."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fgaug.runtime import fused_adam_available


def adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam over ``model``'s parameters, fused where torch can (:func:`fused_adam_available`): a few
    kernels per step for all parameters instead of a few per tensor (one on the CPU), which counts
    at batch 1, where the host sets the pace. On the CPU it made an fp32 training step at 2x4 @
    32x64 1.10x faster: 448 to 213 operations dispatched per flow step for 418 parameter tensors
    (``benchmarks/host_overhead.py --baseline-plain-adam`` on an AVX2-only EPYC). The fused kernel
    computes Adam's update in another order than torch's per-tensor loop, so results move by
    float32 rounding. Its state is the plain Adam's: :func:`load_adam_state` resumes either."""
    fused = fused_adam_available(next(model.parameters()).device)
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)


def load_adam_state(optimizer: torch.optim.Adam, state: dict[str, Any]) -> None:
    """Load a saved Adam state, fused or not and from any device, keeping ``optimizer``'s own kernel.

    ``Optimizer.load_state_dict`` takes every setting of the saved parameter groups, ``fused``
    among them, so a checkpoint of the per-tensor Adam would resume unfused, and a fused one on a
    torch or device without the kernel would fail. The saved groups are given this optimiser's
    ``fused`` before loading, which also puts each ``step`` where a fused kernel needs it (a float32
    tensor on the parameter's device)."""
    fused = optimizer.defaults["fused"]
    groups = [{**group, "fused": fused} for group in state["param_groups"]]
    optimizer.load_state_dict({**state, "param_groups": groups})
