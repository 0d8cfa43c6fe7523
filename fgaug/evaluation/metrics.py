"""The numbers fgaug reports about synthetic images (pure numpy, no I/O).

* Label consistency (the paper's protocol, after FCN): a segmenter's prediction on a synthetic
  photo against the mask it was generated from, over the 19 train ids: pixel accuracy, mean
  class accuracy and mean IoU from one accumulated confusion matrix
  (:mod:`fgaug.segmentation.scores`).
* Diversity among the samples of one mask: mean pairwise L1 and 1 - SSIM, and per-class colour
  spread.
* Match to a known appearance distribution: the 1-D Wasserstein distance per class and channel.
* Feature-distribution distance (FID with a user's feature network): the Fréchet distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from fgaug.data.io import DataError
from fgaug.data.labels import IGNORE_TRAIN_ID


def mean_pairwise_l1(images: Sequence[np.ndarray]) -> float:
    """Mean absolute difference in [0, 1] units over all pairs of images (uint8, same shape)."""
    pairs = list(combinations(range(len(images)), 2))
    if not pairs:
        return 0.0
    return float(
        np.mean([np.abs(images[a].astype(np.float64) - images[b].astype(np.float64)).mean() / 255 for a, b in pairs])
    )


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' convolution of a (H, W) array."""
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, image)
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    r"""Structural similarity of two uint8 images (Wang et al. 2004: 11x11 Gaussian window,
    sigma 1.5, :math:`C_1 = (0.01 L)^2`, :math:`C_2 = (0.03 L)^2`, L = 255), averaged over
    channels and the valid window positions. Images smaller than the window use a window of
    their own size."""
    if first.shape != second.shape:
        raise ValueError(f"images of shapes {first.shape} and {second.shape} cannot be compared")
    a = first.astype(np.float64).reshape(*first.shape[:2], -1)
    b = second.astype(np.float64).reshape(*second.shape[:2], -1)
    size = min(11, a.shape[0], a.shape[1])
    kernel = _gaussian_window(size, 1.5 * size / 11)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for channel in range(a.shape[2]):
        x, y = a[..., channel], b[..., channel]
        mu_x, mu_y = _blur(x, kernel), _blur(y, kernel)
        var_x = _blur(x * x, kernel) - mu_x**2
        var_y = _blur(y * y, kernel) - mu_y**2
        covariance = _blur(x * y, kernel) - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + c1) * (2 * covariance + c2)
        denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        scores.append(float((numerator / denominator).mean()))
    return float(np.mean(scores))


def mean_pairwise_dissimilarity(images: Sequence[np.ndarray]) -> float:
    """Mean 1 - SSIM over all pairs of images."""
    pairs = list(combinations(range(len(images)), 2))
    if not pairs:
        return 0.0
    return float(np.mean([1.0 - ssim(images[a], images[b]) for a, b in pairs]))


def class_colour_spread(images: Sequence[np.ndarray], label_ids: np.ndarray) -> dict[int, float]:
    """Per label id present: the standard deviation, across the samples, of the class's mean
    colour (RGB, 0-255), averaged over channels. High: the samples paint the class differently."""
    spread = {}
    for label in np.unique(label_ids):
        region = label_ids == label
        means = np.stack([image[region].astype(np.float64).mean(axis=0) for image in images])
        spread[int(label)] = float(means.std(axis=0).mean())
    return spread


def wasserstein_1d(first: np.ndarray, second: np.ndarray) -> float:
    r""":math:`W_1 = \int |F(x) - G(x)|\,dx` between the empirical distributions of two 1-D samples,
    computed exactly from their CDFs (``scipy.stats.wasserstein_distance``); NaN when either is empty."""
    if first.size == 0 or second.size == 0:
        return float("nan")
    from scipy import stats

    return float(stats.wasserstein_distance(first.ravel(), second.ravel()))


def ignored_fraction(train_ids: np.ndarray) -> float:
    """Fraction of pixels a consistency score leaves out (trainId 255)."""
    return float((train_ids == IGNORE_TRAIN_ID).mean())


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    r"""Fréchet distance between Gaussian fits of two feature sets (N, D) — FID when the features
    are Inception pool activations:

    .. math:: \|\mu_1 - \mu_2\|^2 + \mathrm{tr}\big(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\big)

    with the matrix square root from ``scipy.linalg.sqrtm`` (its real part; the imaginary part of
    a product of two covariance matrices is numerical noise). Each set needs two rows or more,
    since a covariance needs them."""
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1]:
        raise ValueError(f"feature sets of shapes {first.shape} and {second.shape} cannot be compared")
    if min(len(first), len(second)) < 2:
        raise DataError(
            f"a Fréchet distance needs at least 2 feature rows per set (got {len(first)} and {len(second)}): "
            "use more images"
        )
    mean_a, mean_b = first.mean(axis=0), second.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(first.astype(np.float64), rowvar=False))
    cov_b = np.atleast_2d(np.cov(second.astype(np.float64), rowvar=False))
    from scipy import linalg

    cross = linalg.sqrtm(cov_a @ cov_b)
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross).real)
