"""The toy street world: deterministic, many photos per layout, labels as cityscapesScripts draws them."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from compat import torchvision_cityscapes
from PIL import Image

from fgaug.data.labels import LABEL_BY_NAME, ids_to_train_ids
from fgaug.data.toyworld import APPEARANCE, make_scene, write_toy_cityscapes


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_tree(tmp_path: Path) -> None:
    write_toy_cityscapes(tmp_path / "a", {"train": 2}, size=(32, 64), seed=1)
    write_toy_cityscapes(tmp_path / "b", {"train": 2}, size=(32, 64), seed=1)
    write_toy_cityscapes(tmp_path / "c", {"train": 2}, size=(32, 64), seed=2)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b") != tree_digest(tmp_path / "c")


def test_one_layout_many_photos() -> None:
    first = make_scene(64, 128, layout_seed=5, appearance_seed=1)
    second = make_scene(64, 128, layout_seed=5, appearance_seed=2)
    np.testing.assert_array_equal(first.label_ids, second.label_ids)
    np.testing.assert_array_equal(first.instance_ids, second.instance_ids)
    assert np.abs(first.photo.astype(int) - second.photo.astype(int)).mean() > 10


def test_scenes_hold_the_street_classes_and_instances() -> None:
    classes: set[str] = set()
    for seed in range(6):
        scene = make_scene(128, 256, layout_seed=seed)
        present = set(np.unique(scene.label_ids).tolist())
        classes |= {name for name, label in LABEL_BY_NAME.items() if label.id in present and label.id > 0}
        car = LABEL_BY_NAME["car"].id
        instances = np.unique(scene.instance_ids[scene.label_ids == car])
        assert all(value // 1000 == car for value in instances)
    assert {"sky", "road", "sidewalk", "building", "vegetation", "pole", "car", "person"} <= classes
    assert set(APPEARANCE) >= classes - {"unlabeled"}


def test_any_size_works() -> None:
    for height, width in ((16, 32), (96, 96), (256, 512)):
        scene = make_scene(height, width, layout_seed=0)
        assert scene.photo.shape == (height, width, 3) and scene.label_ids.shape == (height, width)


def test_files_follow_the_cityscapes_formats(toy_tree: Path) -> None:
    label_dir = toy_tree / "gtFine/train/toyville"
    stem = "toyville_000000_000019"
    assert Image.open(toy_tree / f"leftImg8bit/train/toyville/{stem}_leftImg8bit.png").mode == "RGB"
    assert Image.open(label_dir / f"{stem}_gtFine_labelIds.png").mode == "L"
    assert Image.open(label_dir / f"{stem}_gtFine_instanceIds.png").mode in ("I;16", "I")
    assert Image.open(label_dir / f"{stem}_gtFine_color.png").mode == "RGBA"


def test_cityscapesscripts_reads_the_tree_and_derives_the_same_train_ids(toy_tree: Path) -> None:
    helpers = pytest.importorskip("cityscapesscripts.helpers.csHelpers")
    create = pytest.importorskip("cityscapesscripts.preparation.createTrainIdLabelImgs")
    for path in toy_tree.rglob("*.png"):
        info = helpers.getCsFileInfo(str(path))
        assert path.name.startswith(f"{info.city}_{info.sequenceNb}_{info.frameNb}")
    os.environ["CITYSCAPES_DATASET"] = str(toy_tree)
    try:
        create.main()
    finally:
        del os.environ["CITYSCAPES_DATASET"]
    for label_path in toy_tree.rglob("*_gtFine_labelIds.png"):
        derived = toy_tree / str(label_path).replace("_labelIds.png", "_labelTrainIds.png")
        ours = ids_to_train_ids(np.asarray(Image.open(label_path)))
        np.testing.assert_array_equal(np.asarray(Image.open(derived)), ours)


def test_torchvision_cityscapes_loads_every_target(toy_tree: Path) -> None:
    cityscapes = torchvision_cityscapes()
    dataset = cityscapes(
        str(toy_tree), split="val", mode="fine", target_type=["semantic", "instance", "color", "polygon"]
    )
    assert len(dataset) == 2
    image, (semantic, instance, color, polygon) = dataset[0]
    assert image.size == semantic.size == instance.size == color.size == (128, 64)
    assert polygon["imgWidth"] == 128 and polygon["objects"]


def test_rewriting_is_idempotent(toy_tree: Path, tmp_path: Path) -> None:
    before = tree_digest(toy_tree)
    shutil.rmtree(toy_tree / "gtFine" / "train" / "toyville" / ".." / "glowburg")
    write_toy_cityscapes(toy_tree, {"train": 4, "val": 2}, size=(64, 128), seed=3)
    assert tree_digest(toy_tree) == before
