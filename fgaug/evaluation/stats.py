"""Statistics of repeated experiments: confidence intervals, paired differences, and the "worth in
real images" of a result read off a learning curve (scipy for the t distribution, imported on first
use: it takes a second, which commands that compute no interval should not pay)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    r"""Mean of ``n`` values with its two-sided confidence interval from Student's t:

    .. math:: \bar x \pm t_{1 - \alpha/2,\, n-1}\, s / \sqrt n
    """

    mean: float
    half_width: float
    n: int
    confidence: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def to_dict(self) -> dict[str, float | int]:
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "half_width": self.half_width,
            "n": self.n,
            "confidence": self.confidence,
        }


NO_INTERVAL = "(1 value: no interval)"
"""What reports print for the interval of a single value (one seed), whose width is NaN."""


def signed_interval(interval: Interval) -> str:
    """A difference and its interval as reports print them: ``+0.0123 [+0.0050, +0.0196]``, or
    ``+0.0123 (1 value: no interval)``."""
    if math.isnan(interval.half_width):
        return f"{interval.mean:+.4f} {NO_INTERVAL}"
    return f"{interval.mean:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}]"


def plus_minus(interval: Interval) -> str:
    """The half width of an interval as reports print it: ``± 0.0073``, or ``(1 value: no interval)``."""
    return NO_INTERVAL if math.isnan(interval.half_width) else f"± {interval.half_width:.4f}"


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """The mean and t confidence interval of independent values (a single value: width NaN)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values to average")
    if array.size == 1:
        return Interval(float(array[0]), math.nan, 1, confidence)
    from scipy import stats

    sem = float(array.std(ddof=1) / math.sqrt(array.size))
    quantile = float(stats.t.ppf(0.5 + confidence / 2, df=array.size - 1))
    return Interval(float(array.mean()), quantile * sem, int(array.size), confidence)


def paired_interval(treated: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> Interval:
    """The interval of the mean difference ``treated - baseline`` of values paired by position
    (the same seed in both arms): the seed-to-seed spread they share cancels."""
    if len(treated) != len(baseline):
        raise ValueError(f"{len(treated)} treated and {len(baseline)} baseline values cannot be paired")
    return mean_interval(np.asarray(treated, dtype=np.float64) - np.asarray(baseline, dtype=np.float64), confidence)


@dataclass(frozen=True)
class RealWorth:
    """How many real images a result is worth on a learning curve: ``images`` when it lies within
    the curve, else ``below``/``above`` the curve's smallest/largest size."""

    images: float | None
    below: bool = False
    above: bool = False

    def describe(self) -> str:
        if self.images is not None:
            return f"{self.images:.0f}"
        return "below the curve" if self.below else "above the curve"


def worth_in_real_images(sizes: Sequence[int], scores: Sequence[float], score: float) -> RealWorth:
    """The real training-set size N' whose learning-curve score equals ``score``.

    The curve (mean score per real size) is made non-decreasing (a running maximum, since more
    real data never hurts in expectation) and interpolated linearly in log N; a flat stretch
    gives its smallest size.
    """
    order = np.argsort(sizes)
    log_sizes = np.log(np.asarray(sizes, dtype=np.float64)[order])
    envelope = np.maximum.accumulate(np.asarray(scores, dtype=np.float64)[order])
    if score < envelope[0]:
        return RealWorth(None, below=True)
    if score > envelope[-1]:
        return RealWorth(None, above=True)
    upper = int(np.searchsorted(envelope, score, side="left"))
    if envelope[upper] == score or upper == 0:
        return RealWorth(float(math.exp(log_sizes[upper])))
    lower = upper - 1
    fraction = (score - envelope[lower]) / (envelope[upper] - envelope[lower])
    return RealWorth(float(math.exp(log_sizes[lower] + fraction * (log_sizes[upper] - log_sizes[lower]))))
