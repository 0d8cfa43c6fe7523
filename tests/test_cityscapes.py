"""Finding, reading and resizing Cityscapes groups; clear errors for bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fgaug.data.cityscapes import (
    PHOTO_SUFFIX,
    ReadOptions,
    file_group,
    find_groups,
    instance_boundaries,
    load_pair,
    read_label_ids,
    resize_labels,
    resize_photo,
)
from fgaug.data.io import DataError
from fgaug.data.labels import VALID_LABEL_IDS
from fgaug.data.pairs import CityscapesPairs
from fgaug.usage import UsageError


def test_finds_every_group_with_its_photo_and_label_files(toy_tree: Path) -> None:
    discovery = find_groups(toy_tree)
    assert len(discovery.groups) == 6 and not discovery.skipped
    group = next(g for g in discovery.groups if g.key == "val/flowdorf/flowdorf_000001_000019")
    assert group.photo == toy_tree / "leftImg8bit/val/flowdorf/flowdorf_000001_000019_leftImg8bit.png"
    assert set(group.label_files) == {
        "_gtFine_labelIds.png",
        "_gtFine_instanceIds.png",
        "_gtFine_color.png",
        "_gtFine_polygons.json",
    }
    assert group.mask_format == "labelIds"
    assert len(find_groups(toy_tree, splits=["val"]).groups) == 2


def test_a_split_or_city_folder_gives_the_same_keys_as_the_root(toy_tree: Path) -> None:
    from_root = {g.key for g in find_groups(toy_tree, splits=["train"]).groups}
    assert {g.key for g in find_groups(toy_tree / "gtFine" / "train").groups} == from_root
    city = {g.key for g in find_groups(toy_tree / "gtFine" / "train" / "toyville").groups}
    assert city and city < from_root


def test_the_gtfine_folder_is_its_tree_and_split_is_honoured_or_refused(toy_tree: Path, tmp_path: Path) -> None:
    """``layouts gtFine --split train`` read every split's masks and wrote val's into train;
    ``gtFine/train/toyville --split val`` wrote train's."""
    train = find_groups(toy_tree, splits=["train"]).groups
    assert find_groups(toy_tree / "gtFine", splits=["train"]).groups == train
    assert {g.split for g in find_groups(toy_tree / "gtFine").groups} == {"train", "val"}
    assert [g.split for g in find_groups(toy_tree / "gtFine" / "train", splits=["train"]).groups] == ["train"] * 4
    with pytest.raises(DataError, match=r"toyville: a folder of split 'train', not of --split val$"):
        find_groups(toy_tree / "gtFine" / "train" / "toyville", splits=["val"])
    link = tmp_path / "labels"
    link.symlink_to(toy_tree / "gtFine")
    for reached in (link, toy_tree / "gtFine" / "train" / "..", Path(os.path.relpath(toy_tree / "gtFine"))):
        assert [g.key for g in find_groups(reached, splits=["train"]).groups] == [g.key for g in train], reached
    named = tmp_path / "project" / "gtFine"  # only named so: its masks lie straight inside
    named.mkdir(parents=True)
    (named / train[0].mask.name).write_bytes(train[0].mask.read_bytes())
    assert [g.split for g in find_groups(named, require_photos=False).groups] == [None]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / train[0].mask.name).write_bytes(train[0].mask.read_bytes())
    assert len(find_groups(flat, require_photos=False).groups) == 1
    with pytest.raises(DataError, match="not in a Cityscapes tree, so --split train chooses nothing"):
        find_groups(flat, splits=["train"], require_photos=False)


def test_a_single_file_is_a_mask_but_no_pair(toy_tree: Path) -> None:
    """``train --val MASK`` passed the checks, then failed at the first validation: "no photo"."""
    mask = find_groups(toy_tree, ["val"]).groups[0].mask
    assert [g.mask for g in find_groups(mask, require_photos=False).groups] == [mask]
    with pytest.raises(DataError, match=f"^{mask}: a single file, and pairs need a Cityscapes tree"):
        find_groups(mask)


def test_missing_photo_is_an_error_or_a_counted_skip(toy_tree: Path) -> None:
    photo = toy_tree / "leftImg8bit/train/toyville/toyville_000001_000019_leftImg8bit.png"
    photo.unlink()
    with pytest.raises(DataError, match=r"toyville_000001_000019_gtFine_labelIds\.png: no photo"):
        find_groups(toy_tree)
    discovery = find_groups(toy_tree, skip_bad=True)
    assert len(discovery.groups) == 5 and len(discovery.skipped) == 1
    assert len(find_groups(toy_tree, require_photos=False).groups) == 6


def test_unknown_split_and_missing_root(toy_tree: Path) -> None:
    with pytest.raises(DataError, match="no split 'test'"):
        find_groups(toy_tree, splits=["test"])
    with pytest.raises(DataError, match="no such file or folder"):
        find_groups(toy_tree / "nope")


def test_corrupt_png_names_the_file(toy_tree: Path) -> None:
    group = find_groups(toy_tree).groups[0]
    group.photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataError, match=rf"{group.photo.name}: not a readable image"):
        load_pair(group, ReadOptions((64, 128)))


def test_unknown_label_ids_are_named(tmp_path: Path) -> None:
    path = tmp_path / "a_000000_000019_gtFine_labelIds.png"
    Image.fromarray(np.array([[7, 40], [99, 8]], np.uint8)).save(path)
    with pytest.raises(DataError, match=r"unknown label ids \[40, 99\]"):
        read_label_ids(path)


def test_grey_photo_is_rejected(toy_tree: Path) -> None:
    group = find_groups(toy_tree).groups[0]
    Image.open(group.photo).convert("L").save(group.photo)
    with pytest.raises(DataError, match="expected an 8-bit RGB photo, got PNG mode L"):
        load_pair(group, ReadOptions((64, 128)))


def test_mask_format_detection_in_a_flat_folder(tmp_path: Path) -> None:
    ids = np.array([[7, 26, 0], [23, 11, 0]], np.uint8)
    Image.fromarray(ids).save(tmp_path / "ids.png")
    Image.fromarray(np.array([[0, 13, 255], [10, 2, 255]], np.uint8)).save(tmp_path / "train.png")
    color = np.array([[[128, 64, 128], [0, 0, 142], [0, 0, 0]], [[70, 130, 180], [70, 70, 70], [0, 0, 0]]], np.uint8)
    Image.fromarray(color).save(tmp_path / "colour.png")
    for name in ("ids.png", "train.png", "colour.png"):
        np.testing.assert_array_equal(read_label_ids(tmp_path / name), ids)
    Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8)).save(tmp_path / "ambiguous.png")
    with pytest.raises(DataError, match="fit both labelIds and labelTrainIds; name the format"):
        read_label_ids(tmp_path / "ambiguous.png")
    np.testing.assert_array_equal(read_label_ids(tmp_path / "ambiguous.png", "labelTrainIds"), [[7, 8], [11, 12]])
    groups = find_groups(tmp_path, require_photos=False).groups
    assert sorted(g.key for g in groups) == ["ambiguous", "colour", "ids", "train"]


def test_an_unknown_mask_format_is_refused_with_the_choices(toy_tree: Path) -> None:
    """Found groups and a named mask file take the format's text as an option gives it; a wrong
    spelling is named at once (in a tree it used to read as a missing ``labelids`` file)."""
    choices = r"unknown mask format 'labelids'; choose from auto, labelIds, labelTrainIds, color"
    mask = find_groups(toy_tree).groups[0].mask
    with pytest.raises(UsageError, match=choices):
        find_groups(toy_tree, mask_format="labelids")
    with pytest.raises(UsageError, match=choices):
        file_group(mask, "labelids")
    assert file_group(mask, "labelIds").mask_format == "labelIds"


def test_smoothly_resized_colour_mask_is_refused_or_snapped(tmp_path: Path) -> None:
    color = np.zeros((8, 8, 3), np.uint8)
    color[:, :4] = (128, 64, 128)
    color[:, 4:] = (70, 130, 180)
    color[:, 4] = (99, 97, 154)  # a blend at the edge
    path = tmp_path / "mask_color.png"
    Image.fromarray(color).save(path)
    with pytest.raises(DataError, match=r"12\.5% of pixels are not Cityscapes palette colours"):
        read_label_ids(path)
    snapped = read_label_ids(path, snap_colors=True)
    assert set(np.unique(snapped)) == {7, 23}


def test_label_resize_is_nearest_and_photo_resize_is_antialiased() -> None:
    labels = np.random.default_rng(0).choice(np.array([7, 11, 26], np.uint8), size=(64, 128))
    small = resize_labels(labels, (16, 32))
    assert set(np.unique(small)) <= {7, 11, 26}
    checker = (np.indices((64, 128)).sum(0) % 2 * 255).astype(np.uint8)
    photo = np.repeat(checker[..., None], 3, axis=2)
    shrunk = resize_photo(photo, (16, 32))
    assert np.abs(shrunk.astype(int) - 127).max() <= 1  # averaged, not aliased to 0/255


def test_instance_boundaries_mark_both_sides_of_an_edge() -> None:
    instances = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]])
    expected = np.array([[0, 1, 1], [1, 1, 1], [1, 1, 1]], np.uint8)
    np.testing.assert_array_equal(instance_boundaries(instances), expected)


def test_dataset_items_are_tensors_at_the_requested_size(toy_tree: Path) -> None:
    groups = find_groups(toy_tree).groups
    item = CityscapesPairs(groups, ReadOptions((32, 64), boundary=True))[0]
    assert item["mask"].shape == (4, 32, 64) and item["photo"].shape == (3, 32, 64)
    assert item["photo"].min() >= 0 and item["photo"].max() <= 1
    assert set(item["mask"][3].unique().tolist()) <= {0.0, 1.0}
    assert item["key"] == groups[0].key


@given(st.lists(st.sampled_from(sorted(VALID_LABEL_IDS)), min_size=4, max_size=64))
@settings(max_examples=50, deadline=None)
def test_colour_rendering_round_trips_every_evaluated_id(ids: list[int]) -> None:
    """labelIds -> colour -> labelIds keeps every id except those sharing a colour with another."""
    from fgaug.data.labels import color_to_ids, ids_to_color

    array = np.array(ids, np.uint8).reshape(1, -1)
    back, off_palette = color_to_ids(ids_to_color(array))
    assert off_palette == 0.0
    shared = {1: 0, 2: 0, 3: 0, 4: 0, 18: 17}
    np.testing.assert_array_equal(back, np.vectorize(lambda v: shared.get(int(v), int(v)))(array))


def test_two_frames_of_one_name_in_two_folders_are_refused_not_merged(tmp_path: Path) -> None:
    """Masks ``x/a_000000_000019_gtFine_labelIds.png`` and ``y/...`` were taken for one frame: one
    was dropped, and its sample got label files of both. Loose masks of other names keep their
    folders in the outputs' names, so those may repeat."""
    ids = np.full((4, 8), 7, np.uint8)
    for folder in ("x", "y"):
        (tmp_path / "masks" / folder).mkdir(parents=True)
        Image.fromarray(ids).save(tmp_path / "masks" / folder / "a_000000_000019_gtFine_labelIds.png")
    with pytest.raises(DataError, match=r"another frame of the same name a_000000_000019 is in .*x; fgaug names"):
        find_groups(tmp_path / "masks", require_photos=False)
    for folder in ("x", "y"):
        (tmp_path / "loose" / folder).mkdir(parents=True)
        Image.fromarray(ids).save(tmp_path / "loose" / folder / "m.png")
        Image.fromarray(ids).save(tmp_path / "loose" / folder / "b_000000_000019.png")
    with pytest.raises(DataError, match="another frame of the same name b_000000_000019"):
        find_groups(tmp_path / "loose", require_photos=False)
    (tmp_path / "loose" / "y" / "b_000000_000019.png").unlink()
    keys = sorted(group.key for group in find_groups(tmp_path / "loose", require_photos=False).groups)
    assert keys == ["x/b_000000_000019", "x/m", "y/m"]


def test_masks_that_are_links_are_found_from_a_split_or_city_folder(toy_tree: Path, tmp_path: Path) -> None:
    """A tree of linked files (``cp -rs``) gave 0 masks from its split folder, with exit 0, and one
    linked mask in a real tree was dropped from 12 without a word."""
    linked = tmp_path / "linked"
    for kind in ("gtFine", "leftImg8bit"):
        for path in (toy_tree / kind).rglob("*.*"):
            target = linked / path.relative_to(toy_tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    from_root = find_groups(linked, ["train"], require_photos=False).groups
    from_split = find_groups(linked / "gtFine" / "train", require_photos=False).groups
    assert [group.key for group in from_split] == [group.key for group in from_root] and from_root
    (linked / "gtFine" / "val").mkdir(exist_ok=True)
    empty_city = linked / "gtFine" / "val" / "nowhere"
    empty_city.mkdir()
    instances = next((toy_tree / "gtFine" / "train").rglob("*_instanceIds.png"))
    (empty_city / instances.name).symlink_to(instances)  # a label file, but no mask
    with pytest.raises(DataError, match="no Cityscapes label files found in it"):
        find_groups(empty_city, require_photos=False)


def test_a_folder_of_a_tree_is_refused_only_for_a_clash_of_its_own_frames(toy_tree: Path, tmp_path: Path) -> None:
    """A clash between two other city folders refused a city folder that held none, and its advice,
    to give the folders one at a time, was what the user had done."""
    import shutil

    tree = tmp_path / "cs"
    shutil.copytree(toy_tree, tree)
    first = sorted((tree / "gtFine" / "train").rglob("*_gtFine_labelIds.png"))[0]
    city = first.parent.name
    stem = first.name.removesuffix("_gtFine_labelIds.png")
    for kind, files in (("gtFine", f"{stem}_gtFine_*"), ("leftImg8bit", f"{stem}_leftImg8bit.png")):
        (tree / kind / "train" / "copycity").mkdir()
        for path in (tree / kind / "train" / city).glob(files):
            shutil.copy(path, tree / kind / "train" / "copycity" / path.name)
    others = [p for p in (tree / "gtFine" / "train").iterdir() if p.name not in (city, "copycity")]
    assert find_groups(others[0], require_photos=True).groups, "a city folder without the clash is read"
    for folder in (tree, tree / "gtFine" / "train", tree / "gtFine" / "train" / city):
        with pytest.raises(DataError, match=f"another frame of the same name {stem}"):
            find_groups(folder, require_photos=False)


def test_a_plain_named_png_among_cityscapes_label_files_is_named_not_left_out(tmp_path: Path) -> None:
    """A folder of Cityscapes-named masks is read by name: a user's own ``layout.png`` beside them
    was left out without a word (3 masks used, exit 0)."""
    masks = tmp_path / "masks"
    masks.mkdir()
    for index in range(2):
        Image.fromarray(np.full((8, 16), 7, np.uint8)).save(masks / f"a_00000{index}_000019_gtFine_labelIds.png")
    Image.fromarray(np.full((8, 16), 26, np.uint8)).save(masks / "layout.png")
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(masks / f"a_000000_000019{PHOTO_SUFFIX}")  # a photo: fine
    with pytest.raises(DataError, match=f"^{masks / 'layout.png'}: a PNG named neither \\*_gtFine_<kind>.png"):
        find_groups(masks, require_photos=False)
    found = find_groups(masks, require_photos=False, skip_bad=True)
    assert len(found.groups) == 2 and len(found.skipped) == 1 and found.skipped[0].startswith(f"{masks / 'layout.png'}")


def test_a_plain_named_png_in_a_tree_is_named_however_the_tree_is_given(toy_tree: Path) -> None:
    """Found from a split or city folder, the same file was left out from the tree's root."""
    city = next((toy_tree / "gtFine" / "train").iterdir())
    stray = city / "layout.png"
    Image.fromarray(np.full((8, 16), 26, np.uint8)).save(stray)
    for folder in (toy_tree, toy_tree / "gtFine", toy_tree / "gtFine" / "train", city):
        with pytest.raises(DataError, match=f"^{stray}: a PNG named neither"):
            find_groups(folder, require_photos=False)
    assert len(find_groups(toy_tree, ["val"]).groups) > 0  # another split's folder is not read
    everything = find_groups(toy_tree, skip_bad=True)
    assert everything.skipped == [s for s in everything.skipped if s.startswith(f"{stray}:")] and everything.skipped
