"""Write generated photos as a new Cityscapes tree, each with every label file of its mask.

Naming: sample ``k`` of ``aachen_000000_000019`` becomes ``aachen-fgaug-s00k_000000_000019`` in
the city folder ``aachen-fgaug-s00k``. The sample lives in the city token, so the name keeps
Cityscapes' ``city_seq_frame`` shape that torchvision, mmsegmentation and cityscapesScripts
parse, and it can never collide with an original frame.

Labels intact: by default the photo is resized to the mask's native resolution and every label
file is copied byte for byte (``labelTrainIds`` is derived and added when the source has none).
With ``at_model_resolution`` the photo stays at model size and the labels are resized with
nearest neighbour, polygons scaled.

Every file is written atomically; ``manifest.jsonl`` gets a sample's line only after all of its
files are in place, so a rerun skips exactly the finished samples (a line lost in a crash only
means that sample is drawn again, identically). A rerun trusts a line only while its sample is
whole (:func:`sample_is_whole`): a sample whose files were deleted or whose photo was cut short
since is drawn and written again, its stale line dropped.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fgaug.data.cityscapes import (
    Group,
    enclosing_tree_root,
    folder_above,
    is_cityscapes_stem,
    read_instance_ids,
    read_label_ids,
    resize_labels,
    resize_photo,
)
from fgaug.data.io import (
    DataError,
    atomic_output,
    atomic_write_bytes,
    encode_png,
    file_digest_once,
    files_in_place,
    open_image,
    read_json,
)
from fgaug.data.labels import ids_to_color, ids_to_train_ids
from fgaug.data.record import OwnOutputs
from fgaug.finite import to_json

MANIFEST_NAME = "manifest.jsonl"
SAMPLE_TOKEN = "fgaug"
LAYOUTS_MANIFEST_NAME = "layouts.jsonl"
LAYOUT_TOKEN = "layout"
TREE_OUTPUTS = OwnOutputs(
    (MANIFEST_NAME, "manifest.*.jsonl", LAYOUTS_MANIFEST_NAME), rf"-(?:{SAMPLE_TOKEN}-s|{LAYOUT_TOKEN}-l)\d+"
)
"""What ``generate`` and ``layouts`` write under an output root. Each command takes both as its
own: a tree that the other made is refused unless ``--overwrite``, which removes both's files
(a tree of the two mixed passed ``validate`` as one of them)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")
CACHED_MASKS = 8
"""labelIds a writer keeps: a mask's samples are written together, on one thread or on several."""


@dataclass(frozen=True)
class WriterOptions:
    at_model_resolution: bool = False
    split: str = "train"
    """Split folder for groups that have none (a folder of masks)."""
    derive_train_ids: bool = True
    snap_colors: bool = False
    """Read colour masks with off-palette pixels snapped to the palette (as the run read them)."""


def check_output_root(out_root: str | Path, input_root: str | Path) -> None:
    """Refuse an output root inside the input, or inside the Cityscapes tree around it (a tree
    written into ``gtFine/`` would be read back as a split): fgaug never writes into its input."""
    if Path(out_root).is_file():
        raise DataError(f"{out_root}: a file; the output is a folder (a Cityscapes tree)")
    check_outside_input(out_root, input_root)


def check_outside_input(output: str | Path, input_root: str | Path) -> None:
    """Refuse an output (a folder or a file) inside the input, or inside the Cityscapes tree around
    it: fgaug never writes into its input. An input file (one mask) counts as its folder, which
    a later run over that folder would read the output with."""
    out, source = Path(output).resolve(), Path(input_root).resolve()
    if not source.exists():  # else its folder would be taken for the input
        raise DataError(f"{input_root}: no such file or folder")
    source_dir = source if source.is_dir() else source.parent
    if out == source_dir or out.is_relative_to(source_dir):
        where = (
            f"the input {input_root}"
            if source.is_dir()
            else f"{source_dir}, the folder of the input {input_root} (a later run over that folder would read it)"
        )
        raise DataError(f"{output}: the output must not be inside {where}")
    tree = enclosing_tree_root(source_dir)
    if tree is not None and out.is_relative_to(tree):
        raise DataError(f"{output}: the output must not be inside the Cityscapes tree {tree} of the input")


def check_outside_tree_data(output: str | Path, option: str, named: str | Path, labels: str | Path) -> None:
    """Refuse an output (a file or a folder, given as ``option``) inside the ``gtFine`` or
    ``leftImg8bit`` folder of the Cityscapes tree that holds the input ``named`` or its label file
    ``labels`` (a photo under ``leftImg8bit/`` whose mask lies beside it names the tree itself): a
    later run would read it as part of that dataset. The tree's root stays allowed."""
    trees = {enclosing_tree_root(Path(labels).parent), folder_above(named, "leftImg8bit")}
    target = Path(output).resolve()
    for data in (tree / part for tree in trees if tree is not None for part in ("gtFine", "leftImg8bit")):
        if target.is_relative_to(data):
            raise DataError(
                f"{option} {output}: inside {data}, the Cityscapes data of the input {named}; fgaug never writes "
                "into its input's dataset (a later run would read it as part of it)"
            )


def frame_names(group: Group, token: str, default_split: str) -> tuple[str, str, str]:
    """(split, city folder, stem) of a new frame derived from ``group``, marked by ``token`` in the
    city token (``aachen-<token>_000000_000019``), which Cityscapes consumers parse and which never
    collides with an original frame.

    A Cityscapes stem ``city_seq_frame`` keeps its seq and frame; any other mask (a folder of
    masks) becomes city ``masks`` with its relative path, made ``_``-free, as the seq token.
    """
    if is_cityscapes_stem(group.stem):
        city, seq, frame = group.stem.split("_")
    else:
        city, seq, frame = "masks", _UNSAFE.sub("-", group.key).strip("-") or "mask", "000000"
    new_city = f"{city}-{token}"
    return group.split or default_split, new_city, f"{new_city}_{seq}_{frame}"


def sample_names(group: Group, index: int, options: WriterOptions) -> tuple[str, str, str]:
    """(split, city folder, stem) of sample ``index`` of ``group``."""
    return frame_names(group, f"{SAMPLE_TOKEN}-s{index:03d}", options.split)


class DatasetWriter:
    """Writes samples under ``out_root`` and keeps ``manifest.jsonl``."""

    def __init__(
        self,
        out_root: str | Path,
        input_root: str | Path,
        options: WriterOptions | None = None,
        part: str | None = None,
        source_digests: dict[Path, str] | None = None,
    ) -> None:
        """``part`` names this process's own manifest (``manifest.<part>.jsonl``) when several
        processes write one tree; :func:`merge_manifests` folds the parts together.
        ``source_digests``: the SHA-256 of source files already hashed, by path (each manifest line
        records its mask's and its label files'; a file is hashed once a run)."""
        check_output_root(out_root, input_root)
        self.out_root = out_root = Path(out_root)
        self.input_root = Path(input_root)
        self.options = options or WriterOptions()
        self.manifest_path = out_root / (MANIFEST_NAME if part is None else f"manifest.{part}.jsonl")
        self.damaged: set[tuple[str, int]] = set()
        """Samples a manifest lists that are not whole (:func:`sample_is_whole`): written again."""
        self.finished = self._read_finished()
        self._cached_ids: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._source_digests = source_digests if source_digests is not None else {}
        self._lock = threading.Lock()
        """Guards the labelIds cache, the manifest and ``finished``: :meth:`write` runs on several
        threads (:class:`~fgaug.data.background.BackgroundWrites`)."""

    def _read_finished(self) -> set[tuple[str, int]]:
        """Samples with a complete line in any manifest of the tree whose files are whole
        (:func:`sample_is_whole`); the others are :attr:`damaged`. A torn last line (an interrupted
        run) and the lines of damaged samples are dropped from this writer's own manifest, so a
        sample written again has one line; a stale line in another process's manifest goes at
        :func:`merge_manifests`."""
        finished, listed = set(), set()
        for path in manifest_files(self.out_root):
            records = read_manifest(path)
            whole = [record for record in records if sample_is_whole(self.out_root, record)]
            listed |= {(record["key"], record["sample"]) for record in records}
            finished |= {(record["key"], record["sample"]) for record in whole}
            if path == self.manifest_path:
                atomic_write_bytes(path, "".join(to_json(r) + "\n" for r in whole).encode())
        self.damaged = listed - finished
        return finished

    def records(self) -> list[dict]:
        """The records of every manifest of the tree."""
        return tree_records(self.out_root)

    def is_finished(self, group: Group, index: int) -> bool:
        return (group.key, index) in self.finished

    def write(
        self, group: Group, index: int, photo: np.ndarray, metadata: dict, extra: dict[str, np.ndarray] | None = None
    ) -> dict[str, str]:
        """Write sample ``index`` of ``group`` (``photo``: (H, W, 3) uint8 at model size) and its
        labels, and ``extra`` label-like maps by suffix (resized nearest to the labels' size, never
        in place of a label file); append its manifest line (with ``metadata``). Returns the
        output paths."""
        split, city, stem = sample_names(group, index, self.options)
        photo_dir = self.out_root / "leftImg8bit" / split / city
        label_dir = self.out_root / "gtFine" / split / city
        native_ids = self._label_ids(group)
        native_size = native_ids.shape
        size = photo.shape[:2] if self.options.at_model_resolution else native_size

        outputs: dict[str, Path] = {"photo": photo_dir / f"{stem}_leftImg8bit.png"}
        atomic_write_bytes(outputs["photo"], encode_png(resize_photo(photo, size)))
        for suffix, source in group.label_files.items():
            target = label_dir / f"{stem}{suffix}"
            _write_label(source, suffix, target, native_size, size)
            outputs[suffix.removeprefix("_gtFine_")] = target
        ids = resize_labels(native_ids, size)
        derived = {
            "_gtFine_labelIds.png": lambda: ids,
            "_gtFine_color.png": lambda: np.concatenate([ids_to_color(ids), np.full((*size, 1), 255, np.uint8)], 2),
        }
        if self.options.derive_train_ids:
            derived["_gtFine_labelTrainIds.png"] = lambda: ids_to_train_ids(ids)
        for suffix, make in derived.items():
            if suffix not in group.label_files:
                target = label_dir / f"{stem}{suffix}"
                atomic_write_bytes(target, encode_png(make()))
                outputs[suffix.removeprefix("_gtFine_")] = target
        for suffix, image in (extra or {}).items():
            if suffix in group.label_files or suffix in derived:
                raise ValueError(f"an extra file may not replace the label file {suffix}")
            target = label_dir / f"{stem}{suffix}"
            atomic_write_bytes(target, encode_png(resize_labels(image, size)))
            outputs[suffix.removeprefix("_gtFine_")] = target

        relative = {name: path.relative_to(self.out_root).as_posix() for name, path in outputs.items()}
        record = {
            "key": group.key,
            "sample": index,
            "source": {
                "mask": _display(group.mask, self.input_root),
                "photo": _display(group.photo, self.input_root) if group.photo else None,
                "labels": {s: _display(p, self.input_root) for s, p in group.label_files.items()},
            },
            "outputs": relative,
            "labels": "copied" if size == native_size else "resized",
            "mask_sha256": file_digest_once(group.mask, self._source_digests),  # outside the lock: the same value
            "labels_sha256": {
                suffix: file_digest_once(path, self._source_digests) for suffix, path in group.label_files.items()
            },
            **metadata,
        }
        self._append(record)
        return relative

    def _label_ids(self, group: Group) -> np.ndarray:
        """The group's labelIds, read once for all of its samples (they are written close together:
        the cache keeps the last :data:`CACHED_MASKS` masks)."""
        with self._lock:
            ids = self._cached_ids.get(group.mask)
        if ids is None:  # decoded outside the lock, which every write's manifest line waits for
            ids = read_label_ids(group.mask, group.mask_format, self.options.snap_colors)
            with self._lock:
                self._cached_ids[group.mask] = ids
                if len(self._cached_ids) > CACHED_MASKS:
                    self._cached_ids.popitem(last=False)
        return ids

    def _append(self, record: dict) -> None:
        line = to_json(record) + "\n"
        with self._lock:
            self.out_root.mkdir(parents=True, exist_ok=True)
            with open(self.manifest_path, "a", encoding="utf-8") as manifest:
                manifest.write(line)
            self.finished.add((record["key"], record["sample"]))


def manifest_files(out_root: str | Path) -> list[Path]:
    """``manifest.jsonl`` and the per-process parts beside it."""
    out_root = Path(out_root)
    main = out_root / MANIFEST_NAME
    return ([main] if main.is_file() else []) + sorted(out_root.glob("manifest.*.jsonl"))


def tree_records(out_root: str | Path) -> list[dict]:
    """The records of every manifest of the tree ``out_root`` (:func:`manifest_files`)."""
    return [record for path in manifest_files(out_root) for record in read_manifest(path)]


def read_manifest(path: str | Path, index: str = "sample") -> list[dict]:
    """The complete records of a manifest file, each with a ``key`` and an integer ``index`` field
    (torn or foreign lines are left out; a missing file has none)."""
    records = []
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    for line in lines:
        try:
            record = json.loads(line)
            record["key"], record[index] = str(record["key"]), int(record[index])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        records.append(record)
    return records


def sample_is_whole(out_root: Path, record: dict) -> bool:
    """Whether every file a manifest record names is under ``out_root`` and whole as far as its end
    tells (:func:`~fgaug.data.io.files_in_place`: a PNG's signature and IEND chunk, no pixels
    decoded). What a rerun trusts instead of drawing the sample again; ``validate`` reads every
    file to its end."""
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not all(isinstance(path, str) for path in outputs.values()):
        return False
    return "photo" in outputs and files_in_place(out_root, outputs.values())


def merge_manifests(out_root: str | Path, key_order: list[str], checked: Path | None = None) -> int:
    """Fold every manifest of the tree into ``manifest.jsonl``, one record per sample whose files
    are whole (:func:`sample_is_whole`, as a rerun reads them: a stale line of another process's
    manifest is dropped), in the order of ``key_order`` then sample index; the parts are removed.
    The records of ``checked``, the manifest of this process's writer, are not checked again: its
    writer kept only whole samples' lines and appended each new one after its files. Returns the
    record count."""
    out_root = Path(out_root)
    records: dict[tuple[str, int], dict] = {}
    parts = manifest_files(out_root)
    for path in parts:
        for record in read_manifest(path):
            if path == checked or sample_is_whole(out_root, record):
                records[(record["key"], record["sample"])] = record
    rank = {key: index for index, key in enumerate(key_order)}
    ordered = sorted(records.values(), key=lambda r: (rank.get(r["key"], len(rank)), r["key"], r["sample"]))
    if parts:
        lines = "".join(to_json(record) + "\n" for record in ordered)
        atomic_write_bytes(out_root / MANIFEST_NAME, lines.encode())
        for path in parts:
            if path.name != MANIFEST_NAME:
                path.unlink()
    return len(ordered)


def _display(path: Path, root: Path) -> str:
    """``path`` relative to the input ``root`` (a split folder's photos as ``../../leftImg8bit/...``,
    within its Cityscapes tree), so a manifest does not tie the tree to one machine's paths; a
    file outside the input's tree stays absolute."""
    base = (root if root.is_dir() else root.parent).resolve()
    resolved, tree = path.resolve(), enclosing_tree_root(base)
    if resolved.is_relative_to(base) or (tree is not None and resolved.is_relative_to(tree)):
        return Path(os.path.relpath(resolved, base)).as_posix()
    return str(path)


def _write_label(source: Path, suffix: str, target: Path, native: tuple[int, int], size: tuple[int, int]) -> None:
    """A label file at the photo's size: the source's bytes when the size is native, else
    resized with nearest neighbour (polygons scaled)."""
    if size == native:
        _copy_atomic(source, target)
    elif suffix.endswith(".json"):
        atomic_write_bytes(target, _scaled_polygons(source, native, size))
    elif suffix.endswith("_color.png"):
        atomic_write_bytes(target, encode_png(_resized_color(source, size)))
    elif "instance" in suffix:
        atomic_write_bytes(target, encode_png(resize_labels(read_instance_ids(source), size).astype(np.uint16)))
    else:
        grey = np.asarray(open_image(source))
        atomic_write_bytes(target, encode_png(resize_labels(grey, size)))


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically, read whole before the write begins, so that an error
    of the writing (a full disk) names ``target``: ``shutil.copyfile``'s names the source."""
    data = source.read_bytes()
    with atomic_output(target) as temporary:
        temporary.write_bytes(data)


def _resized_color(source: Path, size: tuple[int, int]) -> np.ndarray:
    image = open_image(source)
    array = np.asarray(image.convert("RGBA") if image.mode != "RGBA" else image)
    height, width = size
    return np.asarray(Image.fromarray(array).resize((width, height), Image.Resampling.NEAREST))


def _scaled_polygons(source: Path, native: tuple[int, int], size: tuple[int, int]) -> bytes:
    document = read_json(source, "polygons file")
    scale_y, scale_x = size[0] / native[0], size[1] / native[1]
    document["imgHeight"], document["imgWidth"] = size
    for obj in document.get("objects", []):
        obj["polygon"] = [[round(x * scale_x, 2), round(y * scale_y, 2)] for x, y in obj.get("polygon", [])]
    return to_json(document, indent=1, sort_keys=False).encode()
