"""Ways to make synthetic data pay: targeted allocation, rejecting unlikely draws, real appearance on
new layouts by content transfer, and ignore maps from a real-trained segmenter."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from test_generate import photos, run

from fgaug.data.cityscapes import find_groups, read_instance_ids, read_label_ids, resize_labels, resize_photo
from fgaug.data.io import DataError, read_rgb
from fgaug.data.labels import LABEL_BY_NAME, ids_to_train_ids
from fgaug.data.layouts import LayoutOptions, write_layouts
from fgaug.generate.allocate import allocate, class_presence, rarity_weights, share_samples
from fgaug.generate.content import EDIT_MARGIN
from fgaug.generate.engine import generate
from fgaug.generate.ignore import IGNORE_SUFFIX
from fgaug.generate.options import GenerateOptions


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_shares_follow_the_weights_and_keep_the_total() -> None:
    assert share_samples(np.array([1.0, 1.0, 1.0]), 4) == [4, 4, 4]
    shares = share_samples(np.array([1.0, 0.0, 3.0, 0.0]), 3)
    assert sum(shares) == 12 and min(shares) == 1 and shares[2] > shares[0] > shares[1]
    assert share_samples(np.zeros(3), 2) == [2, 2, 2]


def test_rare_allocation_favours_masks_with_rare_classes(small_tree: Path) -> None:
    groups = find_groups(small_tree, ["train"]).groups
    counts = allocate(groups, 8, "rare")
    assert sum(counts) == 8 * len(groups) and min(counts) >= 1 and len(set(counts)) > 1
    present, pixels = class_presence(groups)
    rarity = present @ rarity_weights(pixels)
    assert counts[int(np.argmax(rarity))] == max(counts) and counts[int(np.argmin(rarity))] == min(counts)


def test_class_weights_file_is_checked(small_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(small_tree, ["train"]).groups
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"traffic sign": 1.0}))
    counts = allocate(groups, 2, "weights", weights)
    present, _ = class_presence(groups)
    signs = present[:, 7]
    assert min(np.array(counts)[signs]) > max(np.array(counts)[~signs]) if signs.any() and (~signs).any() else True
    weights.write_text(json.dumps({"lamppost": 1.0}))
    with pytest.raises(DataError, match="unknown class name"):
        allocate(groups, 2, "weights", weights)
    with pytest.raises(ValueError, match="needs --class-weights"):
        allocate(groups, 2, "weights")


def test_allocated_counts_are_written(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    masks = small_tree / "gtFine" / "train"
    summary = run(masks, tmp_path / "out", test_checkpoint, n=2, allocate="rare")
    per_key: dict[str, int] = {}
    for record in manifest(tmp_path / "out"):
        per_key[record["key"]] = per_key.get(record["key"], 0) + 1
    groups = find_groups(masks, None, False).groups
    assert [per_key[g.key] for g in groups] == allocate(groups, 2, "rare")
    assert summary.written == 2 * len(groups)


def test_reject_keeps_the_most_likely_draws_and_resumes(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    masks = small_tree / "gtFine" / "val"
    run(masks, tmp_path / "all", test_checkpoint, n=4)
    run(masks, tmp_path / "kept", test_checkpoint, n=2, reject_fraction=0.5)
    everything = manifest(tmp_path / "all")
    kept = manifest(tmp_path / "kept")
    for key in {r["key"] for r in everything}:
        likelihoods = sorted((r["log_likelihood"] for r in everything if r["key"] == key), reverse=True)
        chosen = sorted((r["log_likelihood"] for r in kept if r["key"] == key), reverse=True)
        assert chosen == pytest.approx(likelihoods[:2])
        assert sorted(r["draw"] for r in kept if r["key"] == key) == [
            r["sample"] for r in everything if r["key"] == key and r["log_likelihood"] >= likelihoods[1]
        ]
    reference = photos(tmp_path / "kept")
    removed = next(iter(reference))
    (tmp_path / "kept" / removed).unlink()
    lines = (tmp_path / "kept" / "manifest.jsonl").read_text().splitlines()
    (tmp_path / "kept" / "manifest.jsonl").write_text(
        "".join(line + "\n" for line in lines if json.loads(line)["outputs"]["photo"] != removed)
    )
    summary = run(masks, tmp_path / "kept", test_checkpoint, n=2, reject_fraction=0.5)
    assert summary.written == 1
    assert all(np.array_equal(photos(tmp_path / "kept")[name], image) for name, image in reference.items())


def test_content_transfer_onto_flipped_layouts_gives_the_flipped_photo(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """With only a flip, the layout is the flipped source mask: the transferred photo is the
    flipped real photo itself (the flow's round trip is exact)."""
    groups = find_groups(small_tree, ["val"]).groups
    layouts = tmp_path / "layouts"
    write_layouts(groups, small_tree, layouts, LayoutOptions(n=1, flip_probability=1, jitter_probability=0, paste=0))
    out = tmp_path / "content"
    summary = run(layouts, out, test_checkpoint, n=1, content_from=str(small_tree), at_model_resolution=True)
    assert summary.written == len(groups) and not summary.failed
    records = manifest(out)
    size = (16, 32)
    for record, group in zip(sorted(records, key=lambda r: r["key"]), sorted(groups, key=lambda g: g.key), strict=True):
        assert record["content_photo"] == group.photo.relative_to(small_tree).as_posix()
        written = np.asarray(Image.open(out / record["outputs"]["photo"]))
        expected = resize_photo(read_rgb(group.photo), size)[:, ::-1]
        np.testing.assert_array_equal(written, expected)


def test_content_transfer_runs_its_networks_in_the_asked_precision(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``--precision bf16`` reaches the transfer's networks: its whole-image transfers differ
    from fp32's (bf16 rounds the networks' outputs), and stay close to them."""
    groups = find_groups(small_tree, ["train"]).groups
    layouts = tmp_path / "layouts"
    write_layouts(groups, small_tree, layouts, LayoutOptions(n=1, flip_probability=0, jitter_probability=0, paste=3))
    written = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        common = {"content_from": str(small_tree), "at_model_resolution": True, "keep_unchanged": False}
        run(layouts, out, test_checkpoint, n=1, precision=precision, **common)
        written[precision] = photos(out)
    assert written["fp32"].keys() == written["bf16"].keys()
    differences = [np.abs(written["bf16"][k].astype(int) - written["fp32"][k]) for k in written["fp32"]]
    assert any(d.max() > 0 for d in differences)
    assert np.mean([d.mean() for d in differences]) < 8


def test_content_transfer_with_pasted_objects_keeps_the_real_photo_outside_the_edits(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """Outside the edited region (labels changed, grown by the margin) the written photo is the
    real one pixel for pixel; inside, it is the paper's whole-image transfer; and the background
    of the whole-image transfer is closer to the real photo than its edited region is."""
    groups = find_groups(small_tree, ["train"]).groups
    layouts = tmp_path / "layouts"
    write_layouts(groups, small_tree, layouts, LayoutOptions(n=1, flip_probability=0, jitter_probability=0, paste=3))
    kept, whole = tmp_path / "kept", tmp_path / "whole"
    run(layouts, kept, test_checkpoint, n=1, content_from=str(small_tree), at_model_resolution=True)
    run(
        layouts,
        whole,
        test_checkpoint,
        n=1,
        content_from=str(small_tree),
        at_model_resolution=True,
        keep_unchanged=False,
    )
    by_key, size = {g.key: g for g in groups}, (16, 32)
    layout_records = [json.loads(line) for line in (layouts / "layouts.jsonl").read_text().splitlines()]
    whole_photos = {r["source"]["mask"]: r["outputs"]["photo"] for r in manifest(whole)}
    unchanged_error, changed_error, edited_somewhere = [], [], False
    for record in manifest(kept):
        layout = next(r for r in layout_records if r["output"].endswith(Path(record["source"]["mask"]).name))
        source = by_key[layout["source"]]
        real = resize_photo(read_rgb(source.photo), size).astype(int)
        written = np.asarray(Image.open(kept / record["outputs"]["photo"])).astype(int)
        decoded = np.asarray(Image.open(whole / whole_photos[record["source"]["mask"]])).astype(int)
        same = resize_labels(read_label_ids(source.mask), size) == resize_labels(
            read_label_ids(layouts / layout["output"]), size
        )
        same_instances = resize_labels(read_instance_ids(source.instance_ids), size) == resize_labels(
            read_instance_ids(layouts / layout["output"].replace("labelIds", "instanceIds")), size
        )
        reach = 2 * (EDIT_MARGIN + 1) + 1  # an instance edit moves its boundary channel one pixel further
        grown = cv2.dilate((~(same & same_instances)).astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool)
        np.testing.assert_array_equal(written[~grown], real[~grown])
        np.testing.assert_array_equal(written[~same], decoded[~same])
        assert record["edited_fraction"] >= (~same).mean() - 1e-4 and record["kept_unchanged"]
        edited_somewhere |= bool((~same).any())
        unchanged_error.append(np.abs(decoded - real)[same].mean())
        if (~same).any():
            changed_error.append(np.abs(decoded - real)[~same].mean())
    assert edited_somewhere and np.mean(unchanged_error) > 0
    assert np.mean(unchanged_error) < np.mean(changed_error)


def test_prior_fill_draws_the_edited_regions_as_generate_draws_the_layout(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``--content-fill prior``: inside the edited region the photo is plain generate's sample of
    the layout (same seed), outside it the real photo."""
    groups = find_groups(small_tree, ["train"]).groups
    layouts = tmp_path / "layouts"
    write_layouts(groups, small_tree, layouts, LayoutOptions(n=1, flip_probability=0, jitter_probability=0, paste=3))
    filled, plain, transferred = tmp_path / "filled", tmp_path / "plain", tmp_path / "transferred"
    common = {"n": 1, "at_model_resolution": True}
    run(layouts, filled, test_checkpoint, content_from=str(small_tree), content_fill="prior", **common)
    run(layouts, transferred, test_checkpoint, content_from=str(small_tree), **common)
    run(layouts, plain, test_checkpoint, **common)
    sampled = {r["source"]["mask"]: r["outputs"]["photo"] for r in manifest(plain)}
    decoded = {r["source"]["mask"]: r["outputs"]["photo"] for r in manifest(transferred)}
    layout_records = [json.loads(line) for line in (layouts / "layouts.jsonl").read_text().splitlines()]
    by_key, differs_from_transfer = {g.key: g for g in groups}, False
    for record in manifest(filled):
        assert record["edit_fill"] == "prior"
        mask = record["source"]["mask"]
        written = np.asarray(Image.open(filled / record["outputs"]["photo"])).astype(int)
        drawn = np.asarray(Image.open(plain / sampled[mask])).astype(int)
        transfer = np.asarray(Image.open(transferred / decoded[mask])).astype(int)
        layout = next(r for r in layout_records if r["output"].endswith(Path(mask).name))
        same = resize_labels(read_label_ids(by_key[layout["source"]].mask), (16, 32)) == resize_labels(
            read_label_ids(layouts / layout["output"]), (16, 32)
        )
        np.testing.assert_array_equal(written[~same], drawn[~same])
        differs_from_transfer |= bool((written[~same] != transfer[~same]).any())
    assert differs_from_transfer
    with pytest.raises(ValueError, match="--content-fill"):
        run(layouts, tmp_path / "x", test_checkpoint, content_fill="prior", **common)
    hot = run(
        layouts,
        tmp_path / "hot",
        test_checkpoint,
        content_from=str(small_tree),
        content_fill="prior",
        temperature=1e6,
        **common,
    )  # every draw diverges: nothing written, each layout a failure
    assert hot.written == 0 and hot.failed_samples == len(groups)
    assert all("edited region diverged" in failure for failure in hot.failed)


def test_keep_unchanged_is_refused_without_content(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--no-keep-unchanged"):
        run(small_tree / "gtFine" / "val", tmp_path / "x", test_checkpoint, n=1, keep_unchanged=False)


def test_content_transfer_needs_layouts_and_one_photo_each(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match=r"layouts\.jsonl"):
        run(small_tree / "gtFine" / "val", tmp_path / "x", test_checkpoint, n=1, content_from=str(small_tree))
    with pytest.raises(ValueError, match="--samples 1"):
        run(small_tree / "gtFine" / "val", tmp_path / "y", test_checkpoint, n=2, content_from=str(small_tree))
    with pytest.raises(ValueError, match="--ignore-map marks drawn samples"):  # it was taken and did nothing
        run(
            small_tree / "gtFine" / "val",
            tmp_path / "z",
            test_checkpoint,
            n=1,
            content_from=str(small_tree),
            ignore_segmenter=str(tmp_path / "probe.pt"),
        )


class RoadEverywhere(torch.nn.Module):
    """A segmenter sure that every pixel is road."""

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        logits = torch.full((photos.shape[0], 19, photos.shape[2], photos.shape[3]), -20.0)
        logits[:, 0] = 20.0
        return logits


def test_ignore_maps_mark_what_the_segmenter_rejects_beside_intact_labels(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    segmenter = tmp_path / "road.pt"
    torch.jit.script(RoadEverywhere()).save(str(segmenter))
    masks = small_tree / "gtFine" / "val"
    out = tmp_path / "out"
    run(masks, out, test_checkpoint, n=1, ignore_segmenter=str(segmenter))
    for record in manifest(out):
        ignore_path = out / record["outputs"][IGNORE_SUFFIX.removeprefix("_gtFine_")]
        ignore = np.asarray(Image.open(ignore_path))
        labels = np.asarray(Image.open(out / record["outputs"]["labelIds.png"]))
        train_ids = ids_to_train_ids(labels)
        assert ignore.shape == labels.shape and set(np.unique(ignore)) <= {0, 255}
        np.testing.assert_array_equal(ignore == 255, (train_ids != 0) & (train_ids != 255))
        assert record["ignored_fraction"] == pytest.approx(((train_ids != 0) & (train_ids != 255)).mean(), abs=0.05)
        source = Path(record["source"]["labels"]["_gtFine_labelIds.png"])
        assert (out / record["outputs"]["labelIds.png"]).read_bytes() == (masks / source).read_bytes()
    assert LABEL_BY_NAME["road"].train_id == 0


def test_generate_options_that_mean_nothing_are_refused(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    masks = str(small_tree / "gtFine" / "val")
    for change, message in (({"reject_fraction": 1.0}, "--reject"), ({"ignore_below": 0.0}, "--ignore-below")):
        with pytest.raises(ValueError, match=message):
            generate(GenerateOptions(masks=masks, out=str(tmp_path / "o"), model=str(test_checkpoint), **change))
