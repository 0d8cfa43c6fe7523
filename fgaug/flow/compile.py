"""``torch.compile`` for the heavy networks, and the fused invertible arithmetic.

:func:`compile_networks` compiles the coupling networks, the condition embeddings of the
conditional couplings and the parameter networks of the conditional actnorm and 1x1 conv.
:func:`fuse_arithmetic` swaps every layer's element-wise arithmetic (:mod:`fgaug.flow.arithmetic`)
for its fused bundle; the LU weights, triangular solves and the order of the reverse pass stay
eager. Neither changes a parameter or a state-dict key.
"""

from __future__ import annotations

import torch
from torch import nn

from fgaug.flow.arithmetic import EAGER_ARITHMETIC, UsesArithmetic, fused_arithmetic
from fgaug.flow.conditional import ConditionalAffineCoupling, ParameterNetwork
from fgaug.flow.layers import CouplingNetwork


def compiled_networks(model: nn.Module) -> list[nn.Module]:
    """The networks of ``model`` that :func:`compile_networks` compiles."""
    networks: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, (CouplingNetwork, ParameterNetwork)):
            networks.append(module)
        elif isinstance(module, ConditionalAffineCoupling):
            networks.append(module.condition_embedding)
    return networks


def _allow_recompiles(count: int) -> None:
    """One compiled code object serves many modules, recompiled per distinct input shape and dtype
    (level sizes, batch sizes): raise dynamo's recompile limit to cover ``count`` of them."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, count)


def fused_arithmetic_pays(device: torch.device | str) -> bool:
    """Whether :func:`compile_networks` fuses the arithmetic by default on ``device``: on CUDA,
    where each eager element-wise kernel is a launch and a pass through GPU memory; not on the
    CPU, where the fused kernels were measured no faster (``benchmarks/fused_arithmetic.py``:
    eager's separate kernels already run from cache at these sizes)."""
    return torch.device(device).type == "cuda"


def fuse_arithmetic(model: nn.Module, fused: bool = True) -> int:
    """Give every layer of ``model`` the fused element-wise arithmetic (``fused`` False: the eager
    one back); returns how many layers it set. Compiles on each function's first use per shape."""
    bundle = fused_arithmetic() if fused else EAGER_ARITHMETIC
    layers = [module for module in model.modules() if isinstance(module, UsesArithmetic)]
    _allow_recompiles(4 * len(layers))
    for layer in layers:
        layer.arithmetic = bundle
    return len(layers)


def compile_networks(
    model: nn.Module, mode: str | None = None, backend: str = "inductor", arithmetic: bool | None = None
) -> int:
    """Compile every network of ``model`` in place (``mode`` and ``backend``: torch.compile's, e.g.
    ``"max-autotune"``) and, with ``arithmetic`` (None: where :func:`fused_arithmetic_pays` on the
    model's device), fuse its element-wise arithmetic; returns how many networks were compiled."""
    networks = compiled_networks(model)
    _allow_recompiles(4 * len(networks))
    for network in networks:
        network.compile(mode=mode, backend=backend)
    if arithmetic is None:
        parameter = next(model.parameters(), None)
        arithmetic = parameter is not None and fused_arithmetic_pays(parameter.device)
    if arithmetic:
        fuse_arithmetic(model)
    return len(networks)
