"""Issue-21 options through the command line: train --noise/--condition-dropout, info, and
--guidance/--denoise wherever samples are drawn (generate, evaluate quality)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from same_images import assert_same_up_to_rounding
from same_images import photos as photos_by_name
from test_cli import one_line_error, runner

from fgaug.cli.app import app


@pytest.fixture(scope="module")
def recipe_checkpoint(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `test`-preset model trained a few steps with Gaussian noise and condition dropout."""
    project = tmp_path_factory.mktemp("recipe")
    result = runner.invoke(
        app,
        [
            "train",
            str(small_tree),
            "--preset",
            "test",
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--noise",
            "gaussian:0.03",
            "--condition-dropout",
            "0.2",
            "--warmup-steps",
            "1",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--project",
            str(project),
            "--name",
            "recipe",
            "--no-tensorboard",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "noisy: gaussian:0.03 noise" in result.output, "a noisy model's bits/dim are labelled"
    return project / "recipe" / "checkpoints" / "last.pt"


def test_info_shows_the_training_noise_and_dropout(recipe_checkpoint: Path, test_checkpoint: Path) -> None:
    details = json.loads(runner.invoke(app, ["info", str(recipe_checkpoint), "--json"]).stdout)
    assert details["noise"] == "gaussian:0.03" and details["condition_dropout"] == 0.2
    plain = json.loads(runner.invoke(app, ["info", str(test_checkpoint), "--json"]).stdout)
    assert plain["noise"] == "uniform" and plain["condition_dropout"] == 0.0


GENERATE = ("--n", "2", "--limit", "2", "--device", "cpu", "--split", "val")


def invoke(*arguments: str | Path):
    return runner.invoke(app, [str(argument) for argument in arguments])


def generate(masks: Path, out: Path, model: Path, *extra: str) -> list[dict]:
    result = invoke("generate", "--masks", masks, "--out", out, "--model", model, *GENERATE, *extra)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def photos(out: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in sorted(out.glob("leftImg8bit/**/*.png"))]


def test_generate_with_guidance_and_denoising_records_them(
    small_tree: Path, recipe_checkpoint: Path, tmp_path: Path
) -> None:
    plain = generate(small_tree, tmp_path / "plain", recipe_checkpoint)
    steered = generate(
        small_tree, tmp_path / "steered", recipe_checkpoint, "--guidance", "2", "--denoise", "--denoise-scale", "1.2"
    )
    assert len(steered) == len(plain) == 4
    assert all("guidance" not in record and "denoise_scale" not in record for record in plain)
    for record in steered:
        assert record["guidance"] == 2.0 and record["denoise_scale"] == 1.2
        assert record["likelihood_of"] == "the draw before its denoising step"
    assert [r["seed"] for r in steered] == [r["seed"] for r in plain], "the same draws, steered"
    assert any(
        not np.array_equal(a, b) for a, b in zip(photos(tmp_path / "plain"), photos(tmp_path / "steered"), strict=True)
    )
    steer = ("--guidance", "2", "--denoise", "--denoise-scale", "1.2", "--batch-size", "1")
    again = invoke(
        "generate",
        "--masks",
        small_tree,
        "--out",
        tmp_path / "steered",
        "--model",
        recipe_checkpoint,
        *GENERATE,
        *steer,
    )
    assert again.exit_code == 0 and "4 already done" in again.output, again.output


def test_steered_best_of_is_batch_size_invariant(small_tree: Path, recipe_checkpoint: Path, tmp_path: Path) -> None:
    """Best-of selection, guidance and denoising together: the batch size changes no pixel by more
    than one 8-bit level, and the kept candidates are the same."""
    steer = ["--guidance", "1", "--denoise", "--best-of", "2"]
    one = generate(small_tree, tmp_path / "one", recipe_checkpoint, *steer, "--batch-size", "1")
    many = generate(small_tree, tmp_path / "many", recipe_checkpoint, *steer, "--batch-size", "8")
    assert [r["candidate"] for r in one] == [r["candidate"] for r in many]
    assert_same_up_to_rounding(photos_by_name(tmp_path / "one"), photos_by_name(tmp_path / "many"))


def test_guidance_zero_writes_the_plain_images(small_tree: Path, recipe_checkpoint: Path, tmp_path: Path) -> None:
    generate(small_tree, tmp_path / "plain", recipe_checkpoint)
    generate(small_tree, tmp_path / "zero", recipe_checkpoint, "--guidance", "0")
    assert all(np.array_equal(a, b) for a, b in zip(photos(tmp_path / "plain"), photos(tmp_path / "zero"), strict=True))


def test_evaluate_quality_draws_with_the_sampling_options(
    small_tree: Path, recipe_checkpoint: Path, tmp_path: Path
) -> None:
    result = invoke(
        "evaluate",
        "quality",
        small_tree,
        "--model",
        recipe_checkpoint,
        "--temps",
        "0.8",
        "--n",
        "2",
        "--limit",
        "2",
        "--guidance",
        "1.5",
        "--denoise",
        "--device",
        "cpu",
        "--out",
        tmp_path / "q",
        "--json",
    )
    assert result.exit_code == 0, result.output
    protocol = json.loads(result.stdout)["protocol"]
    assert protocol["guidance"] == 1.5 and protocol["denoise_scale"] == 1.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--guidance", "1"], "trained with condition dropout"),
        (["--denoise"], "trained with Gaussian noise"),
    ],
)
def test_a_model_not_trained_for_an_option_is_a_one_line_error(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    for command in (
        ["generate", "--masks", str(small_tree), "--out", str(tmp_path / "g")],
        ["evaluate", "quality", str(small_tree), "--out", str(tmp_path / "q"), "--temps", "0.8"],
    ):
        result = runner.invoke(app, [*command, "--model", str(test_checkpoint), "--device", "cpu", *extra])
        one_line_error(result, message)
    assert not (tmp_path / "g" / "manifest.jsonl").exists()


@pytest.mark.parametrize(
    "arguments",
    [
        ["generate", "--masks", ".", "--guidance", "-1"],
        ["generate", "--masks", ".", "--denoise", "--denoise-scale", "0"],
        ["generate", "--masks", ".", "--guidance", "nan"],
        ["evaluate", "augment", ".", "--denoise-scale", "-1"],
        ["train", ".", "--noise", "gaussian:x"],
        ["train", ".", "--noise", "gaussian:0"],
        ["train", ".", "--condition-dropout", "1.5"],
    ],
)
def test_bad_values_of_the_new_options_are_usage_errors(arguments: list[str]) -> None:
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2, result.output
