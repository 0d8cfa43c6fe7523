"""The shipped CI example runs as documented: the train split grown by copy-paste, or by samples of a
named model, and the tree checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_ci_script(tmp_path: Path, wait: bool = True, **variables: str) -> Any:
    """``examples/ci_data_prep.sh`` with ``fgaug`` on the PATH running this checkout: its
    completed process, or (``wait`` False) the running one, in a process group of its own as a CI
    runner's job is."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "fgaug"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fgaug "$@"\n')
    shim.chmod(0o755)
    environment = {**os.environ, **variables, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environment.pop("FGAUG_MODEL", None)
    script = ROOT / "examples" / "ci_data_prep.sh"
    if not wait:
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        return subprocess.Popen(
            ["bash", str(script)], cwd=tmp_path, env=environment, text=True, start_new_session=True, **pipes
        )
    return subprocess.run(
        ["bash", str(script)], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600
    )


def test_the_ci_example_grows_the_train_split_by_copy_paste_by_default(small_tree: Path, tmp_path: Path) -> None:
    """Issue 22, item 7: the strategy the measurements support, no model, the train split only."""
    out = tmp_path / "augmented"
    done = run_ci_script(tmp_path, CITYSCAPES=str(small_tree), N="1", OUT=f"{out}/")  # a trailing / as CI jobs write
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (out / ".summary.json").exists()
    summary = json.loads((tmp_path / "augmented.summary.json").read_text().strip().splitlines()[-1])
    assert summary["written"] == 12 and summary["sources"] == 12
    assert {path.parent.parent.name for path in (out / "leftImg8bit").rglob("*.png")} == {"train"}
    assert "12 samples checked, 0 problem(s)" in done.stdout
    settings = json.loads((out / "fgaug-run.json").read_text())["settings"]
    assert settings["photos"] is True and settings["paste"] == 3


def test_the_ci_example_names_its_model_to_generate(small_tree: Path, tmp_path: Path) -> None:
    unnamed = run_ci_script(tmp_path, CITYSCAPES=str(small_tree), STRATEGY="generate", N="1")
    assert unnamed.returncode != 0 and "set MODEL" in unnamed.stderr
    out = tmp_path / "augmented"
    generate = {"CITYSCAPES": str(small_tree), "STRATEGY": "generate", "MODEL": "demo", "N": "1", "OUT": str(out)}
    done = run_ci_script(tmp_path, **generate)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "augmented.summary.json").read_text().strip().splitlines()[-1])
    assert summary["written"] == 12 and summary["model_source"].startswith("--model demo")
    assert {path.parent.parent.name for path in (out / "leftImg8bit").rglob("*.png")} == {"train"}
    # a second job on the same OUT wrote to, then removed, the first one's part summary (one fixed name)
    other_job = tmp_path / "augmented.summary.json.Ab12Cd"
    other_job.write_text("another job's")
    changed = run_ci_script(tmp_path, **generate, SEED="4")
    assert changed.returncode == 1 and "was made with --seed 0; this run has --seed 4" in changed.stderr
    kept = json.loads((tmp_path / "augmented.summary.json").read_text().strip().splitlines()[-1])
    assert kept == summary, "a refused rerun emptied the last summary"
    assert other_job.read_text() == "another job's"
    other_job.unlink()
    assert not list(tmp_path.glob("augmented.summary.json.*")), "a refused rerun left its part summary"
    failed = json.loads((tmp_path / "augmented.failed.json").read_text())  # what the workflow uploads
    assert failed["exit_code"] == 1 and "--seed 4" in failed["error"]
    replaced = run_ci_script(tmp_path, **generate, SEED="4", OVERWRITE="1")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert not (tmp_path / "augmented.failed.json").exists(), "a success left the failure it replaced"
    assert json.loads((out / "fgaug-run.json").read_text())["settings"]["seed"] == 4
    workflow = (ROOT / "examples" / "github-workflow.yml").read_text(encoding="utf-8")
    assert "MODEL: /" in workflow and 'default: "copy-paste"' in workflow and "SPLIT" not in workflow
    # a cancelled run must leave its tree where the next run of the same inputs finds it: actions/cache
    # saves only after a success, and restored any earlier tree, which other inputs then refused
    assert (
        "uses: actions/cache" not in workflow and "OUT: /data/augmented/${{ github.event.inputs.strategy }}" in workflow
    )
    assert "if: always()" in workflow


def test_a_cancelled_ci_example_exits_130_once_fgaug_has_cleaned_up(small_tree: Path, tmp_path: Path) -> None:
    """The runner's SIGTERM to the job's process group killed bash at once (exit 143), while fgaug
    was still cleaning up; a rerun finishes the tree."""
    out = tmp_path / "augmented"
    variables = {"CITYSCAPES": str(small_tree), "STRATEGY": "generate", "MODEL": "demo", "N": "4", "OUT": str(out)}
    running = run_ci_script(tmp_path, wait=False, **variables)
    deadline = time.monotonic() + 120
    while not list(out.rglob("*_leftImg8bit.png")) and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.1)
    os.killpg(running.pid, signal.SIGTERM)
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted by SIGTERM"
    assert not list(out.rglob("*.part")) and not list(tmp_path.glob("augmented.summary.json*"))
    assert json.loads((tmp_path / "augmented.failed.json").read_text())["exit_code"] == 130
    finished = run_ci_script(tmp_path, **variables)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert len(list(out.rglob("*_leftImg8bit.png"))) == 12 * 4


def run_example(name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``examples/<name>`` run as a user runs it, its temporary folders under ``tmp_path``."""
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environment.pop("FGAUG_MODEL", None)
    command = [sys.executable, str(ROOT / "examples" / name)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_the_styles_example_renders_shared_styles_and_walks(tmp_path: Path) -> None:
    assert "8 images" in run_example("styles_and_walks.py", tmp_path).stdout
    strips = sorted(tmp_path.glob("fgaug-styles-*/walk-*/strip.png"))
    assert [path.parent.name for path in strips] == ["walk-photos", "walk-styles"]


def test_the_api_example_runs_and_grows_the_train_split(tmp_path: Path) -> None:
    """docs/model.md points users at it, and no test ran it: it augmented the val split, which the
    README tells users never to do."""
    printed = run_example("api_example.py", tmp_path).stdout
    assert "12 images in" in printed and "samples tensor (2, 4, 3, 16, 32)" in printed
    (augmented,) = tmp_path.glob("fgaug-example-*/augmented")
    assert {path.parent.parent.name for path in (augmented / "leftImg8bit").rglob("*.png")} == {"train"}
