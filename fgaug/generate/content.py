"""Real appearance on new layouts: Full-Glow's content transfer over a whole layout tree.

For every layout written by ``fgaug layouts``, the real photo of its source mask is aligned with
it (the layout's flip, scale and crop applied to the photo and to the source labels), encoded under
the aligned source labels, and decoded under the layout (paper section 5.4):

    z = f(photo | source labels),    new photo = f^-1(z | layout)

and the pasted objects are rendered by the model in that photo's context. Decoding latents under
a condition they were not encoded with can blow up far from the edit (a small model trained on
few scenes turned whole unchanged regions into noise), so by default only the edited region is
taken from the decoded image and the real photo is kept, pixel for pixel, everywhere else:

    edited = dilate(condition(source labels) != condition(layout), margin)
    written = edited * new photo + (1 - edited) * photo

``keep_unchanged=False`` writes the paper's whole decoded image. A ``fill`` (``generate
--content-fill prior``: the model's own prior sample of the layout at T) replaces the decoded image
in the edited region, so the real photo carries objects the model drew for that layout; a layout
whose fill failed (every draw diverged) comes back without an image. ``fgaug generate --content-from
ROOT`` runs it for a whole tree (``ROOT`` is the tree the layouts were made from); the output is
written as ``generate`` writes samples (one per layout), its manifest lines naming the content
photo and the edited fraction of the image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from fgaug.data.cityscapes import (
    Group,
    ReadOptions,
    condition_image,
    instance_boundaries,
    load_mask,
    resize_labels,
    resize_photo,
    to_tensor,
)
from fgaug.data.cutouts import LabelSet
from fgaug.data.io import DataError, read_rgb
from fgaug.data.layouts import aligned_source, read_layout_records
from fgaug.data.record import files_content
from fgaug.data.writer import LAYOUTS_MANIFEST_NAME
from fgaug.flow import FullGlow


@dataclass
class ContentSource:
    """Where each layout's content comes from: its ``layouts.jsonl`` records, keyed by the resolved
    path of the layout's labelIds file, and the root of the tree they were made from."""

    records: dict[Path, dict[str, Any]]
    root: Path
    snap_colors: bool = False
    """Read the source masks' colour files with off-palette pixels snapped (``--snap-colors``)."""
    digests: dict[Path, str] = field(default_factory=dict)
    """The SHA-256 of the content files hashed so far, by path: each is hashed once per run."""

    @classmethod
    def open(cls, layouts_root: Path, content_root: Path, snap_colors: bool = False) -> ContentSource:
        if not Path(content_root).is_dir():
            raise DataError(f"{content_root}: not a folder; --content-from names the tree the layouts were made from")
        manifest = Path(layouts_root) / LAYOUTS_MANIFEST_NAME
        records = read_layout_records(manifest)
        if not records:
            raise DataError(f"{manifest}: no layout records; --content-from needs masks written by `fgaug layouts`")
        by_output = {(Path(layouts_root) / r["output"]).resolve(): r for r in records}
        return cls(by_output, Path(content_root), snap_colors)

    def record_for(self, group: Group) -> dict[str, Any]:
        record = self.records.get(group.mask.resolve())
        if record is None:
            raise DataError(
                f"{group.mask}: not listed in {LAYOUTS_MANIFEST_NAME}; --content-from needs layouts of `fgaug layouts`"
            )
        if not record.get("source_photo"):
            raise DataError(f"{group.mask}: its source mask {record['source_mask']} had no photo to take content from")
        return record

    def locate(self, group: Group) -> tuple[Path, Group, dict[str, Any]]:
        """The content photo of the layout ``group``, its source mask's group and its record; a
        missing photo or mask is a :class:`DataError` naming it."""
        record = self.record_for(group)
        photo_path = self.root / record["source_photo"]
        mask = self.root / record["source_mask"]
        source = Group(
            key=record["key"], stem=mask.name, mask=mask, mask_format="auto", label_files=_instance_file(mask)
        )
        for path, what in ((photo_path, "photo"), (source.mask, "source mask")):
            if not path.is_file():
                raise DataError(f"{path}: the content {what} of {group.mask} is missing under {self.root}")
        return photo_path, source, record

    def sources(self, group: Group) -> tuple[Path, Group, dict[str, Any]]:
        """:meth:`locate`'s files, each checked against the SHA-256 its layouts line recorded
        (``source_sha256``: the mask, its instanceIds file, with ``--photos`` the photo): a file
        that differs or is gone is a :class:`DataError` naming it; lines written before record
        none."""
        photo_path, source, record = self.locate(group)
        files = {"mask": source.mask, "instanceIds": _instance_path(source.mask), "photo": photo_path}
        for role, recorded in record.get("source_sha256", {}).items():
            path = files.get(role)
            if path is None or not path.is_file():
                raise DataError(f"{path}: the content {role} file of {group.mask} is missing under {self.root}")
            if files_content([path], self.digests) != recorded:
                raise DataError(
                    f"{path}: not the file the layout {group.mask} was made from (its content differs from what "
                    f"{LAYOUTS_MANIFEST_NAME} recorded); --content-from must name the tree the layouts came from"
                )
        return photo_path, source, record

    def content_digest(self, group: Group) -> str | None:
        """What the files the layout ``group`` takes its content from hold (its source photo, mask
        and instanceIds file; :func:`~fgaug.data.record.files_content`, each file hashed once a
        run), which its manifest line records (``content_sha256``), so that a
        rerun refuses content changed since and resumes the same files anywhere; None where one is
        missing (the draw names it)."""
        try:
            photo, source, _ = self.locate(group)
        except DataError:
            return None
        return files_content([photo, source.mask, *source.label_files.values()], self.digests)

    def aligned_pair(self, group: Group) -> tuple[np.ndarray, LabelSet, dict[str, Any]]:
        """The source photo and labels aligned with the layout of ``group``, and its record."""
        photo_path, source, record = self.sources(group)
        photo, labels = aligned_source(read_rgb(photo_path), LabelSet.read(source, self.snap_colors), record)
        return photo, labels, record


def _instance_path(mask: Path) -> Path | None:
    """Where the instanceIds file of a Cityscapes ``mask`` is (whether or not it is there); None
    for a mask not named as Cityscapes names them."""
    for suffix in ("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png", "_gtFine_color.png"):
        if mask.name.endswith(suffix):
            return mask.with_name(mask.name[: -len(suffix)] + "_gtFine_instanceIds.png")
    return None


def _instance_file(mask: Path) -> dict[str, Path]:
    candidate = _instance_path(mask)
    return {"_gtFine_instanceIds.png": candidate} if candidate is not None and candidate.is_file() else {}


def content_condition(labels: LabelSet, options: ReadOptions) -> np.ndarray:
    """The condition image of in-memory labels at the model's size (as :func:`load_mask` makes it)."""
    boundary = instance_boundaries(resize_labels(labels.instance_ids, options.size)) if options.boundary else None
    return condition_image(resize_labels(labels.label_ids, options.size), boundary)


EDIT_MARGIN = 2


EditFill = Callable[[torch.Tensor], list[torch.Tensor | None]]
"""Layout conditions (B, C, H, W) on the device -> per layout an image (3, H, W) in [0, 1] for its
edited region, or None where none could be drawn."""


def edited_region(content_condition_image: np.ndarray, layout_condition_image: np.ndarray, margin: int) -> np.ndarray:
    """(H, W) bool: pixels whose condition differs between the source labels and the layout (any
    channel: class colour or instance boundary), grown by ``margin`` pixels."""
    edited = (content_condition_image != layout_condition_image).any(axis=2).astype(np.uint8)
    if margin > 0:
        edited = cv2.dilate(edited, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return edited.astype(bool)


@torch.no_grad()
def transfer_onto_layouts(
    model: FullGlow,
    source: ContentSource,
    groups: Sequence[Group],
    options: ReadOptions,
    device: torch.device,
    keep_unchanged: bool = True,
    fill: EditFill | None = None,
) -> list[tuple[torch.Tensor | None, dict[str, Any]]]:
    """For each layout group: the content-transferred photo (3, H, W) in [0, 1] at model size (None
    where ``fill`` failed) and what the manifest records about its content. ``keep_unchanged`` keeps
    the real photo outside the edited region, ``fill`` draws the edited region (see the module's
    docstring)."""
    if fill is not None and not keep_unchanged:
        raise ValueError("a fill of the edited region needs the real photo kept outside it (keep_unchanged)")
    photos, content_masks, layout_masks, edits, notes = [], [], [], [], []
    for group in groups:
        photo, labels, record = source.aligned_pair(group)
        content_image, layout_image = content_condition(labels, options), load_mask(group, options)[1]
        edited = edited_region(content_image, layout_image, EDIT_MARGIN)
        photos.append(to_tensor(resize_photo(photo, options.size)))
        content_masks.append(to_tensor(content_image))
        layout_masks.append(to_tensor(layout_image))
        edits.append(torch.from_numpy(edited))
        notes.append(
            {
                "content_photo": record["source_photo"],
                "content_mask": record["source_mask"],
                "content_sha256": source.content_digest(group),
                "edited_fraction": round(float(edited.mean()), 4),
                "kept_unchanged": keep_unchanged,
            }
        )
    real, layouts = torch.stack(photos), torch.stack(layout_masks).to(device)
    if fill is None:
        drawn = list(model.transfer(real.to(device), torch.stack(content_masks).to(device), layouts).cpu())
    else:
        drawn = fill(layouts)
    written: list[tuple[torch.Tensor | None, dict[str, Any]]] = []
    for image, region, real_photo, note in zip(drawn, edits, real, notes, strict=True):
        note["edit_fill"] = "transfer" if fill is None else "prior"
        if image is not None:
            image = torch.where(region, image.cpu(), real_photo) if keep_unchanged else image.cpu()
        written.append((image, note))
    return written
