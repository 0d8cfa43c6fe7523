"""``fgaug validate`` checks a ``layouts`` tree too, so a CI job growing the train split by
real-pixel copy-paste can check what it wrote (issue 22, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fgaug.cli.app import app

runner = CliRunner()


def test_validate_checks_a_copy_paste_tree(small_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy-paste"
    arguments = ["layouts", str(small_tree), "--split", "train", "-o", str(out), "--per-mask", "1", "--photos"]
    made = runner.invoke(app, arguments)
    assert made.exit_code == 0, made.output
    checked = runner.invoke(app, ["validate", str(out), "--source", str(small_tree)])
    assert checked.exit_code == 0 and "12 samples checked, 0 problem(s)" in checked.output, checked.output
    photo = next((out / "leftImg8bit").rglob("*_leftImg8bit.png"))
    photo.unlink()
    checked = runner.invoke(app, ["validate", str(out)])
    assert checked.exit_code == 1 and f"{photo}: missing" in checked.output, checked.output


def test_a_tree_without_a_record_is_refused(tmp_path: Path) -> None:
    checked = runner.invoke(app, ["validate", str(tmp_path)])
    assert checked.exit_code == 1 and "no manifest.jsonl or layouts.jsonl" in checked.output, checked.output


def test_a_tree_whose_run_did_not_finish_is_a_problem(
    small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted ``layouts`` run leaves sound files but fewer than asked for; its record says
    so until a rerun of the same command gets to the end."""
    out = tmp_path / "copy-paste"
    arguments = ["layouts", str(small_tree), "--split", "train", "-o", str(out), "--per-mask", "2"]

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("fgaug.data.layouts.finish_output", interrupted)
    assert runner.invoke(app, arguments).exit_code == 130
    checked = runner.invoke(app, ["validate", str(out)])
    assert checked.exit_code == 1, checked.output
    assert "the `fgaug layouts` run that writes this tree has not finished" in checked.output
    monkeypatch.undo()
    assert runner.invoke(app, arguments).exit_code == 0
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
