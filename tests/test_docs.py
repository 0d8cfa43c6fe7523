"""The documentation (issue 22, item 10): a short README, a command reference generated from the
CLI and checked against it, and links that resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fgaug.cli import docs

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_the_committed_reference_matches_the_cli() -> None:
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == docs.reference(), (
        "regenerate it: python -m fgaug.cli.docs docs/cli.md"
    )


def test_the_check_names_the_command_that_regenerates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(docs.reference().replace("--samples", "--n"), encoding="utf-8")
    assert docs.main(["--check", str(stale)]) == 1
    assert f"regenerate it: python -m fgaug.cli.docs {stale}" in capsys.readouterr().err
    assert docs.main([str(stale)]) == 0 and docs.main(["--check", str(stale)]) == 0


def test_an_option_is_no_path_to_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m fgaug.cli.docs --help`` wrote the reference to a file named ``--help`` (one was
    committed)."""
    monkeypatch.chdir(tmp_path)
    assert docs.main(["--help"]) == 2 and not list(tmp_path.iterdir())
    assert not (ROOT / "--help").exists()


def test_the_reference_holds_every_option_and_the_old_spellings() -> None:
    text = docs.reference()
    for option in ("--out` / `-o", "--samples", "--per-mask", "--scenes", "--config", "--guidance", "--style-seed"):
        assert option in text, option
    assert "`--masks` (now an argument)" in text and "`--output` (now `--out`)" in text
    assert "<bool>" not in text and "x>=" not in text


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of ``page``."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: {target}"


def test_the_readme_is_short_and_answers_does_it_help() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.split()) <= 1500
    answer = readme.split("## Does it help?", 1)[1].split("\n## ", 1)[0]
    assert "](benchmarks/figures/augmentation-bundled-model.png)" in answer
    for internal in ("GOMP_SPINCOUNT", "glow2", "issue-5"):
        assert internal not in readme, internal


def test_every_checkpoint_path_shown_is_where_train_writes_it() -> None:
    """``fgaug train --name NAME`` writes ``runs/NAME/checkpoints/{best,last}.pt``; an example that
    names ``runs/NAME/best.pt`` fails for whoever copies it."""
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "fgaug" / "cli").glob("*.py")]
    shown = {path for text in texts for path in re.findall(r"runs/[^\s`\"')]+\.pt", text.read_text(encoding="utf-8"))}
    assert shown and all(re.fullmatch(r"runs/[\w.-]+/checkpoints/(best|last)\.pt", path) for path in shown), shown


def test_the_model_pages_python_example_runs_as_written() -> None:
    """It treated ``model.sample``'s result as the images tensor (``Samples.images`` is) and called
    the round trip of ``torch.rand`` photos exact (it is for 8-bit photos)."""
    page = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
    example = next(block for block in re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL) if "FullGlow(" in block)
    names: dict[str, object] = {}
    exec(compile(example, "docs/model.md", "exec"), names)
    torch = names["torch"]
    images, mask, photo = names["images"], names["mask"], names["photo"]
    assert images.shape == (2, 5, 3, 64, 128)  # type: ignore[attr-defined]
    decoded = names["model"].decode(mask, names["latents"])  # type: ignore[attr-defined]
    assert torch.equal(decoded, photo)  # type: ignore[attr-defined]


def documented_json_keys() -> dict[str, set[str]]:
    """The keys docs/ci.md's table names for each command's ``--json`` object."""
    rows = re.findall(r"^\s*\| `(\w+)` \|(.*)\|(.*)\|$", (ROOT / "docs" / "ci.md").read_text(), re.MULTILINE)
    return {command: set(re.findall(r"`(\w+)`", where + what)) for command, where, what in rows}


def test_the_json_keys_docs_ci_names_are_what_each_command_prints(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A CI job reads these keys; the table must not name one a command does not print."""
    import json

    from typer.testing import CliRunner

    from fgaug.cli.app import app

    val = small_tree / "gtFine" / "val"
    mask = next(val.rglob("*_labelIds.png"))
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    model = ["--model", str(test_checkpoint)]
    runs = {
        "generate": [str(val), *model, "--samples", "1", "--limit", "1", "-o", str(tmp_path / "gen")],
        "validate": [str(tmp_path / "gen")],
        "layouts": [str(small_tree), "--split", "val", "--per-mask", "1", "--limit", "1", "-o", str(tmp_path / "lay")],
        "train": [str(small_tree), "--preset", "test", "--steps", "1", "--workers", "0", "--project", str(tmp_path)],
        "prepare": [str(val), "--size", "16x32", "-o", str(tmp_path / "cache.h5")],
        "transfer": [str(photo), str(mask), *model, "-o", str(tmp_path / "moved.png")],
        "interpolate": [str(mask), *model, "--from", "1", "--to", "2", "-o", str(tmp_path / "walk")],
        "info": [str(test_checkpoint)],
    }
    documented = documented_json_keys()
    assert set(documented) == set(runs)
    for command, arguments in runs.items():
        result = CliRunner().invoke(app, [command, *arguments, "--json"])
        assert result.exit_code == 0, f"{command}: {result.output}"
        printed = set(json.loads(result.stdout.strip().splitlines()[-1]))
        sampled = {"model", "model_sha256", "model_id"} if "--model" in arguments else set()
        assert documented[command] | sampled <= printed, f"{command}: {(documented[command] | sampled) - printed}"
