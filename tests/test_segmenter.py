"""The probe segmenter: learns the toy world, round-trips through TorchScript, scores consistently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from fgaug.data.cityscapes import find_groups
from fgaug.data.io import DataError
from fgaug.data.labels import N_TRAIN_IDS
from fgaug.segmentation.probe import (
    PROBE_FORMAT,
    ProbeSegmenter,
    SegmentationPairs,
    fit_probe,
    load_segmenter,
    loader_batches,
    new_probe,
    predict_train_ids,
    save_segmenter,
    train_probe,
    warm_up_fraction,
)
from fgaug.segmentation.scores import SegmentationScores, confusion_matrix, segmentation_scores


def test_probe_learns_the_toy_world_and_reloads(small_tree: Path, tmp_path: Path) -> None:
    train = SegmentationPairs(find_groups(small_tree, ["train"]).groups, (32, 64), flip=True)
    report = train_probe(train, tmp_path / "probe.pt", steps=150, batch_size=4, lr=5e-3, width=8)
    segmenter = load_segmenter(report.path)
    val = SegmentationPairs(find_groups(small_tree, ["val"]).groups, (32, 64))
    photos = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.stack([val[i][1] for i in range(len(val))]).numpy()
    predicted = predict_train_ids(segmenter, photos, (32, 64))
    scores = segmentation_scores(confusion_matrix(predicted, labels))
    assert scores.pixel_accuracy > 0.6  # road, sky, building and sidewalk are learnt in 150 steps
    untrained = predict_train_ids(ProbeSegmenter(8).eval(), photos, (32, 64))
    assert segmentation_scores(confusion_matrix(untrained, labels)).pixel_accuracy < scores.pixel_accuracy
    training_labels = torch.stack([train[i][1] for i in range(len(train) // 2)]).numpy()
    constant = constant_scores(majority_class(training_labels), labels)
    assert scores.pixel_accuracy > constant.pixel_accuracy + 0.1
    assert scores.mean_iou > constant.mean_iou + 0.1


def majority_class(labels: np.ndarray) -> int:
    return int(np.bincount(labels[labels < N_TRAIN_IDS].ravel(), minlength=N_TRAIN_IDS).argmax())


def constant_scores(train_id: int, labels: np.ndarray) -> SegmentationScores:
    """The scores of a segmenter that answers ``train_id`` everywhere."""
    return segmentation_scores(confusion_matrix(np.full_like(labels, train_id), labels))


def test_a_probe_fitted_on_a_few_pairs_beats_a_constant_and_reloads_exactly(small_tree: Path, tmp_path: Path) -> None:
    pairs = SegmentationPairs(find_groups(small_tree, ["train"]).groups[:4], (32, 64))
    photos = torch.stack([pairs[i][0] for i in range(len(pairs))])
    labels = torch.stack([pairs[i][1] for i in range(len(pairs))])
    batches = loader_batches(TensorDataset(photos, labels), 4, torch.Generator().manual_seed(0))
    model = fit_probe(new_probe(4, seed=0), batches, steps=60, lr=1e-2).model
    predicted = predict_train_ids(model, photos, (32, 64))
    scores = segmentation_scores(confusion_matrix(predicted, labels.numpy()))
    best_constant = max(
        (constant_scores(c, labels.numpy()) for c in range(N_TRAIN_IDS)), key=lambda s: s.pixel_accuracy
    )
    assert scores.pixel_accuracy > best_constant.pixel_accuracy + 0.1
    assert scores.mean_iou > best_constant.mean_iou
    path = save_segmenter(model.to(memory_format=torch.contiguous_format), tmp_path / "probe.pt", (32, 64))
    loaded = load_segmenter(path, size=(32, 64))
    with torch.no_grad():
        assert torch.equal(loaded(photos), model(photos))
    np.testing.assert_array_equal(predict_train_ids(loaded, photos, (32, 64)), predicted)
    # trained at 32x64, it runs on 64x128 images without a word, and scores them wrongly
    with pytest.raises(DataError, match=r"probe.pt: a probe trained at 32x64, not at the model's 64x128, which"):
        load_segmenter(path, size=(64, 128))


def test_a_corrupt_or_foreign_probe_file_is_one_line_naming_it(tmp_path: Path) -> None:
    good = save_segmenter(ProbeSegmenter(4), tmp_path / "good.pt", (16, 32))
    content = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(content[: len(content) // 2])
    state = ProbeSegmenter(4).state_dict()
    torch.save({"format": PROBE_FORMAT, "width": 8, "state": state}, tmp_path / "wrong-width.pt")
    torch.save({"format": PROBE_FORMAT, "width": 4}, tmp_path / "no-weights.pt")
    torch.save(
        {"format": PROBE_FORMAT, "width": 4, "state": {**state, "head.weight": torch.zeros(3)}}, tmp_path / "bent.pt"
    )
    for name in ("truncated.pt", "wrong-width.pt", "no-weights.pt", "bent.pt"):
        with pytest.raises(DataError) as caught:
            load_segmenter(tmp_path / name)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / name}: not a usable segmenter (") and "\n" not in message, message
    with pytest.raises(DataError, match=r"missing.pt: segmenter not found"):
        load_segmenter(tmp_path / "missing.pt")
    with pytest.raises(DataError, match=rf"^{tmp_path}: a folder, not a segmenter$"):
        load_segmenter(tmp_path)
    flipped = bytearray(content)
    flipped[len(content) // 2] ^= 0x10  # a weight's byte: torch.load took it without a word
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=r"flipped\.pt: a damaged segmenter: its record data/\d+ does not match"):
        load_segmenter(tmp_path / "flipped.pt")


def test_a_flow_checkpoint_given_as_the_segmenter_is_named_as_one(test_checkpoint: Path) -> None:
    """It said "not a usable segmenter ('width')"."""
    with pytest.raises(DataError, match=r"not a segmenter: a Full-Glow checkpoint \(give it as --model\)"):
        load_segmenter(test_checkpoint)


def test_foreign_segmenter_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.pt").write_bytes(b"nonsense")
    with pytest.raises(DataError, match="not a usable segmenter"):
        load_segmenter(tmp_path / "x.pt")
    wrong = torch.nn.Conv2d(3, 5, 1)
    with pytest.raises(DataError, match=r"^the segmenter outputs \(1, 5, 8, 8\) for photos"):
        predict_train_ids(wrong, torch.rand(1, 3, 8, 8), (8, 8))
    assert predict_train_ids(ProbeSegmenter(4).eval(), torch.rand(2, 3, 16, 16), (32, 32)).shape == (
        2,
        32,
        32,
    )
    assert np.dtype("uint8") == predict_train_ids(ProbeSegmenter(4).eval(), torch.rand(1, 3, 8, 8), (8, 8)).dtype


def test_a_users_exported_segmenter_loads(tmp_path: Path) -> None:
    model = ProbeSegmenter(4).eval()
    photos = torch.rand(1, 3, 16, 32)
    program = torch.export.export(model, (photos,))
    torch.export.save(program, str(tmp_path / "user.pt2"))
    loaded = load_segmenter(tmp_path / "user.pt2")
    np.testing.assert_array_equal(
        predict_train_ids(loaded, photos, (16, 32)), predict_train_ids(model, photos, (16, 32))
    )


def test_a_dataset_smaller_than_one_batch_still_trains(tmp_path: Path) -> None:
    photos = torch.rand(3, 3, 16, 16)
    labels = torch.randint(0, 19, (3, 16, 16))
    report = train_probe(TensorDataset(photos, labels), tmp_path / "probe.pt", steps=2, batch_size=8, width=4)
    assert report.steps == 2 and np.isfinite(report.final_loss)
    trained = load_segmenter(report.path).module.state_dict()
    initial = new_probe(4, seed=0).state_dict()
    assert trained.keys() == initial.keys()
    changed = [name for name in initial if not torch.equal(trained[name], initial[name].contiguous())]
    assert "head.weight" in changed and "down.0.0.weight" in changed  # both short batches moved the weights


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 19, 20])
def test_short_schedules_train_to_their_last_step(tmp_path: Path, steps: int) -> None:
    """``--steps 10`` stopped with a ZeroDivisionError inside torch's one-cycle schedule."""
    photos = torch.rand(2, 3, 16, 16)
    labels = torch.randint(0, 19, (2, 16, 16))
    report = train_probe(TensorDataset(photos, labels), tmp_path / "probe.pt", steps=steps, batch_size=2, width=4)
    assert report.steps == steps and np.isfinite(report.final_loss)
    assert warm_up_fraction(steps) == 0.1 if steps >= 20 or steps <= 2 else warm_up_fraction(steps) * steps == 2


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_users_segmenter_that_fails_or_outputs_the_wrong_shape_is_named(tmp_path: Path) -> None:
    program = torch.export.export(ProbeSegmenter(4).eval(), (torch.rand(1, 3, 16, 32),))  # batch size 1 only
    torch.export.save(program, str(tmp_path / "one-photo.pt2"))
    with pytest.raises(DataError, match=r"one-photo.pt2: the segmenter fails on input of shape \(2, 3, 16, 32\)"):
        predict_train_ids(load_segmenter(tmp_path / "one-photo.pt2"), torch.rand(2, 3, 16, 32), (16, 32))
    torch.jit.script(torch.nn.Conv2d(3, 5, 1)).save(str(tmp_path / "five.pt"))
    with pytest.raises(DataError, match=r"five.pt: the segmenter outputs \(1, 5, 8, 8\) for photos \(1, 3, 8, 8\)"):
        predict_train_ids(load_segmenter(tmp_path / "five.pt"), torch.rand(1, 3, 8, 8), (8, 8))


def test_a_probe_of_another_size_is_refused_where_it_would_score_samples(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``evaluate quality --segmenter`` and ``generate --ignore-map`` took a probe trained at another
    size and exited 0 with wrong scores (real-photo mIoU 0.145 against 0.261 at the right size)."""
    from fgaug.api import GenerateOptions, QualityOptions, evaluate_quality, generate, load_checkpoint

    height, width = load_checkpoint(test_checkpoint).model.config.image_size
    probe = save_segmenter(ProbeSegmenter(4), tmp_path / "probe.pt", (height * 2, width * 2))
    message = rf"probe.pt: a probe trained at {height * 2}x{width * 2}, not at the model's {height}x{width}"
    with pytest.raises(DataError, match=message):
        evaluate_quality(
            QualityOptions(
                str(small_tree),
                model=str(test_checkpoint),
                segmenter=str(probe),
                out=str(tmp_path / "quality"),
                limit=1,
                n=1,
                temperatures=(0.8,),
            )
        )
    masks = small_tree / "gtFine" / "val"
    out = tmp_path / "out"
    written = generate(GenerateOptions(masks, out, str(test_checkpoint), n=1, limit=1)).written
    with pytest.raises(DataError, match=message):  # refused before --overwrite replaces the tree there
        generate(GenerateOptions(masks, out, str(test_checkpoint), n=1, ignore_segmenter=str(probe), overwrite=True))
    assert written == 1 and len(list(out.rglob("*_leftImg8bit.png"))) == 1


def test_segmenter_train_names_a_photo_cut_short_before_training(small_tree: Path, tmp_path: Path) -> None:
    """The photos were read batch by batch: a short run that never drew the bad photo exited 0,
    a longer one failed partway. Every photo's header is read first, as evaluate and transfer do."""
    import shutil

    from fgaug.api import SegmenterTrainOptions, train_segmenter

    tree = tmp_path / "tree"
    shutil.copytree(small_tree, tree)
    photo = find_groups(tree, ["train"]).groups[-1].photo
    assert photo is not None
    photo.write_bytes(photo.read_bytes()[:200])
    with pytest.raises(DataError, match=rf"^{photo}: "):
        train_segmenter(SegmenterTrainOptions(tree, (16, 32), out=tmp_path / "probe.pt", steps=1, batch_size=2))
    assert not (tmp_path / "probe.pt").exists()
