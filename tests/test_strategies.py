"""The registry of augmentation arms (issue 24): one definition behind ``fgaug evaluate augment
--strategy`` and the toy-world study, what each arm needs, and how its synthetic pairs are read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_cli import one_line_error
from typer.testing import CliRunner

from fgaug.cli.app import app
from fgaug.data.cityscapes import find_groups
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.evaluation.augment.protocol import ArmResult, read_pairs
from fgaug.evaluation.augment.strategies import (
    CLASS_WEIGHTS,
    FILTER_PROBE,
    GENERATOR_KINDS,
    STRATEGIES,
    Strategy,
    needs,
)
from fgaug.evaluation.augment.supplies import class_weights, evaluation_supplies
from fgaug.evaluation.augment.synthesis import RealSet, read_synthetic, synthesise
from fgaug.generate.ignore import IGNORE_SUFFIX, ignore_map_file

runner = CliRunner()

STUDY_ARMS = [
    "prior",
    "prior-early-generator",
    "prior-ratio",
    "prior-pretrain",
    "real-pretrain-control",
    "prior-more-data",
    "layouts-flip",
    "layouts-jitter",
    "layouts-paste",
    "layouts-paste-rare",
    "layouts-all",
    "content-paste",
    "content-paste-raw",
    "content-paste-prior",
    "content-all",
    "copy-paste-real",
    "copy-paste-real+content-paste-prior",
    "copy-paste-real+prior",
    "targeted-rare",
    "targeted-hard",
    "filter-best-of-4",
    "filter-reject-half",
    "filter-ignore-map",
]
"""The arms of benchmarks/augmentation_study.py's results (issue 12), in its tables' order, with
the pooled arm of the sample-quality study (issue 21) beside the other pool."""


def test_the_registry_holds_the_study_arms_in_its_order() -> None:
    assert list(STRATEGIES) == STUDY_ARMS


@pytest.mark.parametrize("name", STUDY_ARMS)
def test_every_arm_is_a_valid_recipe(name: str) -> None:
    strategy = STRATEGIES[name]
    assert strategy.description and strategy.per_mask >= 1 and strategy.temperature > 0
    for part in strategy.combines:
        assert part in STRATEGIES and part != name and not STRATEGIES[part].combines, part
    assert all(need in {FILTER_PROBE, CLASS_WEIGHTS} or need.endswith(" generator") for need in needs(name))
    assert Strategy(**vars(strategy)) == strategy  # the dataclass's own checks pass
    more = strategy.with_draws(per_mask=2, temperature=0.5)
    assert more.per_mask == 2 and more.temperature == 0.5
    assert more.layouts is None if strategy.layouts is None else more.layouts.n == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"generator": "magic"}, "generator must be one of"),
        ({"mixing": "blend"}, "mixing must be one of"),
        ({"allocate": "evenly"}, "allocate must be one of"),
        ({"generator": "none"}, "needs layouts written with their photos"),
        ({"content": True}, "needs layouts"),
    ],
)
def test_a_broken_recipe_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Strategy("broken", **fields)  # type: ignore[arg-type]


def test_needs_name_what_an_arm_samples_from_and_judges_with() -> None:
    assert needs("prior") == ("fair generator",)
    assert needs("prior-early-generator") == ("early generator",)
    assert needs("copy-paste-real") == () and needs("real-pretrain-control") == ()
    assert needs("copy-paste-real+content-paste-prior") == ("fair generator",)
    assert needs("copy-paste-real+prior") == ("fair generator",)
    assert needs("targeted-hard") == ("fair generator", CLASS_WEIGHTS)
    assert needs("filter-ignore-map") == ("fair generator", FILTER_PROBE)


def test_evaluate_augment_meets_every_need_but_a_second_generator(tmp_path: Path) -> None:
    supplies = evaluation_supplies(tmp_path, tmp_path / "synthetic", (16, 32), tmp_path / "model.pt", [])
    cannot = {name: supplies.missing(name) for name in STRATEGIES if supplies.missing(name)}
    assert cannot == {"prior-early-generator": ["early generator"], "prior-more-data": ["demo generator"]}
    assert set(GENERATOR_KINDS) == {"fair", "early", "demo", "none", "real"}


def test_the_strategy_help_names_every_arm() -> None:
    from typer.main import get_command

    augment = get_command(app).commands["evaluate"].commands["augment"]
    help_text = next(parameter.help for parameter in augment.params if parameter.name == "strategy")
    assert set(STRATEGIES) <= set(re.split(r"[\s,:;()]+", help_text)), help_text
    assert "docs/augmentation.md" in help_text


def test_the_cli_refuses_an_arm_it_cannot_supply(tmp_path: Path, test_checkpoint: Path) -> None:
    tree = tmp_path / "tree"
    write_toy_cityscapes(tree, {"train": 4, "val": 2, "test": 2}, size=(32, 64), seed=2)
    arguments = ["evaluate", "augment", str(tree), "--model", str(test_checkpoint), "--out", str(tmp_path / "out")]
    for name, missing in (("prior-early-generator", "early generator"), ("prior-more-data", "demo generator")):
        result = runner.invoke(app, [*arguments, "--strategy", name])
        one_line_error(result, f"--strategy {name} needs the {missing}", "--model", code=2)
    assert not (tmp_path / "out").exists()


def evaluate_arm(name: str, tmp_path: Path, checkpoint: Path, seeds: str) -> tuple[dict, Path]:
    """``fgaug evaluate augment --strategy NAME --json`` on a toy tree at N = 3, 2 samples per
    mask, 2-step probes: its report and its output folder."""
    tree, out = tmp_path / "tree", tmp_path / "out"
    write_toy_cityscapes(tree, {"train": 4, "val": 2, "test": 2}, size=(32, 64), seed=2)
    arguments = [*("evaluate", "augment", str(tree), "--model", str(checkpoint), "--strategy", name)]
    arguments += [*("--sizes", "3", "--seeds", seeds, "--samples", "2", "--width", "4", "--batch-size", "4")]
    arguments += [*("--min-steps", "2", "--max-steps", "2", "--out", str(out), "--json", "--device", "cpu")]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1]), out


@pytest.mark.parametrize(("name", "mixing"), [("layouts-flip", "concat"), ("targeted-hard", "concat")])
def test_an_arm_runs_end_to_end_from_the_cli(name: str, mixing: str, tmp_path: Path, test_checkpoint: Path) -> None:
    report, out = evaluate_arm(name, tmp_path, test_checkpoint, "0,1")
    assert report["strategy"] == name and report["synthetic_images"] == {"3": 6}
    assert {arm["mixing"] for arm in report["arms"] if arm["synthetic"]} == {mixing}
    tree_made = out / "synthetic" / name / "N3" / "tree"
    assert len(list((tree_made / "leftImg8bit").rglob("*.png"))) == 6
    if name == "targeted-hard":  # the class weights of its own real-only probes at N = 3
        weights = json.loads((out / "synthetic" / "class-weights" / "N3.json").read_text())
        real_only = [arm for arm in report["arms"] if arm["arm"] == "real only"]
        road = 1 - np.mean([arm["val_per_class_iou"].get("road", 0.0) for arm in real_only])
        assert weights["road"] == pytest.approx(road)


def test_the_arm_mixing_is_the_default_and_an_option_overrides_it(tmp_path: Path, test_checkpoint: Path) -> None:
    tree = tmp_path / "tree"
    write_toy_cityscapes(tree, {"train": 4, "val": 2, "test": 2}, size=(32, 64), seed=2)
    base = ["evaluate", "augment", str(tree), "--model", str(test_checkpoint), "--strategy", "real-pretrain-control"]
    base += ["--sizes", "2", "--seeds", "0", "--width", "4", "--batch-size", "4", "--max-steps", "2", "--json"]
    for extra, mixing in (([], "pretrain"), (["--mixing", "ratio"], "ratio")):
        result = runner.invoke(app, [*base, "--out", str(tmp_path / mixing), *extra])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["mixing"] == mixing and report["synthetic_images"] == {"2": 2}  # the real pairs stand in


def test_the_ignore_map_reader_sets_255_where_the_map_says_so(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_toy_cityscapes(tree, {"train": 2}, size=(16, 32), seed=3)
    groups = find_groups(tree, ["train"]).groups
    assert [ignore_map_file(group) for group in groups] == [None, None]
    ignored = np.zeros((16, 32), dtype=np.uint8)
    ignored[2:5, 7:20] = 255
    path = groups[0].mask.with_name(groups[0].stem + IGNORE_SUFFIX)
    Image.fromarray(ignored).save(path)
    assert ignore_map_file(find_groups(tree, ["train"]).groups[0]) == path
    plain, read = read_pairs(groups, (16, 32)), read_synthetic(tree, (16, 32))
    assert torch.equal(read.photos, plain.photos) and torch.equal(read.labels[1], plain.labels[1])
    mask = torch.from_numpy(ignored == 255)
    assert bool((read.labels[0][mask] == 255).all()) and torch.equal(read.labels[0][~mask], plain.labels[0][~mask])


def test_class_weights_are_one_minus_the_mean_real_only_val_iou(tmp_path: Path) -> None:
    records = [
        ArmResult("real only", 2, seed, 0.5, {}, 0.5, val_iou, steps=1, best_step=1, seconds=0.0)
        for seed, val_iou in enumerate(({"road": 0.9, "pole": 0.2}, {"road": 0.7}))
    ]
    path = class_weights(tmp_path / "weights.json", records)
    assert json.loads(path.read_text()) == pytest.approx({"pole": 0.9, "road": 0.2})
    with pytest.raises(ValueError, match="real-only probes"):
        class_weights(tmp_path / "none.json", [])


def test_an_arm_whose_needs_are_not_supplied_is_refused(tmp_path: Path) -> None:
    supplies = evaluation_supplies(tmp_path, tmp_path / "synthetic", (16, 32), tmp_path / "model.pt", [])
    with pytest.raises(ValueError, match=r"prior-more-data.*demo generator"):
        synthesise("prior-more-data", RealSet([]), supplies)


def test_a_pooled_arm_runs_end_to_end_with_both_parts(tmp_path: Path, test_checkpoint: Path) -> None:
    """``copy-paste-real+prior``: the study's best arm, made of both parts' synthetic data."""
    name = "copy-paste-real+prior"
    report, out = evaluate_arm(name, tmp_path, test_checkpoint, "0")
    assert report["strategy"] == name and report["synthetic_images"] == {"3": 12}
    for part, tree_made in (("copy-paste-real", "layouts"), ("prior", "tree")):
        photos = out / "synthetic" / part / "N3" / tree_made / "leftImg8bit"
        assert len(list(photos.rglob("*.png"))) == 6, part
