"""The probe segmenter: learns the toy world, round-trips through TorchScript, scores consistently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from fgaug.data.cityscapes import find_groups
from fgaug.data.io import DataError
from fgaug.segmentation.probe import ProbeSegmenter, SegmentationPairs, load_segmenter, predict_train_ids, train_probe
from fgaug.segmentation.scores import confusion_matrix, segmentation_scores


def test_probe_learns_the_toy_world_and_reloads(small_tree: Path, tmp_path: Path) -> None:
    train = SegmentationPairs(find_groups(small_tree, ["train"]).groups, (32, 64), flip=True)
    report = train_probe(train, tmp_path / "probe.pt", steps=150, batch_size=4, lr=5e-3, width=8)
    segmenter = load_segmenter(report.path)
    val = SegmentationPairs(find_groups(small_tree, ["val"]).groups, (32, 64))
    photos = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.stack([val[i][1] for i in range(len(val))]).numpy()
    predicted = predict_train_ids(segmenter, photos, (32, 64))
    scores = segmentation_scores(confusion_matrix(predicted, labels))
    assert scores["pixel_accuracy"] > 0.6  # road, sky, building and sidewalk are learnt in 150 steps
    untrained = predict_train_ids(ProbeSegmenter(8).eval(), photos, (32, 64))
    assert segmentation_scores(confusion_matrix(untrained, labels))["pixel_accuracy"] < scores["pixel_accuracy"]


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
    assert report.steps == 2 and (tmp_path / "probe.pt").is_file()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_users_segmenter_that_fails_or_outputs_the_wrong_shape_is_named(tmp_path: Path) -> None:
    program = torch.export.export(ProbeSegmenter(4).eval(), (torch.rand(1, 3, 16, 32),))  # batch size 1 only
    torch.export.save(program, str(tmp_path / "one-photo.pt2"))
    with pytest.raises(DataError, match=r"one-photo.pt2: the segmenter fails on input of shape \(2, 3, 16, 32\)"):
        predict_train_ids(load_segmenter(tmp_path / "one-photo.pt2"), torch.rand(2, 3, 16, 32), (16, 32))
    torch.jit.script(torch.nn.Conv2d(3, 5, 1)).save(str(tmp_path / "five.pt"))
    with pytest.raises(DataError, match=r"five.pt: the segmenter outputs \(1, 5, 8, 8\) for photos \(1, 3, 8, 8\)"):
        predict_train_ids(load_segmenter(tmp_path / "five.pt"), torch.rand(1, 3, 8, 8), (8, 8))
