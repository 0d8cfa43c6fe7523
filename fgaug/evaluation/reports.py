"""``fgaug evaluate quality``'s report: ``quality.json``, ``quality.md`` and its plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fgaug.data.io import atomic_write_bytes
from fgaug.data.plots import class_bars, line_plot
from fgaug.finite import to_json


def write_quality_report(out_dir: str | Path, report: dict[str, Any]) -> dict[str, Path]:
    """``report.json``, ``report.md`` and PNG plots against temperature under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    atomic_write_bytes(paths["json"], to_json(report, indent=2).encode())
    rows = report.get("samples", {}).get("temperatures", [])
    temperatures = [row["temperature"] for row in rows]
    if len(rows) > 1:
        paths["diversity_plot"] = line_plot(
            out_dir / "diversity.png",
            temperatures,
            {"pairwise L1": [r["pairwise_l1"] for r in rows], "1 - SSIM": [r["pairwise_1_minus_ssim"] for r in rows]},
            "temperature",
            "diversity among the samples of a mask",
        )
        paths["colour_plot"] = line_plot(
            out_dir / "colour_match.png",
            temperatures,
            {"mean W1": [r["colour_w1_mean"] for r in rows]},
            "temperature",
            "colour distance to real photos (W1, 0-255)",
        )
        if "consistency" in rows[0]:
            series = {"synthetic photos": [r["consistency"]["mean_iou"] for r in rows]}
            if "real_photos" in report["samples"]:
                series["real photos"] = [report["samples"]["real_photos"]["mean_iou"]] * len(rows)
            paths["consistency_plot"] = line_plot(
                out_dir / "consistency.png", temperatures, series, "temperature", "segmenter mean IoU"
            )
    if rows and "consistency" in rows[0] and "real_photos" in report["samples"]:
        best = max(rows, key=lambda r: r["consistency"]["mean_iou"])
        real = report["samples"]["real_photos"]["per_class_iou"]
        synthetic = best["consistency"]["per_class_iou"]
        classes = [name for name in real if _is_number(real[name]) or _is_number(synthetic.get(name))]
        paths["class_plot"] = class_bars(
            out_dir / "class_iou.png",
            classes,
            {
                "real photos": [real[c] for c in classes],
                f"synthetic, T={best['temperature']:g}": [synthetic[c] for c in classes],
            },
            "IoU",
            "segmenter IoU per class",
        )
    atomic_write_bytes(paths["markdown"], quality_markdown(report, paths).encode())
    return paths


def quality_markdown(report: dict[str, Any], paths: dict[str, Path]) -> str:
    protocol = report["protocol"]
    lines = ["# fgaug evaluation", "", "## Protocol", ""]
    lines += [f"- {key}: {value}" for key, value in protocol.items()]
    if "bpd" in report:
        bpd = report["bpd"]
        lines += [
            "",
            "## Likelihood",
            "",
            f"Conditional bits/dim: **{bpd['conditional_bpd']:.4f}** "
            f"(± {bpd['std_over_rounds']:.4f} over {bpd['rounds']} rounds, {bpd['pairs']} pairs)",
        ]
    rows = report.get("samples", {}).get("temperatures", [])
    if rows:
        has_consistency = "consistency" in rows[0]
        header = "| T | pixel acc | class acc | mIoU | pairwise L1 | 1 - SSIM | colour W1 | diverged |"
        lines += [
            "",
            "## Temperature sweep",
            "",
            header if has_consistency else "| T | pairwise L1 | 1 - SSIM | colour W1 | diverged |",
            "|" + " --- |" * (8 if has_consistency else 5),
        ]
        for row in rows:
            diversity = (
                f"{row['pairwise_l1']:.4f} | {row['pairwise_1_minus_ssim']:.4f} | {row['colour_w1_mean']:.2f} | "
                f"{row['diverged_fraction']:.1%}"
            )
            if has_consistency:
                scores = row["consistency"]
                lines.append(
                    f"| {row['temperature']:g} | {scores['pixel_accuracy']:.4f} | "
                    f"{scores['mean_class_accuracy']:.4f} | {scores['mean_iou']:.4f} | {diversity} |"
                )
            else:
                lines.append(f"| {row['temperature']:g} | {diversity} |")
        extras = [key for key in ("fid", "pairwise_lpips") if key in rows[0]]
        if extras:
            lines += ["", "| T | " + " | ".join(extras) + " |", "|" + " --- |" * (len(extras) + 1)]
            lines += [
                f"| {row['temperature']:g} | " + " | ".join(f"{row[k]:.4f}" for k in extras) + " |" for row in rows
            ]
        for row in rows:
            if row.get("masks_all_diverged"):
                lines += [
                    "",
                    f"At T = {row['temperature']:g} every draw of {row['masks_all_diverged']} mask(s) diverged; "
                    "they are left out of its figures.",
                ]
        if "real_photos" in report["samples"]:
            real = report["samples"]["real_photos"]
            lines += [
                "",
                f"Same segmenter on the real photos: pixel acc {real['pixel_accuracy']:.4f}, class acc "
                f"{real['mean_class_accuracy']:.4f}, mIoU {real['mean_iou']:.4f}.",
            ]
    for name in ("consistency_plot", "class_plot", "diversity_plot", "colour_plot"):
        if name in paths:
            lines += ["", f"![{name}]({paths[name].name})"]
    return "\n".join(lines) + "\n"


def _is_number(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)
