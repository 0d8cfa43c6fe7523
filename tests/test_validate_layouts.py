"""``fgaug validate`` checks a ``layouts`` tree too, so a CI job growing the train split by
real-pixel copy-paste can check what it wrote (issue 22, item 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fgaug.cli.app import app
from fgaug.data.validate import validate_tree

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


def spoil_each_kind_of_label_file(out: Path) -> list[str]:
    """Remove a labelTrainIds and an instanceIds file, cut a colour file short and break a
    polygons file, in four different layouts; the start of the problem each gives."""
    labels = sorted((out / "gtFine").rglob("*_gtFine_labelIds.png"))
    train_ids = labels[0].with_name(labels[0].name.replace("labelIds", "labelTrainIds"))
    instances = labels[1].with_name(labels[1].name.replace("labelIds", "instanceIds"))
    colour = labels[2].with_name(labels[2].name.replace("labelIds", "color"))
    polygons = labels[3].with_name(labels[3].name.replace("labelIds.png", "polygons.json"))
    train_ids.unlink()
    instances.unlink()
    colour.write_bytes(colour.read_bytes()[:200])
    polygons.write_text("{")
    return [f"{train_ids}: missing", f"{instances}: missing", f"{colour}: not a readable image", f"{polygons}: "]


def test_every_label_file_of_a_layout_is_checked_and_its_source_found(small_tree: Path, tmp_path: Path) -> None:
    """validate passed a copy-paste tree with two label files deleted, a colour file cut short and
    a polygons file broken; and checked against the wrong split, too."""
    out = tmp_path / "copy-paste"
    arguments = ["layouts", str(small_tree), "--split", "train", "-o", str(out), "--per-mask", "1", "--photos"]
    assert runner.invoke(app, arguments).exit_code == 0
    wrong_split = runner.invoke(app, ["validate", str(out), "--source", str(small_tree / "gtFine" / "val")])
    assert wrong_split.exit_code == 1 and wrong_split.output.count("is not under") == 12, wrong_split.output
    expected = spoil_each_kind_of_label_file(out)
    problems = validate_tree(out).problems
    assert len(problems) == 4, problems
    assert all(p.startswith(e) for p, e in zip(sorted(problems), sorted(expected), strict=True)), problems


def test_a_manifest_cut_short_and_stray_files_are_problems(small_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy-paste"
    arguments = ["layouts", str(small_tree), "--split", "train", "-o", str(out), "--per-mask", "1", "--photos"]
    assert runner.invoke(app, arguments).exit_code == 0
    manifest = out / "layouts.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:10]) + "\n")
    photo = next((out / "leftImg8bit").rglob("*_leftImg8bit.png"))
    orphan = photo.with_name(photo.name.replace("_000019_", "_999999_"))
    shutil.copyfile(photo, orphan)
    temporary = photo.parent / ".leftover.abc123.part"
    temporary.write_bytes(b"")
    assert validate_tree(out).problems == [
        f"{out}: its manifest lists 10 of the 12 samples its run wrote",
        f"{temporary}: a temporary file of an interrupted write",
        f"{orphan}: a photo without labels ({orphan.name.replace('leftImg8bit', 'gtFine_labelIds')}); "
        "Cityscapes loaders fail on it",
    ]


def test_a_generate_run_that_left_samples_unwritten_is_a_problem(small_tree: Path, tmp_path: Path) -> None:
    """generate exited 3 (a bad mask skipped, nothing allowed to fail) and validate passed the tree."""
    masks = tmp_path / "masks"
    shutil.copytree(small_tree / "gtFine" / "val", masks)
    bad = sorted(masks.rglob("*_labelIds.png"))[0]
    bad.write_bytes(bad.read_bytes()[:100])
    out = tmp_path / "out"
    arguments = ["generate", str(masks), "--model", "demo", "--samples", "1", "--skip-bad", "-o", str(out)]
    incomplete = runner.invoke(app, [*arguments, "--json"])
    assert incomplete.exit_code == 3 and json.loads(incomplete.stdout)["complete"] is False  # one object, no error
    assert validate_tree(out).problems == [
        f"{out / 'fgaug-run.json'}: its run left 1 of the 4 requested samples unwritten "
        "(its exit code was 3; see its failures)"
    ]
    assert runner.invoke(app, [*arguments, "--allow-failed", "0.25"]).exit_code == 0
    assert validate_tree(out).problems == []


def test_a_failed_command_leaves_its_error_as_json_on_stdout(tmp_path: Path) -> None:
    """``--json`` printed nothing on stdout when a command failed, so a CI job keeping stdout as its
    summary kept an empty file."""
    missing = tmp_path / "nowhere"
    for arguments in (["generate", str(missing), "--model", "demo"], ["layouts", str(missing)]):
        result = runner.invoke(app, [*arguments, "--json"])
        assert result.exit_code == 1
        assert json.loads(result.stdout) == {"error": f"{missing}: no such file or folder", "exit_code": 1}
        assert result.stderr.strip() == f"error: {missing}: no such file or folder"


def test_generate_and_layouts_refuse_each_others_tree_and_overwrite_clears_both(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``generate`` took a ``layouts`` tree as empty and wrote into it; the mix passed ``validate``,
    and ``layouts --overwrite`` left the generated samples in its copy-paste tree."""
    out = tmp_path / "aug"
    layouts = ["layouts", str(small_tree), "--split", "train", "-o", str(out), "--per-mask", "1"]
    generate = ["generate", str(small_tree / "gtFine" / "val"), "--model", str(test_checkpoint), "--n", "1"]
    generate += ["--out", str(out), "--device", "cpu"]
    assert runner.invoke(app, layouts).exit_code == 0
    refused = runner.invoke(app, generate)
    assert refused.exit_code == 1, refused.output
    assert f"{out} was made by fgaug layouts; this run is fgaug generate; use --overwrite" in refused.output
    assert not (out / "manifest.jsonl").exists() and not list(out.rglob("*-fgaug-s*"))
    assert runner.invoke(app, [*generate, "--overwrite"]).exit_code == 0
    assert not (out / "layouts.jsonl").exists() and not list(out.rglob("*-layout-l*"))
    assert "was made by fgaug generate" in runner.invoke(app, layouts).output
    assert runner.invoke(app, [*layouts, "--overwrite"]).exit_code == 0
    assert not (out / "manifest.jsonl").exists() and not list(out.rglob("*-fgaug-s*"))
    (out / "manifest.jsonl").write_text("")
    mixed = runner.invoke(app, ["validate", str(out)])
    assert mixed.exit_code == 1 and "holds both manifest.jsonl (generate) and layouts.jsonl" in mixed.output


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["generate", "masks", "--temp", "-1"], "Invalid value for '--temp': -1 is not in the range 0<=x."),
        (["generate"], "Missing argument 'MASKS'."),
        (["layouts", "masks", "--output-dir", "x"], "No such option: --output-dir"),
        (["generate", "masks", "--n", "2", "--samples", "3"], "--n is the old spelling of --samples: give one of them"),
    ],
)
def test_a_usage_error_found_while_the_options_are_read_leaves_its_json_on_stdout(
    arguments: list[str], error: str
) -> None:
    """Errors click finds while it reads the options printed only its message on stderr, so a CI
    job keeping stdout as its summary kept an empty file."""
    result = runner.invoke(app, [*arguments, "--json"])
    assert result.exit_code == 2
    printed = json.loads(result.stdout)
    assert printed["exit_code"] == 2 and printed["error"].startswith(error), printed
    assert error.split(":")[0] in result.stderr
