"""Whole-model behaviour of FullGlow: invertibility, exact log-determinants, sampling, persistence."""

from __future__ import annotations

import io

import pytest
import torch
from devices import TEST_DEVICE
from flow_checks import jacobian_logdet, perturb_parameters

from fgaug.flow import FullGlow, network_precision
from fgaug.flow.config import FullGlowConfig
from fgaug.flow.fullglow import dequantize, quantize
from fgaug.flow.glow import level_shapes

SMALL = FullGlowConfig(
    image_size=(8, 16),
    n_block=3,
    n_flow=(2, 2, 2),
    coupling_hidden=16,
    condition_embed_hidden=8,
    param_net_hidden=(8, 8, 8),
)
TINY = FullGlowConfig(
    image_size=(4, 8),
    n_block=2,
    n_flow=(2, 1),
    coupling_hidden=8,
    condition_embed_hidden=4,
    param_net_hidden=(4, 4, 4),
)
"""Small enough for a brute-force Jacobian of a whole Glow in float64."""


def images(batch: int, channels: int = 3, size: tuple[int, int] = (8, 16), seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (batch, channels, *size), generator=generator).float() / 255).to(TEST_DEVICE)


def trained_looking_model(config: FullGlowConfig = SMALL, seed: int = 0) -> FullGlow:
    """A model after data-dependent init, with every parameter moved off its initial value."""
    model = FullGlow(config, seed=seed).to(TEST_DEVICE)
    with torch.no_grad():
        model(
            images(4, size=config.image_size),
            images(4, size=config.image_size, seed=1),
            generator=torch.Generator().manual_seed(seed),
        )
    perturb_parameters(model, scale=0.05, seed=seed)
    return model.eval()


def test_encode_decode_round_trip_is_exact_on_8bit_images() -> None:
    model = trained_looking_model()
    mask, photo = images(3), images(3, seed=2)
    with torch.no_grad():
        latents = model.encode(mask, photo)
        restored = model.decode(mask, latents)
    assert [tuple(z.shape[1:]) for z in latents] == model.latent_shapes()
    torch.testing.assert_close(restored, photo, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_target_glow_round_trip_and_logdet_sum_to_zero(dtype: torch.dtype) -> None:
    model = trained_looking_model().to(dtype)
    mask, photo = images(2).to(dtype), images(2, seed=3).to(dtype)
    with torch.no_grad():
        features = model.condition_features(mask)
        x = dequantize(photo, noise=True, generator=torch.Generator().manual_seed(0))
        encoding = model.target.encode(x, features)
        y, logdet_inverse = model.target.decode(encoding.latents, features)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(y, x, atol=tolerance, rtol=0)
    torch.testing.assert_close(encoding.logdet, -logdet_inverse, atol=tolerance * 100, rtol=tolerance)


def test_whole_model_logdet_equals_autograd_jacobian() -> None:
    """Source and target Glow logdets equal log|det| of the full Jacobian (float64, tiny input)."""
    config = TINY
    model = trained_looking_model(config).double()
    mask = images(1, size=(4, 8)).double()
    y = dequantize(images(1, size=(4, 8), seed=4), noise=True).double()
    features = model.condition_features(mask)

    def target_map(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.flatten() for z in model.target.encode(x[None], features).latents])

    def source_map(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.flatten() for z in model.source.encode(x[None]).latents])

    with torch.no_grad():
        target_logdet = model.target.encode(y, features).logdet[0]
        source_input = dequantize(mask, noise=True).double()
        source_logdet = model.source.encode(source_input).logdet[0]
    torch.testing.assert_close(target_logdet, jacobian_logdet(target_map, y[0]), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(source_logdet, jacobian_logdet(source_map, source_input[0]), atol=1e-6, rtol=1e-6)


def test_sample_log_likelihood_matches_encoding_the_sample() -> None:
    """log p(x|mask) reported by sample() equals the density of the decoded point (same y)."""
    model = trained_looking_model().double()
    mask = images(2).double()
    noise = [eps.to(TEST_DEVICE, torch.float64) for eps in model.sample_noise(2 * 3, torch.Generator().manual_seed(1))]
    features = model.condition_features(mask)
    with torch.no_grad():
        y, log_likelihood = model.target.sample(noise, 0.8, features)
        encoding = model.target.encode(y, features)
    torch.testing.assert_close(log_likelihood, encoding.log_prior + encoding.logdet, atol=1e-6, rtol=1e-8)


def test_temperature_zero_gives_the_same_sample_for_every_draw() -> None:
    model = trained_looking_model()
    samples = model.sample(images(2), n=4, temperature=0.0, generator=torch.Generator().manual_seed(0)).images
    assert samples.shape == (2, 4, 3, 8, 16)
    for draw in range(1, 4):
        torch.testing.assert_close(samples[:, draw], samples[:, 0], atol=0, rtol=0)
    assert not torch.equal(samples[0, 0], samples[1, 0])


def test_a_diverged_draw_is_flagged_and_never_selected() -> None:
    """A draw whose reverse pass blows up is flagged, gets log-likelihood -inf, and its image
    is still a valid 8-bit one; the other draws of the batch are untouched."""
    model = trained_looking_model()
    noise = model.sample_noise(3, torch.Generator().manual_seed(2))
    blown = [eps.clone() for eps in noise]
    for eps in blown:
        eps[1] *= 1e8
    calm = model.sample(images(1), n=3, temperature=0.8, noise=noise)
    drawn = model.sample(images(1), n=3, temperature=0.8, noise=blown)
    assert drawn.diverged.tolist() == [[False, True, False]] and not calm.diverged.any()
    assert drawn.log_likelihood[0, 1] == -torch.inf and torch.isfinite(drawn.log_likelihood[0, [0, 2]]).all()
    torch.testing.assert_close(drawn.images[0, [0, 2]], calm.images[0, [0, 2]], atol=0, rtol=0)
    assert torch.isfinite(drawn.images).all() and drawn.images.min() >= 0 and drawn.images.max() <= 1


def test_quantize_maps_nan_to_mid_grey() -> None:
    quantized = quantize(torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0]))
    assert (quantized * 255).round().tolist() == [128, 255, 0, 128]


def test_same_seed_same_samples_and_different_seed_different_samples() -> None:
    model = trained_looking_model()
    mask = images(2)

    def draw(seed: int) -> torch.Tensor:
        return model.sample(mask, n=3, temperature=0.8, generator=torch.Generator().manual_seed(seed)).images

    torch.testing.assert_close(draw(7), draw(7), atol=0, rtol=0)
    assert not torch.equal(draw(7), draw(8))
    first = draw(7)
    assert not torch.equal(first[:, 0], first[:, 1]), "samples of one mask must differ"


def test_save_load_gives_identical_nll_and_samples() -> None:
    model = trained_looking_model()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    restored = FullGlow(SMALL, seed=123).to(TEST_DEVICE)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    restored.eval()
    mask, photo = images(2), images(2, seed=9)

    def nll(m: FullGlow) -> torch.Tensor:
        with torch.no_grad():
            return m(mask, photo, generator=torch.Generator().manual_seed(3)).conditional_bpd

    def samples(m: FullGlow) -> torch.Tensor:
        return m.sample(mask, n=2, temperature=0.7, generator=torch.Generator().manual_seed(4)).images

    torch.testing.assert_close(nll(restored), nll(model), atol=0, rtol=0)
    torch.testing.assert_close(samples(restored), samples(model), atol=0, rtol=0)
    # a new batch must not re-run the data-dependent init of any actnorm
    state = {k: v.clone() for k, v in restored.state_dict().items()}
    with torch.no_grad():
        restored(images(2, seed=20) * 0.2, images(2, seed=21) * 0.3)
    for key, value in restored.state_dict().items():
        torch.testing.assert_close(value, state[key], atol=0, rtol=0, msg=f"{key} changed on a forward pass")


def test_nll_is_finite_from_the_first_step_and_gradients_flow() -> None:
    model = FullGlow(SMALL).to(TEST_DEVICE)
    mask, photo = torch.rand(4, 3, 8, 16, device=TEST_DEVICE), torch.rand(4, 3, 8, 16, device=TEST_DEVICE)
    output = model(mask, photo)
    assert torch.isfinite(output.loss)
    assert torch.isfinite(output.conditional_bpd).all() and torch.isfinite(output.source_bpd).all()
    output.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_a_few_steps_of_training_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = FullGlow(SMALL).to(TEST_DEVICE)
    mask, photo = images(4), images(4, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        output = model(mask, photo, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(output.loss.item())
    assert sum(losses[-5:]) / 5 < losses[0] - 0.5


def test_wrong_shapes_raise_clear_errors() -> None:
    model = FullGlow(SMALL)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, 3, 8, 16\)"):
        model.sample(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="photo must have shape"):
        model(torch.rand(1, 3, 8, 16), torch.rand(1, 1, 8, 16))
    with pytest.raises(ValueError, match="differ"):
        model(torch.rand(2, 3, 8, 16), torch.rand(1, 3, 8, 16))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(torch.rand(1, 3, 8, 16), temperature=-1)


def test_transfer_keeps_the_content_when_the_layout_is_unchanged() -> None:
    model = trained_looking_model()
    mask, photo = images(2), images(2, seed=5)
    torch.testing.assert_close(model.transfer(photo, mask, mask), photo, atol=0, rtol=0)
    moved = model.transfer(photo, mask, mask.flip(-1))
    assert moved.shape == photo.shape and not torch.equal(moved, photo)


def test_quantize_inverts_dequantize_for_every_8bit_value() -> None:
    values = (torch.arange(256).float().view(1, 1, 16, 16) / 255).to(TEST_DEVICE)  # k / 255 as the CPU divides
    torch.testing.assert_close(quantize(dequantize(values, noise=False)), values, atol=0, rtol=0)
    for seed in range(3):
        noisy = dequantize(values, noise=True, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(quantize(noisy), values, atol=0, rtol=0)


def test_level_shapes_follow_squeeze_and_split() -> None:
    assert level_shapes(3, (256, 256), 4) == [(12, 128, 128), (24, 64, 64), (48, 32, 32), (96, 16, 16)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_networks_keep_the_flow_exactly_invertible(dtype: torch.dtype) -> None:
    """Reduced-precision networks change the function, never its invertibility or logdet sums."""
    model = trained_looking_model()
    mask, photo = images(2), images(2, seed=6)
    with network_precision(dtype), torch.no_grad():
        features = model.condition_features(mask)
        x = dequantize(photo, noise=True, generator=torch.Generator().manual_seed(0))
        encoding = model.target.encode(x, features)
        y, logdet_inverse = model.target.decode(encoding.latents, features)
        restored = model.decode(mask, model.encode(mask, photo))
        half_bpd = model(mask, photo, generator=torch.Generator().manual_seed(0)).conditional_bpd
    with torch.no_grad():
        full_bpd = model(mask, photo, generator=torch.Generator().manual_seed(0)).conditional_bpd
    torch.testing.assert_close(restored, photo, atol=0, rtol=0)
    torch.testing.assert_close(encoding.logdet, -logdet_inverse, atol=1e-3, rtol=1e-5)
    # a half-precision network amplifies fp32 rounding of its input; still far inside half a grey level
    assert (y - x).abs().max() <= 1e-3
    assert not torch.equal(half_bpd, full_bpd), f"the networks did not run in {dtype}"
    torch.testing.assert_close(half_bpd, full_bpd, atol=0.05, rtol=0)


def test_tf32_is_allowed_inside_the_networks_only() -> None:
    """TF32 rounds convolutions; the invertible 1x1 conv and the parameter networks must never see it."""
    from fgaug.flow.compile import compiled_networks
    from fgaug.flow.conditional import ParameterNetwork
    from fgaug.flow.precision import TF32
    from fgaug.runtime import keep_float32_exact

    model = trained_looking_model()
    flags: dict[bool, set[tuple[bool, bool]]] = {True: set(), False: set()}

    def recorder(inside_run_network: bool):
        def record(module: torch.nn.Module, inputs: tuple) -> None:
            flags[inside_run_network].add((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))

        return record

    for network in compiled_networks(model):
        network.register_forward_pre_hook(recorder(not isinstance(network, ParameterNetwork)))
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    keep_float32_exact()
    try:
        with network_precision(TF32), torch.no_grad():
            restored = model.decode(images(2), model.encode(images(2), images(2, seed=6)))
        exact_after = not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    torch.testing.assert_close(restored, images(2, seed=6), atol=0, rtol=0)
    assert flags == {True: {(True, True)}, False: {(False, False)}}
    assert exact_after


@pytest.mark.parametrize("dtype", [None, "tf32", torch.bfloat16], ids=["fp32", "tf32", "bf16"])
def test_a_training_steps_backward_runs_in_tf32_only_under_tf32(dtype: torch.dtype | str | None) -> None:
    """``--precision tf32`` ran the networks' backward kernels in full float32: the flags were
    restored when their forward calls returned, before the backward pass began."""
    from fgaug.flow.precision import TF32
    from fgaug.runtime import keep_float32_exact
    from fgaug.training.train import forward_backward

    network_dtype = TF32 if dtype == "tf32" else dtype
    model = trained_looking_model().train()
    seen: set[tuple[bool, bool]] = set()

    def record(gradient: torch.Tensor) -> None:
        seen.add((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))

    for parameter in model.parameters():
        parameter.register_hook(record)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    keep_float32_exact()
    try:
        with network_precision(network_dtype):
            forward_backward(model, model, images(2), images(2, seed=6), torch.Generator().manual_seed(0))
        after = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert seen == {(dtype == "tf32",) * 2} and after == (False, False)


def test_initial_weights_depend_on_the_seed_only() -> None:
    torch.manual_seed(1)
    first = FullGlow(SMALL, seed=4).state_dict()
    torch.manual_seed(2)
    second = FullGlow(SMALL, seed=4).state_dict()
    third = FullGlow(SMALL, seed=5).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_gradient_checkpointing_gives_the_same_gradients(dtype: torch.dtype | None) -> None:
    def gradients(checkpointing: bool) -> list[torch.Tensor]:
        model = trained_looking_model().train()
        model.set_gradient_checkpointing(checkpointing)
        with network_precision(dtype):
            loss = model(images(2), images(2, seed=8), generator=torch.Generator().manual_seed(0)).loss
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    for plain, recomputed in zip(gradients(False), gradients(True), strict=True):
        torch.testing.assert_close(recomputed, plain, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["coupling", "raw"])
def test_ablation_modes_are_exact_flows_with_the_expected_structure(mode: str) -> None:
    from fgaug.flow.conditional import ConditionalActNorm, ConditionalAffineCoupling
    from fgaug.flow.layers import ActNorm

    config = FullGlowConfig.from_dict({**SMALL.to_dict(), "conditioning": mode})
    model = trained_looking_model(config)
    step = model.target.levels[0][0]
    assert isinstance(step.coupling, ConditionalAffineCoupling)
    assert isinstance(step.actnorm, ActNorm if mode == "coupling" else ConditionalActNorm)
    assert (model.source is None) == (mode == "raw")
    mask, photo = images(2), images(2, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(mask, model.encode(mask, photo)), photo, atol=0, rtol=0)
        output = model(mask, photo, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(output.loss)
    assert (output.source_bpd == 0).all() == (mode == "raw")
    other_mask = model.sample(images(2, seed=9), n=1, temperature=0.0).images
    assert not torch.equal(model.sample(mask, n=1, temperature=0.0).images, other_mask), "the mask must matter"


@pytest.mark.parametrize("mode", ["full", "raw"])
def test_drawn_offsets_give_the_loss_of_the_generator_they_come_from(mode: str) -> None:
    """The CUDA-graph training step feeds the offsets as tensors: they must be the generator's draws."""
    model = trained_looking_model(FullGlowConfig.from_dict({**SMALL.to_dict(), "conditioning": mode})).train()
    mask, photo = images(2), images(2, seed=5)
    with torch.no_grad():
        from_generator = model(mask, photo, generator=torch.Generator().manual_seed(3))
        offsets = model.dequantization_offsets(2, torch.Generator().manual_seed(3))
        given = model(mask, photo, offsets=offsets)
        other = model(mask, photo, offsets=model.dequantization_offsets(2, torch.Generator().manual_seed(4)))
    assert (offsets.mask is None) == (mode == "raw")
    torch.testing.assert_close(given.loss, from_generator.loss, atol=0, rtol=0)
    torch.testing.assert_close(given.conditional_bpd, from_generator.conditional_bpd, atol=0, rtol=0)
    assert not torch.equal(other.conditional_bpd, given.conditional_bpd)
