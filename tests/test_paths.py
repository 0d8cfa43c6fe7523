"""The public API takes a path as ``str`` or ``Path`` alike (issue 14, item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fgaug import api
from fgaug.data.cache import CachedPairs, inspect_cache
from fgaug.data.cityscapes import find_groups, is_cityscapes_root, read_instance_ids, read_label_ids
from fgaug.data.io import atomic_write_bytes, file_digest, open_image, read_rgb
from fgaug.data.preview import save_grid
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.data.validate import validate_tree
from fgaug.data.writer import DatasetWriter, manifest_files, merge_manifests, read_manifest
from fgaug.evaluation.quality import QualityReport
from fgaug.evaluation.reports import write_quality_report
from fgaug.segmentation.probe import ProbeSegmenter, load_segmenter, save_segmenter
from fgaug.training.checkpoint import export_weights, load_checkpoint, read_checkpoint_payload
from fgaug.training.options import TrainOptions


def test_the_toy_world_is_written_to_a_relative_text_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    photos = write_toy_cityscapes("toy", {"val": 1}, size=(32, 64), seed=1)
    assert photos == [Path("toy/leftImg8bit/val/flowdorf/flowdorf_000000_000019_leftImg8bit.png")]
    assert is_cityscapes_root("toy") and len(find_groups("toy").groups) == 1


def test_data_readers_and_writers_take_text_paths(toy_tree: Path, tmp_path: Path) -> None:
    group = find_groups(str(toy_tree), ["val"]).groups[0]
    assert read_label_ids(str(group.mask)).shape == read_rgb(str(group.photo)).shape[:2]
    assert read_instance_ids(str(group.instance_ids)).dtype == np.int32
    atomic_write_bytes(str(tmp_path / "a.bin"), b"x")
    assert open_image(str(group.photo)).size == (128, 64)
    out = tmp_path / "out"
    writer = DatasetWriter(str(out), str(toy_tree))
    writer.write(group, 0, read_rgb(group.photo), {})
    assert len(read_manifest(str(manifest_files(str(out))[0]))) == merge_manifests(str(out), [group.key]) == 1
    assert validate_tree(str(out), str(toy_tree)).problems == []
    cache = tmp_path / "train.h5"
    api.prepare(str(toy_tree), str(cache), (16, 32))
    assert inspect_cache(str(cache)).count == len(CachedPairs(str(cache))) == 4
    assert save_grid(str(tmp_path / "grid.png"), [[read_rgb(group.photo)]]) == tmp_path / "grid.png"


def test_checkpoints_segmenters_and_reports_take_text_paths(test_checkpoint: Path, tmp_path: Path) -> None:
    assert read_checkpoint_payload(str(test_checkpoint))["format"] == "fgaug-checkpoint-1"
    assert load_checkpoint(str(test_checkpoint)).path == test_checkpoint
    exported = export_weights(str(test_checkpoint), str(tmp_path / "weights.pt"))
    assert exported == tmp_path / "weights.pt" and load_checkpoint(exported).training is None
    probe = save_segmenter(ProbeSegmenter(4), str(tmp_path / "probe.pt"), (16, 32))
    assert probe == tmp_path / "probe.pt" and isinstance(load_segmenter(str(probe)), torch.nn.Module)
    assert len(file_digest(str(probe))) == 64
    paths = write_quality_report(str(tmp_path / "report"), QualityReport({"seed": 0}))
    assert paths["json"] == tmp_path / "report" / "report.json"


def test_train_options_take_paths_and_record_them_as_text(tmp_path: Path) -> None:
    options = TrainOptions(data=tmp_path / "data", run_dir=tmp_path / "run", val_data=tmp_path / "val")
    recorded = json.loads(json.dumps(options.to_dict()))
    assert recorded["data"] == str(tmp_path / "data") and recorded["val_data"] == str(tmp_path / "val")
