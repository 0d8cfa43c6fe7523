"""A sixth walkthrough's defects on the dataset side: a rerun that trusted damaged label files,
``validate`` passing damaged files and records, and inputs that were not what their names said."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgaug.data.cityscapes import find_groups
from fgaug.data.headers import check_headers
from fgaug.data.io import DataError
from fgaug.data.validate import validate_tree
from fgaug.generate.engine import generate
from fgaug.generate.options import GenerateOptions


@pytest.fixture
def tree(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> Path:
    """A generated tree of 2 masks, 1 sample each."""
    out = tmp_path / "out"
    masks = small_tree / "gtFine" / "val"
    generate(GenerateOptions(masks=str(masks), out=str(out), model=str(test_checkpoint), n=1, limit=2, device="cpu"))
    assert validate_tree(out).problems == []
    return out


def test_a_rerun_draws_again_a_sample_whose_label_file_was_emptied_or_cut(
    tree: Path, small_tree: Path, test_checkpoint: Path
) -> None:
    """Only the photo was checked: an emptied instanceIds file counted as done, and ``validate``
    kept failing after every rerun."""
    instances = sorted(tree.rglob("*_gtFine_instanceIds.png"))[0]
    instances.write_bytes(b"")
    polygons = sorted(tree.rglob("*_gtFine_polygons.json"))[1]
    polygons.write_bytes(polygons.read_bytes()[:40])
    options = GenerateOptions(
        masks=str(small_tree / "gtFine" / "val"), out=str(tree), model=str(test_checkpoint), n=1, limit=2, device="cpu"
    )
    again = generate(options)
    assert (again.written, again.skipped) == (2, 0)
    assert validate_tree(tree).problems == []


def test_validate_finds_photos_of_another_kind_files_cut_short_and_train_ids_that_disagree(tree: Path) -> None:
    photos = sorted(tree.rglob("*_leftImg8bit.png"))
    Image.open(photos[0]).convert("RGBA").save(photos[0])
    photos[1].write_bytes(photos[1].read_bytes()[:-20])  # its IEND chunk cut off: decoders may not notice
    train_ids = sorted(tree.rglob("*_gtFine_labelTrainIds.png"))[0]
    Image.fromarray(np.zeros_like(np.asarray(Image.open(train_ids)))).save(train_ids)
    color = sorted(tree.rglob("*_gtFine_color.png"))[1]
    damaged = bytearray(color.read_bytes())
    damaged[-13] ^= 0xFF  # the last byte of the last IDAT's CRC, before IEND: Pillow decodes it, libpng refuses it
    color.write_bytes(bytes(damaged))
    problems = validate_tree(tree).problems
    assert f"{photos[0]}: expected an 8-bit RGB photo, got mode RGBA" in problems
    assert any(line.startswith(f"{photos[1]}: not a readable image (cut short") for line in problems), problems
    assert f"{train_ids}: its train ids are not those of its labelIds" in " ".join(problems)
    assert f"{color}: a damaged PNG (its IDAT chunk fails its CRC)" in problems
    assert len(problems) == 4, problems


def test_validate_finds_a_damaged_run_record_and_manifest_line(tree: Path) -> None:
    record, manifest = tree / "fgaug-run.json", tree / "manifest.jsonl"
    record.write_text("{")
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    problems = validate_tree(tree).problems
    assert problems == [
        f"{record}: not a readable run record (damaged or edited)",
        f"{manifest}: holds lines that are no complete record (damaged or edited)",
    ]


def test_a_jpeg_named_like_a_png_label_file_is_refused(small_tree: Path, tmp_path: Path) -> None:
    """Lossy JPEG bytes under ``X_gtFine_labelIds.png`` passed the header check and were copied."""
    masks = tmp_path / "masks"
    shutil.copytree(small_tree / "gtFine" / "val", masks)
    label = sorted(masks.rglob("*_gtFine_labelIds.png"))[0]
    buffer = io.BytesIO()
    Image.open(label).convert("L").save(buffer, "JPEG")
    label.write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match=r"named \.png but a JPEG file"):
        check_headers(find_groups(masks, require_photos=False).groups, False, False, photos=False, label_files=True)


def test_a_checkpoint_without_its_weights_is_one_line(test_checkpoint: Path, tmp_path: Path) -> None:
    """A checkpoint missing its ``model`` entry gave a KeyError traceback."""
    import torch

    from fgaug.training.checkpoint import CheckpointError, load_checkpoint

    payload = torch.load(test_checkpoint, weights_only=True)
    payload.pop("model")
    damaged = tmp_path / "no-weights.pt"
    torch.save(payload, damaged)
    with pytest.raises(CheckpointError, match=r"no-weights\.pt: a damaged checkpoint: its weights \('model'\) missing"):
        load_checkpoint(damaged)


def test_prepare_never_writes_into_its_input_and_validate_names_a_missing_tree(
    small_tree: Path, tmp_path: Path
) -> None:
    """``prepare cs --out cs/cache.h5`` wrote into the input tree; ``validate nowhere`` said it was
    no fgaug tree rather than no folder."""
    from fgaug.data.cache import prepare_cache
    from fgaug.data.cityscapes import ReadOptions

    tree = tmp_path / "cs"
    shutil.copytree(small_tree, tree)
    groups = find_groups(tree, ["val"]).groups
    for inside in (tree / "cache.h5", tree / "gtFine" / "val" / "cache.h5"):
        with pytest.raises(DataError, match="the output must not be inside"):
            prepare_cache(groups, ReadOptions((16, 32)), inside, tree / "gtFine" / "val")
        assert not inside.exists()
    with pytest.raises(DataError, match="nowhere: no such folder; give the tree to check"):
        validate_tree(tmp_path / "nowhere")


def test_a_run_on_a_tree_another_run_is_writing_is_refused(tree: Path, small_tree: Path, test_checkpoint: Path) -> None:
    """Two runs given one ``--out`` at once mixed their samples under one record (the second with
    ``--temp 0.5 --overwrite`` kept a draw of the first at 0.8), and ``validate`` passed the tree."""
    import fcntl
    import os

    from fgaug.data.record import OutputConflictError

    options = GenerateOptions(
        masks=str(small_tree / "gtFine" / "val"), out=str(tree), model=str(test_checkpoint), n=1, limit=2, device="cpu"
    )
    other_run = os.open(tree, os.O_RDONLY)  # what another process's run holds while it writes
    fcntl.flock(other_run, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        for changes in ({}, {"temperature": 0.5, "overwrite": True}):
            with pytest.raises(OutputConflictError, match="another fgaug run is writing into it now"):
                generate(dataclasses.replace(options, **changes))
    finally:
        os.close(other_run)
    assert validate_tree(tree).problems == []
    assert generate(options).skipped == 2, "once the other run has ended, the tree resumes"
    assert generate(options).skipped == 2, "a run releases the tree at its end"


def test_validate_names_a_train_id_file_of_another_mode_and_reads_a_manifest_of_any_bytes(tree: Path) -> None:
    """A three-channel labelTrainIds file was said to differ in size while both sizes printed
    equal; a byte that is no UTF-8 in a manifest gave a traceback."""
    train_ids = sorted(tree.rglob("*_gtFine_labelTrainIds.png"))[0]
    ids = np.asarray(Image.open(train_ids))
    Image.fromarray(np.stack([ids] * 3, -1)).save(train_ids)
    manifest = tree / "manifest.jsonl"
    manifest.write_bytes(manifest.read_bytes() + b"\xff\n")
    assert validate_tree(tree).problems == [
        f"{manifest}: holds lines that are no complete record (damaged or edited)",
        f"{train_ids}: an id mask must be a single-channel PNG, got mode RGB",
    ]


def test_write_layouts_releases_its_folder_at_its_end(small_tree: Path, tmp_path: Path) -> None:
    """Called directly, ``write_layouts`` kept its output folder held after it returned: another
    process's run on it was refused as "another fgaug run is writing into it now"."""
    import fcntl
    import os

    from fgaug.data.layouts import write_layouts
    from fgaug.data.options import LayoutOptions

    out = tmp_path / "layouts"
    write_layouts(find_groups(small_tree, ["val"], False).groups, small_tree, out, LayoutOptions(n=1))
    other_run = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(other_run, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError while it is held
    finally:
        os.close(other_run)


def test_a_skip_bad_rerun_keeps_the_samples_of_a_mask_broken_since(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A mask broken after a whole run, skipped by a ``--skip-bad`` rerun, counted as unwritten
    though its sample was in the tree: exit 3, and ``validate`` said "left 0 of 2 unwritten"."""
    masks = tmp_path / "masks"
    shutil.copytree(small_tree / "gtFine" / "val", masks)
    options = GenerateOptions(masks=str(masks), out=str(tmp_path / "again"), model=str(test_checkpoint), n=1, limit=2)
    generate(dataclasses.replace(options, device="cpu"))
    polygons = sorted(masks.rglob("*_gtFine_polygons.json"))[0]
    polygons.write_bytes(polygons.read_bytes()[:40])
    rerun = generate(dataclasses.replace(options, device="cpu", skip_bad=True))
    assert rerun.accepted and rerun.failed_samples == 0 and len(rerun.failed) == 1
    assert validate_tree(tmp_path / "again").problems == []


def test_a_layouts_rerun_of_a_whole_tree_reads_no_objects(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun with nothing to do read every photo and mask for its object bank: 53 s for 240
    full-size frames, about 10 minutes projected for Cityscapes' train split."""
    from fgaug.data import layouts
    from fgaug.data.options import LayoutOptions

    groups, out = find_groups(small_tree, ["val"], False).groups, tmp_path / "layouts"
    layouts.write_layouts(groups, small_tree, out, LayoutOptions(n=1, paste=2))

    def no_bank(*arguments: object, **keywords: object) -> None:
        raise AssertionError("the object bank was built for a tree with nothing to make")

    monkeypatch.setattr(layouts, "CutoutBank", no_bank)
    again = layouts.write_layouts(groups, small_tree, out, LayoutOptions(n=1, paste=2))
    assert (again.written, again.skipped) == (0, len(groups))
    assert validate_tree(out).problems == []
    temporary = out / ".manifest.jsonl.x.part"  # a killed run's, beside the manifest
    temporary.write_text("")
    assert validate_tree(out).problems == [f"{temporary}: a temporary file of an interrupted write"]


def test_a_manifest_names_the_photo_of_a_split_folders_mask_relative_to_it(tree: Path, small_tree: Path) -> None:
    """With MASKS a split folder, each manifest line named its source photo by an absolute path
    (the mask and labels relative): the tree was tied to one machine's paths."""
    import json

    for line in (tree / "manifest.jsonl").read_text().splitlines():
        photo = json.loads(line)["source"]["photo"]
        assert photo.startswith("../../leftImg8bit/val/"), photo
        assert (small_tree / "gtFine" / "val" / photo).resolve().is_file()
