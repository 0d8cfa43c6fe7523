"""HDF5 cache of a prepared split: every (mask, photo) pair decoded and resized once.

Layout of a cache file::

    /masks   (N, H, W, C) uint8, chunked one pair per chunk   condition images (colour [+ boundary])
    /photos  (N, H, W, 3) uint8, chunked one pair per chunk
    /keys    (N,) utf-8                                      group keys (train/aachen/aachen_000000_000019)
    /photo_paths, /mask_paths  (N,) utf-8                    source files, relative to the source root
    attrs: format, size, boundary, label_table, source_digest, source_root, fgaug_version

Preparing the same input twice gives the same bytes (no timestamps, fixed chunking, gzip off).
The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from torch.utils.data import Dataset

import fgaug
from fgaug.data.cityscapes import Group, ReadOptions, load_pair, to_tensor
from fgaug.data.io import DataError, atomic_output, first_line, not_a_file
from fgaug.data.labels import LABEL_TABLE_VERSION
from fgaug.data.pairs import PairItem
from fgaug.data.writer import check_outside_input
from fgaug.usage import UsageError

CACHE_FORMAT = "fgaug-cache-1"


@dataclass
class PrepareReport:
    """The cache written, its pairs, the groups skipped (one line each) and the time taken."""

    path: Path
    written: int
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The groups left out, one line each, are ``skipped_groups``, as in ``fgaug train --json``;
        ``skipped``, the same list, stays until the next release (in ``generate`` and ``layouts``
        the name counts samples already in the tree)."""
        return {
            "path": str(self.path),
            "written": self.written,
            "skipped": self.skipped,
            "skipped_groups": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def source_digest(groups: Sequence[Group], root: str | Path) -> str:
    """A digest of the inputs' relative paths, sizes and modification times (cheap to recompute,
    changes when a file is replaced)."""
    root = Path(root)
    digest = hashlib.sha256()
    for group in sorted(groups, key=lambda g: g.key):
        for path in (group.mask, group.photo, group.instance_ids):
            if path is None:
                continue
            stat = path.stat()
            digest.update(f"{_relative(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


CACHE_SUFFIXES = (".h5", ".hdf5")
"""How a cache's name ends: ``train`` tells a cache from a Cityscapes tree by it."""


def check_cache_target(out: Path, source_root: Path, overwrite: bool) -> None:
    """Refuse, before any work, an ``out`` not named as a cache (:data:`CACHE_SUFFIXES`; a
    :class:`UsageError`), a folder or a file in the input, and an existing file unless
    ``overwrite``; even then, a file that is not an fgaug cache (fgaug replaces its own files
    only); a symbolic link, which the write would replace by the file, leaving what it points to
    as it was. Each is a one-line error naming ``out``."""
    if out.is_symlink():
        raise DataError(f"{out}: is a symbolic link; name the file it points to ({out.resolve()}) or another file")
    if out.is_dir():
        raise DataError(f"{out}: is a folder; name the HDF5 file to write, e.g. {out / 'train.h5'}")
    if out.suffix not in CACHE_SUFFIXES:
        raise UsageError(f"--out {out}: a cache is named *.h5 or *.hdf5 (train knows it by that), e.g. train.h5")
    check_outside_input(out, source_root)
    if not out.exists():
        return
    if not overwrite:
        raise DataError(f"{out}: exists; add --overwrite to prepare it again, or name another file with --out")
    if not _holds_fgaug_cache(out):
        raise DataError(f"{out}: exists and is not an fgaug cache; fgaug replaces only its own files")


def _holds_fgaug_cache(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as cache:
            return bool(cache.attrs.get("format") == CACHE_FORMAT)
    except OSError:  # not HDF5, or unreadable
        return False


def prepare_cache(
    groups: Sequence[Group],
    options: ReadOptions,
    out: str | Path,
    source_root: str | Path,
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """Decode, check and resize every group into one HDF5 file at ``out``.

    A bad group is an error naming its file, or with ``skip_bad`` a skipped entry in the report.
    An existing ``out`` is replaced only with ``overwrite`` and only if it is an fgaug cache
    (:func:`check_cache_target`).
    """
    start = time.perf_counter()
    out, source_root = Path(out), Path(source_root)
    check_cache_target(out, source_root, overwrite)
    height, width = options.size
    channels = 4 if options.boundary else 3
    report = PrepareReport(out, 0)
    keys: list[str] = []
    with atomic_output(out) as partial, h5py.File(partial, "w", libver="earliest", track_order=False) as cache:
        masks, photos = (
            cache.create_dataset(
                name,
                (len(groups), height, width, depth),
                np.uint8,
                chunks=(1, height, width, depth),
                maxshape=(None, height, width, depth),
                track_times=False,
            )
            for name, depth in (("masks", channels), ("photos", 3))
        )
        for index, group in enumerate(groups):
            try:
                condition, photo = load_pair(group, options)
            except DataError as error:
                if not skip_bad:
                    raise
                report.skipped.append(str(error))
                continue
            masks[len(keys)] = condition
            photos[len(keys)] = photo
            keys.append(group.key)
            if progress:
                progress(index + 1, len(groups))
        if not keys:
            raise DataError(f"{source_root}: no usable group to prepare ({len(report.skipped)} skipped)")
        masks.resize(len(keys), axis=0)
        photos.resize(len(keys), axis=0)
        cache.create_dataset("keys", data=np.array(keys, dtype=h5py.string_dtype()), track_times=False)
        by_key = {group.key: group for group in groups}
        for name, pick in (("photo_paths", lambda g: g.photo), ("mask_paths", lambda g: g.mask)):
            paths = [_relative(pick(by_key[key]), source_root) for key in keys]
            cache.create_dataset(name, data=np.array(paths, dtype=h5py.string_dtype()), track_times=False)
        cache.attrs.update(
            {
                "format": CACHE_FORMAT,
                "size": np.array(options.size, dtype=np.int64),
                "boundary": bool(options.boundary),
                "label_table": LABEL_TABLE_VERSION,
                "source_digest": source_digest([g for g in groups if g.key in set(keys)], source_root),
                "source_root": source_root.name,
                "fgaug_version": fgaug.__version__,
            }
        )
    report.written = len(keys)
    report.seconds = time.perf_counter() - start
    return report


@dataclass(frozen=True)
class CacheInfo:
    path: Path
    count: int
    size: tuple[int, int]
    boundary: bool
    source_digest: str


def inspect_cache(
    path: str | Path,
    size: tuple[int, int] | None = None,
    boundary: bool | None = None,
    groups: Sequence[Group] | None = None,
    source_root: str | Path | None = None,
) -> CacheInfo:
    """Check that ``path`` is an fgaug cache (of ``size``/``boundary`` when given, and not stale
    against ``groups`` when given); every mismatch is a one-line :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise not_a_file(path)
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file")
    try:
        cache = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({first_line(error)})") from error
    with cache:
        attrs = dict(cache.attrs)
        if attrs.get("format") != CACHE_FORMAT:
            raise DataError(f"{path}: not an fgaug cache (format {attrs.get('format')!r}, expected {CACHE_FORMAT!r})")
        if attrs.get("label_table") != LABEL_TABLE_VERSION:
            raise DataError(
                f"{path}: prepared with label table {attrs.get('label_table')!r}, need {LABEL_TABLE_VERSION!r}"
            )
        info = CacheInfo(
            path=path,
            count=int(cache["keys"].shape[0]),
            size=(int(attrs["size"][0]), int(attrs["size"][1])),
            boundary=bool(attrs["boundary"]),
            source_digest=str(attrs["source_digest"]),
        )
    if size is not None and tuple(size) != info.size:
        raise DataError(f"{path}: prepared at {info.size[0]}x{info.size[1]}, but {size[0]}x{size[1]} is needed")
    if boundary is not None and boundary != info.boundary:
        raise DataError(f"{path}: prepared {'with' if info.boundary else 'without'} the boundary channel")
    if groups is not None and source_root is not None and source_digest(groups, source_root) != info.source_digest:
        raise DataError(f"{path}: stale: the source files under {source_root} changed since it was prepared")
    return info


class CachedPairs(Dataset):
    """The pairs of a cache file, with the items of :class:`fgaug.data.cityscapes.CityscapesPairs`.

    The file is opened lazily in each process, so DataLoader workers each read their own handle.
    """

    def __init__(self, path: str | Path, size: tuple[int, int] | None = None) -> None:
        self.info = inspect_cache(path, size=size)
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self.info.count

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, index: int) -> PairItem:
        cache = self._handle()
        key = cache["keys"][index]
        return {
            "mask": to_tensor(cache["masks"][index]),
            "photo": to_tensor(cache["photos"][index]),
            "key": key.decode() if isinstance(key, bytes) else str(key),
        }

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"] = None
        return state
