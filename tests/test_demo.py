"""The README's first command: the demo runs offline on CPU and its tree loads in users' tools."""

from __future__ import annotations

from pathlib import Path

import pytest
from compat import torchvision_cityscapes

from fgaug.api import demo
from fgaug.data.writer import validate_tree


def test_demo_writes_a_loadable_tree_and_a_preview(tmp_path: Path) -> None:
    result = demo(tmp_path / "demo", n=2, masks=3)
    assert result.summary.written == 6 and result.summary.model.path.name == "demo-toy-64x128.pt"
    assert result.preview is not None and result.preview.is_file()
    assert validate_tree(result.augmented, result.masks / "gtFine" / "val").problems == []
    dataset = torchvision_cityscapes()(
        str(result.augmented), split="val", mode="fine", target_type=["semantic", "instance", "color", "polygon"]
    )
    assert len(dataset) == 6
    image, (semantic, _, _, polygon) = dataset[0]
    assert image.size == semantic.size == (256, 128) and polygon["objects"]
    helpers = pytest.importorskip("cityscapesscripts.helpers.csHelpers")
    for path in result.augmented.rglob("*.png"):
        assert "-fgaug-s" in helpers.getCsFileInfo(str(path)).city
