"""``fgaug evaluate quality``'s report: ``quality.json``, ``quality.md`` and its plots."""

from __future__ import annotations

import math
from pathlib import Path

from fgaug.data.io import atomic_write_bytes
from fgaug.data.plots import class_bars, line_plot
from fgaug.evaluation.quality import QualityReport, TemperatureScores
from fgaug.finite import to_json
from fgaug.segmentation.scores import SegmentationScores

QUALITY_PLOTS = {
    "diversity_plot": "diversity.png",
    "colour_plot": "colour_match.png",
    "consistency_plot": "consistency.png",
    "class_plot": "class_iou.png",
}
"""The plots a quality report may have (its key in the paths returned, its file name), each where
its figures were measured."""


def write_quality_report(out_dir: str | Path, report: QualityReport) -> dict[str, Path]:
    """``report.json``, ``report.md`` and PNG plots against temperature under ``out_dir``; a plot
    of :data:`QUALITY_PLOTS` that this report has not, left there by an earlier one (another
    ``--segmenter`` or fewer temperatures), is removed, so that every plot there is this report's."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    atomic_write_bytes(paths["json"], to_json(report.to_dict(), indent=2).encode())
    rows = report.samples.temperatures if report.samples else ()
    real_photos = report.samples.real_photos if report.samples else None
    temperatures = [row.temperature for row in rows]
    consistency = _consistency(rows)
    if len(rows) > 1:
        paths["diversity_plot"] = line_plot(
            out_dir / QUALITY_PLOTS["diversity_plot"],
            temperatures,
            {"pairwise L1": [r.pairwise_l1 for r in rows], "1 - SSIM": [r.pairwise_1_minus_ssim for r in rows]},
            "temperature",
            "diversity among the samples of a mask",
        )
        paths["colour_plot"] = line_plot(
            out_dir / QUALITY_PLOTS["colour_plot"],
            temperatures,
            {"mean W1": [r.colour_w1_mean for r in rows]},
            "temperature",
            "colour distance to real photos (W1, 0-255)",
        )
        if consistency:
            series = {"synthetic photos": [scores.mean_iou for scores in consistency]}
            if real_photos is not None:
                series["real photos"] = [real_photos.mean_iou] * len(rows)
            paths["consistency_plot"] = line_plot(
                out_dir / QUALITY_PLOTS["consistency_plot"], temperatures, series, "temperature", "segmenter mean IoU"
            )
    if consistency and real_photos is not None:
        best_row, best = max(zip(rows, consistency, strict=True), key=lambda pair: pair[1].mean_iou)
        real, synthetic = real_photos.named_iou(), best.named_iou()
        classes = [name for name in real if _is_number(real[name]) or _is_number(synthetic.get(name))]
        paths["class_plot"] = class_bars(
            out_dir / QUALITY_PLOTS["class_plot"],
            classes,
            {
                "real photos": [real[c] for c in classes],
                f"synthetic, T={best_row.temperature:g}": [synthetic[c] for c in classes],
            },
            "IoU",
            "segmenter IoU per class",
        )
    atomic_write_bytes(paths["markdown"], quality_markdown(report, paths).encode())
    for name in set(QUALITY_PLOTS.values()) - {path.name for path in paths.values()}:
        (out_dir / name).unlink(missing_ok=True)
    return paths


def _consistency(rows: tuple[TemperatureScores, ...]) -> list[SegmentationScores]:
    """The segmenter's scores of every row, or none where the rows were not scored by one."""
    scores = [row.consistency for row in rows if row.consistency is not None]
    return scores if len(scores) == len(rows) else []


def quality_markdown(report: QualityReport, paths: dict[str, Path]) -> str:
    lines = ["# fgaug evaluation", "", "## Protocol", ""]
    lines += [f"- {key}: {value}" for key, value in report.protocol.items()]
    if report.bpd is not None:
        bpd = report.bpd
        lines += [
            "",
            "## Likelihood",
            "",
            f"Conditional bits/dim: **{bpd.conditional_bpd:.4f}** "
            f"(± {bpd.std_over_rounds:.4f} over {bpd.rounds} rounds, {bpd.pairs} pairs)",
        ]
    rows = report.samples.temperatures if report.samples else ()
    if rows:
        consistency = _consistency(rows)
        header = "| T | pixel acc | class acc | mIoU | pairwise L1 | 1 - SSIM | colour W1 | diverged |"
        lines += [
            "",
            "## Temperature sweep",
            "",
            header if consistency else "| T | pairwise L1 | 1 - SSIM | colour W1 | diverged |",
            "|" + " --- |" * (8 if consistency else 5),
        ]
        for index, row in enumerate(rows):
            diversity = (
                f"{row.pairwise_l1:.4f} | {row.pairwise_1_minus_ssim:.4f} | {row.colour_w1_mean:.2f} | "
                f"{row.diverged_fraction:.1%}"
            )
            if consistency:
                scores = consistency[index]
                lines.append(
                    f"| {row.temperature:g} | {scores.pixel_accuracy:.4f} | "
                    f"{scores.mean_class_accuracy:.4f} | {scores.mean_iou:.4f} | {diversity} |"
                )
            else:
                lines.append(f"| {row.temperature:g} | {diversity} |")
        figures = {"fid": [row.fid for row in rows], "pairwise_lpips": [row.pairwise_lpips for row in rows]}
        extras = {key: values for key, values in figures.items() if values[0] is not None}
        if extras:
            lines += ["", "| T | " + " | ".join(extras) + " |", "|" + " --- |" * (len(extras) + 1)]
            lines += [
                f"| {row.temperature:g} | " + " | ".join(f"{values[index]:.4f}" for values in extras.values()) + " |"
                for index, row in enumerate(rows)
            ]
        for row in rows:
            if row.masks_all_diverged:
                lines += [
                    "",
                    f"At T = {row.temperature:g} every draw of {row.masks_all_diverged} mask(s) diverged; "
                    "they are left out of its figures.",
                ]
    real = report.samples.real_photos if report.samples else None
    if rows and real is not None:
        lines += [
            "",
            f"Same segmenter on the real photos: pixel acc {real.pixel_accuracy:.4f}, class acc "
            f"{real.mean_class_accuracy:.4f}, mIoU {real.mean_iou:.4f}.",
        ]
    for name in ("consistency_plot", "class_plot", "diversity_plot", "colour_plot"):
        if name in paths:
            lines += ["", f"![{name}]({paths[name].name})"]
    return "\n".join(lines) + "\n"


def _is_number(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)
