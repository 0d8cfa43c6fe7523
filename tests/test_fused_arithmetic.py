"""The fused element-wise arithmetic (``fuse_arithmetic``, inductor's kernels: C++ on the CPU,
Triton on CUDA) keeps the flow exact: the log-determinants equal the autograd Jacobian's in
float64, the 8-bit round trip is exact, sampling lands within one 8-bit level of eager, and the
eager arithmetic comes back bitwise."""

from __future__ import annotations

import pytest
import torch
from devices import TEST_DEVICE
from flow_checks import check_invertible_layer, jacobian_logdet
from test_fullglow import SMALL, TINY, images, trained_looking_model
from test_layers import CHANNELS, data
from torch import nn

from fgaug.flow import fuse_arithmetic
from fgaug.flow.arithmetic import EAGER_ARITHMETIC, fused_arithmetic
from fgaug.flow.compile import compile_networks, fused_arithmetic_pays
from fgaug.flow.fullglow import dequantize
from fgaug.flow.layers import ActNorm, AffineCoupling


def test_fused_log_determinants_equal_the_autograd_jacobian_in_float64() -> None:
    torch._dynamo.reset()
    model = trained_looking_model(TINY).double()
    layers = fuse_arithmetic(model)
    # per flow step: actnorm and coupling in both Glows; one split prior per level in both
    assert layers == 2 * 2 * sum(TINY.n_flow) + 2 * TINY.n_block
    mask = images(1, size=TINY.image_size).double()
    y = dequantize(images(1, size=TINY.image_size, seed=4), noise=True).double()
    features = model.condition_features(mask)

    def target_map(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.flatten() for z in model.target.encode(x[None], features).latents])

    with torch.no_grad():
        encoding = model.target.encode(y, features)
        decoded, inverse_logdet = model.target.decode(encoding.latents, features)
    # the Jacobian's row-by-row backward passes retain the graph, which donated buffers (an
    # optimisation of compiled backward passes that reuses their inputs' memory) forbid
    with torch._functorch.config.patch(donated_buffer=False):
        jacobian = jacobian_logdet(target_map, y[0])
    torch.testing.assert_close(encoding.logdet[0], jacobian, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(inverse_logdet, -encoding.logdet, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(decoded, y, atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    "make", [lambda: ActNorm(CHANNELS), lambda: AffineCoupling(CHANNELS, hidden=8)], ids=["actnorm", "coupling"]
)
def test_fused_unconditional_layers_pass_the_layer_check_in_float64(make: type[nn.Module]) -> None:
    """The source Glow's layers (and the target's under ``conditioning="coupling"``), which the
    whole-model test above does not reach: round trip, log-determinants summing to zero, and
    the autograd Jacobian."""
    torch._dynamo.reset()
    layer = make()
    layer.arithmetic = fused_arithmetic()
    with torch._functorch.config.patch(donated_buffer=False):
        check_invertible_layer(layer, data(), None, torch.float64)


def test_fused_flow_round_trips_8_bit_images_and_samples_within_one_level_of_eager() -> None:
    torch._dynamo.reset()
    eager, fused = trained_looking_model(TINY), trained_looking_model(TINY)
    keys = list(fused.state_dict())
    fuse_arithmetic(fused)
    assert list(fused.state_dict()) == keys
    mask, photo = images(2, size=TINY.image_size), images(2, size=TINY.image_size, seed=1)
    with torch.no_grad():
        latents = fused.encode(mask, photo)
        torch.testing.assert_close(fused.decode(mask, latents), photo, atol=0, rtol=0)
        losses = [model(mask, photo, generator=torch.Generator().manual_seed(3)).loss for model in (eager, fused)]
        noise = eager.sample_noise(4, torch.Generator().manual_seed(5))
        drawn = [model.sample(mask, n=2, temperature=0.8, noise=noise) for model in (eager, fused)]
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    assert (drawn[1].images - drawn[0].images).abs().max() <= 1 / 255 + 1e-6
    torch.testing.assert_close(drawn[1].log_likelihood, drawn[0].log_likelihood, atol=1e-2, rtol=1e-5)

    fuse_arithmetic(fused, fused=False)
    with torch.no_grad():
        back = fused.sample(mask, n=2, temperature=0.8, noise=noise)
    assert torch.equal(back.images, drawn[0].images)
    assert all(layer.arithmetic is EAGER_ARITHMETIC for layer in fused.modules() if hasattr(layer, "arithmetic"))


def test_compile_networks_fuses_the_arithmetic_where_it_pays() -> None:
    model = trained_looking_model(SMALL)
    compile_networks(model, backend="aot_eager")
    expected = fused_arithmetic() if fused_arithmetic_pays(TEST_DEVICE) else EAGER_ARITHMETIC
    assert {layer.arithmetic for layer in model.modules() if hasattr(layer, "arithmetic")} == {expected}
    assert fused_arithmetic_pays("cuda") and not fused_arithmetic_pays("cpu")
