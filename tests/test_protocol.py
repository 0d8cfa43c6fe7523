"""The augmentation protocol's statistics and mechanics, against values worked out by hand."""

from __future__ import annotations

import importlib
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from fgaug import runtime
from fgaug.data.labels import N_TRAIN_IDS, TRAIN_ID_NAMES
from fgaug.evaluation.augment.protocol import (
    REAL_ONLY,
    ArmResult,
    PairArrays,
    ProbeRecipe,
    mixed_batches,
    probe_recipe,
    run_arm,
    summarise,
)
from fgaug.evaluation.stats import (
    mean_interval,
    paired_interval,
    plus_minus,
    signed_interval,
    worth_in_real_images,
)


def test_t_interval_by_hand() -> None:
    interval = mean_interval([1.0, 2.0, 3.0])
    # sd 1, sem 1 / sqrt 3, t(0.975, 2) = 4.302653
    assert interval.mean == 2.0 and interval.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(mean_interval([0.5]).half_width)
    paired = paired_interval([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert paired.mean == pytest.approx(0.1) and paired.half_width == pytest.approx(0.0, abs=1e-12)
    assert signed_interval(interval) == "+2.0000 [-0.4841, +4.4841]" and plus_minus(interval) == "± 2.4841"
    assert signed_interval(mean_interval([0.5])) == "+0.5000 (1 value: no interval)"  # one seed: not [+nan, +nan]
    assert plus_minus(mean_interval([0.5])) == "(1 value: no interval)"
    with pytest.raises(ValueError, match="cannot be paired"):
        paired_interval([1.0], [1.0, 2.0])


def test_worth_in_real_images_interpolates_in_log_size() -> None:
    sizes, scores = [10, 20, 40, 80], [0.5, 0.6, 0.7, 0.7]
    assert worth_in_real_images(sizes, scores, 0.6).images == pytest.approx(20)
    assert worth_in_real_images(sizes, scores, 0.65).images == pytest.approx(math.sqrt(20 * 40))
    assert worth_in_real_images(sizes, scores, 0.7).images == pytest.approx(40)  # a flat stretch: its smallest size
    assert worth_in_real_images(sizes, scores, 0.4).below and worth_in_real_images(sizes, scores, 0.8).above
    # a dip is smoothed by the running maximum: 0.58 after 0.6 counts as 0.6
    assert worth_in_real_images([10, 20, 40], [0.5, 0.6, 0.58], 0.6).images == pytest.approx(20)


def record(arm: str, real: int, seed: int, miou: float, small: float = 0.0) -> ArmResult:
    per_class = {"pole": small, "road": 0.9}
    return ArmResult(arm, real, seed, miou, per_class, None, {}, steps=1, best_step=1, seconds=0.0)


def test_summary_marks_valid_sizes_and_pairs_strategies_by_seed() -> None:
    results = []
    for seed, noise in enumerate((0.0, 0.01, -0.01)):
        results += [record(REAL_ONLY, 10, seed, 0.50 + noise), record(REAL_ONLY, 20, seed, 0.60 + noise)]
        results += [record(REAL_ONLY, 40, seed, 0.61 + noise), record("paste", 10, seed, 0.55 + noise, small=0.2)]
    summary = summarise(results).to_dict()
    curve = {row["real"]: row for row in summary["curve"]}
    assert curve[10]["valid"] and not curve[20]["valid"] and "valid" not in curve[40]
    assert curve[10]["rise_to_next"] == pytest.approx(0.10)
    (strategy,) = summary["strategies"]
    assert strategy["difference"]["mean"] == pytest.approx(0.05) and strategy["difference"]["half_width"] < 1e-9
    assert list(strategy["per_class_difference"]) == ["pole", "road"]
    assert strategy["per_class_difference"]["pole"] == pytest.approx(0.2)
    assert strategy["worth_in_real_images"] == pytest.approx(10 * 2 ** (0.05 / 0.10))


def pairs(count: int, value: int, size: tuple[int, int] = (8, 16)) -> PairArrays:
    photos = torch.full((count, 3, *size), value, dtype=torch.uint8)
    photos[:, :, :, 0] = 255  # a left edge, to see flips
    labels = torch.full((count, *size), value % 19, dtype=torch.uint8)
    return PairArrays(photos, labels)


def noisy_scenes(seed: int, *counts: int) -> list[PairArrays]:
    """Sets of ``counts`` 16x32 scenes of random road, sidewalk and building pixels, each class its
    own grey."""
    labels = torch.from_numpy(np.random.default_rng(seed).integers(0, 3, (sum(counts), 16, 32)).astype(np.uint8))
    photos = (labels[:, None].repeat(1, 3, 1, 1) * 80).to(torch.uint8)
    return [PairArrays(p, lab) for p, lab in zip(photos.split(counts), labels.split(counts), strict=True)]


def test_longer_probes_wait_longer_before_stopping() -> None:
    """Patience grows with the fewest steps (5 validations per 1000), never below the default."""
    assert probe_recipe() == ProbeRecipe()
    assert probe_recipe(2000).patience == 10 and probe_recipe(2000).min_steps == 2000
    assert probe_recipe(300, width=4, max_steps=300) == ProbeRecipe(width=4, min_steps=300, max_steps=300)
    assert probe_recipe(2000).steps_for(20) == 2000 and ProbeRecipe().steps_for(20) == 1000


@pytest.mark.parametrize("native", [True, False])
def test_the_probe_trains_in_bf16_only_where_the_cpu_computes_it_natively(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert ProbeRecipe().network_dtype("cpu") == (torch.bfloat16 if native else None)
    assert probe_recipe(2000).network_dtype(torch.device("cpu")) == ProbeRecipe().network_dtype("cpu")
    assert ProbeRecipe(bf16=True).network_dtype("cpu") == torch.bfloat16
    assert ProbeRecipe(bf16=False).network_dtype("cpu") is None


def test_ratio_batches_hold_a_fixed_share_of_each_source_and_flip_photo_and_labels_together() -> None:
    real, synthetic = pairs(3, 10), pairs(5, 200)
    batches = mixed_batches([(real, 3), (synthetic, 5)], seed=0)
    flipped = 0
    for _ in range(10):
        photos, labels = next(batches)
        assert photos.shape == (8, 3, 8, 16) and labels.dtype == torch.long
        assert (labels[:3] == 10).all() and (labels[3:] == 200 % 19).all()
        left_edge = photos[:, 0, 0, 0] == 1.0
        flipped += int((~left_edge).sum())
        assert ((photos[:, 0, 0, -1] == 1.0) == ~left_edge).all()
    assert 20 < flipped < 60


def test_pair_arrays_check_their_shapes() -> None:
    with pytest.raises(ValueError, match="do not pair"):
        PairArrays(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        PairArrays(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.uint8))


@pytest.mark.parametrize("mixing", ["concat", "ratio", "pretrain"])
def test_every_mixing_trains_and_scores_an_arm(mixing: str) -> None:
    real, synthetic, val, test = noisy_scenes(0, 4, 4, 2, 2)
    recipe = ProbeRecipe(width=4, batch_size=4, min_steps=6, max_steps=6, evaluate_every=3)
    result = run_arm("arm", real, val, test, 0, recipe, synthetic, mixing)
    assert result.real == 4 and result.synthetic == 4 and result.mixing == mixing
    assert result.steps == (12 if mixing == "pretrain" else 6)
    # the mIoU is the mean of the per-class IoUs it reports (classes with a union), each an IoU
    assert result.test_miou == pytest.approx(np.mean(list(result.per_class_iou.values())), abs=1e-12)
    assert all(0 <= iou <= 1 for iou in [*result.per_class_iou.values(), *result.val_per_class_iou.values()])
    assert {"road", "sidewalk", "building"} <= set(result.per_class_iou) and result.val_per_class_iou
    with pytest.raises(ValueError, match="unknown mixing"):
        run_arm("arm", real, val, test, 0, recipe, synthetic, "blend")


def test_two_schedules_restart_from_the_first_ones_best_weights() -> None:
    """``schedules=2`` on real only is the same computation as pre-training on the real pairs then
    fine-tuning on them (the study's control): the same weights, steps and scores."""
    real, val, test = noisy_scenes(1, 4, 2, 2)
    once = ProbeRecipe(width=4, batch_size=4, min_steps=6, max_steps=6, evaluate_every=3)
    twice = replace(once, schedules=2)
    restarted = run_arm("real only", real, val, test, 0, twice)
    control = run_arm("control", real, val, test, 0, once, real, "pretrain")
    assert restarted.steps == control.steps == 12 and restarted.best_step == control.best_step
    assert restarted.test_miou == control.test_miou and restarted.per_class_iou == control.per_class_iou
    assert run_arm("arm", real, val, test, 0, twice, real, "pretrain").steps == 24
    with pytest.raises(ValueError, match="schedules"):
        replace(once, schedules=0)


def by_hand_miou(matrix: np.ndarray) -> tuple[float, dict[int, float]]:
    """mIoU of a (classes, classes + 1) confusion matrix, written out: IoU = TP / (target +
    predicted - TP) for every class with a non-empty union, averaged."""
    classes = matrix.shape[0]
    ious = {}
    for c in range(classes):
        true_positive = matrix[c, c]
        union = matrix[c, :].sum() + matrix[:, c].sum() - true_positive
        if union:
            ious[c] = true_positive / union
    return float(np.mean(list(ious.values()))), ious


def test_an_arms_miou_is_the_miou_of_its_test_confusion_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    from fgaug.evaluation.augment import protocol

    matrices = []
    confusion = protocol.probe_confusion

    def recorded(*arguments, **options):
        matrices.append(confusion(*arguments, **options))
        return matrices[-1]

    monkeypatch.setattr(protocol, "probe_confusion", recorded)
    real, val, test = noisy_scenes(2, 4, 2, 3)
    test.labels[0, :4] = 255  # ignored pixels are not counted
    recipe = ProbeRecipe(width=4, batch_size=4, min_steps=6, max_steps=6, evaluate_every=3)
    result = run_arm("real only", real, val, test, 0, recipe)
    test_matrix, val_matrix = matrices  # scored on the test split, then on the validation split
    assert test_matrix.sum() == int((test.labels < N_TRAIN_IDS).sum()) == test.labels.numel() - 4 * 32
    miou, ious = by_hand_miou(test_matrix)
    assert result.test_miou == pytest.approx(miou, abs=1e-12)
    assert result.per_class_iou == pytest.approx({TRAIN_ID_NAMES[c]: v for c, v in ious.items()}, abs=1e-12)
    assert result.val_per_class_iou == pytest.approx(
        {TRAIN_ID_NAMES[c]: v for c, v in by_hand_miou(val_matrix)[1].items()}, abs=1e-12
    )


def arm_outcome(result) -> dict:
    """What an arm computed (all but its wall time)."""
    return {key: value for key, value in result.to_dict().items() if key != "seconds"}


def test_seeds_pair_arms_and_the_same_seed_repeats_an_arm_bitwise() -> None:
    real, val, test = noisy_scenes(3, 4, 2, 2)
    recipe = ProbeRecipe(width=4, batch_size=4, min_steps=6, max_steps=6, evaluate_every=3)
    first, again = (arm_outcome(run_arm("real only", real, val, test, 0, recipe)) for _ in range(2))
    assert first == again  # equal floats, not close ones
    other = arm_outcome(run_arm("real only", real, val, test, 1, recipe))
    assert other["seed"] == 1
    assert (other["test_miou"], other["val_miou"], other["per_class_iou"]) != (
        first["test_miou"],
        first["val_miou"],
        first["per_class_iou"],
    )


def test_concat_with_a_copy_of_the_real_set_is_one_pool_of_both() -> None:
    """``concat`` trains on one shuffled pool of real and synthetic pairs, for ``epochs`` passes of
    the pool: a synthetic set identical to the real one is the real-only arm on the real set
    twice over, bitwise, with twice its steps; only what the arm reports of its data differs."""
    real, val, test = noisy_scenes(4, 4, 2, 2)
    recipe = ProbeRecipe(width=4, batch_size=4, epochs=2, min_steps=1, max_steps=100, evaluate_every=2, patience=99)
    assert recipe.steps_for(8) == 2 * recipe.steps_for(4) == 4
    mixed = run_arm("copy", real, val, test, 0, recipe, real, "concat")
    doubled = run_arm("real only", PairArrays.concat([real, real]), val, test, 0, recipe)
    alone = run_arm("real only", real, val, test, 0, recipe)
    assert (mixed.real, mixed.synthetic, mixed.mixing) == (4, 4, "concat")
    assert (doubled.real, doubled.synthetic, doubled.mixing) == (8, 0, None)
    assert mixed.steps == doubled.steps == recipe.steps_for(8) and alone.steps == recipe.steps_for(4)
    assert (mixed.test_miou, mixed.per_class_iou, mixed.val_miou, mixed.best_step) == (
        doubled.test_miou,
        doubled.per_class_iou,
        doubled.val_miou,
        doubled.best_step,
    )


def test_summary_intervals_agree_with_scipy() -> None:
    """The learning curve's t intervals, a strategy's mIoU interval and its paired difference with
    its interval, computed independently by scipy (``t.interval`` and ``ttest_rel``); a seed run by
    the strategy alone is left out of the pairing."""
    stats = importlib.import_module("scipy.stats")
    baseline = {0: 0.512, 1: 0.547, 2: 0.498, 3: 0.530}
    treated = {0: 0.561, 1: 0.549, 2: 0.540, 3: 0.577, 7: 0.99}
    larger = {0: 0.60, 1: 0.64, 2: 0.59, 3: 0.62}
    results = [record(REAL_ONLY, 10, seed, miou) for seed, miou in baseline.items()]
    results += [record(REAL_ONLY, 20, seed, miou) for seed, miou in larger.items()]
    results += [record("synthetic", 10, seed, miou, small=seed / 10) for seed, miou in treated.items()]
    for confidence in (0.95, 0.8):
        summary = summarise(results, confidence).to_dict()
        curve = {row["real"]: row for row in summary["curve"]}
        for size, values in ((10, baseline), (20, larger)):
            low, high = stats.t.interval(
                confidence, len(values) - 1, loc=np.mean(list(values.values())), scale=stats.sem(list(values.values()))
            )
            assert (curve[size]["low"], curve[size]["high"]) == pytest.approx((low, high), rel=1e-9)
            assert curve[size]["seeds"] == sorted(values)
        (strategy,) = summary["strategies"]
        assert strategy["seeds"] == [0, 1, 2, 3]
        paired = [treated[s] for s in range(4)]
        differences = np.subtract(paired, [baseline[s] for s in range(4)])
        expected = stats.ttest_rel(paired, [baseline[s] for s in range(4)]).confidence_interval(confidence)
        difference = strategy["difference"]
        assert difference["mean"] == pytest.approx(differences.mean(), rel=1e-12)
        assert (difference["low"], difference["high"]) == pytest.approx((expected.low, expected.high), rel=1e-9)
        assert difference["n"] == 4 and difference["confidence"] == confidence
        low, high = stats.t.interval(confidence, 3, loc=np.mean(paired), scale=stats.sem(paired))
        assert (strategy["miou"]["low"], strategy["miou"]["high"]) == pytest.approx((low, high), rel=1e-9)
        assert strategy["per_class_difference"]["pole"] == pytest.approx(np.mean([s / 10 for s in range(4)]))
        assert strategy["per_class_difference"]["road"] == pytest.approx(0.0)
