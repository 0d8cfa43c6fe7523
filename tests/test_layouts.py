"""New layouts: every label file written and consistent, loadable by Cityscapes tools, plausible
pastes, deterministic, resumable, the input untouched."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from compat import torchvision_cityscapes
from PIL import Image
from smooth_masks import smoothly_resized_colour_masks

from fgaug.data.cityscapes import find_groups, read_instance_ids, read_label_ids
from fgaug.data.cutouts import GROUND, LabelSet, find_cutouts, horizon_row, object_depth, paste
from fgaug.data.io import DataError
from fgaug.data.labels import LABEL_BY_NAME, ids_to_color, ids_to_train_ids
from fgaug.data.layouts import (
    CutoutBank,
    LayoutOptions,
    aligned_source,
    make_layout,
    read_layout_photo,
    read_layout_records,
    write_layouts,
)
from fgaug.data.record import OutputConflictError
from fgaug.data.toyworld import write_toy_cityscapes


@pytest.fixture(scope="module")
def street_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streets") / "cityscapes"
    write_toy_cityscapes(root, {"train": 10, "val": 2}, size=(96, 192), seed=21)
    return root


def tree_digest(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def rasterised_polygons(path: Path) -> np.ndarray:
    """labelIds drawn from a polygons file as cityscapesScripts' json2labelImg draws them."""
    from PIL import ImageDraw

    document = json.loads(path.read_text())
    image = Image.new("L", (document["imgWidth"], document["imgHeight"]), 0)
    draw = ImageDraw.Draw(image)
    for obj in document["objects"]:
        draw.polygon([tuple(p) for p in obj["polygon"]], fill=LABEL_BY_NAME[obj["label"]].id)
    return np.asarray(image)


def test_every_label_file_is_written_and_they_agree(street_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "layouts"
    before = tree_digest(street_tree)
    groups = find_groups(street_tree, ["train"]).groups
    summary = write_layouts(groups, street_tree, out, LayoutOptions(n=2, paste=3, seed=1))
    assert tree_digest(street_tree) == before, "the input tree was written to"
    assert summary.written == 20 and summary.pasted > 20 and summary.objects > 10
    written = find_groups(out, None, False).groups
    assert len(written) == 20
    for group in written:
        files = group.label_files
        assert set(files) >= {
            "_gtFine_labelIds.png",
            "_gtFine_instanceIds.png",
            "_gtFine_color.png",
            "_gtFine_labelTrainIds.png",
            "_gtFine_polygons.json",
        }
        ids = read_label_ids(files["_gtFine_labelIds.png"], "labelIds")
        instances = np.asarray(Image.open(files["_gtFine_instanceIds.png"])).astype(np.int32)
        np.testing.assert_array_equal(np.asarray(Image.open(files["_gtFine_labelTrainIds.png"])), ids_to_train_ids(ids))
        np.testing.assert_array_equal(np.asarray(Image.open(files["_gtFine_color.png"]))[..., :3], ids_to_color(ids))
        np.testing.assert_array_equal(np.where(instances >= 1000, instances // 1000, instances), ids)
        agreement = (rasterised_polygons(files["_gtFine_polygons.json"]) == ids).mean()
        assert agreement > 0.97, f"{group.key}: polygons repaint only {agreement:.1%} of labelIds"


def test_cityscapes_tools_read_the_tree_and_a_generated_one(
    street_tree: Path, tmp_path: Path, test_checkpoint: Path
) -> None:
    helpers = importlib.import_module("cityscapesscripts.helpers.csHelpers")
    from fgaug.generate.engine import generate
    from fgaug.generate.options import GenerateOptions

    out = tmp_path / "layouts"
    write_layouts(find_groups(street_tree, ["train"]).groups[:3], street_tree, out, LayoutOptions(n=2, paste=2))
    for path in out.rglob("*.png"):
        info = helpers.getCsFileInfo(str(path))
        assert "-layout-l" in info.city and path.name.startswith(f"{info.city}_{info.sequenceNb}_{info.frameNb}")
    augmented = tmp_path / "augmented"
    summary = generate(
        GenerateOptions(masks=str(out), out=str(augmented), model=str(test_checkpoint), n=1, device="cpu")
    )
    assert summary.written == 6 and not summary.failed
    dataset = torchvision_cityscapes()(
        str(augmented), split="train", mode="fine", target_type=["semantic", "instance", "color", "polygon"]
    )
    assert len(dataset) == 6
    image, (semantic, _, _, polygon) = dataset[0]
    assert image.size == semantic.size == (192, 96) and polygon["objects"]


def test_cityscapesscripts_derives_nearly_the_same_train_ids_from_the_traced_polygons(
    street_tree: Path, tmp_path: Path
) -> None:
    create = importlib.import_module("cityscapesscripts.preparation.createTrainIdLabelImgs")
    out = tmp_path / "layouts"
    write_layouts(find_groups(street_tree, ["train"]).groups[:2], street_tree, out, LayoutOptions(n=1, paste=2))
    ours = {p: np.asarray(Image.open(p)) for p in out.rglob("*_gtFine_labelTrainIds.png")}
    for path in ours:
        path.unlink()
    os.environ["CITYSCAPES_DATASET"] = str(out)
    try:
        create.main()
    finally:
        del os.environ["CITYSCAPES_DATASET"]
    for path, train_ids in ours.items():
        assert (np.asarray(Image.open(path)) == train_ids).mean() > 0.97


def test_flip_and_jitter_alone_transform_the_source_exactly(street_tree: Path) -> None:
    group = find_groups(street_tree, ["train"]).groups[0]
    source = LabelSet.read(group)
    flipped = make_layout(source, group.key, 0, None, LayoutOptions(flip_probability=1, jitter_probability=0))
    np.testing.assert_array_equal(flipped.labels.label_ids, source.label_ids[:, ::-1])
    assert flipped.flip and not flipped.pasted
    jittered = make_layout(source, group.key, 0, None, LayoutOptions(flip_probability=0, jitter_probability=1))
    assert 1.0 <= jittered.scale <= 1.5 and jittered.labels.shape == source.shape
    photo = np.random.default_rng(0).integers(0, 256, (*source.shape, 3), dtype=np.uint8)
    aligned_photo, aligned = aligned_source(photo, source, jittered.record())
    np.testing.assert_array_equal(aligned.label_ids, jittered.labels.label_ids)
    assert aligned_photo.shape == photo.shape


def test_pasted_objects_stand_on_their_ground_and_hide_behind_nearer_objects(street_tree: Path) -> None:
    groups = find_groups(street_tree, ["train"]).groups
    bank = CutoutBank(groups)
    assert len(bank) > 10 and set(bank.classes) >= {"car", "person", "traffic sign"}
    target = LabelSet.read(groups[0])
    depth_before = object_depth(target)
    rng = np.random.default_rng(3)
    stood = 0
    for _ in range(30):
        cutout = bank.draw(rng, exclude=groups[0].key)
        assert cutout is not None and cutout.source != groups[0].key
        result = paste(target, cutout, rng)
        if result is None:
            continue
        pasted, placement = result
        foot_y, foot_x = placement.foot
        ground = [LABEL_BY_NAME[name].id for name in GROUND[cutout.label]]
        assert target.label_ids[foot_y, foot_x] in ground and foot_y > horizon_row(target.label_ids)
        changed = pasted.label_ids != target.label_ids
        assert not (changed & (depth_before > foot_y)).any(), "a pasted object covered a nearer one"
        stood += 1
    assert stood >= 20


def test_rare_boost_draws_rare_classes_more_often(street_tree: Path) -> None:
    groups = find_groups(street_tree, ["train"]).groups
    plain, boosted = CutoutBank(groups), CutoutBank(groups, rare_boost=1.5)
    share = dict(zip(plain.classes, plain.class_probabilities, strict=True))
    boosted_share = dict(zip(boosted.classes, boosted.class_probabilities, strict=True))
    rarest = min(share, key=lambda name: plain.pixels[name])
    commonest = max(share, key=lambda name: plain.pixels[name])
    assert boosted_share[rarest] > share[rarest] and boosted_share[commonest] < share[commonest]


def test_same_seed_same_layouts_and_a_rerun_resumes(street_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(street_tree, ["train"]).groups[:3]
    options = LayoutOptions(n=2, paste=2, seed=4)
    write_layouts(groups, street_tree, tmp_path / "a", options)
    write_layouts(groups, street_tree, tmp_path / "b", options)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    manifest = tmp_path / "a" / "layouts.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # the last line torn by a kill
    summary = write_layouts(groups, street_tree, tmp_path / "a", options)
    assert summary.written == 1 and summary.skipped == 5
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    records = read_layout_records(manifest)
    assert len(records) == 6 and all(r["source_photo"] for r in records)


def test_a_rerun_makes_again_the_layouts_whose_files_are_gone_or_cut_short(street_tree: Path, tmp_path: Path) -> None:
    """A rerun trusted every ``layouts.jsonl`` line: a deleted label file or a photo cut short was
    counted as done, and the tree then failed ``validate``."""
    groups = find_groups(street_tree, ["train"]).groups[:2]
    options = LayoutOptions(n=2, paste=1, seed=4, photos=True)
    whole, damaged = tmp_path / "whole", tmp_path / "damaged"
    write_layouts(groups, street_tree, whole, options)
    write_layouts(groups, street_tree, damaged, options)
    records = read_layout_records(damaged / "layouts.jsonl")
    (damaged / records[0]["output"].replace("_labelIds.png", "_color.png")).unlink()
    photo = damaged / records[1]["photo"]
    photo.write_bytes(photo.read_bytes()[:200])
    summary = write_layouts(groups, street_tree, damaged, options)
    assert (summary.written, summary.skipped) == (2, 2)
    assert tree_digest(damaged) == tree_digest(whole)  # layouts.jsonl too: its lines in a fresh run's order


def test_cutouts_are_whole_objects_away_from_the_borders(street_tree: Path) -> None:
    for group in find_groups(street_tree, ["train"]).groups:
        labels = LabelSet.read(group)
        for cutout in find_cutouts(group.key, labels):
            assert cutout.left > 0 and cutout.left + cutout.mask.shape[1] < labels.shape[1]
            assert cutout.foot < labels.shape[0] - 1
            assert (cutout.label_ids[cutout.mask] == LABEL_BY_NAME[cutout.label].id).any()


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="scale range"):
        LayoutOptions(scale_range=(0.5, 1.2))
    with pytest.raises(ValueError, match="rare-boost"):
        LayoutOptions(rare_boost=float("nan"))


def test_the_layouts_command_writes_a_tree_and_refuses_bad_options(street_tree: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fgaug.cli.app import app

    runner = CliRunner()
    out = tmp_path / "new-masks"
    arguments = ["layouts", str(street_tree), "--split", "train", "--out", str(out), "--n", "2", "--limit", "3"]
    result = runner.invoke(app, [*arguments, "--paste", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["written"] == 6 and summary["sources"] == 3 and len(read_layout_records(out / "layouts.jsonl")) == 6
    assert runner.invoke(app, [*arguments, "--max-scale", "nan"]).exit_code == 2
    refused = runner.invoke(app, [*arguments, "--max-scale", "0.5"])
    assert refused.exit_code == 2 and "--max-scale" in refused.output
    inside = runner.invoke(app, ["layouts", str(street_tree), "--out", str(street_tree / "inside")])
    assert inside.exit_code == 1 and "must not be inside the input" in inside.output
    with_photos = runner.invoke(app, [*arguments, "--out", str(tmp_path / "with-photos"), "--photos"])
    assert with_photos.exit_code == 0, with_photos.output
    assert len(list((tmp_path / "with-photos" / "leftImg8bit").rglob("*_leftImg8bit.png"))) == 6
    assert f"Cityscapes tree (photos and labels): {tmp_path / 'with-photos'}" in with_photos.output


def test_photos_carry_the_real_pixels_of_the_source_and_of_each_pasted_object(
    street_tree: Path, tmp_path: Path
) -> None:
    """``photos``: a flip alone gives the flipped source photo; with pastes, the photo is the source
    photo wherever the labels kept their class and instance (but where a pole was pasted over a
    pole) and the pasted objects' pixels where they changed."""
    groups = find_groups(street_tree, ["train"]).groups[:4]
    flipped = tmp_path / "flipped"
    write_layouts(
        groups, street_tree, flipped, LayoutOptions(n=1, flip_probability=1, jitter_probability=0, paste=0, photos=True)
    )
    pasted = tmp_path / "pasted"
    write_layouts(
        groups, street_tree, pasted, LayoutOptions(n=2, flip_probability=0, jitter_probability=0, paste=3, photos=True)
    )
    by_key = {g.key: g for g in groups}
    for record in read_layout_records(flipped / "layouts.jsonl"):
        source = by_key[record["key"]]
        real = read_layout_photo(source, read_label_ids(source.mask).shape)
        np.testing.assert_array_equal(np.asarray(Image.open(flipped / record["photo"])), real[:, ::-1])
    changed_pixels = differing = 0
    for record in read_layout_records(pasted / "layouts.jsonl"):
        source = by_key[record["key"]]
        real = read_layout_photo(source, read_label_ids(source.mask).shape)
        photo = np.asarray(Image.open(pasted / record["photo"]))
        instances = str(record["output"]).replace("labelIds", "instanceIds")
        same = (read_label_ids(source.mask) == read_label_ids(pasted / record["output"])) & (
            read_instance_ids(source.instance_ids) == read_instance_ids(pasted / instances)
        )
        assert (photo[same] == real[same]).all(axis=1).mean() > 0.995
        changed_pixels += int((~same).sum())
        differing += int((photo[~same] != real[~same]).any(axis=1).sum())
    assert changed_pixels > 0 and differing > 0.8 * changed_pixels
    assert {g.key for g in find_groups(pasted, None).groups if g.photo is not None}  # a full Cityscapes tree


def test_photos_need_a_photo_beside_each_mask(street_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(street_tree, ["train"]).groups[:2]
    masks_only = dataclasses.replace(groups[0], photo=None)
    with pytest.raises(DataError, match=str(groups[0].mask)):
        write_layouts([masks_only, groups[1]], street_tree, tmp_path / "x", LayoutOptions(n=1, paste=1, photos=True))


def test_a_layouts_rerun_with_other_settings_is_refused_unless_overwrite(street_tree: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fgaug.cli.app import app

    runner = CliRunner()
    out = tmp_path / "new-masks"
    arguments = ["layouts", str(street_tree), "--split", "train", "--out", str(out), "--per-mask", "1", "--limit", "2"]
    assert runner.invoke(app, arguments).exit_code == 0
    first = read_layout_records(out / "layouts.jsonl")
    refused = runner.invoke(app, [*arguments, "--seed", "3"])
    assert refused.exit_code == 1, refused.output
    assert f"error: {out} was made with --seed 0; this run has --seed 3; use --overwrite" in refused.output
    refused = runner.invoke(app, [*arguments[:-1], "3"])
    assert refused.exit_code == 1 and "the masks used (--split, --limit) 2 masks" in refused.output
    refused = runner.invoke(app, [*arguments, "--per-mask", "2"])  # the option's name, not the field's (n)
    assert f"error: {out} was made with --per-mask 1; this run has --per-mask 2" in refused.output
    assert read_layout_records(out / "layouts.jsonl") == first
    replaced = runner.invoke(app, [*arguments, "--seed", "3", "--overwrite", "--json"])
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.stdout.strip().splitlines()[-1])["skipped"] == 0
    assert read_layout_records(out / "layouts.jsonl") != first


def test_a_layouts_rerun_knows_the_masks_by_content_not_by_their_folder(street_tree: Path, tmp_path: Path) -> None:
    """MASKS was recorded by its absolute path: the same masks mounted elsewhere were refused, and
    a mask changed in place resumed."""
    import shutil

    from typer.testing import CliRunner

    from fgaug.cli.app import app

    moved, out = tmp_path / "mounted-elsewhere", tmp_path / "new-masks"
    shutil.copytree(street_tree, moved)
    arguments = ["--split", "train", "--out", str(out), "--per-mask", "1", "--limit", "2", "--json"]
    assert CliRunner().invoke(app, ["layouts", str(street_tree), *arguments]).exit_code == 0
    resumed = CliRunner().invoke(app, ["layouts", str(moved), *arguments])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["skipped"] == 2
    changed = sorted((moved / "gtFine" / "train").rglob("*_gtFine_labelIds.png"))[0]
    ids = np.array(Image.open(changed))
    ids[:4, :4] = 7 if ids[0, 0] != 7 else 8
    Image.fromarray(ids).save(changed)
    refused = CliRunner().invoke(app, ["layouts", str(moved), *arguments])
    assert refused.exit_code == 1 and "was made with the masks' content sha256" in refused.output


def test_layouts_snap_smoothly_resized_colour_masks_when_asked(street_tree: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fgaug.cli.app import app

    masks = smoothly_resized_colour_masks(street_tree, tmp_path / "masks", 2)
    arguments = ["layouts", str(masks), "--n", "1", "--paste", "1"]
    refused = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 1 and "use --snap-colors" in refused.output
    snapped = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "snapped"), "--snap-colors", "--json"])
    assert snapped.exit_code == 0, snapped.output
    assert json.loads(snapped.stdout.strip().splitlines()[-1])["written"] == 2


def test_label_files_and_photos_of_another_size_are_named_not_a_traceback_or_resized(
    toy_tree: Path, tmp_path: Path
) -> None:
    """An instanceIds file of another size than its labelIds crashed ``layouts`` with a numpy
    broadcast error, and ``--photos`` resized a photo of another size to its mask's."""
    from test_cli import one_line_error, runner

    from fgaug.cli.app import app

    group = find_groups(toy_tree, ["train"]).groups[0]
    assert group.instance_ids is not None and group.photo is not None
    arguments = ["layouts", str(toy_tree), "--split", "train", "--per-mask", "1", "--out", str(tmp_path / "out")]
    whole = group.photo.read_bytes()
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(group.photo)
    one_line_error(runner.invoke(app, [*arguments, "--photos"]), f"{group.photo}: size (32, 64) differs from its mask")
    group.photo.write_bytes(whole)
    Image.fromarray(np.zeros((32, 64), np.uint16)).save(group.instance_ids)
    one_line_error(runner.invoke(app, arguments), f"{group.instance_ids}: size (32, 64) differs from its mask")


def test_traced_polygons_outline_each_part_where_it_lies_to_the_image_edges() -> None:
    """Each part is traced within its bounding box (it was traced over the whole image, 24x slower
    at 150 objects a frame): its polygon must span exactly the part's pixels, at every edge."""
    from types import SimpleNamespace

    from fgaug.data.cutouts import traced_polygons

    instances = np.full((40, 64), 7, np.int32)
    boxes = {26000: (0, 0, 10, 12), 26001: (30, 50, 40, 64), 24000: (0, 40, 8, 64), 24001: (15, 0, 40, 6)}
    for value, (top, left, bottom, right) in boxes.items():
        instances[top:bottom, left:right] = value
    document = traced_polygons(SimpleNamespace(instance_ids=instances, shape=instances.shape))
    spans = sorted(
        (
            min(y for _, y in o["polygon"]),
            min(x for x, _ in o["polygon"]),
            max(y for _, y in o["polygon"]) + 1,
            max(x for x, _ in o["polygon"]) + 1,
        )
        for o in document["objects"]
        if o["label"] != "road"
    )
    assert spans == sorted(boxes.values())


def test_a_layouts_rerun_refuses_photos_and_instance_files_changed_since(street_tree: Path, tmp_path: Path) -> None:
    """Only the masks were recorded: with a source photo changed, the rerun, ``--overwrite`` and
    ``validate`` all passed while every layout kept the old photo's pixels."""
    import shutil

    from typer.testing import CliRunner

    from fgaug.cli.app import app

    source, out = tmp_path / "source", tmp_path / "new-photos"
    shutil.copytree(street_tree, source)
    arguments = ["layouts", str(source), "--split", "train", "--out", str(out), "--per-mask", "1", "--limit", "2"]
    arguments += ["--photos", "--json"]
    assert CliRunner().invoke(app, arguments).exit_code == 0
    photo = sorted((source / "leftImg8bit" / "train").rglob("*_leftImg8bit.png"))[0]
    Image.fromarray(np.zeros_like(np.array(Image.open(photo)))).save(photo)
    refused = CliRunner().invoke(app, arguments)
    assert refused.exit_code == 1 and "was made with the photos' content (--photos) sha256" in refused.output
    replaced = CliRunner().invoke(app, [*arguments, "--overwrite"])
    assert replaced.exit_code == 0 and json.loads(replaced.stdout.strip().splitlines()[-1])["skipped"] == 0
    instances = sorted((source / "gtFine" / "train").rglob("*_gtFine_instanceIds.png"))[0]
    Image.open(instances).save(instances, compress_level=9)  # the same pixels, other bytes: content is bytes
    refused = CliRunner().invoke(app, arguments)
    assert refused.exit_code == 1 and "was made with the instanceIds files' content sha256" in refused.output


def test_pasted_objects_come_from_masks_of_the_layouts_own_split(street_tree: Path, tmp_path: Path) -> None:
    """With every split (no --split), a training layout took objects from validation masks, and
    with --photos their real pixels: validation data in training. A tree made that way (its
    record without ``paste_from``) is refused on a rerun rather than finished the new way."""
    out = tmp_path / "all"
    write_layouts(find_groups(street_tree).groups, street_tree, out, LayoutOptions(n=2, paste=3, seed=1))
    records = read_layout_records(out / "layouts.jsonl")
    sources = {
        (record["key"].split("/")[0], placed["source"].split("/")[0])
        for record in records
        for placed in record["pasted"]
    }
    assert {split for split, _ in sources} == {"train", "val"} and all(a == b for a, b in sources), sources
    one_split = tmp_path / "train"  # one split: one bank, as before, so trees made before still resume
    write_layouts(find_groups(street_tree, ["train"]).groups, street_tree, one_split, LayoutOptions(n=1, paste=2))
    assert "paste_from" not in json.loads((one_split / "fgaug-run.json").read_text())["settings"]
    record_path = out / "fgaug-run.json"
    record = json.loads(record_path.read_text())
    del record["settings"]["paste_from"]
    record_path.write_text(json.dumps(record))
    with pytest.raises(OutputConflictError, match=r"objects pasted from every split; this run has .* own split"):
        write_layouts(find_groups(street_tree).groups, street_tree, out, LayoutOptions(n=2, paste=3, seed=1))
