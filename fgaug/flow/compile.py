"""``torch.compile`` for the heavy networks only.

The coupling networks, the condition embeddings of the conditional couplings and the parameter
networks of the conditional actnorm and 1x1 conv are compiled; the invertible arithmetic (LU
weights, triangular solves, log-determinants, the reverse pass) stays eager, so the flow is as
exactly invertible compiled as not. Compiling changes no parameter and no state-dict key.
"""

from __future__ import annotations

import torch
from torch import nn

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


def compile_networks(model: nn.Module, mode: str | None = None, backend: str = "inductor") -> int:
    """Compile every network of ``model`` in place (``mode`` and ``backend``: torch.compile's, e.g.
    ``"max-autotune"``); returns how many were compiled.

    The instances of one network class share one compiled code object, recompiled per distinct
    input shape (level sizes, batch sizes): the recompile limit is raised to cover them.
    """
    networks = compiled_networks(model)
    limit = torch._dynamo.config.recompile_limit
    torch._dynamo.config.recompile_limit = max(limit, 4 * len(networks))
    for network in networks:
        network.compile(mode=mode, backend=backend)
    return len(networks)
