"""HDF5 cache: same input same bytes, same items as the PNGs, stale and foreign caches rejected."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest
import torch
from torch.utils.data import DataLoader

from fgaug import api
from fgaug.data.cache import CachedPairs, inspect_cache, prepare_cache
from fgaug.data.cityscapes import ReadOptions, find_groups
from fgaug.data.io import DataError
from fgaug.data.pairs import CityscapesPairs
from fgaug.usage import UsageError

OPTIONS = ReadOptions((32, 64))


def test_prepare_twice_gives_identical_bytes(toy_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(toy_tree).groups
    first = prepare_cache(groups, OPTIONS, tmp_path / "a.h5", toy_tree)
    prepare_cache(groups, OPTIONS, tmp_path / "b.h5", toy_tree)
    assert first.written == 6 and not first.skipped
    with h5py.File(tmp_path / "a.h5") as cache:
        photos = [p.decode() for p in cache["photo_paths"][:]]
    assert photos[0] == groups[0].photo.relative_to(toy_tree).as_posix()
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert not list(tmp_path.glob(".*part"))


def test_an_existing_cache_is_replaced_only_when_asked_and_only_if_fgaug_wrote_it(
    toy_tree: Path, tmp_path: Path
) -> None:
    """``prepare`` wrote over an existing ``--out`` without a word (the default is ``train.h5``)."""
    groups = find_groups(toy_tree).groups
    cache = tmp_path / "train.h5"
    prepare_cache(groups[:2], OPTIONS, cache, toy_tree)
    before = cache.read_bytes()
    with pytest.raises(DataError, match=f"^{cache}: exists; add --overwrite to prepare it again"):
        prepare_cache(groups, OPTIONS, cache, toy_tree)
    assert cache.read_bytes() == before
    assert prepare_cache(groups, OPTIONS, cache, toy_tree, overwrite=True).written == 6
    assert inspect_cache(cache).count == 6
    notes = tmp_path / "notes.h5"
    notes.write_text("not a cache")
    with pytest.raises(DataError, match=f"^{notes}: exists and is not an fgaug cache"):
        prepare_cache(groups, OPTIONS, notes, toy_tree, overwrite=True)
    assert notes.read_text() == "not a cache" and not list(tmp_path.glob(".*part"))
    with pytest.raises(DataError, match=f"^{tmp_path / 'nope'}: no such file or folder$"):  # not "inside the input"
        api.prepare(tmp_path / "nope", tmp_path / "new.h5", (32, 64))
    for link, target in (("dangling.h5", tmp_path / "nowhere.h5"), ("linked.h5", cache)):
        (tmp_path / link).symlink_to(target)
        with pytest.raises(DataError, match=f"^{tmp_path / link}: is a symbolic link; name the file it points to"):
            prepare_cache(groups, OPTIONS, tmp_path / link, toy_tree, overwrite=True)
        assert (tmp_path / link).is_symlink()
    named_otherwise = r"cache\.bin: a cache is named \*\.h5 or \*\.hdf5"  # train took it for a plain file
    with pytest.raises(UsageError, match=named_otherwise):
        prepare_cache(groups, OPTIONS, tmp_path / "cache.bin", toy_tree)


def test_cached_items_equal_png_items_through_worker_processes(toy_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(toy_tree).groups
    prepare_cache(groups, OPTIONS, tmp_path / "c.h5", toy_tree)
    direct = {item["key"]: item for item in CityscapesPairs(groups, OPTIONS)}
    loader = DataLoader(CachedPairs(tmp_path / "c.h5"), batch_size=2, num_workers=2)
    seen = 0
    for batch in loader:
        for index, key in enumerate(batch["key"]):
            torch.testing.assert_close(batch["photo"][index], direct[key]["photo"], atol=0, rtol=0)
            torch.testing.assert_close(batch["mask"][index], direct[key]["mask"], atol=0, rtol=0)
            seen += 1
    assert seen == len(direct)


def test_bad_group_is_an_error_or_a_counted_skip(toy_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(toy_tree).groups
    groups[1].photo.write_bytes(b"not a png")
    with pytest.raises(DataError, match=groups[1].photo.name):
        prepare_cache(groups, OPTIONS, tmp_path / "d.h5", toy_tree)
    assert not (tmp_path / "d.h5").exists()
    report = prepare_cache(groups, OPTIONS, tmp_path / "d.h5", toy_tree, skip_bad=True)
    assert report.written == 5 and len(report.skipped) == 1
    assert groups[1].photo.name in report.to_dict()["skipped_groups"][0], "the name train --json gives them"
    assert len(CachedPairs(tmp_path / "d.h5")) == 5


def test_a_folder_as_the_cache_is_named_not_a_temporary_file(toy_tree: Path, tmp_path: Path) -> None:
    """``prepare -o FOLDER`` said "/tmp/.w.pcsy1bm0.part: Is a directory"."""
    with pytest.raises(DataError, match=f"^{tmp_path}: is a folder; name the HDF5 file to write"):
        prepare_cache(find_groups(toy_tree).groups, OPTIONS, tmp_path, toy_tree)
    assert list(tmp_path.parent.glob(f".{tmp_path.name}*.part")) == []


def test_foreign_wrong_size_and_stale_caches_are_rejected(toy_tree: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = [1, 2, 3]
    with pytest.raises(DataError, match="not an fgaug cache"):
        inspect_cache(foreign)
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DataError, match="not an HDF5 file"):
        inspect_cache(tmp_path / "text.h5")

    groups = find_groups(toy_tree).groups
    cache = tmp_path / "e.h5"
    prepare_cache(groups, OPTIONS, cache, toy_tree)
    with pytest.raises(DataError, match="prepared at 32x64, but 64x128 is needed"):
        CachedPairs(cache, size=(64, 128))
    inspect_cache(cache, groups=groups, source_root=toy_tree)
    stat = groups[0].photo.stat()
    os.utime(groups[0].photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="stale"):
        inspect_cache(cache, groups=groups, source_root=toy_tree)
