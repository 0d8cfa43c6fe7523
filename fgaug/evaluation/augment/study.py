"""``fgaug evaluate augment``: real-only probes against real + synthetic probes at one or more
real-set sizes, with their report (markdown, JSON, learning curve and per-class plots).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from fgaug.data.cityscapes import Group
from fgaug.data.io import DataError, atomic_write_bytes
from fgaug.data.plots import class_bars, learning_curve_plot
from fgaug.evaluation.augment.protocol import (
    REAL_ONLY,
    ArmResult,
    AugmentSummary,
    PairArrays,
    ProbeRecipe,
    curve_table,
    read_pairs,
    run_arm,
    summarise,
)
from fgaug.evaluation.augment.resume import FinishedProbes
from fgaug.evaluation.augment.synthesis import RealSet, Synthesiser
from fgaug.evaluation.stats import signed_interval
from fgaug.finite import to_json
from fgaug.flow.sampling import SamplingOptions
from fgaug.progress import Progress, SilentProgress
from fgaug.runtime import precision_name


@dataclass(frozen=True)
class AugmentStudy:
    """:func:`augmentation_study`'s result: the :func:`~fgaug.evaluation.augment.protocol.summarise`
    summary of every arm's record, the synthetic images made and the draws that diverged, and how
    the probes were trained."""

    summary: AugmentSummary
    arms: list[ArmResult]
    synthetic_images: dict[int, int]
    """By real-set size."""
    diverged_draws: int
    mixing: str
    recipe: ProbeRecipe
    probe_precision: str
    val_photos: int
    test_photos: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary.to_dict(),
            "arms": [arm.to_dict() for arm in self.arms],
            "synthetic_images": self.synthetic_images,
            "diverged_draws": self.diverged_draws,
            "mixing": self.mixing,
            "recipe": asdict(self.recipe),
            "probe_precision": self.probe_precision,
            "val_photos": self.val_photos,
            "test_photos": self.test_photos,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class AugmentReport:
    """``fgaug evaluate augment``'s report: the study, the ``protocol`` (what was evaluated, how: a
    key per line of the report), and the arm that made the synthetic data and how it sampled."""

    study: AugmentStudy
    protocol: dict[str, Any]
    strategy: str
    synthetic_per_mask: int
    temperature: float
    sampling: SamplingOptions

    def to_dict(self) -> dict[str, Any]:
        """``augment.json``: the study's keys beside the others, the sampling's flattened."""
        return {
            **self.study.to_dict(),
            "strategy": self.strategy,
            "synthetic_per_mask": self.synthetic_per_mask,
            "temperature": self.temperature,
            **self.sampling.to_dict(),
            "protocol": self.protocol,
        }


def augmentation_study(
    synthesise: Synthesiser,
    pool: Sequence[Group],
    val_groups: Sequence[Group],
    test_groups: Sequence[Group],
    image_size: tuple[int, int],
    sizes: Sequence[int] = (40,),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    mixing: str = "concat",
    recipe: ProbeRecipe | None = None,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    finished: FinishedProbes | None = None,
) -> AugmentStudy:
    """The augmentation protocol (:mod:`fgaug.evaluation.augment.protocol`): at each real-set size N
    (the first N masks of ``pool``), probes trained on the N real pairs only and on them with the
    synthetic pairs ``synthesise`` makes of them (one arm of
    :mod:`fgaug.evaluation.augment.strategies`), paired by seed; pairs read at ``image_size``,
    probes trained on ``device``, early stopping on ``val_groups``, scores on ``test_groups``.
    The real-only probes at N train first: their records are part of the real set an arm is made
    from (``targeted-hard`` weights classes by them). Returns the learning curve, the paired
    differences and every arm's record. With ``finished``, a probe it holds is taken from it
    instead of trained, and every probe trained is added to it as soon as it is scored."""
    progress = progress or SilentProgress()
    recipe = recipe or ProbeRecipe()
    start = time.perf_counter()
    if max(sizes) > len(pool):
        raise DataError(f"the largest real-set size {max(sizes)} exceeds the {len(pool)} training pairs")
    real_all = read_pairs(pool[: max(sizes)], image_size)
    val, test = read_pairs(val_groups, image_size), read_pairs(test_groups, image_size)
    records: list[ArmResult] = []
    synthetic_images: dict[int, int] = {}
    diverged = 0
    done = finished.count(sizes, seeds) if finished is not None else 0
    if done:
        progress.log(f"{done} of {2 * len(sizes) * len(seeds)} probes were scored by an earlier run of this study")
    progress.start("probes", 2 * len(sizes) * len(seeds) - done)

    def arm(name: str, real_size: int, seed: int, extra: PairArrays | None) -> ArmResult:
        record = finished.get(name, real_size, seed) if finished is not None else None
        if record is not None:
            return record
        record = run_arm(name, real_all.head(real_size), val, test, seed, recipe, extra, mixing, device=device)
        if finished is not None:
            finished.add(record)
        progress.advance(1)
        return record

    for real_size in sorted(sizes):
        real_only = [arm(REAL_ONLY, real_size, seed, None) for seed in seeds]
        synthetic, drawn_diverged = synthesise(RealSet(pool[:real_size], real_only))
        synthetic_images[real_size], diverged = len(synthetic), diverged + drawn_diverged
        records += real_only + [arm(SYNTHETIC_ARM, real_size, seed, synthetic) for seed in seeds]
    progress.stop()
    return AugmentStudy(
        summary=summarise(records),
        arms=records,
        synthetic_images=synthetic_images,
        diverged_draws=diverged,
        mixing=mixing,
        recipe=recipe,
        probe_precision=precision_name(recipe.network_dtype(device)),
        val_photos=len(val_groups),
        test_photos=len(test_groups),
        seconds=time.perf_counter() - start,
    )


SYNTHETIC_ARM = "real + synthetic"


def write_augment_report(out_dir: Path, report: AugmentReport) -> dict[str, Path]:
    """``augment.json``, ``augment.md``, the learning curve with the synthetic arms as points and
    the per-class IoU differences, under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "augment.json", "markdown": out_dir / "augment.md"}
    atomic_write_bytes(paths["json"], to_json(report.to_dict(), indent=2).encode())
    summary = report.study.summary
    strategies = summary.strategies
    if summary.curve:
        points = [{"label": row.arm, "real": row.real, **row.miou.to_dict()} for row in strategies]
        paths["curve_plot"] = learning_curve_plot(
            out_dir / "learning_curve.png", [point.to_dict() for point in summary.curve], points
        )
    if strategies:
        classes = list(strategies[0].per_class_difference)
        series = {f"N={row.real}": [row.per_class_difference.get(c, math.nan) for c in classes] for row in strategies}
        paths["class_plot"] = class_bars(
            out_dir / "class_difference.png", classes, series, "IoU difference (real + synthetic - real only)"
        )
    atomic_write_bytes(paths["markdown"], augment_markdown(report, paths).encode())
    return paths


def augment_markdown(report: AugmentReport, paths: dict[str, Path]) -> str:
    summary = report.study.summary
    lines = ["# Does synthetic data help the segmenter?", "", "## Protocol", ""]
    lines += [f"- {key}: {value}" for key, value in report.protocol.items()]
    lines += [
        "",
        "## Real-only learning curve",
        "",
        *curve_table(summary.curve),
    ]
    lines += [
        "",
        "A size is *valid* where doubling the real data raises the mean by more than its interval's half-width.",
    ]
    lines += ["", "## Real + synthetic, paired by seed", ""]
    lines += ["| real images | synthetic | mIoU | Δ mIoU (95% CI) | worth in real images | small classes Δ IoU |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for row in summary.strategies:
        small = ", ".join(f"{name} {value:+.3f}" for name, value in list(row.per_class_difference.items())[:4])
        lines.append(
            f"| {row.real} | {row.synthetic} | {row.miou.mean:.4f} | {signed_interval(row.difference)} "
            f"| {row.worth_described} | {small} |"
        )
    for name in ("curve_plot", "class_plot"):
        if name in paths:
            lines += ["", f"![{name}]({paths[name].name})"]
    return "\n".join(lines) + "\n"
