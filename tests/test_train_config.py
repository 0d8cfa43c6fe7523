"""``fgaug train --config FILE`` (issue 22, item 12): a run's config.json trains the same run again,
option files are read, the command line overrides them, and a wrong key is one line with exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fgaug.cli.app import app

runner = CliRunner()
QUICK = ["--preset", "test", "--steps", "4", "--batch-size", "4", "--warmup-steps", "2", "--workers", "0"]
QUICK += ["--device", "cpu", "--log-every", "1", "--validate-every", "100", "--sample-every", "100"]


def trained(arguments: list[str]) -> None:
    result = runner.invoke(app, ["train", *arguments, "--json"])
    assert result.exit_code == 0, result.output


def saved(run: Path) -> dict:
    return json.loads((run / "config.json").read_text(encoding="utf-8"))


def losses(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {line["step"]: line["loss"] for line in lines if "loss" in line}


def one_line_usage_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_runs_config_trains_the_same_run_again(small_tree: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    trained([str(small_tree), *QUICK, "--project", str(tmp_path), "--name", "first", "--seed", "3"])
    trained(["--config", str(first / "config.json"), "--name", "again"])
    again = tmp_path / "again"
    expected = saved(first)
    expected["train"]["run_dir"] = str(again)
    assert saved(again) == expected
    assert losses(again) == losses(first) and len(losses(first)) == 4


def test_the_command_line_overrides_an_option_file(small_tree: Path, tmp_path: Path) -> None:
    options = {"data": str(small_tree), "preset": "test", "batch-size": 2, "steps": 9, "seed": 5, "workers": 0}
    options |= {"device": "cpu", "validate_every": 100, "sample_every": 100, "project": str(tmp_path)}
    path = tmp_path / "city.json"
    path.write_text(json.dumps(options), encoding="utf-8")
    trained(["--config", str(path), "--steps", "2", "--name", "run"])
    train = saved(tmp_path / "run")["train"]
    assert (train["steps"], train["batch_size"], train["seed"]) == (2, 2, 5)
    trained(["--config", str(path), "--epochs", "1", "--name", "by-epochs"])  # the file's steps trained 9
    train = saved(tmp_path / "by-epochs")["train"]
    assert (train["steps"], train["epochs"]) == (None, 1)


def test_a_resume_refuses_a_default_given_against_the_runs_setting(small_tree: Path, tmp_path: Path) -> None:
    """``--resume --preset tiny`` on a run of preset ``test`` trained on as ``test``: tiny is the
    default, and the value alone could not tell it from no option."""
    project = ["--project", str(tmp_path), "--name", "run"]
    trained([str(small_tree), *QUICK, *project, "--seed", "3"])
    result = runner.invoke(app, ["train", str(small_tree), *project, "--resume", "--preset", "tiny", "--seed", "0"])
    one_line_usage_error(result, "--preset tiny (the run has test)", "--seed 0 (the run has 3)")
    trained([str(small_tree), *project, "--resume", "--steps", "5", "--device", "cpu", "--workers", "0"])
    assert len(losses(tmp_path / "run")) == 5


@pytest.mark.parametrize("name", ["../outside", "/tmp/elsewhere", ".", "a/../.."])
def test_a_run_name_never_leaves_the_project(name: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(tmp_path), "--project", str(tmp_path / "runs"), "--name", name])
    unboxed = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and "--name" in unboxed and "is no run name inside --project" in unboxed, unboxed
    assert not (tmp_path / "runs").exists()


def test_a_yaml_option_file_is_read(small_tree: Path, tmp_path: Path) -> None:
    path = tmp_path / "city.yaml"
    path.write_text(
        f"data: {small_tree}\npreset: test\nsteps: 2\nbatch_size: 4\nsize: 16x32\nboundary: true\nworkers: 0\n"
        f"device: cpu\nvalidate-every: 100\nsample-every: 100\nproject: {tmp_path}\nname: run\n",
        encoding="utf-8",
    )
    trained(["--config", str(path), "--no-boundary"])
    train = saved(tmp_path / "run")["train"]
    assert train["size"] == [16, 32] and train["boundary"] is False and train["steps"] == 2


def test_yaml_without_pyyaml_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    path = tmp_path / "city.yaml"
    path.write_text("steps: 2\n", encoding="utf-8")
    one_line_usage_error(runner.invoke(app, ["train", "--config", str(path)]), str(path), "PyYAML", "JSON")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ({"steps": 2, "step_size": 3}, ["unknown key 'step_size'"]),
        ({"batchsize": 4}, ["unknown key 'batchsize' (did you mean 'batch_size'?"]),
        ({"batch-size": "four"}, ["batch_size: Invalid value for '--batch-size'"]),
        ({"lr": -1}, ["lr: Invalid value"]),
        ({"json": True}, ["unknown key 'json'"]),
        (
            {"preset": "test", "model": {}, "train": {"data": "x", "learning_rate": 1}},
            ["unknown key 'train.learning_rate'"],
        ),
        ({"preset": "test", "model": {}, "train": {"data": "x", "val_limit": 3}}, ["train.val_limit", "fgaug.api"]),
        ([1, 2], ["a mapping of option names"]),
    ],
)
def test_a_wrong_key_is_one_line_naming_the_file(content: object, fragments: list[str], tmp_path: Path) -> None:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    one_line_usage_error(runner.invoke(app, ["train", "--config", str(path)]), str(path), *fragments)


def test_a_bad_value_in_the_file_is_refused_as_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "options.json"
    path.write_text(json.dumps({"steps": 0}), encoding="utf-8")
    result = runner.invoke(app, ["train", "x", "--config", str(path)])
    assert result.exit_code == 2 and "--steps" in result.output and str(path) in result.output, result.output


def test_a_boolean_is_no_number_in_an_option_file(tmp_path: Path) -> None:
    """``steps: true`` in a YAML file trained one step."""
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"steps": True, "boundary": True}), encoding="utf-8")
    one_line_usage_error(runner.invoke(app, ["train", "--config", str(path)]), f"{path}: steps: true is not a valid")


def test_an_option_file_error_leaves_its_json_on_stdout(tmp_path: Path) -> None:
    """With ``--json``, an error found while the options were read printed nothing on stdout."""
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps({"stepz": 3}), encoding="utf-8")
    result = runner.invoke(app, ["train", "--config", str(path), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "error": f"{path}: unknown key 'stepz' (did you mean 'steps'? the keys are train's options: "
        "fgaug train --help)",
        "exit_code": 2,
    }


def test_a_size_the_model_cannot_take_is_a_usage_error(small_tree: Path, tmp_path: Path) -> None:
    """``--size 30x64`` exited 1, as a broken preset does, where a malformed ``--size 32`` exits 2."""
    arguments = ["train", str(small_tree), "--preset", "test", "--size", "30x64", "--project", str(tmp_path)]
    one_line_usage_error(runner.invoke(app, arguments), "--size 30x64 must be divisible by 2**n_block = 4")
    assert not list(tmp_path.iterdir())
