"""One name for one thing (issue 22, items 9 and 11): every output is ``--out``/``-o``, inputs are
arguments, the old spellings still work unseen, a wrong flag gets the right one, and ``--help``
is grouped into panels without type noise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from fgaug.cli.app import app
from fgaug.cli.command import DEPRECATED

runner = CliRunner()
WRITERS = [
    "generate",
    "layouts",
    "demo",
    "transfer",
    "prepare",
    "interpolate",
    "segmenter train",
    "evaluate quality",
    "evaluate augment",
]


def command(path: str):
    found = get_command(app)
    for name in path.split():
        found = found.commands[name]
    return found


class CalledError(Exception):
    """Raised by a stand-in for the API, holding what the command line asked of it."""


def captured(monkeypatch: pytest.MonkeyPatch, target: str, arguments: list[str]) -> tuple:
    def stand_in(*args: object, **kwargs: object) -> None:
        raise CalledError(args, kwargs)

    monkeypatch.setattr(target, stand_in)
    result = runner.invoke(app, arguments)
    assert isinstance(result.exception, CalledError), result.output
    args, kwargs = result.exception.args
    progress = [name for name, value in kwargs.items() if hasattr(value, "advance")]
    return [arg for arg in args if not hasattr(arg, "advance")], {k: v for k, v in kwargs.items() if k not in progress}


@pytest.mark.parametrize("path", WRITERS)
def test_every_command_that_writes_takes_out_and_o(path: str) -> None:
    opts = [param.opts for param in command(path).params]
    assert ["--out", "-o"] in opts, opts
    assert not any("--output" in names for names in opts)


def test_train_keeps_project_and_name_and_says_why() -> None:
    help_of = {param.name: param.help for param in command("train").params}
    assert "ultralytics" in help_of["project"] and "--out" in help_of["project"]


@pytest.mark.parametrize(
    ("target", "old", "new"),
    [
        ("fgaug.api.generate", ["generate", "--masks", "m", "--n", "3"], ["generate", "m", "--samples", "3"]),
        ("fgaug.api.generate", ["generate", "--masks=m", "--n=3"], ["generate", "m", "--samples", "3"]),
        ("fgaug.api.layouts", ["layouts", "m", "--n", "3"], ["layouts", "m", "--per-mask", "3"]),
        ("fgaug.api.transfer", ["transfer", "a", "b", "--output", "o"], ["transfer", "a", "b", "-o", "o"]),
        (
            "fgaug.api.prepare",
            ["prepare", "d", "--size", "8x8", "--output", "o.h5"],
            ["prepare", "d", "--size", "8x8", "--out", "o.h5"],
        ),
        ("fgaug.api.demo", ["demo", "--masks", "2", "--n", "3"], ["demo", "--scenes", "2", "--samples", "3"]),
        (
            "fgaug.api.evaluate_quality",
            ["evaluate", "quality", "d", "--n", "2"],
            ["evaluate", "quality", "d", "--samples", "2"],
        ),
        (
            "fgaug.api.evaluate_augment",
            ["evaluate", "augment", "d", "--n", "2"],
            ["evaluate", "augment", "d", "--samples", "2"],
        ),
    ],
)
def test_old_spellings_still_work(target: str, old: list[str], new: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert captured(monkeypatch, target, old) == captured(monkeypatch, target, new)


@pytest.mark.parametrize("old", [["--masks", "n"], ["--masks=n"]])
def test_masks_given_as_the_argument_and_the_old_option_says_so(old: list[str]) -> None:
    """It was click's "Got unexpected extra argument(s) (n)", which never named --masks."""
    result = runner.invoke(app, ["generate", "m", *old, "--model", "demo"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "--masks is the old spelling of the argument MASKS: give MASKS once" in result.output


def test_segmenter_train_output_still_works(small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = ["segmenter", "train", str(small_tree), "--size", "16x32", "--output", str(tmp_path / "p.pt")]
    (options,), _ = captured(monkeypatch, "fgaug.api.train_segmenter", old)
    assert options.out == tmp_path / "p.pt"


@pytest.mark.parametrize("path", sorted(DEPRECATED))
def test_old_spellings_stay_out_of_the_help(path: str) -> None:
    result = runner.invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for old in DEPRECATED[path]:
        assert not re.search(rf"(?<![\w-]){old}(?![\w-])", result.output), (path, old)


@pytest.mark.parametrize(
    ("arguments", "suggested"),
    [
        (["generate", "m", "--output-dir", "x"], "--out"),
        (["generate", "m", "--temperature", "0.5"], "--temp"),
        (["generate", "m", "--weights", "w.pt"], "--model"),
        (["layouts", "m", "-n", "3"], "--per-mask"),
        (["generate", "m", "-n", "3"], "--samples"),
        (["train", "d", "-o", "runs"], "--project"),
        (["train", "d", "--cfg", "c.yaml"], "--config"),
        (["validate", "a", "-o", "x"], None),
        (["layouts", "--masks", "m"], "as an argument: fgaug layouts MASKS"),
        (["train", "--data", "d"], "as an argument: fgaug train [DATA]"),
        (["info", "--checkpoint", "c.pt"], "as an argument: fgaug info CHECKPOINT"),
    ],
)
def test_a_wrong_flag_gets_the_right_one(arguments: list[str], suggested: str | None) -> None:
    result = runner.invoke(app, arguments, prog_name="fgaug", env={"COLUMNS": "200"})
    assert result.exit_code == 2 and f"No such option: {arguments[-2]}" in result.output, result.output
    if suggested:
        assert suggested in result.output, result.output
    else:
        assert "Possible options" not in result.output


def help_lines(path: str, columns: int) -> list[str]:
    result = runner.invoke(app, [*path.split(), "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_generate_help_is_grouped_and_short() -> None:
    """Issue 22 counted 162 lines at 120 columns and 263 at 80 (336 by the time it was fixed)."""
    lines = help_lines("generate", 120)
    text = "\n".join(lines)
    for panel in ("Input", "Sampling", "Strategies", "Output", "Performance"):
        assert f"─ {panel} ─" in text, panel
    assert "<bool>" not in text and "x>=" not in text and "range" not in text and "[default: no-" not in text
    assert len(lines) <= 120 and len(help_lines("generate", 80)) <= 180


@pytest.mark.parametrize("path", ["train", "generate", "layouts", "evaluate quality", "evaluate augment"])
def test_every_option_of_a_long_command_is_in_a_panel(path: str) -> None:
    params = command(path).params
    assert [param.name for param in params if param.param_type_name == "option" and not param.rich_help_panel] == []


@pytest.mark.parametrize("path", ["", "evaluate", "segmenter", "train", "demo", "interpolate"])
def test_no_help_shows_type_noise(path: str) -> None:
    text = "\n".join(help_lines(path, 120))
    assert "<bool>" not in text and "x>=" not in text and "<int range>" not in text


def test_every_on_off_flag_takes_its_opposite_spelling() -> None:
    """docs/cli.md: the opposite spelling of a flag is accepted, to override a ``train --config``
    file; ``--compile`` and ``--denoise`` had none, so a config file's ``compile: true`` stuck."""
    commands = [("", get_command(app))]
    lacking = []
    while commands:
        path, command = commands.pop()
        commands += [(f"{path} {name}", sub) for name, sub in getattr(command, "commands", {}).items()]
        for param in command.params:
            one_way = getattr(param, "is_flag", False) and not param.secondary_opts and param.default is not None
            if one_way and param.name not in {"help", "version", "as_json", "dry_run", "show_completion"}:
                lacking.append(f"{path.strip()} {param.opts[0]}")
    assert lacking == []


def test_resume_and_exist_ok_together_are_a_usage_error(tmp_path: Path) -> None:
    """The two contradict each other, and the run silently resumed."""
    result = runner.invoke(app, ["train", str(tmp_path), "--resume", "--exist-ok"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "--resume goes on with the run, --exist-ok starts it afresh" in result.output
