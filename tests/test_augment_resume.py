"""``fgaug evaluate augment`` continues an interrupted study with the probes it finished, and
refuses a rerun with other settings before it trains anything (a newcomer saw it start over
after Ctrl-C, and refuse a changed ``--samples`` only after training the real-only probes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_cli import one_line_error
from typer.testing import CliRunner

from fgaug.cli.app import app
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.evaluation.augment import study

runner = CliRunner()


class CountedProbes:
    """Counts the probes the study trains; with ``stop_at``, interrupts the study at that probe."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_at: int | None = None) -> None:
        self.trained, self.stop_at = 0, stop_at
        monkeypatch.setattr(study, "run_arm", self)

    def __call__(self, *arguments: Any, **options: Any) -> Any:
        if self.trained == self.stop_at:
            raise KeyboardInterrupt
        self.trained += 1
        return RUN_ARM(*arguments, **options)


RUN_ARM = study.run_arm


def augment(tree: Path, out: Path, *extra: str) -> Any:
    arguments = [*("evaluate", "augment", str(tree), "--model", "demo", "--strategy", "layouts-flip")]
    arguments += [*("--sizes", "3", "--seeds", "0,1", "--samples", "2", "--width", "4", "--batch-size", "4")]
    arguments += [*("--min-steps", "2", "--max-steps", "2", "--out", str(out), "--json", "--device", "cpu")]
    return runner.invoke(app, [*arguments, *extra])


def test_an_interrupted_study_trains_only_the_probes_it_had_not_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    write_toy_cityscapes(tree, {"train": 4, "val": 2, "test": 2}, size=(64, 128), seed=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "my_figure.png").write_bytes(b"the user's")  # not the study's: never refused or removed
    whole = augment(tree, tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    expected = json.loads(whole.stdout.strip().splitlines()[-1])["arms"]

    interrupted = CountedProbes(monkeypatch, stop_at=3)
    assert augment(tree, tmp_path / "out").exit_code == 130
    assert len((tmp_path / "out" / "probes.jsonl").read_text().splitlines()) == 3
    resumed_probes = CountedProbes(monkeypatch)
    resumed = augment(tree, tmp_path / "out")
    assert resumed.exit_code == 0, resumed.output
    assert interrupted.trained == 3 and resumed_probes.trained == 1
    arms = json.loads(resumed.stdout.strip().splitlines()[-1])["arms"]
    key = ("arm", "real", "seed", "test_miou", "per_class_iou", "steps", "best_step", "synthetic")
    assert [[arm[k] for k in key] for arm in arms] == [[arm[k] for k in key] for arm in expected]
    outcome = json.loads((tmp_path / "out" / "fgaug-run.json").read_text())["outcome"]
    assert outcome == {"requested": 4, "in_tree": 4, "accepted": True}

    more_seeds = CountedProbes(monkeypatch)
    assert augment(tree, tmp_path / "out", "--seeds", "0,1,2").exit_code == 0
    assert more_seeds.trained == 2

    refused = CountedProbes(monkeypatch)
    changed = augment(tree, tmp_path / "out", "--samples", "3")
    one_line_error(changed, "was made with --samples 2; this run has --samples 3; use --overwrite")
    assert refused.trained == 0
    replaced = augment(tree, tmp_path / "out", "--samples", "3", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert refused.trained == 4 and (tmp_path / "out" / "my_figure.png").read_bytes() == b"the user's"

    # --overwrite replaced only the synthetic trees of its own sizes: N3's stayed, made with --samples 3,
    # and a later run adding size 3 was refused by that tree's record, naming --per-mask
    assert augment(tree, tmp_path / "out", "--sizes", "2", "--overwrite").exit_code == 0
    assert not list((tmp_path / "out" / "synthetic").rglob("N3"))
    grown = augment(tree, tmp_path / "out", "--sizes", "2,3")
    assert grown.exit_code == 0, grown.output


def test_a_study_that_fails_before_its_first_probe_leaves_nothing(tmp_path: Path) -> None:
    """``--sizes 40`` on 4 training pairs failed after the study's record was written, and the
    folder was left with an unfinished ``fgaug-run.json``; ``--test-split train`` was accepted."""
    tree = tmp_path / "tree"
    write_toy_cityscapes(tree, {"train": 4, "val": 2, "test": 2}, size=(64, 128), seed=2)
    one_line_error(augment(tree, tmp_path / "out", "--sizes", "40"), "the largest real-set size 40 exceeds")
    assert not (tmp_path / "out").exists()
    one_line_error(augment(tree, tmp_path / "out", "--test-split", "train"), "may not be train", code=2)
