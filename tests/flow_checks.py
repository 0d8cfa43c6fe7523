"""The shared check every invertible layer passes (after normflows' test mixin and zuko's tests).

For a layer keeping the contract ``forward(x, cond) -> (y, logdet)``,
``inverse(y, cond) -> (x, logdet)``:

* shape (where the layer keeps it) and dtype are kept, logdet has one value per sample;
* ``inverse(forward(x))`` returns x (1e-10 in float64, 1e-4 in float32);
* forward logdet + inverse logdet = 0;
* forward logdet = ``slogdet`` of the full autograd Jacobian of the sample's map.

The check runs on the test device (``FGAUG_TEST_DEVICE``, see ``devices.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from devices import TEST_DEVICE
from torch import Tensor, nn

ROUND_TRIP_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


def perturb_parameters(module: nn.Module, scale: float = 0.1, seed: int = 0) -> None:
    """Move every parameter off its initial value, so zero-initialised layers are not the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.add_(scale * noise.to(parameter.device, parameter.dtype))


def jacobian_logdet(function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """log|det| of the Jacobian of ``function`` (one sample, any shape -> same size) at ``x``."""
    jacobian = torch.autograd.functional.jacobian(lambda v: function(v.view_as(x)).flatten(), x.flatten())
    return torch.linalg.slogdet(jacobian)[1]


def check_invertible_layer(
    layer: nn.Module, x: Tensor, cond: Tensor | None, dtype: torch.dtype, same_shape: bool = True
) -> None:
    layer = layer.to(TEST_DEVICE, dtype)
    x = x.to(TEST_DEVICE, dtype)
    cond = None if cond is None else cond.to(TEST_DEVICE, dtype)
    with torch.no_grad():
        layer(x, cond)  # data-dependent initialisation happens on this first pass
    perturb_parameters(layer)

    with torch.no_grad():
        y, logdet_forward = layer(x, cond)
        x_back, logdet_inverse = layer.inverse(y, cond)

    assert y.dtype == dtype and y.numel() == x.numel() and x_back.shape == x.shape
    if same_shape:
        assert y.shape == x.shape
    assert logdet_forward.shape == (x.shape[0],) and logdet_inverse.shape == (x.shape[0],)
    tolerance = ROUND_TRIP_TOLERANCE[dtype]
    assert (x_back - x).abs().max().item() < tolerance
    assert (logdet_forward + logdet_inverse).abs().max().item() < tolerance * max(
        1.0, logdet_forward.abs().max().item()
    )
    assert y.shape != x.shape or not torch.allclose(y, x), "the layer is the identity: the check proves nothing"

    if dtype == torch.float64:
        for index in range(x.shape[0]):
            sample_cond = None if cond is None else cond[index : index + 1]
            expected = jacobian_logdet(lambda v, c=sample_cond: layer(v[None], c)[0][0], x[index])
            assert torch.allclose(logdet_forward[index], expected, atol=1e-6, rtol=1e-6), (
                f"sample {index}: logdet {logdet_forward[index].item()} != Jacobian {expected.item()}"
            )
