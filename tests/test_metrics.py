"""Metric code against values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fgaug.metrics import (
    class_colour_spread,
    confusion_matrix,
    mean_pairwise_dissimilarity,
    mean_pairwise_l1,
    segmentation_scores,
    ssim,
    wasserstein_1d,
)


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
    assert scores["pixel_accuracy"] == pytest.approx(4 / 6)
    assert scores["mean_class_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert scores["mean_iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_unseen_classes_are_not_averaged_and_false_positives_count() -> None:
    target = np.array([[1, 1, 1, 1]])
    predicted = np.array([[1, 1, 200, 0]])
    scores = segmentation_scores(confusion_matrix(predicted, target, classes=3))
    # class 1: 2 right of 4 target px -> accuracy 1/2, IoU 2/(4+2-2); class 0: predicted once, never
    # in the target -> IoU 0, averaged (FCN / cityscapesScripts); class 2: neither -> left out
    assert scores["mean_class_accuracy"] == pytest.approx(0.5)
    assert scores["mean_iou"] == pytest.approx((0 + 2 / 4) / 2)
    assert scores["per_class_iou"][0] == 0.0 and math.isnan(scores["per_class_iou"][2])
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
    from fgaug.metrics import frechet_distance

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
