"""The augmented-dataset writer: labels intact, loadable names, atomic and resumable."""

from __future__ import annotations

import importlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from compat import torchvision_cityscapes
from PIL import Image

from fgaug.data.cityscapes import find_groups
from fgaug.data.io import DataError, encode_png
from fgaug.data.writer import DatasetWriter, WriterOptions, merge_manifests, read_manifest, sample_names


def fake_photo(seed: int, size: tuple[int, int] = (32, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def write_all(writer: DatasetWriter, groups: list, samples: int = 2) -> None:
    for group in groups:
        for index in range(samples):
            if not writer.is_finished(group, index):
                writer.write(group, index, fake_photo(index), {"seed": index, "temperature": 0.8})


@pytest.mark.parametrize(
    ("shape", "dtype", "mode"),
    [((5, 7), np.uint8, "L"), ((5, 7), np.uint16, "I;16"), ((5, 7, 3), np.uint8, "RGB"), ((5, 7, 4), np.uint8, "RGBA")],
)
def test_encoded_pngs_read_back_bitwise_in_their_modes(shape: tuple, dtype: type, mode: str) -> None:
    rows = (2 * shape[0], *shape[1:])
    pixels = np.random.default_rng(3).integers(0, np.iinfo(dtype).max, rows, endpoint=True).astype(dtype)
    view = pixels[::2, ::-1]  # not contiguous: every other row, columns reversed
    with Image.open(io.BytesIO(encode_png(view))) as image:
        assert image.mode == mode
        assert np.array_equal(np.asarray(image), view)


def test_opencv_without_the_filter_setting_still_encodes() -> None:
    """OpenCV before 4.12, which pyproject admits, has no IMWRITE_PNG_FILTER: importing failed."""
    script = (
        "import io, cv2, numpy as np; from PIL import Image; del cv2.IMWRITE_PNG_FILTER; "
        "from fgaug.data.io import PNG_ENCODING, encode_png; "
        "pixels = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8); "
        "assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(pixels)))), pixels); "
        "print(len(PNG_ENCODING))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["4"], done.stderr


def test_an_image_longer_than_libpng_writes_is_encoded_all_the_same() -> None:
    """libpng refuses a side over a million pixels (Pillow, which fgaug used before, did not)."""
    strip = np.arange(1_000_003, dtype=np.uint32).astype(np.uint8)[None, :]
    with Image.open(io.BytesIO(encode_png(strip))) as image:
        assert np.array_equal(np.asarray(image), strip)


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((4, 4, 3), np.uint16),
        np.zeros((0, 4), np.uint8),
    ],
)
def test_arrays_png_cannot_hold_are_refused_by_name(pixels: np.ndarray) -> None:
    with pytest.raises(ValueError, match=f"cannot write a {pixels.dtype} array of shape"):
        encode_png(pixels)


def test_default_output_keeps_every_label_file_byte_for_byte(toy_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(toy_tree).groups
    out = tmp_path / "augmented"
    write_all(DatasetWriter(out, toy_tree), groups)
    for group in groups:
        for index in range(2):
            split, city, stem = sample_names(group, index, WriterOptions())
            photo = out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            assert Image.open(photo).size == (128, 64)  # the mask's native size, not the model's
            for suffix, source in group.label_files.items():
                assert (out / "gtFine" / split / city / f"{stem}{suffix}").read_bytes() == source.read_bytes()
            train_ids = out / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png"
            assert train_ids.is_file()
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 12
    record = json.loads(lines[0])
    assert record["key"] == groups[0].key and record["temperature"] == 0.8
    assert record["source"]["mask"].startswith("gtFine/") and record["outputs"]["photo"].startswith("leftImg8bit/")


def test_names_parse_in_cityscapesscripts_and_torchvision(toy_tree: Path, tmp_path: Path) -> None:
    helpers = importlib.import_module("cityscapesscripts.helpers.csHelpers")
    out = tmp_path / "augmented"
    write_all(DatasetWriter(out, toy_tree), find_groups(toy_tree).groups)
    originals = {p.name for p in toy_tree.rglob("*.png")}
    for path in out.rglob("*.png"):
        info = helpers.getCsFileInfo(str(path))
        assert "-fgaug-s" in info.city and path.name not in originals
    dataset = torchvision_cityscapes()(
        str(out), split="train", mode="fine", target_type=["semantic", "instance", "color", "polygon"]
    )
    assert len(dataset) == 8
    image, (semantic, _, _, polygon) = dataset[0]
    assert image.size == semantic.size == (128, 64) and polygon["objects"]


def test_rerun_skips_finished_samples_and_drops_a_torn_manifest_line(toy_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(toy_tree).groups
    out = tmp_path / "augmented"
    writer = DatasetWriter(out, toy_tree)
    writer.write(groups[0], 0, fake_photo(0), {"seed": 0})
    with open(out / "manifest.jsonl", "a") as manifest:
        manifest.write('{"key": "train/half')  # an interrupted append
    resumed = DatasetWriter(out, toy_tree)
    assert resumed.is_finished(groups[0], 0) and not resumed.is_finished(groups[0], 1)
    write_all(resumed, groups[:1])
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(r["key"], r["sample"]) for r in lines] == [(groups[0].key, 0), (groups[0].key, 1)]
    assert not list(out.rglob("*.part"))


def test_rerun_writes_again_the_samples_whose_files_are_gone_or_cut_short(toy_tree: Path, tmp_path: Path) -> None:
    """A manifest line is trusted only while its sample's files are in place and its photo whole:
    a deleted photo, a deleted sample city folder and a photo cut short are written again, once each."""
    groups = find_groups(toy_tree).groups  # two masks in each of three cities
    out = tmp_path / "augmented"
    write_all(DatasetWriter(out, toy_tree), groups)

    def photo(group_index: int, index: int) -> Path:
        split, city, stem = sample_names(groups[group_index], index, WriterOptions())
        return out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"

    photo(0, 1).unlink()
    for folder in (out / "leftImg8bit", out / "gtFine"):
        shutil.rmtree(folder / "train" / photo(2, 0).parent.name)  # toyville's sample 0: groups 2 and 3
    photo(4, 1).write_bytes(photo(4, 1).read_bytes()[:200])
    damaged = {(groups[0].key, 1), (groups[2].key, 0), (groups[3].key, 0), (groups[4].key, 1)}

    resumed = DatasetWriter(out, toy_tree)
    assert resumed.damaged == damaged
    assert {(g.key, i) for g in groups for i in range(2) if not resumed.is_finished(g, i)} == damaged
    assert len(read_manifest(out / "manifest.jsonl")) == 12 - 4, "the damaged samples' lines are dropped"
    write_all(resumed, groups)
    samples = [(r["key"], r["sample"]) for r in read_manifest(out / "manifest.jsonl")]
    assert sorted(samples) == sorted((g.key, i) for g in groups for i in range(2)), "one line per sample"
    assert DatasetWriter(out, toy_tree).damaged == set()


def test_merging_drops_another_process_line_whose_sample_is_gone(toy_tree: Path, tmp_path: Path) -> None:
    """A process's writer rewrites only its own manifest part: a stale line of the merged manifest
    of an earlier run goes when the parts are folded, as the rerun's check read it."""
    groups = find_groups(toy_tree).groups[:2]
    out = tmp_path / "augmented"
    write_all(DatasetWriter(out, toy_tree), groups)
    split, city, stem = sample_names(groups[1], 0, WriterOptions())
    (out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png").unlink()
    part = DatasetWriter(out, toy_tree, part="rank0")  # a torchrun rerun whose share is groups[0] only
    assert part.damaged == {(groups[1].key, 0)} and len(read_manifest(out / "manifest.jsonl")) == 4
    assert merge_manifests(out, [g.key for g in groups]) == 3
    assert (groups[1].key, 0) not in {(r["key"], r["sample"]) for r in read_manifest(out / "manifest.jsonl")}


def test_output_inside_the_input_is_refused(toy_tree: Path) -> None:
    with pytest.raises(DataError, match="must not be inside the input"):
        DatasetWriter(toy_tree / "augmented", toy_tree)
    for masks in (toy_tree / "gtFine" / "train", toy_tree / "gtFine" / "train" / "toyville", toy_tree / "gtFine"):
        with pytest.raises(DataError, match=f"must not be inside the Cityscapes tree {toy_tree} of the input"):
            DatasetWriter(toy_tree / "aug", masks)
    DatasetWriter(toy_tree.parent / "augmented", toy_tree / "gtFine" / "train")


def test_model_resolution_option_resizes_labels_and_scales_polygons(toy_tree: Path, tmp_path: Path) -> None:
    group = find_groups(toy_tree).groups[0]
    out = tmp_path / "small"
    outputs = DatasetWriter(out, toy_tree, WriterOptions(at_model_resolution=True)).write(group, 0, fake_photo(0), {})
    assert Image.open(out / outputs["photo"]).size == (64, 32)
    labels = np.asarray(Image.open(out / outputs["labelIds.png"]))
    source = np.asarray(Image.open(group.label_files["_gtFine_labelIds.png"]))
    assert labels.shape == (32, 64) and set(np.unique(labels)) <= set(np.unique(source))
    polygons = json.loads((out / outputs["polygons.json"]).read_text())
    original = json.loads(group.label_files["_gtFine_polygons.json"].read_text())
    assert (polygons["imgHeight"], polygons["imgWidth"]) == (32, 64)
    x, y = original["objects"][-1]["polygon"][0]
    assert polygons["objects"][-1]["polygon"][0] == [round(x / 2, 2), round(y / 2, 2)]


def test_a_folder_of_masks_becomes_a_cityscapes_tree(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    ids = np.full((32, 64), 7, np.uint8)
    ids[:10] = 23
    Image.fromarray(ids).save(masks / "scene_a.png")
    Image.fromarray(ids).save(masks / "my scene.png")
    groups = find_groups(masks, require_photos=False, mask_format="labelIds").groups
    out = tmp_path / "out"
    writer = DatasetWriter(out, masks)
    names = {writer.write(group, 0, fake_photo(1), {})["photo"] for group in groups}
    assert names == {
        "leftImg8bit/train/masks-fgaug-s000/masks-fgaug-s000_my-scene_000000_leftImg8bit.png",
        "leftImg8bit/train/masks-fgaug-s000/masks-fgaug-s000_scene-a_000000_leftImg8bit.png",
    }
    for path in (out / "gtFine").rglob("*_labelIds.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), ids)


def test_validate_finds_a_damaged_tree(toy_tree: Path, tmp_path: Path) -> None:
    from fgaug.data.validate import validate_tree

    out = tmp_path / "augmented"
    write_all(DatasetWriter(out, toy_tree), find_groups(toy_tree).groups[:2])
    assert validate_tree(out, toy_tree).problems == []
    assert validate_tree(out, toy_tree).samples == 4
    label = next(out.rglob("*_gtFine_instanceIds.png"))
    label.write_bytes(label.read_bytes() + b"\0")
    photo = next(out.rglob("*_leftImg8bit.png"))
    photo.unlink()
    problems = validate_tree(out, toy_tree).problems
    assert any("missing" in p and photo.name in p for p in problems)
    assert any("differs from its source" in p for p in problems)


def test_validate_refuses_an_8_bit_instance_file_and_takes_the_16_bit_ones_written(
    toy_tree: Path, tmp_path: Path
) -> None:
    """docs/output.md promises 16-bit instanceIds; an 8-bit file of valid values passed."""
    from fgaug.data.validate import validate_tree

    out, resized, first = tmp_path / "augmented", tmp_path / "resized", find_groups(toy_tree).groups[:1]
    write_all(DatasetWriter(out, toy_tree), first)  # copied from the source
    write_all(DatasetWriter(resized, toy_tree, WriterOptions(at_model_resolution=True)), first)
    for tree in (out, resized):
        assert {Image.open(path).mode for path in tree.rglob("*_gtFine_instanceIds.png")} == {"I;16"}
        assert validate_tree(tree).problems == []
    labels = sorted(out.rglob("*_gtFine_instanceIds.png"))
    Image.fromarray(np.full(Image.open(labels[0]).size[::-1], 7, np.uint8)).save(labels[0])
    assert validate_tree(out).problems == [f"{labels[0]}: instanceIds must be a 16-bit single-channel PNG, got mode L"]


def test_validate_takes_the_source_as_generate_takes_masks(toy_tree: Path, tmp_path: Path) -> None:
    """Issue 22, item 3: a tree made from a split folder checks against the root and the split folder."""
    from typer.testing import CliRunner

    from fgaug.cli.app import app
    from fgaug.data.validate import validate_tree

    split = toy_tree / "gtFine" / "val"
    out = tmp_path / "augmented"
    write_all(DatasetWriter(out, split), find_groups(split, require_photos=False).groups)
    for source in (toy_tree, split, split / "flowdorf"):
        assert validate_tree(out, source).problems == [], source
    label = next(out.rglob("*_gtFine_instanceIds.png"))
    label.write_bytes(label.read_bytes() + b"\0")
    original = split / "flowdorf" / label.name.replace(label.parent.name, "flowdorf")  # its sample's source
    assert validate_tree(out, toy_tree).problems == [f"{label}: differs from its source {original}"]
    result = CliRunner().invoke(app, ["validate", str(out), "--source", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: the source masks are missing (no such file or folder)"
    ]


def test_cityscapesscripts_derives_train_ids_from_the_written_tree(toy_tree: Path, tmp_path: Path) -> None:
    import os

    create = importlib.import_module("cityscapesscripts.preparation.createTrainIdLabelImgs")
    out = tmp_path / "augmented"
    write_all(DatasetWriter(out, toy_tree, WriterOptions(derive_train_ids=False)), find_groups(toy_tree).groups[:3])
    os.environ["CITYSCAPES_DATASET"] = str(out)
    try:
        create.main()
    finally:
        del os.environ["CITYSCAPES_DATASET"]
    derived = sorted(out.rglob("*_gtFine_labelTrainIds.png"))
    assert len(derived) == 6
    for path in derived:
        ids = np.asarray(Image.open(str(path).replace("_labelTrainIds.png", "_labelIds.png")))
        from fgaug.data.labels import ids_to_train_ids

        np.testing.assert_array_equal(np.asarray(Image.open(path)), ids_to_train_ids(ids))


def test_a_failed_run_forgets_only_the_record_it_wrote_and_only_with_nothing_written(tmp_path: Path) -> None:
    from fgaug.data.record import RECORD_NAME, forgotten_if_unwritten
    from fgaug.data.writer import TREE_OUTPUTS

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / RECORD_NAME).write_text("{}")  # an earlier run's, which this one fails before replacing
    with pytest.raises(DataError), forgotten_if_unwritten(earlier, TREE_OUTPUTS):
        raise DataError("failed before taking the output")
    assert (earlier / RECORD_NAME).read_text() == "{}"
    written = tmp_path / "written"
    with pytest.raises(KeyboardInterrupt), forgotten_if_unwritten(written, TREE_OUTPUTS):
        (written / "gtFine" / "train" / "a-fgaug-s000").mkdir(parents=True)
        (written / RECORD_NAME).write_text("{}")
        raise KeyboardInterrupt
    assert (written / RECORD_NAME).is_file(), "a sample's folder is in place: the run can be resumed"
    with pytest.raises(KeyboardInterrupt), forgotten_if_unwritten(tmp_path / "new", TREE_OUTPUTS):
        (tmp_path / "new" / "gtFine" / "train").mkdir(parents=True)
        (tmp_path / "new" / RECORD_NAME).write_text("{}")
        raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()
