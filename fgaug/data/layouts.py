"""New Cityscapes label sets from existing ones: flips, scale-and-crop jitter, copy-paste of thing
instances from other masks, and emphasis on rare classes.

A new layout is made in label space, so its labels are exact by construction: a photo generated
(or content-transferred) for it is labelled by it, pixel for pixel. From a source label set:

1. **flip** (probability ``flip_probability``): mirrored left to right;
2. **scale and crop** (probability ``jitter_probability``): enlarged by a factor drawn from
   ``scale_range`` (at least 1, so no border is invented) and cropped back to the original size at a
   random offset, nearest neighbour;
3. **copy-paste** (``paste`` objects): thing instances cut from other masks (person, rider, car,
   bicycle, motorcycle; a traffic sign or light together with the pole it stands on) are placed
   where they could stand (only whole instances: one connected part filling a third of its box):
   on road or sidewalk (:data:`GROUND`), scaled with the distance of their
   foot row below the horizon (the top of the road) in both masks, and behind every object of the
   target whose foot row is nearer the camera (lower in the image), in front of the rest.
   With ``rare_boost`` > 0 a class is chosen with probability proportional to its pixel frequency
   to the power ``-rare_boost`` (rare classes more often), then an instance of it uniformly.

With ``photos`` the source photos travel with the labels: every layout is also written as a
``leftImg8bit`` photo, the source photo flipped, scaled and cropped as its labels were, each
pasted object's real pixels from its own photo, resized and occluded exactly as its labels
(copy-paste augmentation in real pixels, Ghiasi et al. 2021: the baseline that needs no generator).

Every label file is written from the final label and instance maps, so they agree: labelIds,
instanceIds (``id * 1000 + k`` for instance classes), color, labelTrainIds and polygons (traced
from the maps, stuff before things, large before small, each object a polygon per connected
part). ``layouts.jsonl`` records per layout its source, the flip, scale and crop applied and
each pasted object (source key, class, position, scale), which is what content transfer needs to
align the source photo (:func:`aligned_source`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fgaug.data.background import BackgroundWrites, write_threads
from fgaug.data.cityscapes import Group, check_same_size, resize_photo
from fgaug.data.cutouts import (
    LABEL_FILE_SUFFIXES,
    PASTED_CLASSES,
    Cutout,
    LabelSet,
    Placement,
    find_cutouts,
    paste,
)
from fgaug.data.io import DataError, atomic_write_bytes, encode_png, files_in_place, read_rgb
from fgaug.data.labels import LABEL_BY_NAME
from fgaug.data.options import LayoutOptions
from fgaug.data.record import (
    RunOutcome,
    RunRecord,
    check_output,
    files_content,
    finish_output,
    masks_content,
    masks_used,
    take_output,
)
from fgaug.data.writer import (
    LAYOUT_TOKEN,
    LAYOUTS_MANIFEST_NAME,
    TREE_OUTPUTS,
    check_output_root,
    frame_names,
    read_manifest,
)
from fgaug.finite import to_json
from fgaug.progress import Progress, SilentProgress

BANK_PER_CLASS = 2000


@dataclass
class Layout:
    """One new layout and how it was made."""

    labels: LabelSet
    source: str
    photo: np.ndarray | None = None
    flip: bool = False
    scale: float = 1.0
    crop: tuple[int, int] = (0, 0)
    pasted: list[Placement] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "flip": self.flip,
            "scale": self.scale,
            "crop": list(self.crop),
            "pasted": [asdict(p) for p in self.pasted],
        }


class CutoutBank:
    """The cutouts of a set of masks and the pixel frequency of each pasteable class, to draw
    objects from (rare classes more often with ``rare_boost``)."""

    def __init__(
        self,
        groups: Sequence[Group],
        rare_boost: float = 0.0,
        progress: Progress | None = None,
        per_class: int = BANK_PER_CLASS,
        photos: bool = False,
        snap_colors: bool = False,
    ) -> None:
        """At most ``per_class`` cutouts are kept per class (a uniform reservoir sample), so the
        bank's memory stays bounded on a full-size dataset. With ``photos`` each cutout carries its
        real pixels; ``snap_colors`` reads colour masks as :meth:`LabelSet.read` does."""
        progress = progress or SilentProgress()
        self.by_class: dict[str, list[Cutout]] = {name: [] for name in PASTED_CLASSES}
        seen = dict.fromkeys(PASTED_CLASSES, 0)
        reservoir = np.random.default_rng(0)
        pixels = dict.fromkeys(PASTED_CLASSES, 0)
        progress.start("collecting objects", len(groups))
        for group in groups:
            labels = LabelSet.read(group, snap_colors)
            photo = read_layout_photo(group, labels.shape) if photos else None
            for cutout in find_cutouts(group.key, labels, photo):
                kept, seen[cutout.label] = self.by_class[cutout.label], seen[cutout.label] + 1
                if len(kept) < per_class:
                    kept.append(cutout)
                elif (slot := int(reservoir.integers(seen[cutout.label]))) < per_class:
                    kept[slot] = cutout
            for name in PASTED_CLASSES:
                pixels[name] += int((labels.label_ids == LABEL_BY_NAME[name].id).sum())
            progress.advance(1)
        progress.stop()
        self.classes = [name for name in PASTED_CLASSES if self.by_class[name]]
        frequency = np.array([max(pixels[name], 1) for name in self.classes], dtype=np.float64)
        weights = frequency ** (1.0 - rare_boost) if self.classes else frequency
        self.class_probabilities = weights / weights.sum() if self.classes else weights
        self.pixels = pixels

    def __len__(self) -> int:
        return sum(len(cutouts) for cutouts in self.by_class.values())

    def draw(self, rng: np.random.Generator, exclude: str) -> Cutout | None:
        """A random cutout not taken from the mask ``exclude``: a class by pixel share (times
        frequency^-rare_boost), then an instance uniformly."""
        if not self.classes:
            return None
        for _ in range(8):
            name = self.classes[int(rng.choice(len(self.classes), p=self.class_probabilities))]
            candidates = [c for c in self.by_class[name] if c.source != exclude]
            if candidates:
                return candidates[int(rng.integers(len(candidates)))]
        return None


def make_layout(
    labels: LabelSet,
    key: str,
    index: int,
    bank: CutoutBank | None,
    options: LayoutOptions,
    photo: np.ndarray | None = None,
) -> Layout:
    """New layout ``index`` of the mask ``key`` (deterministic for the options' seed, key and
    index); with the source ``photo`` (at the labels' size) the layout's photo is made alongside."""
    rng = np.random.default_rng([options.seed, _stable_hash(key), index])
    layout = Layout(labels, key)
    if rng.random() < options.flip_probability:
        layout.labels, layout.flip = layout.labels.flipped(), True
    if rng.random() < options.jitter_probability:
        scale = float(rng.uniform(*options.scale_range))
        height, width = labels.shape
        top = int(rng.integers(round(height * scale) - height + 1))
        left = int(rng.integers(round(width * scale) - width + 1))
        layout.labels = layout.labels.scaled_and_cropped(scale, top, left)
        layout.scale, layout.crop = scale, (top, left)
    if photo is not None:
        layout.photo = aligned_source(photo, labels, layout.record())[0].copy()
    for _ in range(options.paste if bank is not None else 0):
        cutout = bank.draw(rng, exclude=key) if bank is not None else None
        pasted = paste(layout.labels, cutout, rng, layout.photo) if cutout is not None else None
        if pasted is not None:
            layout.labels, placement = pasted
            layout.pasted.append(placement)
    return layout


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def aligned_source(photo: np.ndarray, labels: LabelSet, record: dict[str, Any]) -> tuple[np.ndarray, LabelSet]:
    """The source photo and labels with a layout's flip, scale and crop applied (not its pastes):
    the real photo aligned with the new layout, for content transfer."""
    height, width = labels.shape
    photo = resize_photo(photo, (height, width))
    if record["flip"]:
        photo, labels = np.ascontiguousarray(photo[:, ::-1]), labels.flipped()
    if record["scale"] != 1.0:
        top, left = record["crop"]
        big = (round(height * record["scale"]), round(width * record["scale"]))
        photo = resize_photo(photo, big)[top : top + height, left : left + width].copy()
        labels = labels.scaled_and_cropped(record["scale"], top, left)
    return photo, labels


@dataclass
class LayoutSummary:
    out: Path
    sources: int
    written: int
    skipped: int
    objects: int
    pasted: int
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out": str(self.out), "seconds": round(self.seconds, 3)}


PASTE_FROM = "the mask's own split"
"""Where a layout's pasted objects come from: masks of its own split only (``--split`` left out
makes layouts of every split, and a validation object pasted into a training layout, with
``--photos`` its real pixels, would leak validation data into training)."""


def layout_record(groups: Sequence[Group], options: LayoutOptions, digests: dict[Path, str]) -> RunRecord:
    """What shapes the layouts (for ``fgaug-run.json``): every option and the masks used, by key and
    by content (the objects pasted into one layout come from all of them), with their instanceIds
    files and, with ``photos``, their photos, not by the folder holding them, so a dataset mounted
    elsewhere resumes and a file changed in place does not. Hashing Cityscapes' 2,975 training
    photos (6.5 GB) takes about 4.5 s from the page cache, which a rerun of a whole tree, reading
    nothing else, now spends. Each file's SHA-256 is kept in ``digests``, which the layouts lines
    (:func:`source_digests`) read instead of hashing the file again."""
    settings = {"masks_used": masks_used(groups), "masks_content": masks_content(groups, digests)}
    instances = [group.instance_ids for group in groups if group.instance_ids]
    settings["instances_content"] = files_content(instances, digests)
    if options.photos:
        settings["photos_content"] = files_content([group.photo for group in groups if group.photo], digests)
    settings.update(asdict(options))
    if options.paste and len({group.split for group in groups}) > 1:  # one split: the same bank as before
        settings["paste_from"] = PASTE_FROM
    defaults = {option.name: option.default for option in fields(LayoutOptions) if option.default is not MISSING}
    defaults["paste_from"] = "every split"  # before objects were kept within their split
    names = {
        "n": "--per-mask",
        "masks_used": "the masks used (--split, --limit)",
        "masks_content": "the masks' content",
        "instances_content": "the instanceIds files' content",
        "photos_content": "the photos' content (--photos)",
        "scale_range": "scales (1, --max-scale)",
        "paste_from": "objects pasted from",
    }
    return RunRecord("layouts", settings, defaults=defaults, names=names)


def source_digests(group: Group, photo: bool, digests: dict[Path, str]) -> dict[str, dict[str, str]]:
    """What a layout's source files hold, for its ``layouts.jsonl`` line (``source_sha256``, each
    :func:`files_content` of one file, hashed once a run with ``digests``): its mask, its
    instanceIds file where there is one and, where ``photo`` (``--photos``, which reads it anyway),
    its photo. ``generate --content-from`` refuses a tree whose files differ, naming the file."""
    files = {"mask": group.mask, "instanceIds": group.instance_ids, "photo": group.photo if photo else None}
    return {"source_sha256": {role: files_content([path], digests) for role, path in files.items() if path is not None}}


def write_layouts(
    groups: Sequence[Group],
    input_root: Path,
    out_root: Path,
    options: LayoutOptions,
    progress: Progress | None = None,
    overwrite: bool = False,
    threads: int | None = None,
) -> LayoutSummary:
    """``options.n`` new layouts per group, written as a Cityscapes label tree under ``out_root``
    (a valid ``--masks`` input for ``fgaug generate``), with ``layouts.jsonl``. The input tree is
    never written to; a rerun with the same settings skips finished layouts, one with others is
    refused unless ``overwrite`` (see :mod:`fgaug.data.record`). The files are written on
    ``threads`` threads (None: :func:`~fgaug.data.background.write_threads`), each layout's
    ``layouts.jsonl`` line in order once its files are in place."""
    start = time.perf_counter()
    progress = progress or SilentProgress()
    input_root, out_root = Path(input_root), Path(out_root)
    check_output_root(out_root, input_root)
    digests: dict[Path, str] = {}  # each source file's SHA-256, for the record and the layouts lines
    run_record = layout_record(groups, options, digests)
    take_output(
        out_root, input_root, run_record, TREE_OUTPUTS, check_output(out_root, run_record, TREE_OUTPUTS, overwrite)
    )
    manifest = out_root / LAYOUTS_MANIFEST_NAME
    records = read_layout_records(manifest)
    whole = [r for r in records if layout_is_whole(out_root, r)]
    if len(whole) < len(records):  # files gone or cut short since: made again
        progress.log(f"{len(records) - len(whole)} layout(s) of an earlier run damaged or missing: writing them again")
    if records or manifest.is_file():  # drop a line torn by an interrupted run, or stale, before appending
        atomic_write_bytes(manifest, "".join(to_json(r) + "\n" for r in whole).encode())
    finished = {(r["key"], int(r["layout"])) for r in whole}
    to_make = any((group.key, k) not in finished for group in groups for k in range(options.n))
    banks = (  # each split's objects, read only where a layout is still to make (a rerun of a whole tree reads none)
        {
            split: CutoutBank(
                [group for group in groups if group.split == split],
                options.rare_boost,
                progress,
                photos=options.photos,
                snap_colors=options.snap_colors,
            )
            for split in dict.fromkeys(group.split for group in groups)
        }
        if options.paste and to_make
        else {}
    )
    written = skipped = pasted = 0
    progress.start("layouts", len(groups))

    def append(record: dict[str, Any]) -> None:
        out_root.mkdir(parents=True, exist_ok=True)
        with open(manifest, "a", encoding="utf-8") as stream:
            stream.write(to_json(record) + "\n")

    with BackgroundWrites(write_threads() if threads is None else threads) as writes:
        for group in groups:
            pending = [k for k in range(options.n) if (group.key, k) not in finished]
            skipped += options.n - len(pending)
            progress.advance(1)
            if not pending:
                continue
            labels = LabelSet.read(group, options.snap_colors)
            photo = read_layout_photo(group, labels.shape) if options.photos else None
            sources = source_digests(group, options.photos, digests)
            for index in pending:
                layout = make_layout(labels, group.key, index, banks.get(group.split), options, photo)
                split, city, stem = frame_names(group, f"{LAYOUT_TOKEN}-l{index:03d}", options.split)
                folder = out_root / "gtFine" / split / city
                photo_path = out_root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
                record = {
                    "key": group.key,
                    "layout": index,
                    "output": (folder / f"{stem}_gtFine_labelIds.png").relative_to(out_root).as_posix(),
                    "source_mask": _relative(group.mask, input_root),
                    "source_photo": _relative(group.photo, input_root) if group.photo else None,
                    "photo": photo_path.relative_to(out_root).as_posix() if layout.photo is not None else None,
                    **sources,
                    **layout.record(),
                }
                writes.submit(_write_layout, layout, folder, stem, photo_path, then=partial(append, record))
                written += 1
                pasted += len(layout.pasted)
    if len(whole) < len(records):  # the layouts made again were appended last: lines in a fresh run's order
        position = {group.key: place for place, group in enumerate(groups)}
        lines = read_layout_records(manifest)
        lines.sort(key=lambda record: (position.get(record["key"], len(position)), int(record["layout"])))
        atomic_write_bytes(manifest, "".join(to_json(record) + "\n" for record in lines).encode())
    progress.stop()
    finish_output(out_root, run_record, RunOutcome(len(groups) * options.n, written + skipped, accepted=True))
    objects = sum(len(bank) for bank in banks.values())
    return LayoutSummary(out_root, len(groups), written, skipped, objects, pasted, time.perf_counter() - start)


def layout_is_whole(out_root: Path, record: dict[str, Any]) -> bool:
    """Whether every file of a ``layouts.jsonl`` record is under ``out_root`` and whole as far as
    its end tells (:func:`~fgaug.data.io.files_in_place`): what a rerun trusts instead of making
    the layout again, as :func:`~fgaug.data.writer.sample_is_whole` for ``generate``."""
    output, photo = record.get("output"), record.get("photo")
    if not isinstance(output, str) or not output.endswith(LABEL_FILE_SUFFIXES[0]):
        return False
    stem = output.removesuffix(LABEL_FILE_SUFFIXES[0])
    photos = [photo] if isinstance(photo, str) else []
    return files_in_place(out_root, [f"{stem}{suffix}" for suffix in LABEL_FILE_SUFFIXES] + photos)


def _write_layout(layout: Layout, folder: Path, stem: str, photo_path: Path) -> None:
    """A layout's label files (``folder/stem`` + each suffix) and, where it has one, its photo."""
    for suffix, content in layout.labels.files().items():
        atomic_write_bytes(folder / f"{stem}{suffix}", content)
    if layout.photo is not None:
        atomic_write_bytes(photo_path, encode_png(layout.photo))


def read_layout_photo(group: Group, size: tuple[int, int]) -> np.ndarray:
    """A mask's photo, for ``photos``; a mask without one, or one of another size than the
    labels' (a photo paired with the wrong mask), is refused by name."""
    if group.photo is None or not group.photo.is_file():
        raise DataError(f"{group.mask}: no photo beside it in leftImg8bit/, needed by --photos")
    photo = read_rgb(group.photo)
    check_same_size(group.photo, photo.shape, group.mask, size)
    return photo


def read_layout_records(manifest: Path) -> list[dict[str, Any]]:
    """The complete records of a ``layouts.jsonl`` (a torn last line is left out); none without one."""
    return read_manifest(manifest, "layout")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
