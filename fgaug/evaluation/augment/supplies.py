"""The arms' needs that come from the real data (the filter probe of ``filter-ignore-map``, the
class weights of ``targeted-hard``), and what ``fgaug evaluate augment`` supplies from its inputs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fgaug.data.cityscapes import Group
from fgaug.data.io import DataError, atomic_write_bytes
from fgaug.evaluation.augment.protocol import ArmResult, PairArrays, ProbeRecipe, mixed_batches, read_pairs
from fgaug.evaluation.augment.synthesis import RealSet, Supplies
from fgaug.flow.sampling import PLAIN_SAMPLING, SamplingOptions
from fgaug.runtime import resolve_device
from fgaug.segmentation.probe import fit_probe, in_memory_format, new_probe, save_segmenter

FILTER_SEED = 1000
"""The filter probe's seed (initial weights and batch order), apart from every arm's."""


def filter_probe(path: Path, real: PairArrays, val: PairArrays, device: torch.device | str = "cpu") -> Path:
    """The probe that judges synthetic pixels for ignore maps (``generate --ignore-map``): trained on
    the ``real`` pairs alone with the protocol's default :class:`ProbeRecipe`, early-stopped on
    ``val``, seed :data:`FILTER_SEED`. Trained once: a probe already at ``path`` is kept."""
    path = Path(path)
    if not path.is_file():
        recipe = ProbeRecipe()
        model = new_probe(recipe.width, FILTER_SEED, device)
        fit_probe(
            model,
            mixed_batches([(real, recipe.batch_size)], FILTER_SEED),
            recipe.steps_for(len(real)),
            recipe.lr,
            val.everything(),
            recipe.evaluate_every,
            recipe.patience,
            recipe.network_dtype(device),
        )
        height, width = real.labels.shape[-2:]
        save_segmenter(in_memory_format(model.cpu(), torch.contiguous_format), path, (height, width))
    return path


def class_weights(path: Path, real_only: Sequence[ArmResult]) -> Path:
    """The weights of ``generate --allocate weights`` for ``targeted-hard``, written to ``path`` as
    JSON: for every class, ``w_c = 1 - mean_s IoU_c(s)``, the validation IoU of the real-only probes
    ``real_only`` (seeds s, one real set; a class a probe never predicted counts 0)."""
    if not real_only:
        raise DataError("targeted-hard weights classes by the real-only probes of its real set: none were given")
    names = sorted({name for result in real_only for name in result.val_per_class_iou})
    weights = {
        name: 1.0 - float(np.mean([result.val_per_class_iou.get(name, 0.0) for result in real_only])) for name in names
    }
    atomic_write_bytes(Path(path), json.dumps(weights, indent=1, sort_keys=True).encode())
    return Path(path)


def evaluation_supplies(
    root: Path,
    folder: Path,
    image_size: tuple[int, int],
    model: Path,
    val_groups: Sequence[Group],
    device: str = "auto",
    precision: str = "auto",
    sampling: SamplingOptions = PLAIN_SAMPLING,
    overwrite: bool = False,
) -> Supplies:
    """What ``fgaug evaluate augment`` meets from its inputs: ``model`` (``--model``) as the fair
    generator, the one it has, for every N; the filter probe trained on each real set's pairs
    (``folder/filters/N<N>.pt``, early-stopped on ``val_groups``, on ``device``); the class
    weights of the real-only probes the evaluation trains at each N
    (``folder/class-weights/N<N>.json``). No early or demo generator: the arms sampling from
    those need a second model."""

    def probe(real: RealSet) -> Path:
        path = folder / "filters" / f"N{real.size}.pt"
        real_pairs, val = read_pairs(real.groups, image_size), read_pairs(val_groups, image_size)
        return filter_probe(path, real_pairs, val, resolve_device(device))

    def weights(real: RealSet) -> Path:
        return class_weights(folder / "class-weights" / f"N{real.size}.json", real.real_only)

    return Supplies(
        root,
        folder,
        image_size,
        generators={"fair": lambda real: model},
        filter_probe=probe,
        class_weights=weights,
        device=device,
        precision=precision,
        sampling=sampling,
        overwrite=overwrite,
    )
