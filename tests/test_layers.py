"""Every invertible layer, conditional or not, passes the shared check of ``flow_checks``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from flow_checks import check_invertible_layer, perturb_parameters
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from fgaug.flow.arithmetic import coupling_log_scale, gaussian_log_prob
from fgaug.flow.conditional import (
    ConditionalActNorm,
    ConditionalAffineCoupling,
    ConditionalInvConv1x1,
    GuidedCondition,
)
from fgaug.flow.glow import FlowStep, StepFeatures
from fgaug.flow.layers import (
    ActNorm,
    AffineCoupling,
    InvConv1x1,
    NetworkConv2d,
    SplitPrior,
    Squeeze,
    onednn_convolves,
)

BATCH, CHANNELS, HEIGHT, WIDTH = 3, 4, 2, 4  # not square: a log-determinant of H * H or W * W shows
COND_CHANNELS = 6


def data(seed: int = 0) -> Tensor:
    return torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed)) * 1.5 + 0.3


def condition(seed: int = 1) -> Tensor:
    return torch.randn(BATCH, COND_CHANNELS, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed))


class StepAsLayer(nn.Module):
    """A flow step seen through the layer contract, with one condition tensor per operation."""

    def __init__(self, step: FlowStep, conditional: bool) -> None:
        super().__init__()
        self.step = step
        self.conditional = conditional

    def _features(self, cond: Tensor | None) -> StepFeatures | None:
        if not self.conditional or cond is None:
            return None
        return StepFeatures(cond, cond.flip(1), cond * 0.5)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, logdet, _ = self.step(x, self._features(cond))
        return y, logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.step.inverse(y, self._features(cond))


def conditional_step() -> nn.Module:
    size = (HEIGHT, WIDTH)
    return StepAsLayer(
        FlowStep(
            ConditionalActNorm(CHANNELS, COND_CHANNELS, size, hidden=(8, 8, 8)),
            ConditionalInvConv1x1(CHANNELS, COND_CHANNELS, size, hidden=(8, 8, 8)),
            ConditionalAffineCoupling(CHANNELS, COND_CHANNELS, hidden=8, embed_hidden=4),
        ),
        conditional=True,
    )


def unconditional_step() -> nn.Module:
    return StepAsLayer(
        FlowStep(ActNorm(CHANNELS), InvConv1x1(CHANNELS), AffineCoupling(CHANNELS, hidden=8)),
        conditional=False,
    )


LAYERS: dict[str, tuple[Callable[[], nn.Module], bool]] = {
    "actnorm": (lambda: ActNorm(CHANNELS), False),
    "invconv1x1": (lambda: InvConv1x1(CHANNELS), False),
    "coupling": (lambda: AffineCoupling(CHANNELS, hidden=8), False),
    "squeeze": (Squeeze, False),
    "flow-step": (unconditional_step, False),
    "conditional-actnorm": (
        lambda: ConditionalActNorm(CHANNELS, COND_CHANNELS, (HEIGHT, WIDTH), hidden=(8, 8, 8)),
        True,
    ),
    "conditional-invconv1x1": (
        lambda: ConditionalInvConv1x1(CHANNELS, COND_CHANNELS, (HEIGHT, WIDTH), hidden=(8, 8, 8)),
        True,
    ),
    "conditional-coupling": (
        lambda: ConditionalAffineCoupling(CHANNELS, COND_CHANNELS, hidden=8, embed_hidden=4),
        True,
    ),
    "conditional-flow-step": (conditional_step, True),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_contract(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    factory, conditional = LAYERS[name]
    check_invertible_layer(factory(), data(), condition() if conditional else None, dtype, same_shape=name != "squeeze")


@pytest.mark.parametrize(
    "layer",
    [
        ConditionalActNorm(CHANNELS, COND_CHANNELS, (HEIGHT, WIDTH)),
        ConditionalInvConv1x1(CHANNELS, COND_CHANNELS, (HEIGHT, WIDTH)),
        ConditionalAffineCoupling(CHANNELS, COND_CHANNELS, hidden=8, embed_hidden=4),
    ],
    ids=["actnorm", "invconv1x1", "coupling"],
)
def test_wrong_condition_shape_raises_clear_error(layer: nn.Module) -> None:
    wrong = torch.randn(BATCH, COND_CHANNELS + 1, HEIGHT, WIDTH)
    with pytest.raises(ValueError, match=rf"expects a condition of shape \(B, 6, {HEIGHT}, {WIDTH}\)"):
        layer(data(), wrong)
    with pytest.raises(ValueError, match="needs a condition"):
        layer(data(), None)


def test_condition_batch_is_shared_by_repeated_samples() -> None:
    """One condition serving k samples equals the condition repeated k times."""
    torch.manual_seed(0)
    layer = conditional_step()
    x = data()
    cond = condition()[:1]
    with torch.no_grad():
        layer(x, cond.expand(BATCH, -1, -1, -1))
    perturb_parameters(layer)
    with torch.no_grad():
        shared, shared_logdet = layer(x, cond)
        repeated, repeated_logdet = layer(x, cond.expand(BATCH, -1, -1, -1).contiguous())
        back, _ = layer.inverse(shared, cond)
    torch.testing.assert_close(shared, repeated)
    torch.testing.assert_close(shared_logdet, repeated_logdet)
    torch.testing.assert_close(back, x, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="cannot serve a batch"):
        layer(x[:2], condition())


def test_actnorm_initialises_to_zero_mean_unit_variance() -> None:
    x = data() * 3 + 2
    for layer, cond in (
        (ActNorm(CHANNELS), None),
        (ConditionalActNorm(CHANNELS, COND_CHANNELS, (HEIGHT, WIDTH)), condition()),
    ):
        y, _ = layer(x, cond)
        flat = y.detach().transpose(0, 1).reshape(CHANNELS, -1)
        torch.testing.assert_close(flat.mean(1), torch.zeros(CHANNELS), atol=1e-5, rtol=0)
        torch.testing.assert_close(flat.std(1, unbiased=False), torch.ones(CHANNELS), atol=1e-4, rtol=0)
        assert bool(layer.initialized)


def test_actnorm_does_not_reinitialise_after_state_dict_load() -> None:
    trained = ActNorm(CHANNELS)
    trained(data())
    fresh = ActNorm(CHANNELS)
    fresh.load_state_dict(trained.state_dict())
    before = fresh.shift.detach().clone()
    fresh(data(seed=5) * 10)
    torch.testing.assert_close(fresh.shift.detach(), before)


def test_actnorm_loaded_with_an_uninitialised_state_initialises_on_its_next_batch() -> None:
    """Loading replaces the flag, and with it the layer's cached copy: a layer that has run and is
    then given a state saved before any batch (a fresh model's) initialises again from data."""
    layer = ActNorm(CHANNELS)
    layer(data())
    layer.load_state_dict(ActNorm(CHANNELS).state_dict())
    assert not layer.is_initialized()
    y, _ = layer(data(seed=5) * 10 + 4)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(CHANNELS), atol=1e-5, rtol=0)
    assert layer.is_initialized()


@pytest.mark.parametrize("conditional", [False, True], ids=["invconv1x1", "conditional-invconv1x1"])
def test_invconv_applies_the_permutation_it_loads(conditional: bool) -> None:
    """The permutation is applied as a row order derived from the saved matrix: a layer that loads
    another's weights (another seed, so another permutation) computes exactly what that one does."""

    def build(seed: int) -> nn.Module:
        generator = torch.Generator().manual_seed(seed)
        if conditional:
            return ConditionalInvConv1x1(
                CHANNELS, COND_CHANNELS, (HEIGHT, WIDTH), hidden=(8, 8, 8), generator=generator
            )
        return InvConv1x1(CHANNELS, generator)

    trained, fresh = build(1), build(2)
    assert not torch.equal(trained.permutation, fresh.permutation)
    fresh.load_state_dict(trained.state_dict())
    cond = condition() if conditional else None
    with torch.no_grad():
        assert torch.equal(fresh(data(), cond)[0], trained(data(), cond)[0])
        assert torch.equal(fresh.inverse(data(), cond)[0], trained.inverse(data(), cond)[0])


def test_conditional_invconv_starts_as_a_rotation_for_every_condition() -> None:
    layer = ConditionalInvConv1x1(CHANNELS, COND_CHANNELS, (HEIGHT, WIDTH))
    unit_lower, upper, _ = layer.triangles_for(condition())
    weight = layer.compose(unit_lower, upper).detach()
    eye = torch.eye(CHANNELS).expand(BATCH, -1, -1)
    torch.testing.assert_close(weight @ weight.transpose(1, 2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(weight[0], weight[1])


def test_coupling_scale_floor_keeps_inverse_finite() -> None:
    raw = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4])
    log_s = coupling_log_scale(raw, floor=1e-3)
    assert torch.isfinite(log_s).all()
    assert log_s.min() >= torch.log(torch.tensor(1e-3)) - 1e-6
    assert log_s.max() <= 0
    expected_middle = torch.log(1e-3 + (1 - 1e-3) * torch.sigmoid(torch.tensor(2.0)))
    torch.testing.assert_close(log_s[2], expected_middle)


def test_split_prior_merge_is_exact_and_log_prob_matches_gaussian() -> None:
    torch.manual_seed(0)
    prior = SplitPrior(CHANNELS)
    perturb_parameters(prior)
    x = data()
    kept, z, log_prob = prior.split(x)
    torch.testing.assert_close(prior.merge(kept, z), x)
    mean, log_std = prior.prior(kept, z)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(z).flatten(1).sum(1)
    torch.testing.assert_close(log_prob, expected)
    torch.testing.assert_close(gaussian_log_prob(z, mean, log_std), expected)


def test_split_prior_sample_at_zero_temperature_is_the_mean() -> None:
    prior = SplitPrior(CHANNELS, keep_none=True)
    with torch.no_grad():
        prior.top_mean.fill_(0.7)
    merged, _ = prior.sample(None, torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH), temperature=0.0)
    torch.testing.assert_close(merged, torch.full_like(merged, 0.7))


class GuidedLayer(nn.Module):
    """A conditional layer under classifier-free guidance, seen through the layer contract: the
    given condition is guided away from a fixed null condition with weight 1.5."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.register_buffer("null", condition(seed=7)[:1])

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.layer(x, GuidedCondition(cond, self.null.to(cond.dtype), 1.5))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.layer.inverse(y, GuidedCondition(cond, self.null.to(cond.dtype), 1.5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "name", [name for name, (_, conditional) in LAYERS.items() if conditional and "step" not in name]
)
def test_guided_layers_keep_the_contract(name: str, dtype: torch.dtype) -> None:
    """Guidance extrapolates the conditioning networks' outputs: the layer stays exactly invertible
    with exact log-determinants (round trip, sum to zero, autograd Jacobian)."""
    torch.manual_seed(0)
    layer = LAYERS[name][0]().to(dtype)
    with torch.no_grad():
        layer(data().to(dtype), condition().to(dtype))  # data-dependent initialisation
    check_invertible_layer(GuidedLayer(layer), data(), condition(), dtype)


@pytest.mark.parametrize(
    "name", [name for name, (_, conditional) in LAYERS.items() if conditional and "step" not in name]
)
def test_guidance_weight_zero_is_the_unguided_layer_and_one_extrapolates(name: str) -> None:
    torch.manual_seed(0)
    layer = LAYERS[name][0]().double()
    x, cond, null = data().double(), condition().double(), condition(seed=7)[:1].double()
    with torch.no_grad():
        layer(x, cond)
        perturb_parameters(layer)
        plain = layer(x, cond)[0]
        assert torch.equal(layer(x, GuidedCondition(cond, null, 0.0))[0], plain)
        guided = layer(x, GuidedCondition(cond, null, 1.0))[0]
        unconditional = layer(x, null.expand_as(cond))[0]
    assert not torch.allclose(guided, plain)
    assert not torch.allclose(guided, unconditional)


class OperatorLog(TorchDispatchMode):
    """Records the names of the aten operators called under it, as dispatched (not what they call inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_network_convolution_is_torchs_convolution_run_by_onednn(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an AVX-512 CPU in float32 the networks' convolution calls oneDNN itself: the same
    function as ``conv2d`` (float32 rounding apart), the same gradients and FLOP count; in float64
    and under autocast it is ``nn.Conv2d``."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    torch.manual_seed(0)
    conv = NetworkConv2d(6, 16, kernel_size=3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(1, 6, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert onednn_convolves(x, conv.weight) == torch.backends.mkldnn.is_available()
    assert not onednn_convolves(x.double(), conv.weight.double())
    with OperatorLog() as called:
        output = conv(x)
    assert ("mkldnn_convolution" in called.names) == torch.backends.mkldnn.is_available()
    expected = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)
    torch.testing.assert_close(output, expected)
    gradients = torch.autograd.grad(output.square().sum(), (x, conv.weight, conv.bias))
    expected_gradients = torch.autograd.grad(expected.square().sum(), (x, conv.weight, conv.bias))
    for gradient, expected_gradient in zip(gradients, expected_gradients, strict=True):
        torch.testing.assert_close(gradient, expected_gradient)
    with FlopCounterMode(display=False) as counter:
        conv(x)
    assert counter.get_total_flops() == 2 * 6 * 9 * 16 * 8 * 8
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x).dtype == torch.bfloat16


@pytest.mark.parametrize("capability", ["AVX2", "DEFAULT", "SVE256"])
def test_network_convolution_below_avx512_is_nn_conv2d(monkeypatch: pytest.MonkeyPatch, capability: str) -> None:
    """Where torch's CPU kernels run below AVX-512 (an AVX2-only CPU, a capped dispatch, Arm),
    oneDNN was no faster than torch's own choice, so the networks' convolution is ``nn.Conv2d``,
    bitwise, forward and backward."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    torch.manual_seed(0)
    conv = NetworkConv2d(6, 16, kernel_size=3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(1, 6, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert not onednn_convolves(x, conv.weight)
    with OperatorLog() as called:
        output = conv(x)
    assert called.names == ["convolution"]
    expected = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)
    assert torch.equal(output, expected)
    gradients = torch.autograd.grad(output.square().sum(), (x, conv.weight, conv.bias))
    expected_gradients = torch.autograd.grad(expected.square().sum(), (x, conv.weight, conv.bias))
    for gradient, expected_gradient in zip(gradients, expected_gradients, strict=True):
        assert torch.equal(gradient, expected_gradient)
