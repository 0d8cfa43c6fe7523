"""Evaluation on a tiny trained model: protocol fields present, values in range, deterministic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from strict import strict_json

from fgaug import runtime
from fgaug.api import evaluate_augment
from fgaug.data.cityscapes import find_groups
from fgaug.data.io import DataError
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.evaluation.augment.protocol import PairArrays, ProbeRecipe
from fgaug.evaluation.augment.study import AugmentReport, augmentation_study, write_augment_report
from fgaug.evaluation.augment.synthesis import RealSet, Supplies, arm_synthesiser
from fgaug.evaluation.options import AugmentOptions, QualityOptions
from fgaug.evaluation.quality import QualityReport, evaluate_bpd, evaluate_samples
from fgaug.evaluation.reports import write_quality_report
from fgaug.flow import SamplingError
from fgaug.flow.sampling import PLAIN_SAMPLING
from fgaug.resources import DEMO_MODEL_NAME, bundled_dir
from fgaug.segmentation.probe import ProbeSegmenter
from fgaug.training.checkpoint import load_checkpoint
from fgaug.usage import UsageError


def test_bpd_is_reproducible_and_averaged_over_rounds(small_tree: Path, test_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(test_checkpoint)
    groups = find_groups(small_tree, ["val"]).groups
    first = evaluate_bpd(checkpoint, groups, rounds=2, seed=3)
    assert first == evaluate_bpd(checkpoint, groups, rounds=2, seed=3)
    assert first.rounds == 2 and first.pairs == 4 and 0 < first.conditional_bpd < 9
    assert first.std_over_rounds > 0


def test_samples_report_consistency_diversity_and_colour_match(small_tree: Path, test_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(test_checkpoint)
    groups = find_groups(small_tree, ["val"]).groups
    report = evaluate_samples(checkpoint, groups, [0.0, 1.0], n=3, seed=1, segmenter=ProbeSegmenter(4).eval())
    cold, warm = report.temperatures
    assert cold.pairwise_l1 == pytest.approx(0.0, abs=1e-9)  # T = 0: every draw is the same
    assert warm.pairwise_l1 > cold.pairwise_l1 and warm.pairwise_1_minus_ssim > 0
    assert set(warm.colour_w1) >= {"road", "sky"} and warm.colour_w1_mean > 0
    assert 0 <= warm.consistency.mean_iou <= 1 and "road" in warm.consistency.named_iou()
    assert 0 <= report.real_photos.pixel_accuracy <= 1


def test_samples_can_each_be_the_most_likely_of_several_draws(small_tree: Path, test_checkpoint: Path) -> None:
    """``best_of`` K keeps generate's choice (the most likely of K draws): other images than the
    first draws, and 1 is the default."""
    checkpoint = load_checkpoint(test_checkpoint)
    groups = find_groups(small_tree, ["val"]).groups
    plain, one, best = (
        evaluate_samples(checkpoint, groups, [1.0], n=2, seed=1, **extra).temperatures[0]
        for extra in ({}, {"best_of": 1}, {"best_of": 3})
    )
    assert plain == one
    assert best.pairwise_l1 != plain.pairwise_l1 and best.colour_w1 != plain.colour_w1
    with pytest.raises(UsageError, match="--best-of"):
        QualityOptions(data=small_tree, best_of=0)


def test_a_temperature_scores_the_same_whatever_else_is_in_the_sweep(toy_tree_master: Path) -> None:
    """At 64x128 classes cover more pixels than the colour W1 keeps per image, so it picks some at random."""
    checkpoint = load_checkpoint(bundled_dir() / DEMO_MODEL_NAME)
    groups = find_groups(toy_tree_master, ["val"]).groups
    alone = evaluate_samples(checkpoint, groups, [0.8], n=2, seed=4).temperatures
    beside = evaluate_samples(checkpoint, groups, [0.5, 0.8], n=2, seed=4).temperatures
    assert alone[0].colour_w1 and alone[0] == beside[1]


def test_augmentation_study_pairs_real_and_augmented_arms_by_seed(
    test_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    tree = tmp_path / "tree"
    write_toy_cityscapes(tree, {"train": 6, "val": 2, "test": 2}, size=(32, 64), seed=2)
    size = load_checkpoint(test_checkpoint).model.config.image_size
    recipe = ProbeRecipe(width=4, batch_size=4, min_steps=2, max_steps=3, evaluate_every=1)
    supplies = Supplies(tree, tmp_path / "synthetic", size, {"fair": lambda real: test_checkpoint})
    seen: list[RealSet] = []

    def synthesise(real: RealSet) -> tuple[PairArrays, int]:
        seen.append(real)
        return arm_synthesiser("prior", supplies, per_mask=2)(real)

    study = augmentation_study(
        synthesise,
        find_groups(tree, ["train"]).groups,
        find_groups(tree, ["val"]).groups,
        find_groups(tree, ["test"]).groups,
        size,
        sizes=(2, 4),
        seeds=(0, 1),
        recipe=recipe,
    )
    assert [point.real for point in study.summary.curve] == [2, 4]
    assert study.synthetic_images == {2: 4, 4: 8}
    assert [(real.size, [r.seed for r in real.real_only]) for real in seen] == [(2, [0, 1]), (4, [0, 1])]
    assert all(r.arm == "real only" and r.real == real.size for real in seen for r in real.real_only)
    assert study.probe_precision == "fp32" and study.recipe.bf16 is None
    arms = {(a.arm, a.real, a.seed): a for a in study.arms}
    for row in study.summary.strategies:
        treated = [arms[("real + synthetic", row.real, s)].test_miou for s in (0, 1)]
        baseline = [arms[("real only", row.real, s)].test_miou for s in (0, 1)]
        assert row.difference.mean == pytest.approx(np.mean(treated) - np.mean(baseline))
    report = AugmentReport(study, {"model": "test"}, "prior", 2, 0.8, PLAIN_SAMPLING)
    paths = write_augment_report(tmp_path / "report", report)
    assert {"json", "markdown", "curve_plot", "class_plot"} <= set(paths)
    assert "worth in real images" in paths["markdown"].read_text()


@pytest.mark.parametrize("strategy", ["copy-paste-real", "content-paste-prior"])
def test_layout_strategies_make_their_synthetic_data_on_disk(
    strategy: str, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``--strategy``: pasted-object layouts of the N masks, in real pixels or rendered with the
    prior in the edited regions, written under ``out/synthetic/<arm>/N<size>`` and used as the synthetic arm."""
    tree = tmp_path / "tree"
    write_toy_cityscapes(tree, {"train": 4, "val": 2, "test": 2}, size=(32, 64), seed=2)
    out = tmp_path / "report"
    report = evaluate_augment(
        AugmentOptions(
            tree, out, test_checkpoint, strategy, n=2, sizes=(3,), seeds=(0,), width=4, batch_size=4, max_steps=2
        )
    )
    assert report.strategy == strategy and report.protocol["synthetic"].startswith(strategy)
    assert report.protocol["generator precision"] == "fp32"
    assert report.protocol["probe"].endswith(report.study.probe_precision)
    layouts = out / "synthetic" / strategy / "N3" / "layouts"
    assert len(list((layouts / "gtFine").rglob("*_gtFine_labelIds.png"))) == 6
    if strategy == "copy-paste-real":
        assert report.study.synthetic_images == {3: 6}
        assert len(list((layouts / "leftImg8bit").rglob("*.png"))) == 6
    else:
        generated = out / "synthetic" / strategy / "N3" / "tree" / "manifest.jsonl"
        records = [json.loads(line) for line in generated.read_text().splitlines()]
        assert report.study.synthetic_images == {3: len(records)} and all(r["edit_fill"] == "prior" for r in records)
    with pytest.raises(ValueError, match="--strategy"):
        evaluate_augment(AugmentOptions(tree, tmp_path / "x", test_checkpoint, sizes=(3,), strategy="magic"))
    with pytest.raises(ValueError, match="--min-steps and --max-steps must be at least 1"):
        AugmentOptions(tree, tmp_path / "x", test_checkpoint, sizes=(3,), min_steps=0)
    with pytest.raises(ValueError, match="--schedules must be at least 1"):
        AugmentOptions(tree, tmp_path / "x", test_checkpoint, sizes=(3,), schedules=0)
    # a sampling the model cannot do was refused only after the first probe, leaving a study folder
    with pytest.raises(SamplingError, match="guidance needs a model trained with condition dropout"):
        evaluate_augment(AugmentOptions(tree, tmp_path / "guided", test_checkpoint, sizes=(3,), guidance=1.5))
    assert not (tmp_path / "guided").exists()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DataError, match="a-file: a file; --out names the study's folder"):
        evaluate_augment(AugmentOptions(tree, tmp_path / "a-file", test_checkpoint, sizes=(3,)))


class MeanColourFeatures(torch.nn.Module):
    """A stand-in for an Inception feature network: per-channel means and standard deviations."""

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        return torch.cat([photos.mean(dim=(2, 3)), photos.std(dim=(2, 3))], dim=1)


class MeanAbsoluteDistance(torch.nn.Module):
    """A stand-in for LPIPS: the mean absolute difference of two batches of photos."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return (first - second).abs().mean(dim=(1, 2, 3))


def test_user_feature_and_lpips_networks_add_fid_and_perceptual_distance(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    from fgaug.api import QualityOptions, evaluate_quality

    photos = torch.rand(2, 3, 16, 32)
    batch = {0: torch.export.Dim.DYNAMIC}  # a user's export must accept any batch size
    features = torch.export.export(MeanColourFeatures(), (photos,), dynamic_shapes=(batch,))
    lpips = torch.export.export(
        MeanAbsoluteDistance(), (photos, torch.rand(2, 3, 16, 32)), dynamic_shapes=(batch, batch)
    )
    torch.export.save(features, str(tmp_path / "features.pt2"))
    torch.export.save(lpips, str(tmp_path / "lpips.pt2"))
    options = QualityOptions(
        small_tree,
        tmp_path / "out",
        str(test_checkpoint),
        temperatures=(0.0, 1.0),
        n=3,
        features=tmp_path / "features.pt2",
        lpips=tmp_path / "lpips.pt2",
    )
    result = evaluate_quality(options)
    report, paths = result.report, result.paths
    cold, warm = report.samples.temperatures
    assert cold.pairwise_lpips == pytest.approx(0.0, abs=1e-7) and warm.pairwise_lpips > 0
    assert cold.fid >= 0 and warm.fid >= 0
    assert report.protocol["features_sha256"] and "fid" in paths["markdown"].read_text()


def test_a_mask_whose_every_draw_diverged_is_left_out_and_counted(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path, every_draw_diverges: None
) -> None:
    checkpoint = load_checkpoint(test_checkpoint)
    groups = find_groups(small_tree, ["val"]).groups[:2]
    report = evaluate_samples(
        checkpoint,
        groups,
        [1.0],
        n=2,
        segmenter=ProbeSegmenter(4).eval(),
        features=MeanColourFeatures(),
        perceptual=MeanAbsoluteDistance(),
    )
    (row,) = report.temperatures
    assert row.masks_all_diverged == 2 and row.diverged_fraction == 1.0
    assert math.isnan(row.fid) and math.isnan(row.pairwise_lpips) and row.colour_w1 == {}
    (tmp_path / "diversity.png").write_bytes(b"an earlier report's, of several temperatures")
    paths = write_quality_report(tmp_path, QualityReport({}, samples=report))
    assert "every draw of 2 mask(s) diverged" in paths["markdown"].read_text()
    assert not (tmp_path / "diversity.png").exists(), "a plot of an earlier report stayed beside this one"
    assert strict_json(paths["json"].read_text())["samples"]["temperatures"][0]["fid"] is None
