"""The training set's header check: every wrong file a header shows stops ``train`` before its
first step, with the message the full read would give."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgaug.data.cityscapes import ReadOptions, find_groups, load_pair
from fgaug.data.headers import check_headers
from fgaug.data.io import DataError
from fgaug.training.options import TrainOptions
from fgaug.training.train import train


def first_train_files(tree: Path) -> tuple[Path, Path, Path]:
    """The labelIds mask, photo and instanceIds file of the first training group."""
    group = find_groups(tree, ["train"]).groups[0]
    assert group.photo is not None and group.instance_ids is not None
    return group.mask, group.photo, group.instance_ids


def rgb_mask(mask: Path, photo: Path, instances: Path) -> str:
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(mask)
    return f"{mask}: an id mask must be a single-channel PNG, got mode RGB"


def grey_photo(mask: Path, photo: Path, instances: Path) -> str:
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(photo)
    return f"{photo}: expected an 8-bit RGB photo, got PNG mode L"


def smaller_photo(mask: Path, photo: Path, instances: Path) -> str:
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(photo)
    return f"{photo}: size (32, 64) differs from its mask {mask} (64, 128)"


def text_as_photo(mask: Path, photo: Path, instances: Path) -> str:
    photo.write_text("not an image")
    return f"{photo}: not a readable image"


def missing_photo(mask: Path, photo: Path, instances: Path) -> str:
    photo.unlink()
    return f"{photo}: file not found"


def rgb_instances(mask: Path, photo: Path, instances: Path) -> str:
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(instances)
    return f"{instances}: instanceIds must be a 16-bit single-channel PNG, got mode RGB"


def grey_instances(mask: Path, photo: Path, instances: Path) -> str:
    Image.fromarray(np.full((64, 128), 7, np.uint8)).save(instances)  # valid values, 8-bit
    return f"{instances}: instanceIds must be a 16-bit single-channel PNG, got mode L"


def smaller_instances(mask: Path, photo: Path, instances: Path) -> str:
    Image.fromarray(np.zeros((32, 64), np.uint16)).save(instances)
    return f"{instances}: size (32, 64) differs from its mask {mask} (64, 128)"


BAD_FILES: list[Callable[[Path, Path, Path], str]] = [
    rgb_mask,
    grey_photo,
    smaller_photo,
    text_as_photo,
    missing_photo,
    rgb_instances,
    grey_instances,
    smaller_instances,
]


def test_a_good_tree_passes_whole(toy_tree: Path) -> None:
    groups = find_groups(toy_tree, ["train"]).groups
    checked = check_headers(groups, boundary=True, skip_bad=False)
    assert checked.groups == groups and checked.skipped == []


@pytest.mark.parametrize("spoil", BAD_FILES, ids=lambda spoil: spoil.__name__)
def test_each_wrong_file_gives_the_full_reads_message(toy_tree: Path, spoil: Callable[[Path, Path, Path], str]) -> None:
    groups = find_groups(toy_tree, ["train"]).groups
    expected = spoil(*first_train_files(toy_tree))
    with pytest.raises(DataError) as from_header:
        check_headers(groups, boundary=True, skip_bad=False)
    assert str(from_header.value).startswith(expected)
    with pytest.raises(DataError) as from_pixels:
        load_pair(groups[0], ReadOptions((64, 128), boundary=True))
    assert str(from_pixels.value) == str(from_header.value)


def test_a_png_cut_short_is_found_from_its_end_and_trailing_bytes_are_allowed(toy_tree: Path) -> None:
    """A truncated file (a copy stopped midway) was found only when its pixels were decoded."""
    groups = find_groups(toy_tree, ["train"]).groups
    mask, photo, _ = first_train_files(toy_tree)
    whole = photo.read_bytes()
    photo.write_bytes(whole + b"appended by some tool")
    assert check_headers(groups, boundary=False, skip_bad=False).groups == groups
    photo.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(DataError, match=f"^{photo}: not a readable image \\(cut short"):
        check_headers(groups, boundary=False, skip_bad=False)
    with pytest.raises(DataError, match=f"^{photo}: not a readable image"):
        load_pair(groups[0], ReadOptions((64, 128)))
    assert check_headers(groups, boundary=False, skip_bad=False, photos=False).groups == groups
    mask.write_bytes(mask.read_bytes()[:-12])
    with pytest.raises(DataError, match=f"^{mask}: not a readable image \\(cut short"):
        check_headers(groups, boundary=False, skip_bad=False, photos=False)


def test_label_files_a_run_copies_are_checked_when_asked(toy_tree: Path) -> None:
    """``generate`` copied an instanceIds or colour file of the wrong size and a polygons file cut
    short, and an 8-bit instanceIds file, and exited 0; only a later ``validate`` of its output
    found them (the 8-bit file not even that)."""
    group = find_groups(toy_tree, ["train"]).groups[0]
    files = group.label_files
    assert check_headers([group], boundary=False, skip_bad=False, photos=False, label_files=True).groups == [group]
    whole = files["_gtFine_instanceIds.png"].read_bytes()
    expected = grey_instances(*first_train_files(toy_tree))
    with pytest.raises(DataError, match=f"^{re.escape(expected)}$"):
        check_headers([group], boundary=False, skip_bad=False, photos=False, label_files=True)
    files["_gtFine_instanceIds.png"].write_bytes(whole)
    Image.fromarray(np.zeros((32, 64, 4), np.uint8)).save(files["_gtFine_color.png"])
    with pytest.raises(DataError, match=f"^{files['_gtFine_color.png']}: size \\(32, 64\\) differs from its mask"):
        check_headers([group], boundary=False, skip_bad=False, photos=False, label_files=True)
    assert check_headers([group], boundary=False, skip_bad=False, photos=False).groups == [group]
    files["_gtFine_color.png"].unlink()
    group = find_groups(toy_tree, ["train"]).groups[0]
    assert check_headers([group], boundary=False, skip_bad=False, photos=False, label_files=True).groups == [group]
    polygons = files["_gtFine_polygons.json"]
    whole = polygons.read_bytes()
    polygons.write_text('{"imgHeight": 32, "imgWidth": 64, "objects": []}')
    with pytest.raises(DataError, match=f"^{polygons}: size \\(32, 64\\) differs from its mask"):
        check_headers([group], boundary=False, skip_bad=False, photos=False, label_files=True)
    polygons.write_bytes(whole[:-2])
    with pytest.raises(DataError, match=f"^{polygons}: not a readable polygons file"):
        check_headers([group], boundary=False, skip_bad=False, photos=False, label_files=True)


def test_an_8_bit_instance_file_is_refused_and_values_that_name_no_label_id_too(toy_tree: Path) -> None:
    from fgaug.data.cityscapes import read_instance_ids

    _, _, instances = first_train_files(toy_tree)
    values = read_instance_ids(instances)
    assert (values >= 1000).any()
    Image.fromarray((values % 256).astype(np.uint8)).save(instances)  # wrapped round 256
    with pytest.raises(DataError, match=f"^{instances}: instanceIds must be a 16-bit single-channel PNG, got mode L"):
        read_instance_ids(instances)
    Image.fromarray(np.full(values.shape, 60000, np.uint16)).save(instances)
    with pytest.raises(DataError, match=f"^{instances}: instanceIds values that name no label id: \\[60000\\]"):
        read_instance_ids(instances)


def test_skip_bad_leaves_the_group_out_and_says_why(toy_tree: Path) -> None:
    groups = find_groups(toy_tree, ["train"]).groups
    message = rgb_mask(*first_train_files(toy_tree))
    checked = check_headers(groups, boundary=False, skip_bad=True)
    assert checked.groups == groups[1:] and checked.skipped == [message]


def test_instance_ids_are_not_read_without_the_boundary_channel(toy_tree: Path) -> None:
    groups = find_groups(toy_tree, ["train"]).groups
    rgb_instances(*first_train_files(toy_tree))
    assert check_headers(groups, boundary=False, skip_bad=False).groups == groups


def test_colour_masks_are_checked_as_colour(toy_tree: Path) -> None:
    groups = find_groups(toy_tree, ["train"], mask_format="color").groups
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(groups[0].mask)
    with pytest.raises(DataError, match=r"a colour mask must be an RGB\(A\) PNG, got mode L"):
        check_headers(groups, boundary=False, skip_bad=False)


def training(tree: Path, run: Path, **changes: object) -> TrainOptions:
    settings = dict(data=str(tree), run_dir=str(run), preset="test", steps=1, batch_size=1, workers=0, device="cpu")
    return TrainOptions(**{**settings, **changes})  # type: ignore[arg-type]


def test_train_stops_before_its_first_step_on_a_file_no_batch_of_a_short_run_draws(
    toy_tree: Path, tmp_path: Path
) -> None:
    """A one-step run never drew the bad group and exited 0; a long run stopped when it did."""
    groups = find_groups(toy_tree, ["train"]).groups
    last = groups[-1]
    assert last.photo is not None
    message = grey_photo(last.mask, last.photo, tmp_path)
    with pytest.raises(DataError, match=f"^{message}$"):
        train(training(toy_tree, tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    result = train(training(toy_tree, tmp_path / "skipping", skip_bad=True, validate_every=1))
    assert result.skipped_groups == [message] and result.to_dict()["skipped_groups"] == [message]
    shutil.rmtree(tmp_path / "skipping")


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_instance_values_are_checked_by_the_rule_whatever_the_file_holds(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up table that replaced a per-value loop agrees with the rule: a label id itself
    below 1000, else ``id * 1000 + k`` with a known id; for the 16-bit PNGs Pillow opens as
    ``I;16`` and as ``I`` (older Pillows, which give int32 values)."""
    from fgaug.data import cityscapes
    from fgaug.data.labels import VALID_LABEL_IDS

    def names_an_id(value: int) -> bool:
        return (value if value < 1000 else value // 1000) in VALID_LABEL_IDS

    path = tmp_path / "x_gtFine_instanceIds.png"
    for value in (0, 7, 33, 34, 999, 1000, 1999, 26001, 33999, 34000, 65535):
        ids = np.full((4, 6), 7, dtype=np.int32)
        ids[1, 2] = value
        image = Image.fromarray(ids.astype(np.uint16)) if mode == "I;16" else Image.fromarray(ids, mode="I")
        monkeypatch.setattr(cityscapes, "open_image", lambda _path, image=image: image)
        assert cityscapes.open_image(path).mode == mode
        if names_an_id(value):
            assert cityscapes.read_instance_ids(path).tolist() == ids.tolist()
        else:
            with pytest.raises(DataError, match=rf"values that name no label id: \[{value}\]"):
                cityscapes.check_instance_ids(path)


def test_instance_values_are_checked_ahead_and_each_error_raised_at_its_own_mask(toy_tree: Path) -> None:
    from fgaug.data.headers import InstanceValueChecks

    groups = find_groups(toy_tree, ["train"]).groups[:3]
    bad = groups[1].instance_ids
    assert bad is not None
    Image.fromarray(np.full((8, 8), 60000, dtype=np.uint16)).save(bad)
    with InstanceValueChecks(groups) as checks:
        checks.wait(groups[0])
        with pytest.raises(DataError, match=f"{re.escape(str(bad))}: instanceIds values that name no label id"):
            checks.wait(groups[1])
        checks.wait(groups[2])
