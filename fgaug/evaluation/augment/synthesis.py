"""Making an arm's synthetic pairs: the recipe of :data:`~fgaug.evaluation.augment.strategies.STRATEGIES`
run through fgaug's own commands on disk, then read back as :class:`PairArrays`.

An arm made from N real masks works in ``<folder>/<arm>/N<N>/``: ``layouts/`` (``fgaug
layouts``), ``tree/`` (``fgaug generate``, at the model's resolution) and ``complete.json`` (what
was written) once it is done. For a copy-paste arm the layouts tree, photos included, is the
synthetic data. Trees stay, so a report's synthetic data can be looked at and an interrupted run
resumes; ``layouts`` and ``generate`` refuse a tree that other settings made unless ``overwrite``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fgaug.data.cityscapes import Group, find_groups
from fgaug.data.io import DataError, atomic_write_bytes
from fgaug.data.layouts import write_layouts
from fgaug.evaluation.augment.protocol import ArmResult, PairArrays, read_pairs
from fgaug.evaluation.augment.strategies import (
    CLASS_WEIGHTS,
    FILTER_PROBE,
    GENERATOR_NEED,
    STRATEGIES,
    Strategy,
    needs,
    parts,
)
from fgaug.flow.sampling import PLAIN_SAMPLING, SamplingOptions
from fgaug.generate.engine import generate
from fgaug.generate.ignore import IGNORED, read_ignore_map
from fgaug.generate.options import GenerateOptions


@dataclass(frozen=True)
class RealSet:
    """The real data an arm is made from: ``groups``, the first N training masks of the tree the
    arm reads (with their photos), and ``real_only``, the results of the real-only probes trained
    on them, where the runner has them."""

    groups: Sequence[Group]
    real_only: Sequence[ArmResult] = ()

    @property
    def size(self) -> int:
        return len(self.groups)


Supply = Callable[[RealSet], Path]
"""The file an arm needs for a real set (a checkpoint, a filter probe, class weights)."""


Synthesiser = Callable[[RealSet], tuple[PairArrays, int]]
"""A real set -> its synthetic pairs and how many draws diverged."""


@dataclass(frozen=True)
class Supplies:
    """Where an arm reads and works, and what it needs beyond its recipe.

    ``root`` is the Cityscapes tree whose training masks the real sets are (the source of layouts
    and of content transfer), ``folder`` holds the arms' work, ``image_size`` is the generator's
    (the size pairs are read at). ``generators`` maps a generator kind (``fair``, ``early``,
    ``demo``) to the checkpoint for a real set; ``filter_probe`` and ``class_weights`` give the
    files of ``filter-ignore-map`` and ``targeted-hard``. ``device``, ``precision`` and
    ``sampling`` are how ``generate`` draws. ``reuse_finished``: a folder holding
    ``complete.json`` is read as it is, its recipe and supplies not asked for again.

    Why functions of the real set, called only when an arm needs them: the two runners meet the
    same needs differently. ``fgaug evaluate augment`` has one model (``--model``) for every N,
    trains the filter probe on the N real pairs and takes the class weights from its own real-only
    probes at N; the study (``benchmarks/augmentation_study.py``) trains a generator per N,
    keeps its filter probes and weights in its study folder, and reuses its finished trees without
    retraining a generator to check them. A need left out (absent kind, None) is one the runner
    cannot meet: :meth:`missing` names it before anything runs."""

    root: Path
    folder: Path
    image_size: tuple[int, int]
    generators: Mapping[str, Supply] = field(default_factory=dict)
    filter_probe: Supply | None = None
    class_weights: Supply | None = None
    device: str = "cpu"
    precision: str = "auto"
    sampling: SamplingOptions = PLAIN_SAMPLING
    overwrite: bool = False
    reuse_finished: bool = False

    def missing(self, name: str) -> list[str]:
        """The needs of arm ``name`` (:func:`~fgaug.evaluation.augment.strategies.needs`) these
        supplies cannot meet."""
        return [need for need in needs(name) if self._supply(need) is None]

    def provide(self, need: str, real: RealSet) -> Path:
        """The file that meets ``need`` for ``real``."""
        supply = self._supply(need)
        if supply is None:
            raise ValueError(f"no supply of the {need}")
        return supply(real)

    def _supply(self, need: str) -> Supply | None:
        if need == FILTER_PROBE:
            return self.filter_probe
        if need == CLASS_WEIGHTS:
            return self.class_weights
        return self.generators.get(need.removesuffix(GENERATOR_NEED))


def synthesise(
    name: str, real: RealSet, supplies: Supplies, per_mask: int | None = None, temperature: float | None = None
) -> tuple[PairArrays, int]:
    """The synthetic pairs of arm ``name`` for ``real`` (at ``supplies.image_size``, ignore maps
    applied) and how many draws diverged; ``per_mask`` and ``temperature`` replace the arm's own
    (:meth:`~fgaug.evaluation.augment.strategies.Strategy.with_draws`)."""
    lacking = supplies.missing(name)
    if lacking:
        raise ValueError(f"arm {name!r} needs {', '.join(lacking)}, which these supplies lack")
    if STRATEGIES[name].generator == "real":
        return read_pairs(real.groups, supplies.image_size), 0
    made = [_make(part, STRATEGIES[part].with_draws(per_mask, temperature), real, supplies) for part in parts(name)]
    return PairArrays.concat([pairs for pairs, _ in made]), sum(diverged for _, diverged in made)


def arm_synthesiser(
    name: str, supplies: Supplies, per_mask: int | None = None, temperature: float | None = None
) -> Synthesiser:
    """:func:`synthesise` of arm ``name`` as a :data:`Synthesiser`."""

    def synthesiser(real: RealSet) -> tuple[PairArrays, int]:
        return synthesise(name, real, supplies, per_mask, temperature)

    return synthesiser


def arm_folder(folder: Path, name: str, size: int) -> Path:
    """Where arm ``name`` made from ``size`` real masks works, under a runner's ``folder``."""
    return Path(folder) / name / f"N{size}"


def _make(name: str, strategy: Strategy, real: RealSet, supplies: Supplies) -> tuple[PairArrays, int]:
    """One arm of its own (combining none): its tree written once, then read."""
    folder = arm_folder(supplies.folder, name, real.size)
    tree = folder / ("layouts" if strategy.generator == "none" else "tree")
    marker = folder / "complete.json"
    if not (supplies.reuse_finished and marker.is_file()):
        atomic_write_bytes(marker, json.dumps(_write_tree(strategy, real, supplies, folder, tree)).encode())
    return read_synthetic(tree, supplies.image_size), json.loads(marker.read_text()).get("diverged", 0)


def _write_tree(strategy: Strategy, real: RealSet, supplies: Supplies, folder: Path, tree: Path) -> dict[str, int]:
    """Run the arm's commands; what ``complete.json`` says of them."""
    root, overwrite = supplies.root, supplies.overwrite
    if strategy.generator == "none" and strategy.layouts is not None:  # layouts always, Strategy checks
        layouts = write_layouts(real.groups, root, tree, strategy.layouts, overwrite=overwrite)
        return {"written": layouts.written, "pasted": layouts.pasted}
    model = supplies.provide(strategy.generator + GENERATOR_NEED, real)
    masks, per_mask, content = root / "gtFine" / "train", strategy.per_mask, None
    if strategy.layouts is not None:
        write_layouts(real.groups, root, folder / "layouts", strategy.layouts, overwrite=overwrite)
        masks, per_mask = folder / "layouts", 1
        content = str(root) if strategy.content else None
    weights = supplies.provide(CLASS_WEIGHTS, real) if strategy.allocate == "weights" else None
    probe = supplies.provide(FILTER_PROBE, real) if strategy.ignore else None
    summary = generate(
        GenerateOptions(
            masks=str(masks),
            out=str(tree),
            model=str(model),
            n=per_mask,
            temperature=strategy.temperature,
            best_of=strategy.best_of,
            reject_fraction=strategy.reject,
            allocate=strategy.allocate,
            class_weights=None if weights is None else str(weights),
            content_from=content,
            keep_unchanged=strategy.keep_unchanged,
            content_fill=strategy.content_fill,
            ignore_segmenter=None if probe is None else str(probe),
            at_model_resolution=True,
            limit=None if strategy.layouts is not None else real.size,
            device=supplies.device,
            precision=supplies.precision,
            allowed_failed=1.0,
            guidance=supplies.sampling.guidance,
            denoise_scale=supplies.sampling.denoise_scale,
            overwrite=overwrite,
        )
    )
    return {"written": summary.written, "failed": len(summary.failed), "diverged": summary.diverged_draws}


def read_synthetic(tree: Path, size: tuple[int, int]) -> PairArrays:
    """The pairs of a synthetic tree read at ``size`` (the size it was written at), the train ids
    set to 255 wherever an ignore map beside them says so."""
    groups = find_groups(tree, None, True).groups
    if not groups:
        raise DataError(f"{tree}: no synthetic pair was written (every draw diverged: lower the temperature)")
    pairs = read_pairs(groups, size)
    for index, group in enumerate(groups):
        ignored = read_ignore_map(group)
        if ignored is not None:
            pairs.labels[index][torch.from_numpy(ignored)] = IGNORED
    return pairs
