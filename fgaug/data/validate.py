"""``fgaug validate``: check a tree that ``generate`` or ``layouts`` wrote, as a CI job would before
training on it.

Every file a sample's record lists (``manifest.jsonl`` of ``generate``; ``layouts.jsonl`` of
``layouts``, whose label files follow from its labelIds) must be present, readable to its last
byte and of its kind: a PNG to its IEND chunk, an 8-bit RGB photo, labelIds with valid ids and
labelTrainIds that are their train ids, a colour file that is a colour mask, a 16-bit instanceIds,
a polygons file that parses and names the labels' size, every image the size of the labelIds. The
tree itself must be whole: a readable run record (``fgaug-run.json``; a tree of the API's
:class:`~fgaug.data.writer.DatasetWriter` alone has none) of a run that finished, wrote what it
was asked for or accepted what it did not (``generate --allow-failed``), and its manifest still
lists every sample the run left in it; no temporary file of an interrupted write and no photo
without labels, on which Cityscapes loaders fail, lies under ``leftImg8bit/`` or ``gtFine/``; no
manifest line is damaged. Given the masks the tree was made from, every sample's source must be
among them, and every label file ``generate`` copied still byte-identical to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fgaug.data.cityscapes import (
    PHOTO_SUFFIX,
    Group,
    check_id_mask_mode,
    find_groups,
    read_instance_ids,
    read_label_ids,
)
from fgaug.data.cutouts import LABEL_FILE_SUFFIXES
from fgaug.data.headers import polygons_size
from fgaug.data.io import DataError, check_png_integrity, image_header, open_image
from fgaug.data.labels import ids_to_train_ids
from fgaug.data.layouts import read_layout_records
from fgaug.data.record import RECORD_NAME, recorded_outcome, recorded_run, unfinished_run
from fgaug.data.writer import LAYOUTS_MANIFEST_NAME, MANIFEST_NAME, manifest_files, read_manifest, tree_records

MAX_THREADS = 8
"""Threads that read the samples' files, at most: one per core this process may run on."""


@dataclass
class ValidationReport:
    """What :func:`validate_tree` found: the samples checked and one line per problem."""

    samples: int
    problems: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "problems": self.problems}


def validate_tree(out_root: str | Path, input_root: str | Path | None = None) -> ValidationReport:
    """Check the tree ``out_root`` (see the module). ``input_root`` is read as ``generate MASKS``
    reads it (a Cityscapes root, a split or city folder of one, or a folder of masks), and each
    sample's source found by its mask's key, so the tree can be checked against the root or the
    split folder, whichever it was made from."""
    out_root = Path(out_root)
    records = output_records(out_root)
    if input_root is not None and not Path(input_root).exists():
        raise DataError(f"{input_root}: the source masks are missing (no such file or folder)")
    sources = {g.key: g for g in find_groups(input_root, require_photos=False).groups} if input_root else None
    problems = whole_tree_problems(out_root, len(records))

    def record_problems(record: dict) -> list[str]:
        outputs = {name: out_root / path for name, path in record["outputs"].items()}
        missing = [f"{path}: missing" for path in outputs.values() if not path.is_file()]
        if missing:
            return missing
        found = file_problems(outputs)
        source = sources.get(record["key"]) if sources is not None else None
        if sources is not None and source is None:
            found.append(f"{outputs['labelIds.png']}: its source mask {record['key']} is not under {input_root}")
        elif source is not None and record.get("labels") == "copied":
            found.extend(_copy_problems(record, outputs, source))
        return found

    with ThreadPoolExecutor(reading_threads()) as pool:  # PNG decoding frees the GIL
        for found in pool.map(record_problems, records):
            problems.extend(found)
    return ValidationReport(len(records), problems)


def reading_threads() -> int:
    """One per core this process may run on, up to :data:`MAX_THREADS`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, MAX_THREADS)


def output_records(out_root: Path) -> list[dict]:
    """The records of the tree ``out_root`` with their ``outputs`` (name -> path in the tree): its
    manifests (``generate``), else its ``layouts.jsonl`` (``layouts``); a tree with both is a
    :class:`DataError` (two runs mixed: each command now refuses the other's tree)."""
    if manifest_files(out_root) and (out_root / LAYOUTS_MANIFEST_NAME).is_file():
        raise DataError(
            f"{out_root}: holds both {MANIFEST_NAME} (generate) and {LAYOUTS_MANIFEST_NAME} (layouts); "
            "rerun one command with --overwrite"
        )
    if manifest_files(out_root):  # manifest.jsonl, or only the per-process parts of an interrupted torchrun run
        return tree_records(out_root)
    if not out_root.is_dir():
        raise DataError(f"{out_root}: {'a file' if out_root.exists() else 'no such folder'}; give the tree to check")
    if not (out_root / LAYOUTS_MANIFEST_NAME).is_file():
        raise DataError(f"{out_root}: no {MANIFEST_NAME} or {LAYOUTS_MANIFEST_NAME}; not an fgaug output tree")
    records = read_layout_records(out_root / LAYOUTS_MANIFEST_NAME)
    for record in records:
        stem = str(record["output"]).removesuffix("_gtFine_labelIds.png")
        photo = {"photo": record["photo"]} if record.get("photo") else {}
        labels = {suffix.removeprefix("_gtFine_"): f"{stem}{suffix}" for suffix in LABEL_FILE_SUFFIXES}
        record["outputs"] = {**labels, **photo}
    return records


def whole_tree_problems(out_root: Path, listed: int) -> list[str]:
    """What is wrong with the tree as a whole (see the module), given the samples its manifest lists."""
    problems = []
    record = out_root / RECORD_NAME
    if record.is_file() and not recorded_run(out_root):  # none: a tree of the API's DatasetWriter, checked by file
        problems.append(f"{record}: not a readable run record (damaged or edited)")
    command = unfinished_run(out_root)
    if command is None:  # a finished run leaves no torn line
        problems.extend(_damaged_manifests(out_root))
    if command is not None:
        problems.append(
            f"{record}: the `fgaug {command}` run that writes this tree has not finished "
            "(interrupted?): rerun the same command to complete it"
        )
    outcome = recorded_outcome(out_root)
    if outcome is not None and not outcome.accepted:
        problems.append(
            f"{record}: its run left {outcome.requested - outcome.in_tree} of the {outcome.requested} requested "
            "samples unwritten (its exit code was 3; see its failures)"
        )
    if outcome is not None and listed < outcome.in_tree:
        problems.append(f"{out_root}: its manifest lists {listed} of the {outcome.in_tree} samples its run wrote")
    beside_manifest = sorted(out_root.glob(".*.part"))  # a manifest's or the record's
    in_folders = [path for folder in ("leftImg8bit", "gtFine") for path in sorted((out_root / folder).rglob(".*.part"))]
    for path in beside_manifest + in_folders:
        problems.append(f"{path}: a temporary file of an interrupted write")
    for photo in sorted((out_root / "leftImg8bit").rglob(f"*{PHOTO_SUFFIX}")):
        split_city = photo.parent.relative_to(out_root / "leftImg8bit")
        labels = out_root / "gtFine" / split_city / photo.name.replace(PHOTO_SUFFIX, "_gtFine_labelIds.png")
        if not labels.is_file():
            problems.append(f"{photo}: a photo without labels ({labels.name}); Cityscapes loaders fail on it")
    return problems


def _damaged_manifests(out_root: Path) -> list[str]:
    """The manifests of a tree holding a line that is no complete record."""
    found = [(path, "sample") for path in manifest_files(out_root)] + [(out_root / LAYOUTS_MANIFEST_NAME, "layout")]
    problems = []
    for manifest, index in found:
        lines = manifest.read_text(encoding="utf-8", errors="replace").splitlines() if manifest.is_file() else []
        if len(read_manifest(manifest, index)) < sum(1 for line in lines if line.strip()):
            problems.append(f"{manifest}: holds lines that are no complete record (damaged or edited)")
    return problems


def file_problems(outputs: dict[str, Path]) -> list[str]:
    """One line for each file of a sample that cannot be read to its end, is not of its kind, or
    is not the size of the sample's labelIds."""
    try:
        image_header(outputs["labelIds.png"])
        check_png_integrity(outputs["labelIds.png"])
        label_ids = read_label_ids(outputs["labelIds.png"], "labelIds")
    except DataError as error:
        return [str(error)]
    size = label_ids.shape
    problems = []
    for name, path in outputs.items():
        if name == "labelIds.png":
            continue
        try:
            if path.suffix == ".png":  # a PNG in name and bytes, whole: decoders may pass a missing end or a bad CRC
                image_header(path)
                check_png_integrity(path)
            if name == "labelTrainIds.png":
                problems.extend(_train_id_problems(path, label_ids, outputs["labelIds.png"]))
                continue
            other = READERS.get(name, _any_image)(path)
        except DataError as error:
            problems.append(str(error))
            continue
        if other != size:
            what = "its labelIds" if name == "photo" else f"its labelIds {outputs['labelIds.png'].name}"
            problems.append(f"{path}: size {other} differs from {what} {size}")
    return problems


def _train_id_problems(path: Path, label_ids: np.ndarray, label_path: Path) -> list[str]:
    """A labelTrainIds file (what mmsegmentation trains on) that is not its labelIds' train ids."""
    image = open_image(path)
    check_id_mask_mode(path, image.mode)
    train_ids = np.asarray(image)
    if train_ids.shape != label_ids.shape:
        return [f"{path}: size {train_ids.shape[:2]} differs from its labelIds {label_path.name} {label_ids.shape}"]
    if not np.array_equal(train_ids, ids_to_train_ids(label_ids)):
        return [f"{path}: its train ids are not those of its labelIds {label_path.name}"]
    return []


def _photo(path: Path) -> tuple[int, int]:
    """A photo fgaug wrote: 8-bit RGB, decoded to its end."""
    image = open_image(path)
    if image.mode != "RGB":
        raise DataError(f"{path}: expected an 8-bit RGB photo, got mode {image.mode}")
    return image.height, image.width


def _any_image(path: Path) -> tuple[int, int]:
    image = open_image(path)
    return image.height, image.width


def _shape(read: Callable[[Path], np.ndarray]) -> Callable[[Path], tuple[int, int]]:
    return lambda path: read(path).shape[:2]


READERS: dict[str, Callable[[Path], tuple[int, int]]] = {
    "photo": _photo,
    "color.png": _shape(lambda path: read_label_ids(path, "color", snap_colors=True)),
    "instanceIds.png": _shape(read_instance_ids),
    "polygons.json": polygons_size,
}
"""How each kind of file is read and checked, to its (height, width); any other is an image. A
colour file may hold the off-palette edge colours of a smoothly resized source (``generate
--snap-colors`` copies it byte for byte): they are snapped, and only a file that is no colour mask
at all (mostly off the palette: a photo) is a problem."""


def _copy_problems(record: dict, outputs: dict[str, Path], source: Group) -> list[str]:
    """Label files of a sample that differ from those of its source mask."""
    problems = []
    for suffix in record["source"]["labels"]:
        target, original = outputs[suffix.removeprefix("_gtFine_")], source.label_files.get(suffix)
        if original is None or not original.is_file():
            problems.append(f"{target}: its source {source.stem}{suffix} is missing")
        elif target.read_bytes() != original.read_bytes():
            problems.append(f"{target}: differs from its source {original}")
    return problems
