"""The training data and the order of its batches: the same order on every rank count and
after a resume (one permutation per epoch from the run's seed), and one random generator per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import h5py
import torch
from torch.utils.data import Sampler

from fgaug.data.cache import CACHE_SUFFIXES, CachedPairs, source_digest
from fgaug.data.cityscapes import ReadOptions, find_groups, tree_root
from fgaug.data.headers import check_headers
from fgaug.data.io import DataError
from fgaug.data.pairs import CityscapesPairs, PairItem
from fgaug.data.record import counted_digest
from fgaug.flow.config import FullGlowConfig
from fgaug.training.options import TrainOptions

PairDataset = CachedPairs | CityscapesPairs
"""(mask, photo) training pairs: from an HDF5 cache or a Cityscapes tree."""


@dataclass
class TrainingData:
    """The pairs to train and validate on, the training source's fingerprint, a one-line
    description, and the groups left out by ``--skip-bad`` (one message each)."""

    train: PairDataset
    val: PairDataset | None
    fingerprint: str
    description: str
    skipped: list[str] = field(default_factory=list)

    @cached_property
    def pairs_identity(self) -> str:
        """The training pairs as one comparable value: their count and a digest of their keys in
        order (what the batch order is drawn over; unlike :attr:`fingerprint`, the same for a copy
        of the data with other modification times). Read once: a cache's keys come from its file."""
        return counted_digest(pair_keys(self.train), "pairs")


def pair_keys(dataset: PairDataset) -> list[str]:
    """The keys (``train/aachen/aachen_000000_000019``) of a dataset's pairs, in order."""
    if isinstance(dataset, CityscapesPairs):
        return [group.key for group in dataset.groups]
    with h5py.File(dataset.path, "r") as cache:
        return [key.decode() if isinstance(key, bytes) else str(key) for key in cache["keys"][:]]


class StandInItem(PairItem):
    """A pair of :class:`PairsSkippingBad`, with the error of the pair it stands in for ("" for none)."""

    stands_in_for: str


class PairsSkippingBad(CityscapesPairs):
    """``train --skip-bad``'s pairs: one whose pixels fail the full read (unknown label ids,
    off-palette colours, a damaged image body, which the header check cannot see) is replaced in
    its batch by the next pair in key order that reads, so the run goes on. Every item carries
    ``stands_in_for``: the failed pair's one-line error, or "" for the pair itself; the trainer
    logs and counts each failed pair once (items may come from worker processes). The stand-in
    depends on the data alone, so a resumed run draws the same batches."""

    def __getitem__(self, index: int) -> StandInItem:
        failure = ""
        for offset in range(len(self.groups)):
            try:
                item = super().__getitem__((index + offset) % len(self.groups))
            except DataError as error:
                failure = failure or str(error)
                continue
            return StandInItem(mask=item["mask"], photo=item["photo"], key=item["key"], stands_in_for=failure)
        raise DataError(f"none of the {len(self.groups)} pairs reads ({failure})")


def check_same_pairs(recorded: str | None, data: TrainingData, data_path: str | Path, run_dir: Path) -> None:
    """``--resume`` goes on over the pairs the run trained on (``recorded``, from its
    ``config.json``; None for a run from before it was recorded): other data is a :class:`DataError`."""
    if recorded is not None and recorded != data.pairs_identity:
        raise DataError(
            f"{data_path}: holds {data.pairs_identity}, but {run_dir} trained on {recorded}; --resume goes on with "
            "the run's own data (start a new run for other data: --init-from its checkpoint fine-tunes from it)"
        )


def open_training_data(options: TrainOptions, model_config: FullGlowConfig) -> TrainingData:
    """The training set (a Cityscapes tree or an HDF5 cache) and a validation set when one exists.

    A tree's files are checked from their headers first (:func:`~fgaug.data.headers.check_headers`),
    so that a wrong file stops the run before its first step, not when its batch is drawn."""
    read = ReadOptions(model_config.image_size, options.boundary, options.snap_colors)
    data = Path(options.data)
    skipped: list[str] = []

    def open_one(path: Path, split: str, limit: int | None) -> tuple[PairDataset, str]:
        if path.suffix in CACHE_SUFFIXES:
            dataset = CachedPairs(path, size=model_config.image_size)
            if dataset.info.boundary != options.boundary:
                raise DataError(
                    f"{path}: prepared {'with' if dataset.info.boundary else 'without'} the boundary channel"
                )
            return dataset, dataset.info.source_digest
        tree = tree_root(path)
        discovery = find_groups(tree or path, [split] if tree else None, True, options.mask_format, options.skip_bad)
        found = discovery.groups[:limit] if limit else discovery.groups
        checked = check_headers(found, read.boundary, options.skip_bad)
        skipped.extend([*discovery.skipped, *checked.skipped])
        pairs = (PairsSkippingBad if options.skip_bad else CityscapesPairs)(checked.groups, read)
        return pairs, source_digest(checked.groups, tree or path)

    train, fingerprint = open_one(data, options.train_split, None)
    val: PairDataset | None = None
    if options.val_data:
        val, _ = open_one(Path(options.val_data), options.val_split, options.val_limit)
    elif (tree := tree_root(data)) is not None and (tree / "gtFine" / options.val_split).is_dir():
        val, _ = open_one(tree, options.val_split, options.val_limit)
    if options.patience and val is None:  # with --val given, val is there or open_one raised
        where = "a cache holds one split" if data.suffix in CACHE_SUFFIXES else f"no gtFine/{options.val_split}"
        off = "--patience 0 (a resumed run keeps its own)" if options.resume else "no --patience"
        raise DataError(
            f"{data}: --patience {options.patience} stops on validation bits/dim, and there is no validation data "
            f"({where}, no --val); give it with --val, or train with {off}"
        )
    batch = options.batch_size or 1
    if len(train) < batch:
        raise DataError(f"{data}: {len(train)} training pair(s), fewer than the batch size {batch}")
    description = f"{len(train)} training pairs" + (f", {len(val)} validation pairs" if val is not None else "")
    if skipped:
        description += f", {len(skipped)} group(s) skipped (--skip-bad)"
    return TrainingData(train, val, fingerprint, description, skipped)


class StepOrderSampler(Sampler[int]):
    """This process's training indices of steps ``first`` to ``last`` (exclusive), drawn lazily.

    Step ``s`` lies in epoch ``e, o = divmod(s, steps_per_epoch)``; its global batch is positions
    ``o * B`` to ``(o + 1) * B`` of epoch ``e``'s permutation (:func:`epoch_permutation`,
    ``B = batch_size * world_size``; the epoch's last ``size % B`` positions are unused), and rank
    ``r`` takes that batch's slice ``r * batch_size`` to ``(r + 1) * batch_size``. Every step's
    indices depend only on the step, so a resume continues the same order, and one loader (and
    its workers) serves a whole run however many epochs it spans.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        first: int,
        last: int,
        steps_per_epoch: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.size, self.seed, self.first, self.last = size, seed, first, last
        self.steps_per_epoch, self.batch_size = steps_per_epoch, batch_size
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        epoch, order = -1, []
        for step in range(self.first, self.last):
            step_epoch, offset = divmod(step, self.steps_per_epoch)
            if step_epoch != epoch:
                epoch, order = step_epoch, epoch_permutation(self.size, self.seed, step_epoch)
            start = (offset * self.world_size + self.rank) * self.batch_size
            yield from order[start : start + self.batch_size]

    def __len__(self) -> int:
        return max(self.last - self.first, 0) * self.batch_size


def epoch_permutation(size: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 7919 + epoch)
    return torch.randperm(size, generator=generator).tolist()


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one step's dequantisation noise."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)
