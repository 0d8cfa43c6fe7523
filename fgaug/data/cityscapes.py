"""Find, read and resize Cityscapes groups (:mod:`fgaug.data.pairs` serves them as a torch ``Dataset``).

A *group* is one frame: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` and its label files
``gtFine/<split>/<city>/<stem>_gtFine_{labelIds,instanceIds,color,...}.png`` and
``_gtFine_polygons.json``. fgaug also reads a folder of masks alone (any names), for generation.

Masks come as labelIds, labelTrainIds or colour PNGs (``MaskFormat``); ``auto`` decides from the
file name, then from the content. Photos are resized with an anti-aliased filter (area
averaging), labels with nearest neighbour only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from PIL import Image

from fgaug.data.io import RGB_MODES, DataError, open_image, read_rgb
from fgaug.data.labels import (
    IGNORE_TRAIN_ID,
    N_TRAIN_IDS,
    VALID_LABEL_IDS,
    color_to_ids,
    ids_to_color,
    invalid_label_ids,
    train_ids_to_ids,
)
from fgaug.usage import UsageError

MaskFormat = Literal["auto", "labelIds", "labelTrainIds", "color"]
MASK_FORMATS: tuple[MaskFormat, ...] = ("auto", "labelIds", "labelTrainIds", "color")

PHOTO_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIXES = (
    "_gtFine_labelIds.png",
    "_gtFine_labelTrainIds.png",
    "_gtFine_color.png",
    "_gtFine_instanceIds.png",
    "_gtFine_instanceTrainIds.png",
    "_gtFine_polygons.json",
)
MASK_SUFFIX_FORMATS: dict[str, MaskFormat] = {
    "_gtFine_labelIds.png": "labelIds",
    "_gtFine_labelTrainIds.png": "labelTrainIds",
    "_gtFine_color.png": "color",
}
"""Label files usable as the condition, in order of preference."""
PHOTO_OFF_PALETTE = 0.5
"""A colour image with more of its pixels off the Cityscapes palette is a photo, not a mask (a
smoothly resized mask has 10-15% at its edges)."""
ID_MODES = ("L", "I", "I;16", "I;16B")
"""Single-channel PNG modes: id masks."""
INSTANCE_MODES = ("I", "I;16", "I;16B")
"""The modes of a 16-bit single-channel PNG (Pillow opens Cityscapes' instanceIds, and those fgaug
writes, as ``I;16``, older Pillows as ``I``): an 8-bit ``L`` file cannot hold ``id * 1000 + k``."""


@dataclass(frozen=True)
class Group:
    """One frame: its mask (the condition), optional photo, and every label file beside it.

    ``key`` identifies the frame relative to the input root (``train/aachen/aachen_000000_000019``
    or, for a folder of masks, the mask's relative path without extension); per-sample seeds and
    output names derive from it.
    """

    key: str
    stem: str
    mask: Path
    mask_format: MaskFormat
    photo: Path | None = None
    split: str | None = None
    city: str | None = None
    label_files: dict[str, Path] = field(default_factory=dict)

    @property
    def instance_ids(self) -> Path | None:
        return self.label_files.get("_gtFine_instanceIds.png")


@dataclass
class Discovery:
    """Groups found under a root, and the problems skipped (each a one-line message)."""

    groups: list[Group]
    skipped: list[str] = field(default_factory=list)


def is_cityscapes_root(path: str | Path) -> bool:
    path = Path(path)
    return (path / "gtFine").is_dir() or (path / "leftImg8bit").is_dir()


def find_groups(
    root: str | Path,
    splits: Sequence[str] | None = None,
    require_photos: bool = True,
    mask_format: str = "auto",
    skip_bad: bool = False,
) -> Discovery:
    """Every group under ``root``: a Cityscapes root or its ``gtFine`` folder (``splits``
    chooses, all by default), a part of one (a ``gtFine/<split>`` or city folder, whose split
    ``splits`` must include when given), or a folder of mask PNGs (no ``splits``), their masks
    read as ``mask_format`` (one of :data:`MASK_FORMATS`).

    A missing partner (photo without labels, labels without photo when ``require_photos``) is
    an error naming the file, or with ``skip_bad`` a skipped entry.
    """
    root = Path(root)
    mask_format = parse_mask_format(mask_format)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if root.is_file():
        if require_photos:  # a lone file read as a mask has no photo: found at the first read, far too late
            raise DataError(f"{root}: a single file, and pairs need a Cityscapes tree (or prepare's HDF5 cache)")
        if root.suffix.lower() != ".png":
            raise DataError(f"{root}: not a PNG mask; give a mask PNG, a folder of masks or a Cityscapes tree")
        return Discovery([_flat_group(root, root.parent, mask_format)])
    tree = tree_root(root)
    if tree is not None:
        return _find_in_tree(tree, splits, require_photos, mask_format, skip_bad)
    if any(root.rglob("*_gtFine_*.png")):
        return _find_in_label_folder(root, splits, require_photos, mask_format, skip_bad)
    masks = sorted(path for path in root.rglob("*.png") if not path.name.startswith("."))
    if not masks:
        raise DataError(f"{root}: no Cityscapes tree (gtFine/, leftImg8bit/) and no mask PNGs found")
    _refuse_splits(root, splits)
    if require_photos:
        raise DataError(f"{root}: a folder of masks has no photos; training needs a Cityscapes tree")
    groups = [_flat_group(path, root, mask_format) for path in masks]
    by_stem: dict[str, Path] = {}
    for group in groups:  # other names take their folders into the outputs' names: no clash
        if is_cityscapes_stem(group.stem) and group.stem in by_stem:
            _clash(group.stem, group.mask, by_stem[group.stem], None)
        by_stem[group.stem] = group.mask
    return Discovery(groups)


def is_cityscapes_stem(stem: str) -> bool:
    """Whether ``stem`` is a Cityscapes frame name, ``city_seq_frame``, which outputs keep."""
    tokens = stem.split("_")
    return len(tokens) == 3 and all(tokens)


def file_group(mask: Path, mask_format: str, photo: Path | None = None) -> Group:
    """A group of one mask file named on the command line (and its photo, where given), keyed by
    the mask's stem: what ``transfer`` and ``interpolate`` read outside any tree."""
    return Group(key=mask.stem, stem=mask.stem, mask=mask, mask_format=parse_mask_format(mask_format), photo=photo)


def parse_mask_format(text: str) -> MaskFormat:
    """``text`` (``--mask-format``'s value) as a :data:`MaskFormat`; anything else is a
    :class:`UsageError` naming the choices (exit 2, as for every option of fixed choices)."""
    for mask_format in MASK_FORMATS:
        if text == mask_format:
            return mask_format
    raise UsageError(f"--mask-format: unknown mask format {text!r}; choose from {', '.join(MASK_FORMATS)}")


def _flat_group(path: Path, root: Path, mask_format: MaskFormat) -> Group:
    relative = path.relative_to(root).with_suffix("")
    stem = path.name
    for suffix in MASK_SUFFIX_FORMATS:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        stem = path.stem
    return Group(key=relative.as_posix(), stem=stem, mask=path, mask_format=mask_format, label_files={})


def _find_in_tree(
    root: Path,
    splits: Sequence[str] | None,
    require_photos: bool,
    mask_format: MaskFormat,
    skip_bad: bool,
    within: Path | None = None,
) -> Discovery:
    """The groups of a Cityscapes tree's splits. Frames of one name in two folders are refused
    (:func:`_clash`), those of a folder ``within`` the tree only where they concern its frames."""
    label_root, photo_root = root / "gtFine", root / "leftImg8bit"
    available = sorted(
        {p.name for base in (label_root, photo_root) if base.is_dir() for p in base.iterdir() if p.is_dir()}
    )
    chosen = list(splits) if splits else available
    for split in chosen:
        if split not in available:
            raise DataError(f"{root}: no split {split!r} (found: {', '.join(available) or 'none'})")
    discovery, clashes = Discovery([]), list[tuple[str, Path, Path]]()
    for split in chosen:
        discovery.skipped.extend(_strays(label_root / split, skip_bad, within))
        found = _groups_in_label_dir(label_root / split, split, mask_format, clashes)
        photos: dict[str, Path] = {}
        for path in sorted((photo_root / split).glob(f"*/*{PHOTO_SUFFIX}")):
            stem = path.name[: -len(PHOTO_SUFFIX)]
            if stem in photos:
                _clash(stem, path, photos[stem], clashes)
            else:
                photos[stem] = path
        _pair_with_photos(discovery, found, photos, require_photos, skip_bad)
    kept = {group.stem for group in discovery.groups if within is None or _lies_within(group.mask, within)}
    for stem, path, other in clashes:
        if within is None or stem in kept or _lies_within(path, within) or _lies_within(other, within):
            _clash(stem, path, other, None)
    if not discovery.groups and not discovery.skipped:
        raise DataError(f"{root}: no Cityscapes label files found for split(s) {', '.join(chosen)}")
    return discovery


def tree_root(path: str | Path) -> Path | None:
    """The Cityscapes root that ``path`` is, or whose ``gtFine`` folder it is (however reached:
    ``.``, ``..``, a link), holding ``<split>/<city>/`` label files; else None. A folder that is
    only named gtFine, with masks or city folders straight inside, is no tree."""
    path = Path(path)
    if is_cityscapes_root(path):
        return path
    resolved = path.resolve()
    if resolved.name != "gtFine" or any(resolved.glob("*_gtFine_*")):
        return None
    return resolved.parent if any(resolved.glob("*/*/*_gtFine_*")) else None


def enclosing_tree_root(path: str | Path) -> Path | None:
    """The Cityscapes root around ``path``: ``path`` itself when it is one, the folder holding
    the nearest ``gtFine`` above it when it lies in one (a split or city folder, a mask); else None."""
    resolved = Path(path).resolve()
    tree = tree_root(resolved)
    return tree if tree is not None else folder_above(resolved, "gtFine")


def folder_above(path: str | Path, name: str) -> Path | None:
    """The folder that holds the nearest folder called ``name`` above ``path`` (resolved; its own
    last part not counted): a tree's root above its ``gtFine`` or ``leftImg8bit``; else None."""
    parts = Path(path).resolve().parts
    if name not in parts[:-1]:
        return None
    return Path(*parts[: len(parts) - 1 - parts[::-1].index(name)])


def _strays(label_dir: Path, skip_bad: bool, within: Path | None = None) -> list[str]:
    """PNGs in a folder of Cityscapes label files (those ``within`` it when given) named neither as
    a label file nor as a photo, which fgaug, reading such folders by name, would leave out: the
    first is a :class:`DataError`, or with ``skip_bad`` each a skipped entry (a user's own mask
    named otherwise beside Cityscapes ones was left out without a word)."""
    strays = [
        f"{path}: a PNG named neither *_gtFine_<kind>.png nor *{PHOTO_SUFFIX}, among Cityscapes label files "
        "(which fgaug reads by name): rename it as they are named, or move it out"
        for path in sorted(label_dir.rglob("*.png"))
        if "_gtFine_" not in path.name and not path.name.endswith(PHOTO_SUFFIX) and not path.name.startswith(".")
        if within is None or _lies_within(path, within)
    ]
    if strays and not skip_bad:
        raise DataError(strays[0])
    return strays


def _find_in_label_folder(
    root: Path, splits: Sequence[str] | None, require_photos: bool, mask_format: MaskFormat, skip_bad: bool
) -> Discovery:
    """A folder inside a gtFine tree (a split or city folder): the groups of its split found from
    the tree's root (so keys and photos are the same as from the root), kept when under ``root``."""
    tree_folder = enclosing_tree_root(root)
    if tree_folder is None:
        _refuse_splits(root, splits)
        discovery = Discovery([], _strays(root, skip_bad))
        _pair_with_photos(discovery, _groups_in_label_dir(root, None, mask_format), {}, require_photos, skip_bad)
        return discovery
    split = root.resolve().relative_to(tree_folder / "gtFine").parts[0]
    if splits and split not in splits:
        raise DataError(f"{root}: a folder of split {split!r}, not of --split {', '.join(splits)}")
    inside = root.resolve()
    tree = _find_in_tree(tree_folder, [split], require_photos, mask_format, skip_bad, within=inside)
    groups = [group for group in tree.groups if _lies_within(group.mask, inside)]
    if not groups and not tree.skipped:
        raise DataError(f"{root}: no Cityscapes label files found in it")
    return Discovery(groups, tree.skipped)


def _refuse_splits(root: Path, splits: Sequence[str] | None) -> None:
    """``--split`` chooses among a Cityscapes tree's splits; for a folder outside one it would choose nothing."""
    if splits:
        raise DataError(f"{root}: not in a Cityscapes tree, so --split {', '.join(splits)} chooses nothing; drop it")


def _lies_within(path: Path, folder: Path) -> bool:
    """Whether a file lies in ``folder`` (resolved): a link lies where its folder is."""
    return path.parent.resolve().is_relative_to(folder)


def _groups_in_label_dir(
    label_dir: Path, split: str | None, mask_format: MaskFormat, clashes: list[tuple[str, Path, Path]] | None = None
) -> dict[str, Group]:
    """The frames of a folder of label files, by stem; a frame's files in a second folder are a
    :func:`_clash`."""
    files: dict[str, dict[str, Path]] = {}
    for path in sorted(label_dir.rglob("*_gtFine_*")):
        suffix = next((suffix for suffix in LABEL_SUFFIXES if path.name.endswith(suffix)), None)
        if suffix is None:
            continue
        stem = path.name[: -len(suffix)]
        other = next((found for found in files.get(stem, {}).values() if found.parent != path.parent), None)
        if other is not None:
            _clash(stem, path, other, clashes)
        else:
            files.setdefault(stem, {})[suffix] = path
    groups = {}
    for stem, label_files in files.items():
        usable = [suffix for suffix in MASK_SUFFIX_FORMATS if suffix in label_files]
        if not usable:
            continue
        chosen = usable[0] if mask_format == "auto" else _suffix_for(mask_format, usable, label_files)
        mask = label_files[chosen]
        city = mask.parent.name
        key = "/".join(part for part in (split, *mask.parent.relative_to(label_dir).parts, stem) if part)
        groups[stem] = Group(
            key=key,
            stem=stem,
            mask=mask,
            mask_format=MASK_SUFFIX_FORMATS[chosen] if mask_format == "auto" else mask_format,
            split=split,
            city=city,
            label_files=dict(sorted(label_files.items())),
        )
    return groups


def _clash(stem: str, path: Path, other: Path, clashes: list[tuple[str, Path, Path]] | None) -> None:
    """Two frames of one name in two folders (fgaug would mix their files and write both under one
    name): added to ``clashes`` for the caller to judge, else a :class:`DataError` naming both."""
    if clashes is not None:
        clashes.append((stem, path, other))
        return
    raise DataError(
        f"{path}: another frame of the same name {stem} is in {other.parent}; fgaug names every output "
        "after its frame, so rename one, or give the folders one at a time"
    )


def _suffix_for(mask_format: str, usable: list[str], label_files: dict[str, Path]) -> str:
    for suffix in usable:
        if MASK_SUFFIX_FORMATS[suffix] == mask_format:
            return suffix
    first = label_files[usable[0]]
    raise DataError(f"{first}: no {mask_format} file beside it (found {', '.join(usable)})")


def _pair_with_photos(
    discovery: Discovery, found: dict[str, Group], photos: dict[str, Path], require_photos: bool, skip_bad: bool
) -> None:
    def problem(message: str) -> None:
        if not skip_bad:
            raise DataError(message)
        discovery.skipped.append(message)

    for stem, group in found.items():
        photo = photos.get(stem)
        if photo is None and require_photos:
            problem(f"{group.mask}: no photo {stem}{PHOTO_SUFFIX} in the matching leftImg8bit folder")
            continue
        discovery.groups.append(Group(**{**group.__dict__, "photo": photo}))
    if require_photos:
        for stem, photo in photos.items():
            if stem not in found:
                problem(f"{photo}: no label file ({stem}_gtFine_labelIds.png) in the matching gtFine folder")


# --------------------------------------------------------------------------------------------- reading


def read_label_ids(path: str | Path, mask_format: MaskFormat = "auto", snap_colors: bool = False) -> np.ndarray:
    """Any supported mask file -> labelIds (H, W) uint8, checked.

    Colour masks must hold palette colours only, unless ``snap_colors`` maps off-palette pixels
    (left by smooth resizing) to the nearest palette colour.
    """
    path = Path(path)
    image = open_image(path)
    fmt = _detect_format(path, image, mask_format)
    if fmt == "color":
        check_colour_mask_mode(path, image.mode)
        ids, off_palette = color_to_ids(np.asarray(image.convert("RGB")), snap=snap_colors)
        if path.name.endswith(PHOTO_SUFFIX) or off_palette > PHOTO_OFF_PALETTE:
            raise DataError(
                f"{path}: looks like a photo, not a mask ({off_palette:.0%} of its pixels are not Cityscapes "
                "palette colours); give the label files (gtFine/), not the photos (leftImg8bit/)"
            )
        if off_palette > 0 and not snap_colors:
            raise DataError(
                f"{path}: {off_palette:.1%} of pixels are not Cityscapes palette colours "
                "(smoothly resized?); use --snap-colors to map them to the nearest palette colour"
            )
        return ids
    values = _grey_values(path, image)
    if fmt == "labelTrainIds":
        bad = sorted({int(v) for v in np.unique(values)} - set(range(N_TRAIN_IDS)) - {IGNORE_TRAIN_ID})
        if bad:
            raise DataError(f"{path}: unknown trainIds {_listed(bad)} (labelTrainIds holds 0-18 and 255)")
        return train_ids_to_ids(values.astype(np.uint8))
    bad = invalid_label_ids(values)
    if bad:
        raise DataError(f"{path}: unknown label ids {_listed(bad)} (labelIds holds 0-33)")
    return values.astype(np.uint8)


def looks_like_mask(path: Path) -> bool:
    """Whether an image file is a label file: by its Cityscapes name, or a single-channel image."""
    return any(path.name.endswith(suffix) for suffix in LABEL_SUFFIXES) or open_image(path).mode in ID_MODES


def looks_like_photo(path: Path) -> bool:
    """Whether an image file is a photo: by its Cityscapes name, or mostly off the palette."""
    if path.name.endswith(PHOTO_SUFFIX):
        return True
    image = open_image(path)
    rgb = image.mode in RGB_MODES
    return rgb and color_to_ids(np.asarray(image.convert("RGB")))[1] > PHOTO_OFF_PALETTE


def _listed(values: list[int], limit: int = 8) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def check_colour_mask_mode(path: Path, mode: str) -> None:
    if mode not in RGB_MODES:
        raise DataError(f"{path}: a colour mask must be an RGB(A) PNG, got mode {mode}")


def check_id_mask_mode(path: Path, mode: str) -> None:
    if mode not in ID_MODES:
        raise DataError(f"{path}: an id mask must be a single-channel PNG, got mode {mode}")


def check_instance_mode(path: Path, mode: str) -> None:
    if mode not in INSTANCE_MODES:
        raise DataError(f"{path}: instanceIds must be a 16-bit single-channel PNG, got mode {mode}")


def check_same_size(path: Path, shape: tuple[int, ...], mask: Path, mask_shape: tuple[int, ...]) -> None:
    """``path``'s (height, width) ``shape`` must be its mask's."""
    if tuple(shape[:2]) != tuple(mask_shape[:2]):
        raise DataError(f"{path}: size {tuple(shape[:2])} differs from its mask {mask} {tuple(mask_shape[:2])}")


def format_by_name(path: Path, mask_format: MaskFormat) -> MaskFormat:
    """``mask_format``, or for ``auto`` the format a Cityscapes file name says (still ``auto``
    where the name says none)."""
    mask_format = parse_mask_format(mask_format)  # a caller without types may pass any text
    if mask_format != "auto":
        return mask_format
    for suffix, fmt in MASK_SUFFIX_FORMATS.items():
        if path.name.endswith(suffix) or path.name.endswith(suffix.removeprefix("_gtFine")):
            return fmt
    return "auto"


def _grey_values(path: Path, image: Image.Image) -> np.ndarray:
    check_id_mask_mode(path, image.mode)
    return np.asarray(image)


def _detect_format(path: Path, image: Image.Image, mask_format: MaskFormat) -> str:
    named = format_by_name(path, mask_format)
    if named != "auto":
        return named
    if image.mode in RGB_MODES:
        return "color"
    values = {int(v) for v in np.unique(_grey_values(path, image))}
    if IGNORE_TRAIN_ID in values and values <= set(range(N_TRAIN_IDS)) | {IGNORE_TRAIN_ID}:
        return "labelTrainIds"
    if values <= VALID_LABEL_IDS and max(values) >= N_TRAIN_IDS:
        return "labelIds"
    if values <= VALID_LABEL_IDS:
        raise DataError(
            f"{path}: values {_listed(sorted(values))} fit both labelIds and labelTrainIds; "
            "name the format with --mask-format"
        )
    return "labelIds"


LAST_LABEL_ID = max(VALID_LABEL_IDS)
"""Cityscapes' label ids run from 0 to this one without a gap (``tests/test_labels.py`` checks it),
so an instanceIds value names one exactly when it lies in [0, 33] or [1000, 33999]."""


def read_instance_ids(path: str | Path) -> np.ndarray:
    """A 16-bit instanceIds PNG -> (H, W) int32 (an 8-bit file, whose instance values would have
    wrapped round 256, is a :class:`DataError` by its mode). Each value is a label id, or
    ``id * 1000 + k`` for the k-th instance of an instance class; anything else is a
    :class:`DataError` naming the values."""
    return check_instance_ids(path).astype(np.int32)


def check_instance_ids(path: str | Path) -> np.ndarray:
    """The checks of :func:`read_instance_ids` on the file's own values (uint16; int32 where an
    older Pillow opens a 16-bit PNG as ``I``), returned: two comparisons a pixel, 1 ms at
    1024x2048, where decoding takes 17 ms (counting the distinct values took 12)."""
    image = open_image(path)
    check_instance_mode(Path(path), image.mode)
    ids = np.asarray(image)
    unnamed = (ids > LAST_LABEL_ID) & ((ids < 1000) | (ids >= (LAST_LABEL_ID + 1) * 1000))
    if ids.dtype != np.uint16:
        unnamed |= ids < 0
    bad = [int(v) for v in np.unique(ids[unnamed])] if unnamed.any() else []
    if bad:
        raise DataError(f"{path}: instanceIds values that name no label id: {_listed(bad)} (id, or id*1000+k)")
    return ids


def resize_photo(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Anti-aliased resize to (height, width): area averaging down, bicubic up."""
    height, width = size
    if photo.shape[:2] == (height, width):
        return photo
    shrinking = height < photo.shape[0] or width < photo.shape[1]
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an id image to (height, width); never invents ids."""
    height, width = size
    if labels.shape[:2] == (height, width):
        return labels
    dtype = labels.dtype
    work = labels.astype(np.uint16) if dtype == np.int32 else labels
    return cv2.resize(work, (width, height), interpolation=cv2.INTER_NEAREST).astype(dtype)


def instance_boundaries(instance_ids: np.ndarray) -> np.ndarray:
    """1 where a pixel's instance id differs from a 4-neighbour's, else 0 (uint8)."""
    edges = np.zeros(instance_ids.shape, dtype=bool)
    vertical = instance_ids[1:, :] != instance_ids[:-1, :]
    horizontal = instance_ids[:, 1:] != instance_ids[:, :-1]
    edges[1:, :] |= vertical
    edges[:-1, :] |= vertical
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    return edges.astype(np.uint8)


def condition_image(label_ids: np.ndarray, boundary: np.ndarray | None = None) -> np.ndarray:
    """The source-side image: labelIds in the Cityscapes palette (H, W, 3) uint8, with the
    instance-boundary map as a fourth channel (0 or 255) when given."""
    color = ids_to_color(label_ids)
    if boundary is None:
        return color
    return np.concatenate([color, (boundary * 255).astype(np.uint8)[..., None]], axis=2)


@dataclass(frozen=True)
class ReadOptions:
    """How groups become model inputs."""

    size: tuple[int, int]
    boundary: bool = False
    snap_colors: bool = False


def load_mask(group: Group, options: ReadOptions) -> tuple[np.ndarray, np.ndarray]:
    """(labelIds at native size, condition image at ``options.size``) of a group."""
    label_ids = read_label_ids(group.mask, group.mask_format, options.snap_colors)
    boundary = None
    if options.boundary:
        instance_ids = instance_ids_of(group)
        instances = read_instance_ids(instance_ids)
        check_same_size(instance_ids, instances.shape, group.mask, label_ids.shape)
        boundary = instance_boundaries(resize_labels(instances, options.size))
    return label_ids, condition_image(resize_labels(label_ids, options.size), boundary)


def instance_ids_of(group: Group) -> Path:
    """The group's instanceIds file, which the boundary channel needs."""
    if group.instance_ids is None:
        raise DataError(f"{group.mask}: no instanceIds file beside it, needed for the boundary channel")
    return group.instance_ids


def load_pair(group: Group, options: ReadOptions) -> tuple[np.ndarray, np.ndarray]:
    """(condition image, photo) of a group at ``options.size``, uint8 (H, W, C)."""
    if group.photo is None:
        raise DataError(f"{group.mask}: this group has no photo")
    label_ids, condition = load_mask(group, options)
    photo = read_rgb(group.photo)
    check_same_size(group.photo, photo.shape, group.mask, label_ids.shape)
    return condition, resize_photo(photo, options.size)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) -> float (C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)
