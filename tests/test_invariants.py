"""Rules that hold for every input, checked by hypothesis on small random cases: generation draws
every requested sample once in bounded batches, allocation shares exactly N per mask, a flip
undone is the original, the training order shards each epoch across ranks and resumes at any
step, draw seeds are distinct, label conversions round-trip and confusion matrices count pixels."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fgaug.data.cutouts import LabelSet, instances_from_components, traced_polygons
from fgaug.data.labels import (
    IGNORE_TRAIN_ID,
    LABEL_BY_ID,
    N_TRAIN_IDS,
    VALID_LABEL_IDS,
    color_to_ids,
    ids_to_color,
    ids_to_train_ids,
    train_ids_to_ids,
)
from fgaug.data.layouts import LayoutOptions, aligned_source, make_layout
from fgaug.flow import Samples
from fgaug.generate.allocate import share_samples
from fgaug.generate.draws import MAX_REDRAWS, Draw, DrawFailure, DrawSeeds, draw_best, draw_seed, style_seed
from fgaug.generate.engine import _batches, _Work
from fgaug.segmentation.scores import confusion_matrix, segmentation_scores
from fgaug.training.batches import epoch_permutation
from fgaug.training.train import _Run

# ---------------------------------------------------------------------------- generation batches


@st.composite
def pending_work(draw: st.DrawFn) -> list[_Work]:
    """Masks with an allocation each and the samples still to write (a resumed run's gaps)."""
    work = []
    for index in range(draw(st.integers(0, 8))):
        count = draw(st.integers(1, 9))
        samples = sorted(draw(st.sets(st.integers(0, count - 1), min_size=1)))
        work.append(_Work(f"mask{index}", samples, count))  # type: ignore[arg-type]
    return work


@given(pending_work(), st.integers(1, 6), st.integers(1, 16))
@settings(max_examples=100, deadline=None)
def test_batches_draw_every_pending_sample_once_and_never_overfill(
    work: list[_Work], best_of: int, batch_size: int
) -> None:
    batches = list(_batches(work, best_of, batch_size))
    drawn = Counter((item.group, sample) for batch in batches for item in batch for sample in item.samples)
    assert drawn == Counter((item.group, sample) for item in work for sample in item.samples)
    for batch in batches:
        assert batch, "an empty batch"
        # FullGlow.sample draws the same number for every mask of one call
        assert len({len(item.samples) for item in batch}) == 1
        draws = sum(len(item.samples) for item in batch) * best_of  # K candidates per sample
        # best_of > batch_size cannot fit one sample's candidates: then a batch is one sample of one mask
        assert draws <= max(batch_size, best_of)
        if best_of > batch_size:
            assert len(batch) == 1 and len(batch[0].samples) == 1
        assert all(item.count == next(w.count for w in work if w.group == item.group) for item in batch)


class SeedModel:
    """A stand-in sampler whose every draw is its noise: the image and log-likelihood are the
    seed's first normal number, and a draw diverges where that number is below ``diverge_below``."""

    def __init__(self, diverge_below: float) -> None:
        self.diverge_below = diverge_below
        self.calls: list[int] = []

    def sample_noise(self, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
        return [torch.randn(batch, 1, generator=generator)]

    def sample(self, masks: torch.Tensor, n: int, temperature: float, noise: list[torch.Tensor]) -> Samples:
        values = noise[0].view(len(masks), n)
        self.calls.append(values.numel())
        diverged = values < self.diverge_below
        likelihood = torch.where(diverged, torch.full_like(values, -math.inf), values)
        return Samples(values.view(len(masks), n, 1, 1, 1), likelihood, diverged)


def noise_value(seed: int) -> float:
    return float(torch.randn(1, 1, generator=torch.Generator().manual_seed(seed)))


def expected_draw(seed: int, key: str, sample: int, best_of: int, diverge_below: float) -> Draw | DrawFailure:
    """The rule of :func:`draw_best`, written out: the most likely of the first K candidates that
    did not diverge; all diverged: the next K, up to MAX_REDRAWS times."""
    diverged = 0
    for attempt in range(MAX_REDRAWS + 1):
        candidates = range(attempt * best_of, (attempt + 1) * best_of)
        values = {c: noise_value(draw_seed(seed, key, sample, c)) for c in candidates}
        kept = {c: v for c, v in values.items() if v >= diverge_below}
        diverged += len(values) - len(kept)
        if kept:
            best = max(kept, key=lambda c: kept[c])
            return Draw(torch.tensor(kept[best]), kept[best], best, diverged)
    return DrawFailure(diverged)


@given(
    pending_work(),
    st.integers(1, 4),
    st.integers(1, 12),
    st.integers(0, 2**16),
    st.sampled_from([-math.inf, -0.5, 0.5, math.inf]),
)
@settings(max_examples=50, deadline=None)
def test_every_requested_sample_is_delivered_once_as_its_best_candidate(
    work: list[_Work], best_of: int, batch_size: int, seed: int, diverge_below: float
) -> None:
    """The engine's batches through :func:`draw_best`: one draw or failure per requested sample,
    the most likely candidate of its own seeds, whichever batch it fell in."""
    model = SeedModel(diverge_below)
    delivered: dict[tuple[str, int], Draw | DrawFailure] = {}
    for batch in _batches(work, best_of, batch_size):
        model.calls.clear()
        keys = [item.group for item in batch]
        rows = draw_best(model, torch.zeros(len(batch), 1), keys, [item.samples for item in batch], 1.0, seed, best_of)  # type: ignore[arg-type]
        assert model.calls[0] <= max(batch_size, best_of)  # the batch's draws; redraws are one sample's K
        assert all(call == best_of for call in model.calls[1:])
        for item, row in zip(batch, rows, strict=True):
            assert len(row) == len(item.samples)
            for sample, result in zip(item.samples, row, strict=True):
                assert (item.group, sample) not in delivered
                delivered[(item.group, sample)] = result
    assert set(delivered) == {(item.group, s) for item in work for s in item.samples}
    for (key, sample), result in delivered.items():
        expected = expected_draw(seed, key, sample, best_of, diverge_below)
        assert type(result) is type(expected) and result.diverged == expected.diverged
        if isinstance(result, Draw):
            assert (result.candidate, result.log_likelihood) == (expected.candidate, expected.log_likelihood)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- allocation

weights_of_masks = st.lists(
    st.floats(min_value=0, max_value=1.7e308, allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, 1.0, 5e-324]),
    min_size=1,
    max_size=12,
)


@given(weights_of_masks, st.integers(1, 20))
@settings(max_examples=100, deadline=None)
def test_allocation_shares_exactly_n_per_mask_and_at_least_one_each(weights: list[float], per_mask: int) -> None:
    shares = share_samples(np.array(weights), per_mask)
    assert len(shares) == len(weights)
    assert sum(shares) == per_mask * len(weights)
    assert min(shares) >= 1
    assert all(isinstance(share, int) for share in shares)


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=12), st.integers(1, 20))
@settings(max_examples=100, deadline=None)
def test_allocation_follows_the_weights_by_largest_remainders(weights: list[int], per_mask: int) -> None:
    """Each mask's extra samples (beyond its one) are within one of its exact share of the spare
    ones, and a heavier mask never gets fewer."""
    array = np.array(weights, dtype=np.float64)
    shares = share_samples(array, per_mask)
    if array.sum() == 0 or len(set(weights)) == 1:
        assert shares == [per_mask] * len(weights)
        return
    spare = per_mask * len(weights) - len(weights)
    for share, weight in zip(shares, weights, strict=True):
        assert abs((share - 1) - spare * weight / array.sum()) < 1
    for i, j in zip(*np.nonzero(array[:, None] > array[None, :]), strict=True):
        assert shares[i] >= shares[j]


# ---------------------------------------------------------------------------- flips

label_maps = hnp.arrays(
    np.uint8,
    st.tuples(st.integers(1, 10), st.integers(1, 14)),
    elements=st.sampled_from([7, 8, 11, 17, 20, 21, 23, 24, 26, 33]),
)


@given(label_maps)
@settings(max_examples=60, deadline=None)
def test_a_label_set_flipped_twice_is_the_original(label_ids: np.ndarray) -> None:
    labels = LabelSet(label_ids, instances_from_components(label_ids))
    once, twice = labels.flipped(), labels.flipped().flipped()
    np.testing.assert_array_equal(once.label_ids, label_ids[:, ::-1])
    np.testing.assert_array_equal(once.instance_ids, labels.instance_ids[:, ::-1])
    np.testing.assert_array_equal(twice.label_ids, labels.label_ids)
    np.testing.assert_array_equal(twice.instance_ids, labels.instance_ids)
    assert twice.files() == labels.files()  # labelIds, instanceIds, color, trainIds and polygons
    objects = [Counter(obj["label"] for obj in traced_polygons(s)["objects"]) for s in (labels, once)]
    assert objects[0] == objects[1]  # the mirror image has the same objects


@given(label_maps, st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_a_flipped_layout_and_its_aligned_photo_flip_back_to_the_source(label_ids: np.ndarray, seed: int) -> None:
    labels = LabelSet(label_ids, instances_from_components(label_ids))
    photo = np.random.default_rng(seed).integers(0, 256, (*label_ids.shape, 3), dtype=np.uint8)
    options = LayoutOptions(n=1, flip_probability=1.0, jitter_probability=0.0, paste=0, seed=seed)
    layout = make_layout(labels, "key", 0, None, options, photo)
    assert layout.flip and layout.scale == 1.0 and not layout.pasted
    np.testing.assert_array_equal(layout.labels.label_ids, label_ids[:, ::-1])
    back_photo, back_labels = aligned_source(layout.photo, layout.labels, layout.record())  # type: ignore[arg-type]
    np.testing.assert_array_equal(back_photo, photo)
    np.testing.assert_array_equal(back_labels.label_ids, labels.label_ids)
    np.testing.assert_array_equal(back_labels.instance_ids, labels.instance_ids)


# ---------------------------------------------------------------------------- training order


def rank_batches(
    world: int, rank: int, batch: int, size: int, seed: int, step: int, last: int | None = None
) -> list[list[int]]:
    """The batches the trainer's loader gives ``rank`` from ``step`` to the end of its epoch, or
    to step ``last`` (the real :meth:`_Run.loader_from`, on a run holding only what it reads; the
    dataset's items are their indices)."""
    steps_per_epoch = size // (batch * world)
    run = SimpleNamespace(
        steps_per_epoch=steps_per_epoch,
        total_steps=last if last is not None else (step // steps_per_epoch + 1) * steps_per_epoch,
        batch_size=batch,
        data=SimpleNamespace(train=range(size)),
        options=SimpleNamespace(seed=seed, workers=0),
        context=SimpleNamespace(rank=rank, world_size=world),
        device=torch.device("cpu"),
    )
    return [b.tolist() for b in _Run.loader_from(run, step)]  # type: ignore[arg-type]


@st.composite
def training_runs(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    world, batch = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    size = draw(st.integers(world * batch, 3 * world * batch + 7))
    return world, batch, size, draw(st.integers(0, 2**20)), draw(st.integers(0, 3))


@given(training_runs())
@settings(max_examples=60, deadline=None)
def test_the_ranks_of_one_epoch_cover_each_index_once(run: tuple[int, int, int, int, int]) -> None:
    """Every rank's shard of an epoch is disjoint from the others'; together they are the epoch's
    permutation less its last ``size % global batch`` entries (steps per epoch = size // global
    batch, the remainder dropped), and each global batch is the one a single process with the
    whole global batch would take at that step (the same order on every rank count)."""
    world, batch, size, seed, epoch = run
    steps = size // (world * batch)
    shards = [rank_batches(world, rank, batch, size, seed, epoch * steps) for rank in range(world)]
    order = epoch_permutation(size, seed, epoch)
    assert sorted(order) == list(range(size))
    covered = [index for shard in shards for b in shard for index in b]
    assert len(covered) == len(set(covered)) == steps * world * batch
    assert set(covered) == set(order[: steps * world * batch])
    assert size - len(covered) == size % (world * batch) < world * batch
    assert all(len(shard) == steps and all(len(b) == batch for b in shard) for shard in shards)
    alone = rank_batches(1, 0, world * batch, size, seed, epoch * steps)
    for step in range(steps):
        assert [i for shard in shards for i in shard[step]] == alone[step]


@given(training_runs(), st.data())
@settings(max_examples=60, deadline=None)
def test_a_resume_at_any_step_continues_the_same_order(
    run: tuple[int, int, int, int, int], data: st.DataObject
) -> None:
    world, batch, size, seed, epoch = run
    steps = size // (world * batch)
    offset = data.draw(st.integers(0, steps - 1))
    rank = data.draw(st.integers(0, world - 1))
    whole_epoch = rank_batches(world, rank, batch, size, seed, epoch * steps)
    assert rank_batches(world, rank, batch, size, seed, epoch * steps + offset) == whole_epoch[offset:]
    next_epoch = rank_batches(world, rank, batch, size, seed, (epoch + 1) * steps)
    assert len(next_epoch) == steps  # a resume at an epoch's end starts the next epoch whole


@given(training_runs(), st.data())
@settings(max_examples=60, deadline=None)
def test_one_loader_over_several_epochs_gives_each_epochs_batches_in_turn(
    run: tuple[int, int, int, int, int], data: st.DataObject
) -> None:
    """The trainer takes one loader from its step to the end of training: across epoch ends it
    gives exactly the batches that one loader per epoch would (each epoch its own permutation)."""
    world, batch, size, seed, epoch = run
    steps = size // (world * batch)
    first = epoch * steps + data.draw(st.integers(0, steps - 1))
    last = first + data.draw(st.integers(1, 4 * steps))
    rank = data.draw(st.integers(0, world - 1))
    per_epoch = [
        b for e in range(epoch, last // steps + 1) for b in rank_batches(world, rank, batch, size, seed, e * steps)
    ]
    assert (
        rank_batches(world, rank, batch, size, seed, first, last)
        == per_epoch[first - epoch * steps : last - epoch * steps]
    )


@given(st.integers(1, 40), st.integers(0, 2**20), st.integers(0, 50))
@settings(max_examples=50, deadline=None)
def test_the_epoch_order_is_a_permutation_fixed_by_seed_and_epoch(size: int, seed: int, epoch: int) -> None:
    order = epoch_permutation(size, seed, epoch)
    assert sorted(order) == list(range(size))
    assert epoch_permutation(size, seed, epoch) == order


# ---------------------------------------------------------------------------- draw seeds

keys = st.text("ab/_-.0", max_size=6)
"""Mask keys: relative paths from a small alphabet, so that draws share keys often."""


@given(st.lists(st.tuples(st.integers(0, 3), keys, st.integers(0, 5), st.integers(0, 5)), unique=True, max_size=40))
@settings(max_examples=60, deadline=None)
def test_draw_seeds_are_distinct_per_seed_key_sample_and_candidate(draws: list[tuple[int, str, int, int]]) -> None:
    seeds = [draw_seed(*d) for d in draws]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=4), st.integers(0, 3), keys, keys, st.integers(0, 3))
@settings(max_examples=50, deadline=None)
def test_style_seeds_are_the_same_for_every_mask_and_run_seed(
    styles: list[int], run_seed: int, key: str, other_key: str, candidate: int
) -> None:
    rule = DrawSeeds(run_seed, tuple(styles))
    for sample, style in enumerate(styles):
        assert rule.of(key, sample, candidate) == rule.of(other_key, sample, candidate) == style_seed(style, candidate)
        assert DrawSeeds(run_seed + 1, tuple(styles)).of(key, sample, candidate) == style_seed(style, candidate)
    if key != other_key:
        assert DrawSeeds(run_seed).of(key, 0, candidate) != DrawSeeds(run_seed).of(other_key, 0, candidate)


# ---------------------------------------------------------------------------- labels and scores


@given(hnp.arrays(np.uint8, st.integers(1, 40), elements=st.sampled_from([*range(N_TRAIN_IDS), IGNORE_TRAIN_ID])))
@settings(max_examples=60, deadline=None)
def test_train_ids_survive_label_ids_and_colour(train_ids: np.ndarray) -> None:
    """trainIds -> labelIds -> colour -> labelIds -> trainIds is the identity: every train class
    goes through its evaluated id, whose colour maps back to it; ignored pixels stay ignored."""
    label_ids = train_ids_to_ids(train_ids)
    assert set(np.unique(label_ids).tolist()) <= VALID_LABEL_IDS
    colour = ids_to_color(label_ids[None])
    back, off_palette = color_to_ids(colour)
    assert off_palette == 0.0
    np.testing.assert_array_equal(ids_to_train_ids(back[0]), train_ids)
    np.testing.assert_array_equal(ids_to_color(back), colour)


@given(hnp.arrays(np.uint8, st.integers(1, 40), elements=st.sampled_from(sorted(VALID_LABEL_IDS))))
@settings(max_examples=60, deadline=None)
def test_colour_to_ids_keeps_the_colour_and_the_train_id_of_evaluated_classes(label_ids: np.ndarray) -> None:
    back, _ = color_to_ids(ids_to_color(label_ids[None]))
    np.testing.assert_array_equal(ids_to_color(back[0]), ids_to_color(label_ids))
    evaluated = np.array([not LABEL_BY_ID[int(v)].ignore_in_eval for v in label_ids], dtype=bool)
    np.testing.assert_array_equal(ids_to_train_ids(back[0])[evaluated], ids_to_train_ids(label_ids)[evaluated])
    snapped, off = color_to_ids(ids_to_color(label_ids[None]), snap=True)
    assert off == 0.0
    np.testing.assert_array_equal(snapped, back)


target_and_prediction = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.int64, n, elements=st.sampled_from([0, 1, 2, 3, 4, 255])),
        hnp.arrays(np.int64, n, elements=st.integers(-2, 7)),
    )
)


@given(target_and_prediction)
@settings(max_examples=80, deadline=None)
def test_a_confusion_matrix_counts_every_pixel_not_ignored_once(pair: tuple[np.ndarray, np.ndarray]) -> None:
    target, predicted = pair
    classes = 5
    matrix = confusion_matrix(predicted, target, classes)
    kept = target < classes
    assert matrix.shape == (classes, classes + 1) and matrix.min() >= 0
    assert matrix.sum() == kept.sum()
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(target[kept], minlength=classes))
    np.testing.assert_array_equal(
        np.diag(matrix[:, :classes]), [((target == c) & (predicted == c)).sum() for c in range(classes)]
    )
    assert matrix[:, classes].sum() == (kept & ((predicted < 0) | (predicted >= classes))).sum()
    half = len(target) // 2
    split = confusion_matrix(predicted[:half], target[:half], classes) + confusion_matrix(
        predicted[half:], target[half:], classes
    )
    np.testing.assert_array_equal(split, matrix)  # matrices of several images add up
    perfect = segmentation_scores(confusion_matrix(np.where(kept, target, 0), target, classes))
    if kept.any():
        assert perfect.pixel_accuracy == perfect.mean_iou == 1.0
    if kept.any():
        scores = segmentation_scores(matrix)
        assert 0 <= scores.mean_iou <= 1 and 0 <= scores.pixel_accuracy <= 1


def test_rank_shards_by_hand() -> None:
    """9 pairs, 2 ranks of batch 2: 2 steps per epoch, the 9th pair dropped; rank 1 takes positions
    2-3 and 6-7 of the epoch's permutation."""
    assert rank_batches(2, 1, 2, 9, 0, 0) == [epoch_permutation(9, 0, 0)[2:4], epoch_permutation(9, 0, 0)[6:8]]
