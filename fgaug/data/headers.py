"""Header-only checks of a training set, made before its first step (and of ``generate``'s masks
before its first draw).

``train`` reads its pairs lazily, batch by batch, so a wrong file (an RGB photo where a labelIds
mask should be, a file that is no image, a photo of another size than its mask) stopped a run
only when its batch was drawn, possibly hours in, and a short run that never drew it passed.
:func:`check_headers` opens every mask, photo and (with the boundary channel) instanceIds file as
far as its header, its mode and size with no pixels decoded, and applies the rules of the full
read (:func:`~fgaug.data.cityscapes.load_pair`), and that every PNG ends in its IEND chunk (a file
cut short). What only the pixels show, unknown label ids or off-palette colours or a damaged image
body, is still found when the batch is read; ``fgaug prepare`` decodes every pair once, before any training.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fgaug.data.cityscapes import (
    Discovery,
    Group,
    check_colour_mask_mode,
    check_id_mask_mode,
    check_instance_ids,
    check_instance_mode,
    check_same_size,
    format_by_name,
    instance_ids_of,
)
from fgaug.data.io import RGB_MODES, DataError, check_photo_mode, image_header, read_json

MODE_CHECKS: dict[str, Callable[[Path, str], None]] = {
    "instanceIds.png": check_instance_mode,
    "color.png": check_colour_mask_mode,
    "labelIds.png": check_id_mask_mode,
    "labelTrainIds.png": check_id_mask_mode,
}
"""The mode rule of each kind of Cityscapes label file (``*_gtFine_<kind>``)."""


def check_headers(
    groups: Sequence[Group], boundary: bool, skip_bad: bool, photos: bool = True, label_files: bool = False
) -> Discovery:
    """``groups`` whose files pass :func:`check_group_header` (their photos only if ``photos``:
    ``generate`` reads none; all their label files if ``label_files``: ``generate`` copies them).
    The first group that fails raises its :class:`DataError`, or with ``skip_bad`` is left out and
    its message listed as skipped."""
    checked = Discovery([])
    for group in groups:
        try:
            check_group_header(group, boundary, photos, label_files)
        except DataError as error:
            if not skip_bad:
                raise
            checked.skipped.append(str(error))
        else:
            checked.groups.append(group)
    return checked


def check_group_header(group: Group, boundary: bool, photos: bool = True, label_files: bool = False) -> None:
    """One group's mask (its mode fits its format), photo if ``photos`` (RGB, the mask's size),
    with the ``boundary`` channel its instanceIds file (present, 16-bit, the mask's size), and if
    ``label_files`` every label file beside the mask (each of its kind's mode, a polygons file whose
    braces close: :func:`polygons_header_size`; all the mask's size), from headers
    (:func:`~fgaug.data.io.image_header`: a PNG cut short is found too)."""
    mode, size = image_header(group.mask)
    checked = {group.mask}
    mask_format = format_by_name(group.mask, group.mask_format)
    if mask_format == "color":
        check_colour_mask_mode(group.mask, mode)
    elif mask_format != "auto" or mode not in RGB_MODES:
        check_id_mask_mode(group.mask, mode)
    if boundary:
        instance_ids = instance_ids_of(group)
        instance_mode, instance_size = image_header(instance_ids)
        check_instance_mode(instance_ids, instance_mode)
        check_same_size(instance_ids, instance_size, group.mask, size)
        checked.add(instance_ids)
    if photos and group.photo is not None:
        photo_mode, photo_size = image_header(group.photo)
        check_photo_mode(group.photo, photo_mode)
        check_same_size(group.photo, photo_size, group.mask, size)
    for suffix, path in group.label_files.items() if label_files else ():
        if path in checked:
            continue
        kind = suffix.removeprefix("_gtFine_")
        if kind == "polygons.json":
            check_same_size(path, polygons_header_size(path), group.mask, size)
            continue
        file_mode, file_size = image_header(path)
        if kind in MODE_CHECKS:
            MODE_CHECKS[kind](path, file_mode)
        check_same_size(path, file_size, group.mask, size)


def polygons_header_size(path: Path) -> tuple[int, int]:
    """:func:`polygons_size` without parsing the whole file where it can be helped: a file whose
    braces and brackets do not all close, or that does not end in ``}``, is cut short (labels hold
    no braces), and the size is read from the head where Cityscapes writes it. A full parse took
    17 ms for a 222 KiB file; this takes well under 1 ms. ``validate`` parses every file."""
    data = path.read_bytes() if path.is_file() else b""
    if not data.rstrip().endswith(b"}") or data.count(b"{") != data.count(b"}") or data.count(b"[") != data.count(b"]"):
        raise DataError(f"{path}: not a readable polygons file (missing, or cut short: its braces do not close)")
    head = _SIZE_AT_HEAD.search(data[:4096])
    return (int(head[1]), int(head[2])) if head else polygons_size(path)


_SIZE_AT_HEAD = re.compile(rb'"imgHeight"\s*:\s*(\d+)\s*,\s*"imgWidth"\s*:\s*(\d+)')


def polygons_size(path: Path) -> tuple[int, int]:
    """The (imgHeight, imgWidth) a Cityscapes polygons file names; a file that does not parse or
    names none is a :class:`DataError`."""
    document = read_json(path, "polygons file")
    try:
        return int(document["imgHeight"]), int(document["imgWidth"])
    except (TypeError, KeyError, ValueError):
        raise DataError(f"{path}: a polygons file needs imgHeight and imgWidth") from None


class InstanceValueChecks:
    """The values of the instanceIds files a run copies beside its samples, checked on a background
    thread in the order the masks are drawn (:func:`~fgaug.data.cityscapes.check_instance_ids`).

    The header check finds an 8-bit or cut-short file; only the pixels show values that name no
    label id, which every copy would carry into the output, where ``validate`` refuses them. A
    1024x2048 file takes about 18 ms to decode and check on one core of an AVX2 EPYC: all of
    Cityscapes up front would hold the first draw back nearly a minute, and in the drawing loop
    it would add half to the host's work per mask (a mask's own read takes about 40 ms), which
    paces a GPU. Ahead of the loop it costs the loop nothing but a wait where the checks fall
    behind. :meth:`wait` raises the :class:`DataError` of a group's file before its samples are drawn.
    """

    def __init__(self, groups: Sequence[Group]) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fgaug-check")
        self._checks = {
            group.key: self._pool.submit(_check_values, group.instance_ids)
            for group in groups
            if group.instance_ids is not None
        }

    def wait(self, group: Group) -> None:
        """Return once ``group``'s instanceIds file is checked; raise its error if it failed, at
        every batch of the mask's samples (a mask with more draws than a batch holds is drawn in
        several)."""
        check = self._checks.get(group.key)
        if check is not None:
            check.result()

    def __enter__(self) -> InstanceValueChecks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _check_values(path: Path) -> None:
    """:func:`~fgaug.data.cityscapes.check_instance_ids` keeping nothing: the checks run far ahead
    of the drawing, and the decoded files (4 MiB each at 1024x2048) would pile up until their
    masks are drawn."""
    check_instance_ids(path)
