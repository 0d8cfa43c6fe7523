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
from fgaug.data.io import DataError, atomic_write_bytes, check_file_to_write, encode_png, not_a_file
from fgaug.data.preview import to_uint8_image
from fgaug.data.writer import check_output_root, check_outside_tree_data
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


@dataclass(frozen=True)
class _Job:
    """One transfer to make: the content ``photo``, its ``photo_mask`` (read as
    ``photo_mask_format``), the ``structure`` mask and the PNG to write."""

    photo: Path
    photo_mask: Path
    photo_mask_format: str
    structure: Path
    target: Path


def transfer(options: TransferOptions, progress: Progress | None = None) -> TransferSummary:
    """Lay each content photo onto its structure mask as ``options`` says; each output has the
    structure mask's native size. Every output is checked before the model loads, and every
    input is read once before the first is written (:func:`_check_inputs`): a bad file anywhere
    leaves no output behind."""
    progress = progress or SilentProgress()
    jobs = _transfer_jobs(options)
    _check_outputs(jobs, options)
    torch_device = resolve_device(options.device)
    network_dtype = resolve_precision(options.precision, torch_device)
    checkpoint, model_used = load_named_model(options.model, torch_device)
    progress.log(f"model: {model_used}")
    flow = checkpoint.model
    read = ReadOptions(flow.config.image_size, boundary=flow.config.mask_channels == 4, snap_colors=options.snap_colors)
    _check_inputs(jobs, options, read, progress)
    results = []
    progress.start("transferring", len(jobs))
    for job in jobs:
        content_condition, photo = load_pair(file_group(job.photo_mask, job.photo_mask_format, job.photo), read)
        structure_ids, structure_condition = load_mask(file_group(job.structure, options.mask_format), read)
        photo_tensor = to_tensor(photo)[None].to(torch_device)
        with network_precision(network_dtype):
            moved = flow.transfer(
                photo_tensor,
                to_tensor(content_condition)[None].to(torch_device),
                to_tensor(structure_condition)[None].to(torch_device),
            )
        image = resize_photo(to_uint8_image(moved[0]), structure_ids.shape)
        atomic_write_bytes(job.target, encode_png(image))
        results.append(TransferResult(job.photo, job.structure, job.target))
        progress.advance(1)
    progress.stop()
    return TransferSummary(model_used, results)


def _check_outputs(jobs: Sequence[_Job], options: TransferOptions) -> None:
    """Refuse, before any work: an output that is one of the inputs or lies in the ``gtFine`` or
    ``leftImg8bit`` folder of an input's Cityscapes tree, an output folder inside a folder of
    inputs (a later run would read the outputs as inputs; with ``pairs`` the folders are where the
    listed paths start, no more), two transfers that would write one file (photos or masks of one
    name in different folders), and an output that cannot be written."""
    inputs = {path.resolve() for job in jobs for path in (job.photo, job.photo_mask, job.structure)}
    written: dict[Path, _Job] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in inputs:
            raise DataError(f"--out {job.target}: that is an input file; fgaug never writes over its input")
        earlier = written.setdefault(target, job)
        if earlier is not job:
            raise DataError(
                f"--out {job.target}: both {earlier.photo} on {earlier.structure} and {job.photo} on "
                f"{job.structure} would be written there (inputs of one name in different folders)"
            )
        for named, labels in ((job.structure, job.structure), (job.photo, job.photo_mask)):
            check_outside_tree_data(job.target, "--out", named, labels)
        check_file_to_write(job.target, "--out", "transfer.png")
    for given in (options.content, options.structure) if options.pairs is None else ():
        if given is not None and Path(given).is_dir():  # folders read whole: a later run would read the outputs
            check_output_root(jobs[0].target.parent, given)


def _check_inputs(jobs: Sequence[_Job], options: TransferOptions, read: ReadOptions, progress: Progress) -> None:
    """Read every content photo with its mask and every structure mask once, so that a bad file
    is named before the first output is written."""
    photos = {(job.photo, job.photo_mask, job.photo_mask_format) for job in jobs}
    structures = {job.structure for job in jobs}
    progress.start("checking inputs", len(photos) + len(structures))
    for photo, photo_mask, photo_mask_format in sorted(photos):
        load_pair(file_group(photo_mask, photo_mask_format, photo), read)
        progress.advance(1)
    for structure in sorted(structures):
        load_mask(file_group(structure, options.mask_format), read)
        progress.advance(1)
    progress.stop()


def find_content_mask(photo: Path, remedy: str = "give it with --content-mask") -> Path:
    """The label file of a Cityscapes photo ``X_leftImg8bit.png``: ``X_gtFine_labelIds.png``
    (then labelTrainIds, then colour) in the matching folder of the tree's ``gtFine``
    (``leftImg8bit/<split>/<city>/`` -> ``gtFine/<split>/<city>/``), else beside the photo. Not
    found, a :class:`DataError` ending with ``remedy``; a photo that is not there is one too."""
    if not photo.is_file():
        raise not_a_file(photo)
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


def _transfer_jobs(options: TransferOptions) -> list[_Job]:
    """Every transfer asked for; a pair listed twice is made once."""
    out, pairs = Path(options.out), options.pairs
    content_mask = Path(options.content_mask) if options.content_mask else None
    if pairs is None and (options.content is None or options.structure is None):
        raise UsageError("give CONTENT and STRUCTURE, or --pairs FILE")
    content, structure = Path(options.content or "."), Path(options.structure or ".")
    if pairs is not None:
        listed = _listed_pairs(Path(pairs), options, content, structure)
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
        if content_mask is not None and not content_mask.is_file():
            raise not_a_file(content_mask, option="--content-mask")
        if content_mask is not None:
            return [_Job(content, content_mask, options.mask_format, structure, out)]
        return [_Job(content, find_content_mask(content), "auto", structure, out)]
    if content_mask is not None:
        raise UsageError("--content-mask applies to a single content photo; folders find each photo's mask")
    folder = out.with_suffix("") if out.suffix == ".png" else out
    jobs = []
    remedy = "put it there: a folder of photos finds each photo's mask by its name"
    for photo, mask in dict.fromkeys(listed):
        for path in (photo, mask):
            if not path.is_file():
                raise not_a_file(path)
        name = f"{_frame_name(photo, (PHOTO_SUFFIX,))}__on__{_frame_name(mask, MASK_SUFFIXES)}.png"
        jobs.append(_Job(photo, find_content_mask(photo, remedy), "auto", mask, folder / name))
    return jobs


def _listed_pairs(pairs: Path, options: TransferOptions, content: Path, structure: Path) -> list[tuple[Path, Path]]:
    """The (photo, mask) pairs of a ``--pairs`` file, relative to the CONTENT and STRUCTURE
    folders where given."""
    for given, name in ((options.content, "CONTENT"), (options.structure, "STRUCTURE")):
        if given is not None and not Path(given).is_dir():
            raise UsageError(f"with --pairs, {name} is the folder its paths are relative to; {given} is no folder")
    if not pairs.is_file():
        raise DataError(f"--pairs {pairs}: {'a folder' if pairs.is_dir() else 'file not found'}; give a text file")
    try:
        text = pairs.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--pairs {pairs}: not a UTF-8 text file of 'CONTENT STRUCTURE' lines") from None
    listed = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.replace(",", " ").split()
        if not fields or line.lstrip().startswith("#"):
            continue
        if len(fields) != 2:
            raise DataError(f"{pairs}:{number}: expected 'CONTENT STRUCTURE', got {line.strip()!r}")
        listed.append(
            (
                content / fields[0] if options.content is not None else Path(fields[0]),
                structure / fields[1] if options.structure is not None else Path(fields[1]),
            )
        )
    if not listed:  # a CI job whose list came out empty did nothing and passed
        raise DataError(f"{pairs}: lists no 'CONTENT STRUCTURE' pair")
    return listed


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
    if content.name.endswith(PHOTO_SUFFIX) or not (content.is_file() and looks_like_mask(content)):
        return  # named a photo: reading it says what is wrong with it
    if structure.is_file() and looks_like_photo(structure):
        problem = f"the arguments look swapped: {content} is a mask and {structure} a photo"
    else:
        problem = f"{content} is a mask, not a photo"
    raise DataError(f"{problem}; the content photo comes first: fgaug transfer PHOTO MASK")
