"""The README's first command: the demo runs offline on CPU, its tree loads in users' tools, and
the commands it prints next run on the data it leaves."""

from __future__ import annotations

import importlib
import json
import shlex
import time
from pathlib import Path

import pytest
from compat import torchvision_cityscapes
from typer.testing import CliRunner

from fgaug import api
from fgaug.cli.app import app
from fgaug.cli.info import demo_next_commands
from fgaug.data.validate import validate_tree

ROOT = Path(__file__).resolve().parent.parent
CHEAPER = {
    "train": ["--steps", "2", "--batch-size", "2", "--workers", "0", "--device", "cpu"],
    "layouts": ["--per-mask", "1", "--limit", "2"],
    "evaluate": ["--sizes", "2", "--seeds", "0", "--min-steps", "2", "--max-steps", "2", "--width", "4"],
}
"""Options appended to each next command (the last value of an option wins) to keep the test short."""


def test_demo_writes_a_loadable_tree_and_a_preview(tmp_path: Path) -> None:
    result = api.demo(tmp_path / "demo", n=2, masks=3)
    assert result.summary.written == 6 and result.summary.model.path.name == "demo-toy-64x128.pt"
    assert result.splits == {"train": 12, "val": 4, "test": 4}
    assert result.preview is not None and result.preview.is_file() and result.summary.preview_masks == 3
    assert validate_tree(result.augmented, result.masks).problems == []
    dataset = torchvision_cityscapes()(
        str(result.augmented), split="train", mode="fine", target_type=["semantic", "instance", "color", "polygon"]
    )
    assert len(dataset) == 6
    image, (semantic, _, _, polygon) = dataset[0]
    assert image.size == semantic.size == (256, 128) and polygon["objects"]
    helpers = importlib.import_module("cityscapesscripts.helpers.csHelpers")
    for path in result.augmented.rglob("*.png"):
        assert "-fgaug-s" in helpers.getCsFileInfo(str(path)).city


def test_the_commands_the_demo_prints_next_run_on_its_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22, item 8: train, layouts and evaluate augment as printed (and as in the README)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--out", "d", "--samples", "1", "--scenes", "2"])
    assert result.exit_code == 0, result.output
    printed = result.output.split("next, on the toy data:\n", 1)[1].splitlines()
    assert [line.strip() for line in printed] == demo_next_commands(Path("d"), 12)
    for line in printed:
        command = shlex.split(line)[1:]
        ran = runner.invoke(app, [*command, *CHEAPER[command[0]]])
        assert ran.exit_code == 0, (line, ran.output)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in demo_next_commands(Path("fgaug-demo"), api.DEMO_TRAIN_SCENES):
        assert command in readme, command


def test_the_demo_times_the_whole_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22, item 13: not only the API's part (loading torch and the model took most of it)."""
    original = api.demo

    def slow_demo(*arguments: object, **options: object) -> api.DemoResult:
        time.sleep(0.5)
        result = original(*arguments, **options)
        result.seconds = 0.0
        return result

    monkeypatch.setattr(api, "demo", slow_demo)
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path / "d"), "--samples", "1", "--scenes", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["seconds"] >= 0.5
    # "masks" is a count in generate's --json: the demo names its toy tree "data", as evaluations do
    assert "masks" not in printed and Path(printed["data"]).is_dir() and printed["images"] == 1
