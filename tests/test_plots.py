"""The learning-curve figure: one series per arm, whatever the number of real-set sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fgaug.data.plots import learning_curve_figure, learning_curve_plot

CURVE = [{"real": n, "mean": m, "low": m - 0.01, "high": m + 0.01} for n, m in ((10, 0.70), (20, 0.80), (40, 0.86))]


def point(label: str, real: int, mean: float) -> dict[str, object]:
    return {"label": label, "real": real, "mean": mean, "low": mean - 0.02, "high": mean + 0.03}


def test_points_that_share_a_label_are_one_series_in_order_of_size() -> None:
    points = [point("prior", 40, 0.87), point("copy-paste-real", 20, 0.83), point("prior", 10, 0.78)]
    axes = learning_curve_figure(CURVE, points).axes[0]
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels == ["real only", "95% interval", "prior", "copy-paste-real"]
    prior = next(bars for bars in axes.containers if bars.get_label() == "prior")
    xs, ys = prior.lines[0].get_data()
    assert np.allclose(ys, [0.78, 0.87]) and xs[0] < 10 < 40 > xs[1] > 20  # shifted left of its sizes
    assert np.allclose(np.asarray(xs) / [10, 40], (np.asarray(xs) / [10, 40])[0])  # the same offset at each


def test_the_plot_is_written_as_a_png(tmp_path: Path) -> None:
    path = learning_curve_plot(tmp_path / "curve.png", CURVE, [point("prior", 20, 0.82)], title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
