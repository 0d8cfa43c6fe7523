"""The figures fgaug writes: report plots, learning curves with confidence bands, per-class bars and
the training curves of a run (``results.png``), drawn with matplotlib.

Figures are made with ``matplotlib.figure.Figure`` and its Agg canvas directly (no pyplot, no
display, no global state), written atomically. Axes of quantities that cannot be negative start at
zero; ticks are matplotlib's round ones. matplotlib is imported when the first figure is drawn, so
the commands that draw none do not pay its import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fgaug.data.io import atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH, HEIGHT = 6.4, 4.0


def _figure(width: float, height: float) -> Figure:
    """A blank figure of ``width`` x ``height`` inches."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    return path


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(array), array, np.nan)


def line_plot(
    path: Path,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    x_label: str,
    y_label: str,
    title: str = "",
    from_zero: bool = True,
) -> Path:
    """Lines with markers, one per series, over a shared x; ``from_zero`` for quantities that
    cannot be negative (the y axis then starts at 0)."""
    figure = _figure(WIDTH, HEIGHT)
    axes = figure.add_subplot()
    for name, ys in series.items():
        axes.plot(x, _finite(ys), marker="o", label=name)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    if title:
        axes.set_title(title)
    if from_zero:
        axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    if len(series) > 1:
        axes.legend()
    return _save(figure, path)


def learning_curve_figure(
    curve: Sequence[Mapping[str, Any]],
    points: Sequence[Mapping[str, Any]] = (),
    y_label: str = "test mIoU",
    title: str = "",
) -> Figure:
    """The real-only learning curve (``real``, ``mean``, ``low``, ``high`` per size; x on a log
    scale) with its confidence band, and other results as points with error bars (``label``,
    ``real``, ``mean``, ``low``, ``high``). Points that share a label are one series: one colour,
    one legend entry, joined across sizes, set beside the other series at the same size."""
    figure = _figure(WIDTH + 1, HEIGHT + 0.5)
    axes = figure.add_subplot()
    sizes = [row["real"] for row in curve]
    means = _finite([row["mean"] for row in curve])
    axes.plot(sizes, means, marker="o", color="black", label="real only")
    low, high = _finite([row["low"] for row in curve]), _finite([row["high"] for row in curve])
    axes.fill_between(sizes, low, high, color="black", alpha=0.15, label="95% interval")
    series: dict[str, list[Mapping[str, Any]]] = {}
    for point in points:
        series.setdefault(point["label"], []).append(point)
    for index, (label, group) in enumerate(series.items()):
        group = sorted(group, key=lambda point: point["real"])
        offset = 1 + 0.04 * (index - (len(series) - 1) / 2)  # side by side at the same N
        centres = [point["mean"] for point in group]
        error = [
            [mean - point["low"] for mean, point in zip(centres, group, strict=True)],
            [point["high"] - mean for mean, point in zip(centres, group, strict=True)],
        ]
        xs = [point["real"] * offset for point in group]
        axes.errorbar(xs, centres, yerr=error, fmt="s-", linewidth=1, capsize=3, label=label)
    axes.set_xscale("log")
    axes.set_xticks(sizes, [str(size) for size in sizes])
    axes.minorticks_off()
    axes.set_xlabel("real training images")
    axes.set_ylabel(y_label)
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def learning_curve_plot(
    path: Path,
    curve: Sequence[Mapping[str, Any]],
    points: Sequence[Mapping[str, Any]] = (),
    y_label: str = "test mIoU",
    title: str = "",
) -> Path:
    """:func:`learning_curve_figure`, written to ``path``."""
    return _save(learning_curve_figure(curve, points, y_label, title), path)


def class_bars(
    path: Path, classes: Sequence[str], series: Mapping[str, Sequence[float]], y_label: str, title: str = ""
) -> Path:
    """Grouped bars per class (e.g. per-class IoU on real against synthetic photos, or differences)."""
    figure = _figure(max(WIDTH, 0.55 * len(classes) + 1.5), HEIGHT + 0.6)
    axes = figure.add_subplot()
    positions = np.arange(len(classes))
    width = 0.8 / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        axes.bar(positions + (index - (len(series) - 1) / 2) * width, _finite(values), width, label=name)
    axes.set_xticks(positions, classes, rotation=45, ha="right")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_ylabel(y_label)
    if title:
        axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        axes.legend(fontsize="small")
    return _save(figure, path)


def training_plot(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """``results.png`` of a run from its ``metrics.jsonl`` records: training and validation bits
    per dimension, learning rate, images/s and gradient norm against the step."""
    logged = [r for r in records if "loss" in r]
    validated = [r for r in records if "val_bpd" in r]
    figure = _figure(10, 6.5)
    grid = figure.subplots(2, 2)
    bpd_axes, lr_axes, speed_axes, grad_axes = grid[0][0], grid[0][1], grid[1][0], grid[1][1]
    steps = [r["step"] for r in logged]
    if logged:
        bpd_axes.plot(steps, _finite([r["bpd"] for r in logged]), label="train bits/dim (photo | mask)")
    if validated:
        bpd_axes.plot(
            [r["step"] for r in validated],
            _finite([r["val_bpd"] for r in validated]),
            marker="o",
            label="validation bits/dim (EMA)",
        )
    bpd_axes.set_title("bits per dimension")
    bpd_axes.legend(fontsize="small")
    for axes, key, title in (
        (lr_axes, "lr", "learning rate"),
        (speed_axes, "images_per_s", "training images/s"),
        (grad_axes, "grad_norm", "gradient norm (before clipping)"),
    ):
        axes.plot(steps, _finite([r.get(key, np.nan) for r in logged]))
        axes.set_title(title)
        axes.set_ylim(bottom=0)
    for axes in (bpd_axes, lr_axes, speed_axes, grad_axes):
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
    return _save(figure, path)
