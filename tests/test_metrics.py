"""Metric code against values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fgaug.evaluation.metrics import (
    class_colour_spread,
    mean_pairwise_dissimilarity,
    mean_pairwise_l1,
    ssim,
    wasserstein_1d,
)
from fgaug.segmentation.scores import confusion_matrix, segmentation_scores


def test_segmentation_scores_by_hand() -> None:
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    predicted = np.array([[0, 1, 1, 1], [2, 0, 7, 250]])
    matrix = confusion_matrix(predicted, target, classes=3)
    # class 0: 2 target px, 1 right; predicted 0 twice -> IoU 1/(2+2-1) = 1/3
    # class 1: 2 target px, 2 right; predicted 1 three times -> IoU 2/(2+3-2) = 2/3
    # class 2: 2 target px, 1 right; predicted 2 once -> IoU 1/(2+1-1) = 1/2
    expected = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0]])
    np.testing.assert_array_equal(matrix, expected)
    scores = segmentation_scores(matrix)
    assert scores.pixel_accuracy == pytest.approx(4 / 6)
    assert scores.mean_class_accuracy == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert scores.mean_iou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_unseen_classes_are_not_averaged_and_false_positives_count() -> None:
    target = np.array([[1, 1, 1, 1]])
    predicted = np.array([[1, 1, 200, 0]])
    scores = segmentation_scores(confusion_matrix(predicted, target, classes=3))
    # class 1: 2 right of 4 target px -> accuracy 1/2, IoU 2/(4+2-2); class 0: predicted once, never
    # in the target -> IoU 0, averaged (FCN / cityscapesScripts); class 2: neither -> left out
    assert scores.mean_class_accuracy == pytest.approx(0.5)
    assert scores.mean_iou == pytest.approx((0 + 2 / 4) / 2)
    assert scores.per_class_iou[0] == 0.0 and math.isnan(scores.per_class_iou[2])
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(predicted, target[:, :3])


def test_pairwise_l1_by_hand() -> None:
    images = [np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8), np.full((2, 2, 3), 51, np.uint8)]
    # pairs: |0-255| = 1.0, |0-51| = 0.2, |255-51| = 0.8 -> mean 2/3
    assert mean_pairwise_l1(images) == pytest.approx(2 / 3)
    assert mean_pairwise_l1(images[:1]) == 0.0


def test_ssim_is_one_for_equal_images_and_matches_the_formula_on_flat_ones() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert ssim(image, image) == pytest.approx(1.0)
    assert mean_pairwise_dissimilarity([image, image]) == pytest.approx(0.0, abs=1e-12)
    a, b = np.full((12, 12), 100, np.uint8), np.full((12, 12), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)  # flat images: variance terms cancel
    assert ssim(a, b) == pytest.approx(expected)
    noisy = np.clip(image.astype(int) + rng.integers(-60, 60, image.shape), 0, 255).astype(np.uint8)
    assert 0 < 1 - ssim(image, noisy) < 1


def test_class_colour_spread_by_hand() -> None:
    labels = np.array([[7, 7], [23, 23]])
    first = np.zeros((2, 2, 3), np.uint8)
    second = np.zeros((2, 2, 3), np.uint8)
    second[0] = 20  # road differs by 20 in every channel, sky is equal
    spread = class_colour_spread([first, second], labels)
    assert spread == {7: pytest.approx(10.0), 23: 0.0}


def test_wasserstein_by_hand() -> None:
    values = np.arange(100, dtype=np.float64)
    assert wasserstein_1d(values, values) == 0.0
    assert wasserstein_1d(values, values + 3.5) == pytest.approx(3.5)
    assert wasserstein_1d(np.zeros(10), np.ones(30)) == pytest.approx(1.0)
    assert math.isnan(wasserstein_1d(np.array([]), values))


def test_frechet_distance_by_hand() -> None:
    from fgaug.evaluation.metrics import frechet_distance

    rng = np.random.default_rng(0)
    features = rng.normal(size=(4000, 3))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-9)
    # a pure shift by (1, 2, 2): distance = |shift|^2 = 9 (covariances equal)
    assert frechet_distance(features, features + np.array([1.0, 2.0, 2.0])) == pytest.approx(9.0)
    # 1-D: N(0, 1) vs N(0, 4) -> 1 + 4 - 2 * sqrt(1 * 4) = 1 (sample estimates, so approximately)
    assert frechet_distance(rng.normal(size=(20000, 1)), 2 * rng.normal(size=(20000, 1))) == pytest.approx(
        1.0, abs=0.08
    )
    with pytest.raises(ValueError, match="cannot be compared"):
        frechet_distance(features, features[:, :2])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([0, 0, 1, 1, 1, 5], [1, 1, 1, 1]),  # ties on both sides
        ([0.5], [3.0, 4.0, 10.0]),  # a single point against three
        ([1, 2, 3], [1, 2, 3]),  # identical sets
        (np.arange(7.0), np.arange(101.0) / 10),  # different sample sizes
    ],
    ids=["ties", "single-point", "identical", "sizes"],
)
def test_wasserstein_equals_scipy_on_edge_cases(first: list[float], second: list[float]) -> None:
    from scipy.stats import wasserstein_distance

    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    assert wasserstein_1d(a, b) == pytest.approx(wasserstein_distance(a, b), abs=1e-12)
    assert wasserstein_1d(a, b) == pytest.approx(wasserstein_1d(b, a), abs=1e-12)


def test_wasserstein_counts_the_whole_tail() -> None:
    """One value in a hundred moved by 1000 moves 10 units of mass-distance; mid-point quantiles
    (the earlier estimate) saw 4.7 of them."""
    shifted = np.zeros(100)
    shifted[-1] = 1000.0
    assert wasserstein_1d(shifted, np.zeros(100)) == pytest.approx(10.0)


def test_frechet_distance_against_the_diagonal_closed_form_and_clear_errors() -> None:
    from fgaug.evaluation.metrics import frechet_distance

    rng = np.random.default_rng(1)
    first = rng.normal(size=(50, 4)) * np.array([1.0, 2.0, 0.5, 3.0]) + 1
    second = rng.normal(size=(70, 4)) * np.array([2.0, 1.0, 1.5, 1.0]) - 2
    # with covariances made exactly diagonal, FD = |mu1 - mu2|^2 + sum (sigma1 - sigma2)^2
    diagonal_a = np.diag(np.cov(first, rowvar=False))
    diagonal_b = np.diag(np.cov(second, rowvar=False))
    expected = ((first.mean(0) - second.mean(0)) ** 2).sum() + ((np.sqrt(diagonal_a) - np.sqrt(diagonal_b)) ** 2).sum()
    whitened_a = _with_diagonal_covariance(first)
    whitened_b = _with_diagonal_covariance(second)
    assert frechet_distance(whitened_a, whitened_b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(first, first) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 feature rows"):
        frechet_distance(first[:1], second)


def _with_diagonal_covariance(features: np.ndarray) -> np.ndarray:
    """The same means and per-dimension variances, correlations removed (PCA-whitened then rescaled)."""
    centred = features - features.mean(0)
    values, vectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    white = centred @ vectors / np.sqrt(values)
    return white * np.sqrt(np.diag(np.cov(features, rowvar=False))) + features.mean(0)


@pytest.mark.parametrize("shape", [(32, 48, 3), (64, 64, 3), (20, 25)], ids=["rgb", "square", "grey"])
def test_ssim_equals_scikit_image(shape: tuple[int, ...]) -> None:
    """Wang et al.'s SSIM as scikit-image computes it: Gaussian window (sigma 1.5, 11 taps),
    population covariances, mean over the valid windows and the channels."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(len(shape))
    random = rng.integers(0, 256, shape).astype(np.uint8)
    ramp = np.clip(np.linspace(0, 255, shape[1])[None, :] + rng.normal(0, 20, shape[:2])[..., None][..., 0], 0, 255)
    real_like = np.broadcast_to(ramp[..., None] if len(shape) == 3 else ramp, shape).astype(np.uint8)
    for a, b in ((random, real_like), (real_like, np.clip(real_like.astype(int) + 30, 0, 255).astype(np.uint8))):
        reference = structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=2 if a.ndim == 3 else None,
        )
        assert ssim(a, b) == pytest.approx(reference, abs=1e-6)
