"""Noise-augmented training, condition dropout, classifier-free guidance and self-denoising (issue 21)."""

from __future__ import annotations

import pytest
import torch
from devices import TEST_DEVICE
from test_fullglow import SMALL, images, trained_looking_model

from fgaug.flow import FullGlow
from fgaug.flow.config import ConfigError, FullGlowConfig, parse_noise
from fgaug.flow.fullglow import bits_per_dim, dequantize
from fgaug.flow.glow import guided_conditions

GAUSSIAN = FullGlowConfig.from_dict({**SMALL.to_dict(), "gaussian_noise": 0.03})
DROPOUT = FullGlowConfig.from_dict({**SMALL.to_dict(), "condition_dropout": 0.25})


def test_noise_option_parses_and_refuses_bad_values() -> None:
    assert parse_noise("uniform") == 0.0
    assert parse_noise("gaussian:0.02") == 0.02
    for bad in ("gaussian", "gaussian:0", "gaussian:-0.1", "gaussian:x", "laplace:0.1", "gaussian:1.5"):
        with pytest.raises(ConfigError, match="noise must be"):
            parse_noise(bad)
    assert GAUSSIAN.noise == "gaussian:0.03" and SMALL.noise == "uniform"
    with pytest.raises(ConfigError, match="condition_dropout"):
        FullGlowConfig.from_dict({**SMALL.to_dict(), "condition_dropout": 1.0})


def test_a_config_without_the_new_keys_loads_with_the_paper_recipe() -> None:
    """Checkpoints written before issue 21 hold no noise or dropout key."""
    values = SMALL.to_dict()
    del values["gaussian_noise"], values["condition_dropout"]
    config = FullGlowConfig.from_dict(values)
    assert config.gaussian_noise == 0.0 and config.condition_dropout == 0.0


def test_uniform_models_draw_the_same_training_noise_as_before() -> None:
    """No dropout draw is added to the generator's stream of a model without dropout, so older
    runs resume and reproduce bit for bit."""
    model = FullGlow(SMALL)
    offsets = model.dequantization_offsets(2, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(2, 3, 8, 16, generator=generator)
    photo = torch.rand(2, 3, 8, 16, generator=generator)
    assert offsets.mask_keep is None
    assert torch.equal(offsets.mask, mask) and torch.equal(offsets.photo, photo)


def test_gaussian_noise_trains_on_the_bin_centre_plus_sigma_eps() -> None:
    model = trained_looking_model(GAUSSIAN).train()
    mask, photo = images(2), images(2, seed=5)
    offsets = model.dequantization_offsets(2, torch.Generator().manual_seed(3))
    eps = (offsets.photo - 0.5) / (256 * 0.03)
    assert abs(float(eps.mean())) < 0.1 and abs(float(eps.std()) - 1) < 0.1
    with torch.no_grad():
        output = model(mask, photo, offsets=offsets)
        noisy = dequantize(photo, noise=False) + 0.03 * eps.to(TEST_DEVICE)
        # the source side is dequantised with noise in training; compare the target term only
        features = model._source_side(mask, noise=True, offset=offsets.mask)[0]
        encoding = model.target.encode(noisy, features)
    expected = bits_per_dim(encoding.log_prior + encoding.logdet, model.target_dims)
    torch.testing.assert_close(output.conditional_bpd, expected, atol=1e-5, rtol=1e-6)


def test_condition_dropout_replaces_dropped_masks_by_the_null_condition() -> None:
    model = trained_looking_model(DROPOUT).train()
    mask, photo = images(3), images(3, seed=5)
    offsets = model.dequantization_offsets(3, torch.Generator().manual_seed(1))
    assert offsets.mask_keep is not None and set(offsets.mask_keep.tolist()) <= {0.0, 1.0}
    keep = torch.tensor([1.0, 0.0, 1.0])
    offsets.mask_keep = keep
    null = model.null_condition(TEST_DEVICE).expand(3, -1, -1, -1)
    with torch.no_grad():
        dropped = model(mask, photo, offsets=offsets)
        offsets.mask_keep = torch.ones(3)
        kept = model(mask, photo, offsets=offsets)
        offsets.mask_keep = torch.zeros(3)
        all_null = model(mask, photo, offsets=offsets)
        offsets.mask_keep = None
        plain = model(mask, photo, offsets=offsets)
        with_null_masks = model(null, photo, offsets=offsets)
        model.eval()
        offsets.mask_keep = torch.zeros(3)
        evaluated = model(mask, photo, offsets=offsets)
    assert torch.equal(kept.conditional_bpd, plain.conditional_bpd)
    assert torch.equal(all_null.conditional_bpd, with_null_masks.conditional_bpd)
    torch.testing.assert_close(dropped.conditional_bpd[[0, 2]], plain.conditional_bpd[[0, 2]])
    torch.testing.assert_close(dropped.conditional_bpd[1], with_null_masks.conditional_bpd[1])
    assert not torch.allclose(dropped.conditional_bpd[1], plain.conditional_bpd[1])
    assert torch.equal(evaluated.conditional_bpd, plain.conditional_bpd), "no dropout outside training"


def test_dropout_fraction_is_drawn_as_configured() -> None:
    model = FullGlow(DROPOUT)
    keep = model.dequantization_offsets(4000, torch.Generator().manual_seed(0)).mask_keep
    assert keep is not None and 0.22 < 1 - float(keep.mean()) < 0.28


def test_guidance_zero_is_todays_sampling_bitwise_and_guidance_changes_the_images() -> None:
    model = trained_looking_model(DROPOUT)
    mask = images(2)
    noise = model.sample_noise(2 * 3, torch.Generator().manual_seed(4))
    plain = model.sample(mask, 3, 0.8, noise=noise)
    unguided = model.sample(mask, 3, 0.8, noise=noise, guidance=0.0)
    guided = model.sample(mask, 3, 0.8, noise=noise, guidance=2.0)
    assert torch.equal(unguided.images, plain.images)
    assert torch.equal(unguided.log_likelihood, plain.log_likelihood)
    assert not torch.equal(guided.images, plain.images)


def test_a_guided_sample_is_an_exact_draw_of_the_guided_flow() -> None:
    """The guided reverse pass is invertible: encoding the draw under the guided conditions gives
    back its latents' density (the log-likelihood sample() reports)."""
    model = trained_looking_model(DROPOUT).double()
    mask = images(2).double()
    noise = [eps.double() for eps in model.sample_noise(2, torch.Generator().manual_seed(2))]
    with torch.no_grad():
        features = model.condition_features(mask)
        null = model.condition_features(model.null_condition(TEST_DEVICE).double())
        conditions = guided_conditions(features, null, 1.5)
        y, log_likelihood = model.target.sample(noise, 0.8, conditions)
        encoding = model.target.encode(y, conditions)
    torch.testing.assert_close(log_likelihood, encoding.log_prior + encoding.logdet, atol=1e-6, rtol=1e-8)


def test_guidance_and_denoising_are_refused_for_models_not_trained_for_them() -> None:
    plain = trained_looking_model()
    mask = images(1)
    with pytest.raises(ValueError, match="condition dropout"):
        plain.sample(mask, guidance=1.0)
    with pytest.raises(ValueError, match="Gaussian noise"):
        plain.sample(mask, denoise_scale=1.0)
    with pytest.raises(ValueError, match="guidance must be"):
        trained_looking_model(DROPOUT).sample(mask, guidance=-1.0)
    with pytest.raises(ValueError, match="denoising scale"):
        trained_looking_model(GAUSSIAN).sample(mask, denoise_scale=0.0)


def test_denoising_step_equals_sigma_squared_times_a_finite_difference_score() -> None:
    """x_hat - y = s sigma^2 d log p(y | mask) / dy, the derivative checked coordinate by
    coordinate against central differences of the log-density (float64, tiny model)."""
    config = FullGlowConfig.from_dict(
        {
            **SMALL.to_dict(),
            "image_size": [4, 8],
            "n_block": 2,
            "n_flow": [1, 1],
            "gaussian_noise": 0.05,
        }
    )
    model = trained_looking_model(config).double()
    mask = images(2, size=(4, 8)).double()
    y = dequantize(images(2, size=(4, 8), seed=6), noise=False).double()
    features = model.condition_features(mask)
    step = model.denoise(y, features, scale=1.3) - y

    def log_density(point: torch.Tensor) -> torch.Tensor:
        encoding = model.target.encode(point, features)
        return encoding.log_prior + encoding.logdet

    generator = torch.Generator().manual_seed(0)
    h = 1e-5
    for _ in range(6):
        index = tuple(int(torch.randint(0, size, (1,), generator=generator)) for size in y.shape[1:])
        bump = torch.zeros_like(y)
        bump[(slice(None), *index)] = h
        with torch.no_grad():
            derivative = (log_density(y + bump) - log_density(y - bump)) / (2 * h)
        torch.testing.assert_close(step[(slice(None), *index)], 1.3 * 0.05**2 * derivative, atol=1e-9, rtol=1e-5)


def test_denoised_samples_move_by_the_score_step_and_keep_their_draws_likelihood() -> None:
    model = trained_looking_model(GAUSSIAN)
    mask = images(2)
    noise = model.sample_noise(4, torch.Generator().manual_seed(1))
    plain = model.sample(mask, 2, 0.8, noise=noise)
    denoised = model.sample(mask, 2, 0.8, noise=noise, denoise_scale=1.0)
    assert torch.equal(denoised.log_likelihood, plain.log_likelihood)
    assert not torch.equal(denoised.images, plain.images)
    assert (denoised.images - plain.images).abs().max() < 0.5, "one score step, not a new image"


def test_a_denoised_batch_equals_its_samples_denoised_one_by_one() -> None:
    """Each draw's score depends on that draw only, so batching changes nothing but rounding."""
    model = trained_looking_model(GAUSSIAN)
    mask = images(3)
    noise = model.sample_noise(3 * 2, torch.Generator().manual_seed(7))
    together = model.sample(mask, 2, 0.8, noise=noise, denoise_scale=1.0).images
    for m in range(3):
        alone = model.sample(
            mask[m : m + 1], 2, 0.8, noise=[eps[2 * m : 2 * m + 2] for eps in noise], denoise_scale=1.0
        ).images
        assert (alone[0] - together[m]).abs().max() <= 1 / 255 + 1e-7
