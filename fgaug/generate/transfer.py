"""Content transfer (paper section 5.4): a real photo's content laid onto a new layout, by encoding
the photo under its own mask and decoding the same latents under the new one.

:class:`TransferOptions` is what ``fgaug transfer`` is asked to do, :func:`transfer` does it and
:class:`TransferSummary` says what it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgaug.data.cityscapes import (
    LABEL_SUFFIXES,
    PHOTO_SUFFIX,
    ReadOptions,
    file_group,
    find_groups,
    load_mask,
    load_pair,
    looks_like_mask,
    looks_like_photo,
    resize_photo,
    to_tensor,
)
from fgaug.data.io import DataError, atomic_write_bytes, encode_png
from fgaug.data.preview import to_uint8_image
from fgaug.flow import network_precision
from fgaug.generate.options import ModelUsed, load_named_model
from fgaug.progress import Progress, SilentProgress
from fgaug.runtime import resolve_device, resolve_precision
from fgaug.usage import UsageError


@dataclass(frozen=True)
class TransferOptions:
    """Files: ``content`` is a photo (its mask ``content_mask``, else found in the gtFine tree or
    beside it), ``structure`` a mask, ``out`` the output PNG. Folders: every content photo with
    every structure mask, or the pairs listed in ``pairs`` (one ``content structure`` pair per
    line; ``content`` and ``structure``, where given, the folders its paths are relative to),
    written into folder ``out`` (``transfer.png`` becomes ``transfer/``). ``model`` must be named
    (see :func:`fgaug.generate.options.find_model`)."""

    content: str | Path | None
    structure: str | Path | None
    out: str | Path = "transfer.png"
    content_mask: str | Path | None = None
    pairs: str | Path | None = None
    model: str | Path | None = None
    device: str = "auto"
    precision: str = "auto"
    mask_format: str = "auto"
    snap_colors: bool = False


@dataclass(frozen=True)
class TransferResult:
    """One transfer: the content photo, the structure mask and the PNG written."""

    content: Path
    structure: Path
    output: Path

    def to_dict(self) -> dict[str, str]:
        return {"content": str(self.content), "structure": str(self.structure), "output": str(self.output)}


@dataclass
class TransferSummary:
    """The transfers written, and the model that made them."""

    model: ModelUsed
    transfers: list[TransferResult]

    def to_dict(self) -> dict[str, Any]:
        return {**self.model.to_dict(), "transfers": [result.to_dict() for result in self.transfers]}


def transfer(options: TransferOptions, progress: Progress | None = None) -> TransferSummary:
    """Lay each content photo onto its structure mask as ``options`` says; each output has the
    structure mask's native size."""
    progress = progress or SilentProgress()
    jobs = _transfer_jobs(options)
    torch_device = resolve_device(options.device)
    network_dtype = resolve_precision(options.precision, torch_device)
    checkpoint, model_used = load_named_model(options.model, torch_device)
    progress.log(f"model: {model_used}")
    flow = checkpoint.model
    read = ReadOptions(flow.config.image_size, boundary=flow.config.mask_channels == 4, snap_colors=options.snap_colors)
    results = []
    progress.start("transferring", len(jobs))
    for photo_path, photo_mask, structure_mask, target in jobs:
        content_condition, photo = load_pair(file_group(photo_mask, options.mask_format, photo_path), read)
        structure_ids, structure_condition = load_mask(file_group(structure_mask, options.mask_format), read)
        photo_tensor = to_tensor(photo)[None].to(torch_device)
        with network_precision(network_dtype):
            moved = flow.transfer(
                photo_tensor,
                to_tensor(content_condition)[None].to(torch_device),
                to_tensor(structure_condition)[None].to(torch_device),
            )
        image = resize_photo(to_uint8_image(moved[0]), structure_ids.shape)
        atomic_write_bytes(target, encode_png(image))
        results.append(TransferResult(photo_path, structure_mask, target))
        progress.advance(1)
    progress.stop()
    return TransferSummary(model_used, results)


def find_content_mask(photo: Path, remedy: str = "give it with --content-mask") -> Path:
    """The label file of a Cityscapes photo ``X_leftImg8bit.png``: ``X_gtFine_labelIds.png``
    (then labelTrainIds, then colour) in the matching folder of the tree's ``gtFine``
    (``leftImg8bit/<split>/<city>/`` -> ``gtFine/<split>/<city>/``), else beside the photo. Not
    found, a :class:`DataError` ending with ``remedy``; a photo that is not there is one too."""
    if not photo.is_file():
        raise DataError(f"{photo}: file not found")
    if not photo.name.endswith(PHOTO_SUFFIX):
        raise DataError(f"{photo}: not a Cityscapes photo name (X{PHOTO_SUFFIX}), so its mask is unknown; {remedy}")
    folders = [photo.parent]
    if "leftImg8bit" in photo.parts[:-1]:
        parts = list(photo.parts[:-1])
        parts[len(parts) - 1 - parts[::-1].index("leftImg8bit")] = "gtFine"
        folders.insert(0, Path(*parts))
    stem = photo.name[: -len(PHOTO_SUFFIX)]
    for folder in folders:
        for suffix in LABEL_SUFFIXES[:3]:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    raise DataError(f"{photo}: no {stem}{LABEL_SUFFIXES[0]} in the gtFine tree or beside it; {remedy}")


def _transfer_jobs(options: TransferOptions) -> list[tuple[Path, Path, Path, Path]]:
    """(photo, its mask, structure mask, output) for every transfer asked for."""
    out, pairs = Path(options.out), options.pairs
    content_mask = Path(options.content_mask) if options.content_mask else None
    if pairs is None and (options.content is None or options.structure is None):
        raise UsageError("give CONTENT and STRUCTURE, or --pairs FILE")
    content, structure = Path(options.content or "."), Path(options.structure or ".")
    if pairs is not None:
        for given, name in ((options.content, "CONTENT"), (options.structure, "STRUCTURE")):
            if given is not None and not Path(given).is_dir():
                raise UsageError(f"with --pairs, {name} is the folder its paths are relative to; {given} is no folder")
        listed = []
        for number, line in enumerate(Path(pairs).read_text(encoding="utf-8").splitlines(), 1):
            fields = line.replace(",", " ").split()
            if not fields or line.lstrip().startswith("#"):
                continue
            if len(fields) != 2:
                raise DataError(f"{pairs}:{number}: expected 'CONTENT STRUCTURE', got {line.strip()!r}")
            listed.append(
                (
                    content / fields[0] if content.is_dir() else Path(fields[0]),
                    structure / fields[1] if structure.is_dir() else Path(fields[1]),
                )
            )
        if not listed:  # a CI job whose list came out empty did nothing and passed
            raise DataError(f"{pairs}: lists no 'CONTENT STRUCTURE' pair")
    elif content.is_dir() or structure.is_dir():
        photos = sorted(content.rglob(f"*{PHOTO_SUFFIX}")) if content.is_dir() else [content]
        masks = (
            [g.mask for g in find_groups(structure, require_photos=False).groups] if structure.is_dir() else [structure]
        )
        if not photos:
            raise DataError(f"{content}: no *{PHOTO_SUFFIX} photos found")
        listed = [(photo, mask) for photo in photos for mask in masks]
    else:
        _refuse_swapped(content, structure)
        if out.suffix.lower() != ".png":
            raise UsageError(f"--out {out}: transfer writes a PNG; name a .png file")
        return [(content, content_mask or find_content_mask(content), structure, out)]
    if content_mask is not None:
        raise DataError("--content-mask applies to a single content photo; folders find each photo's mask")
    folder = out.with_suffix("") if out.suffix == ".png" else out
    jobs = []
    for photo, mask in listed:
        for path in (photo, mask):
            if not path.is_file():
                raise DataError(f"{path}: file not found")
        name = f"{_frame_name(photo, (PHOTO_SUFFIX,))}__on__{_frame_name(mask, MASK_SUFFIXES)}.png"
        jobs.append((photo, find_content_mask(photo), mask, folder / name))
    return jobs


def _frame_name(path: Path, suffixes: Sequence[str]) -> str:
    """``path``'s name without a Cityscapes suffix of ``suffixes`` (or without ``.png``): an output
    named after a mask must not end like a label file, or a loader globbing ``*_labelIds.png``
    takes the photo for a mask."""
    for suffix in suffixes:
        if path.name.endswith(suffix):
            return path.name.removesuffix(suffix)
    return path.name.removesuffix(".png")


MASK_SUFFIXES = tuple(suffix for suffix in LABEL_SUFFIXES if suffix.endswith(".png"))
"""Endings of the Cityscapes label files a structure mask may be."""


def _refuse_swapped(content: Path, structure: Path) -> None:
    """A mask given as the content photo is refused, saying so (and when the structure is a photo,
    that the two look swapped)."""
    if not (content.is_file() and looks_like_mask(content)):
        return
    if structure.is_file() and looks_like_photo(structure):
        problem = f"the arguments look swapped: {content} is a mask and {structure} a photo"
    else:
        problem = f"{content} is a mask, not a photo"
    raise DataError(f"{problem}; the content photo comes first: fgaug transfer PHOTO MASK")
