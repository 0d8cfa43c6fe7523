"""The spread of per-round ratios that benchmarks print: lower quartile, median, upper quartile."""

from __future__ import annotations

import statistics


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Quartiles of ``values`` by the inclusive method (the sample's range is the whole range); a
    single value is all three."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high
