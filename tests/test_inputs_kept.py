"""A twelfth walkthrough's defects (a CI job's view): outputs that could land on or in an input,
an input tree recorded by its path rather than its content, and a full disk blamed on an input."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_generate import run

from fgaug.api import SegmenterTrainOptions, train_segmenter
from fgaug.data.cityscapes import find_groups
from fgaug.data.io import DataError, open_image
from fgaug.data.layouts import LayoutOptions, write_layouts
from fgaug.data.record import OutputConflictError
from fgaug.data.writer import check_outside_tree_data
from fgaug.generate.engine import generate
from fgaug.generate.interpolate import InterpolateOptions, WalkOptions, interpolate
from fgaug.generate.options import GenerateOptions
from fgaug.progress import SilentProgress


def test_a_preview_on_or_in_an_input_is_refused_before_any_work(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``--preview`` named an input mask: the mask became the preview grid, and the run exited 0."""
    masks = tmp_path / "masks"
    shutil.copytree(small_tree / "gtFine" / "val", masks)
    mask = sorted(masks.rglob("*_gtFine_labelIds.png"))[0]
    before = mask.read_bytes()
    for preview in (mask, masks / "preview.png"):  # the second would be read as a stray PNG next time
        with pytest.raises(DataError, match=f"^{preview}: the output must not be inside the input {masks}$"):
            run(masks, tmp_path / "out", test_checkpoint, preview=str(preview))
    assert mask.read_bytes() == before and not (tmp_path / "out").exists()


def test_a_walk_into_an_inputs_cityscapes_data_is_refused(toy_tree: Path, test_checkpoint: Path) -> None:
    """Its frames landed beside the mask in ``gtFine/``, and every later run refused the tree."""
    mask = sorted((toy_tree / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))[0]
    walk = WalkOptions(model=str(test_checkpoint), device="cpu")
    with pytest.raises(DataError, match=r"^--out .*: inside .*gtFine, the Cityscapes data of the input"):
        interpolate(InterpolateOptions(mask, mask.parent, start_style=1, end_style=2, steps=2, walk=walk))
    assert not list(mask.parent.glob("frame_*.png"))


def test_content_from_is_recorded_by_its_files_content(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    """The content tree was recorded by its path: the same files elsewhere were refused, and
    photos changed in place kept the stale samples with exit 0 (``validate`` passed them). Each
    sample's line records its content's SHA-256, so a larger ``--limit`` still extends the tree."""
    content = tmp_path / "content"
    shutil.copytree(small_tree, content)
    layouts = tmp_path / "layouts"
    groups = find_groups(content, ["val"]).groups
    write_layouts(groups, content, layouts, LayoutOptions(n=1, flip_probability=1, jitter_probability=0, paste=0))
    out = tmp_path / "out"
    assert run(layouts, out, test_checkpoint, n=1, content_from=str(content), limit=1).written == 1
    moved = tmp_path / "moved"
    content.rename(moved)
    extended = run(layouts, out, test_checkpoint, n=1, content_from=str(moved))  # the same files, elsewhere
    assert (extended.written, extended.skipped) == (len(groups) - 1, 1)
    photo = moved / groups[0].photo.relative_to(content)  # the content of the first layout
    Image.fromarray(255 - np.asarray(Image.open(photo))).save(photo)
    with pytest.raises(OutputConflictError, match=r"took its content from files changed since \(--content-from\)"):
        run(layouts, out, test_checkpoint, n=1, content_from=str(moved))
    with pytest.raises(OutputConflictError, match=r"was made with --content-from .*; this run has no --content-from"):
        run(layouts, out, test_checkpoint, n=1)
    aside = photo.rename(tmp_path / photo.name)  # a content photo gone: the draw names it, or with --skip-bad
    # that layout alone is skipped
    fresh = tmp_path / "fresh"
    with pytest.raises(DataError, match=rf"^{photo}: the content photo of .* is missing under {moved}$"):
        run(layouts, fresh, test_checkpoint, n=1, content_from=str(moved))
    for batch_size in (1, 8):  # the other layouts of its batch are written all the same
        skipped = run(
            layouts,
            tmp_path / f"batch{batch_size}",
            test_checkpoint,
            n=1,
            content_from=str(moved),
            skip_bad=True,
            batch_size=batch_size,
        )
        assert (skipped.written, skipped.failed_samples, len(skipped.failed)) == (len(groups) - 1, 1, 1)
    aside.rename(photo)
    mask = moved / groups[0].mask.relative_to(content)
    mask.unlink()
    with pytest.raises(DataError, match=rf"^{mask}: the content source mask of .* is missing under {moved}$"):
        run(layouts, fresh, test_checkpoint, n=1, content_from=str(moved), limit=2)


@pytest.mark.parametrize("photos", [False, True], ids=["labels", "photos"])
def test_content_from_a_tree_other_than_the_layouts_source_is_refused(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path, photos: bool
) -> None:
    """A tree whose files bear the source's names but not its content (two frames swapped) was
    taken on a first run, and every layout got the wrong photo. Each layouts line records its
    source's labels (and, with --photos, its photo) by content, and the content run checks them."""
    groups = find_groups(small_tree, ["val"]).groups
    layouts = tmp_path / "layouts"
    write_layouts(groups, small_tree, layouts, LayoutOptions(n=1, paste=0, photos=photos))
    other = tmp_path / "other"
    shutil.copytree(small_tree, other)
    first, second = (other / group.relative_to(small_tree) for group in (groups[0].photo, groups[1].photo))
    swapped = [(first, second)]
    if not photos:  # the labels are what identifies the source without --photos
        first, second = (other / group.mask.relative_to(small_tree) for group in groups[:2])
        swapped.append((first, second))
    for a, b in swapped:
        a.rename(tmp_path / "aside")
        b.rename(a)
        (tmp_path / "aside").rename(b)
    named = first.parent / first.name
    with pytest.raises(DataError, match=rf"^{named}: not the file the layout .* was made from"):
        run(layouts, tmp_path / "out", test_checkpoint, n=1, content_from=str(other))
    assert run(layouts, tmp_path / "right", test_checkpoint, n=1, content_from=str(small_tree)).written == len(groups)


def test_content_checked_against_layouts_still_refuses_content_changed_since_a_run(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """The layouts lines' digests are checked when content is read, not when a rerun compares
    each sample's recorded content (that check read the file check as "missing" and passed); an
    instanceIds file added to the source after the layouts were made is no mismatch."""
    content = tmp_path / "content"
    shutil.copytree(small_tree, content)
    groups = find_groups(content, ["val"]).groups
    instances = groups[0].instance_ids
    assert instances is not None
    instances.rename(tmp_path / "instances.png")
    layouts = tmp_path / "layouts"
    write_layouts(find_groups(content, ["val"]).groups, content, layouts, LayoutOptions(n=1, paste=0, photos=True))
    (tmp_path / "instances.png").rename(instances)
    out = tmp_path / "out"
    assert run(layouts, out, test_checkpoint, n=1, content_from=str(content)).written == len(groups)
    mask = groups[1].mask
    Image.open(mask).save(mask, compress_level=1)  # the same labels, other bytes
    with pytest.raises(OutputConflictError, match=r"took its content from files changed since \(--content-from\)"):
        run(layouts, out, test_checkpoint, n=1, content_from=str(content))


def test_a_file_input_is_a_png_mask_and_its_folder_takes_no_output(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A file that is no PNG was refused as "the output must not be inside the input" (the
    check of the output came first); a mask's folder is refused as the output, since a later run
    over that folder would read what was written there, and the message says so."""
    checksum = tmp_path / "tree.sum"
    checksum.write_text("x")
    with pytest.raises(DataError, match=rf"^{checksum}: not a PNG mask; give a mask PNG, a folder of masks"):
        run(checksum, tmp_path / "out", test_checkpoint, n=1)
    mask = tmp_path / "masks" / "a_gtFine_labelIds.png"
    mask.parent.mkdir()
    shutil.copy(find_groups(small_tree, ["val"]).groups[0].mask, mask)
    with pytest.raises(DataError, match=rf"inside {mask.parent}, the folder of the input {mask} \(a later run over"):
        run(mask, mask.parent / "out", test_checkpoint, n=1)
    assert run(mask, tmp_path / "out", test_checkpoint, n=1).written == 1
    with pytest.raises(DataError, match=rf"^{checksum}: not a folder; --content-from names the tree"):
        run(small_tree / "gtFine" / "val", tmp_path / "c", test_checkpoint, n=1, content_from=str(checksum))


def test_a_full_disk_while_copying_a_label_file_names_the_copy(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shutil.copyfile``'s error named the source: a CI log blamed the dataset's volume."""
    write_bytes = Path.write_bytes

    def full_for_polygons(path: Path, data: bytes) -> int:
        if "_gtFine_polygons.json" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_for_polygons)
    out = tmp_path / "out"
    with pytest.raises(OSError) as caught:
        run(small_tree / "gtFine" / "val", out, test_checkpoint, n=1, limit=1, write_threads=0)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename.startswith(str(out))
    assert caught.value.filename.endswith("_gtFine_polygons.json") and not list(out.rglob("*.part"))


def test_a_folder_named_as_an_image_is_called_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "scene_gtFine_labelIds.png"
    folder.mkdir()
    with pytest.raises(DataError, match=r"scene_gtFine_labelIds.png: a folder, not an image$"):
        open_image(folder)


def test_a_rerun_names_the_masks_gone_since_whose_samples_stay(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A mask removed since (its labels were wrong) kept its samples, and the rerun said nothing."""
    masks = tmp_path / "masks"
    shutil.copytree(small_tree / "gtFine" / "val", masks)
    options = GenerateOptions(masks=str(masks), out=str(tmp_path / "out"), model=str(test_checkpoint), n=1)
    generate(options)
    gone = sorted(masks.rglob("*_gtFine_labelIds.png"))[0]
    for label_file in gone.parent.glob(gone.name.removesuffix("labelIds.png") + "*"):
        label_file.unlink()
    lines: list[str] = []

    class Logged(SilentProgress):
        def log(self, message: str) -> None:
            lines.append(message)

    assert generate(options, Logged()).complete
    assert [line for line in lines if line.startswith(f"1 mask(s) with samples in {tmp_path / 'out'} are not among")]


def test_an_output_in_the_photo_folder_of_an_inputs_tree_is_refused(tmp_path: Path) -> None:
    """Only the label file's tree was looked at: a photo under ``leftImg8bit/`` with its mask beside
    it let an output into that ``leftImg8bit/``."""
    city = tmp_path / "cityscapes" / "leftImg8bit" / "val" / "lindau"
    city.mkdir(parents=True)
    photo, mask = city / "lindau_000000_000019_leftImg8bit.png", city / "lindau_000000_000019_gtFine_labelIds.png"
    with pytest.raises(DataError, match=r"^--out .*/walk: inside .*/cityscapes/leftImg8bit, the Cityscapes data"):
        check_outside_tree_data(city / "walk", "--out", photo, mask)
    check_outside_tree_data(tmp_path / "cityscapes" / "walk", "--out", photo, mask)  # the tree's root is allowed


def test_a_probe_is_not_written_into_its_data_or_over_another_file(
    toy_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``segmenter train --out`` replaced a label file of its own data, or a Full-Glow checkpoint,
    with the probe's weights and exited 0."""
    label = sorted(toy_tree.rglob("*_gtFine_labelIds.png"))[0]
    before = label.read_bytes()
    with pytest.raises(DataError, match=f"^{label}: the output must not be inside the input {toy_tree}$"):
        train_segmenter(SegmenterTrainOptions(toy_tree, size=(16, 32), steps=1, out=label))
    assert label.read_bytes() == before
    checkpoint = tmp_path / "model.pt"
    shutil.copy(test_checkpoint, checkpoint)
    with pytest.raises(DataError, match=r"model.pt: exists and is not a probe of fgaug"):
        train_segmenter(SegmenterTrainOptions(toy_tree, size=(16, 32), steps=1, out=checkpoint))


def test_clearing_a_folder_of_outputs_keeps_an_input_put_inside_it(tmp_path: Path) -> None:
    """``evaluate augment --overwrite`` removed its ``synthetic/`` folder whole, though the data
    (or the model) may lie inside it; through a symbolic link, rmtree raised a bare OSError."""
    from fgaug.data.record import clear_folder

    synthetic = tmp_path / "study" / "synthetic"
    (synthetic / "copy-paste-real" / "N4").mkdir(parents=True)
    (synthetic / "city" / "gtFine").mkdir(parents=True)
    (synthetic / "model.pt").write_bytes(b"weights")
    clear_folder(synthetic, [synthetic / "city", synthetic / "model.pt"])
    assert sorted(path.name for path in synthetic.iterdir()) == ["city", "model.pt"]
    target = tmp_path / "elsewhere"
    (target / "N2").mkdir(parents=True)
    linked = tmp_path / "linked"
    linked.symlink_to(target)
    clear_folder(linked, [])
    assert linked.is_symlink() and target.is_dir() and not list(target.iterdir())
