"""The toy street world: deterministic, many photos per layout, labels as cityscapesScripts draws them."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from compat import torchvision_cityscapes
from PIL import Image

from fgaug.data.labels import LABEL_BY_ID, LABEL_BY_NAME, ids_to_color, ids_to_train_ids, invalid_label_ids
from fgaug.data.toyworld import APPEARANCE, TINTS, make_scene, write_toy_cityscapes


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
    """At every size the scene is a street: valid labels, instances that follow the Cityscapes
    rule, the sky above the horizon and the road below it."""
    for height, width in ((16, 32), (96, 96), (256, 512)):
        scene = make_scene(height, width, layout_seed=0)
        assert scene.photo.shape == (height, width, 3) and scene.photo.dtype == np.uint8
        assert scene.label_ids.shape == scene.instance_ids.shape == (height, width)
        check_labels(scene.label_ids, scene.instance_ids)
        rows = np.arange(height)[:, None].repeat(width, axis=1)
        horizon = scene.layout.horizon
        sky, road = (scene.label_ids == LABEL_BY_NAME[name].id for name in ("sky", "road"))
        assert sky.any() and road.any()
        assert rows[sky].max() <= horizon + 3 and rows[road].min() >= horizon - 1


def check_labels(label_ids: np.ndarray, instance_ids: np.ndarray) -> None:
    """Cityscapes ids only; instanceIds ``id * 1000 + k`` exactly on the pixels of instance classes,
    the plain label id everywhere else."""
    assert invalid_label_ids(label_ids) == []
    has_instances = np.vectorize(lambda v: LABEL_BY_ID[int(v)].has_instances)(label_ids)
    instanced = instance_ids >= 1000
    np.testing.assert_array_equal(instanced, has_instances)
    np.testing.assert_array_equal(instance_ids[instanced] // 1000, label_ids[instanced])
    np.testing.assert_array_equal(instance_ids[~instanced], label_ids[~instanced])


def test_files_follow_the_cityscapes_formats(toy_tree: Path) -> None:
    label_dir = toy_tree / "gtFine/train/toyville"
    stem = "toyville_000000_000019"
    assert Image.open(toy_tree / f"leftImg8bit/train/toyville/{stem}_leftImg8bit.png").mode == "RGB"
    assert Image.open(label_dir / f"{stem}_gtFine_labelIds.png").mode == "L"
    assert Image.open(label_dir / f"{stem}_gtFine_instanceIds.png").mode in ("I;16", "I")
    assert Image.open(label_dir / f"{stem}_gtFine_color.png").mode == "RGBA"
    label_files = sorted(toy_tree.rglob("*_gtFine_labelIds.png"))
    assert len(label_files) == 6
    for path in label_files:
        label_ids = np.asarray(Image.open(path))
        instance_ids = np.asarray(Image.open(str(path).replace("_labelIds", "_instanceIds"))).astype(np.int32)
        colour = np.asarray(Image.open(str(path).replace("_labelIds", "_color")))
        photo = Image.open(str(path).replace("gtFine", "leftImg8bit", 1).replace("_gtFine_labelIds", "_leftImg8bit"))
        assert photo.size == (label_ids.shape[1], label_ids.shape[0]) == (128, 64)
        check_labels(label_ids, instance_ids)
        np.testing.assert_array_equal(colour[..., :3], ids_to_color(label_ids))
        assert (colour[..., 3] == 255).all()


def test_polygons_repaint_the_label_and_instance_files(toy_tree: Path) -> None:
    """cityscapesScripts' json2labelImg and json2instanceImg, run on our polygons, give our
    labelIds and instanceIds pixel for pixel."""
    for path in sorted(toy_tree.rglob("*_gtFine_polygons.json")):
        label_ids = np.asarray(Image.open(str(path).replace("_polygons.json", "_labelIds.png")))
        instance_ids = np.asarray(Image.open(str(path).replace("_polygons.json", "_instanceIds.png")))
        labels, instances = repainted(path)
        np.testing.assert_array_equal(labels, label_ids)
        np.testing.assert_array_equal(instances, instance_ids)


def repainted(path: Path) -> tuple[np.ndarray, np.ndarray]:
    annotation = Annotation()
    annotation.fromJsonFile(str(path))
    return np.asarray(createLabelImage(annotation, "ids")), np.asarray(createInstanceImage(annotation, "ids"))


@pytest.mark.parametrize("name", ["road", "vegetation", "pole"])
def test_class_colours_follow_their_documented_palette(name: str) -> None:
    """A class painted as its base colour with symmetric texture (road, vegetation, pole) has its
    median colour at base x tint x brightness; base, tint and brightness are drawn independently
    (APPEARANCE, TINTS, brightness uniform in [0.7, 1.1]), so over many scenes the medians average
    mean(palette means) x mean(tints) x 0.9, within a few standard errors."""
    label_id = LABEL_BY_NAME[name].id
    medians = []
    for seed in range(80):
        scene = make_scene(32, 64, layout_seed=seed)
        region = scene.label_ids == label_id
        if region.sum() >= 4:
            medians.append(np.median(scene.photo[region].astype(np.float64), axis=0))
    assert len(medians) >= 40
    observed = np.mean(medians, axis=0)
    standard_error = np.std(medians, axis=0, ddof=1) / np.sqrt(len(medians))
    expected = np.mean(APPEARANCE[name].means, axis=0) * np.mean(list(TINTS.values()), axis=0) * 0.9
    assert (np.abs(observed - expected) < 4 * standard_error + 1).all(), (observed, expected, standard_error)
    others = [other for other in ("road", "vegetation", "pole") if other != name]
    for other in others:  # the test tells the classes apart
        wrong = np.mean(APPEARANCE[other].means, axis=0) * np.mean(list(TINTS.values()), axis=0) * 0.9
        assert (np.abs(observed - wrong) > 4 * standard_error + 1).any()


def test_cityscapesscripts_reads_the_tree_and_derives_the_same_train_ids(toy_tree: Path) -> None:
    helpers = importlib.import_module("cityscapesscripts.helpers.csHelpers")
    create = importlib.import_module("cityscapesscripts.preparation.createTrainIdLabelImgs")
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
