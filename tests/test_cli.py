"""The command line: help with examples, one-line errors with non-zero exits, JSON output."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from smooth_masks import smoothly_resized_colour_masks
from strict import strict_json
from typer._click.core import ParameterSource
from typer.main import get_command
from typer.testing import CliRunner

from fgaug import runtime
from fgaug.cli.app import app
from fgaug.cli.docs import walk
from fgaug.data.io import file_digest
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.data.validate import validate_tree
from fgaug.generate.options import find_model
from fgaug.training.checkpoint import CheckpointError, load_checkpoint

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        "train",
        "generate",
        "transfer",
        "prepare",
        "info",
        "demo",
        "validate",
        "evaluate quality",
        "evaluate augment",
        "segmenter train",
    ],
)
def test_every_command_has_help_with_examples(command: str) -> None:
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


@pytest.mark.parametrize(("native", "said"), [(True, "native bf16"), (False, "no native bf16")])
def test_env_says_whether_the_cpu_computes_bf16_natively(
    native: bool, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0
    cpu_line = next(line for line in result.output.splitlines() if line.startswith("CPU: "))
    assert f", {said}; threads: " in cpu_line


@pytest.mark.parametrize(("capability", "said"), [("AVX512", "oneDNN, called by fgaug"), ("AVX2", "torch's choice")])
def test_env_names_the_cpu_kernels_and_who_runs_the_networks_convolutions(
    capability: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0
    kernels_line = next(line for line in result.output.splitlines() if line.startswith("CPU kernels: "))
    assert kernels_line.startswith(f"CPU kernels: {capability}; ")
    assert (said in kernels_line) == (capability != "AVX512" or torch.backends.mkldnn.is_available())


def one_line_error(result, *fragments: str, code: int = 1) -> None:
    """One error line, the last but for the same error as JSON on stdout where ``--json`` asked."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith('{"error": ')]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output  # progress lines may precede it
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_train_cuda_graphs_without_cuda_is_a_one_line_error(small_tree: Path, tmp_path: Path) -> None:
    for extra in ([str(small_tree), "--project", str(tmp_path)], ["--dry-run"]):
        result = runner.invoke(app, ["train", *extra, "--preset", "test", "--device", "cpu", "--cuda-graphs"])
        one_line_error(result, "--cuda-graphs needs a CUDA device, not cpu")


def test_train_init_from_a_missing_or_another_model_is_a_one_line_error(small_tree: Path, tmp_path: Path) -> None:
    base = ["train", str(small_tree), "--preset", "test", "--device", "cpu", "--steps", "2", "--project", str(tmp_path)]
    one_line_error(runner.invoke(app, [*base, "--init-from", str(tmp_path / "absent.pt")]), "absent.pt")
    demo = runner.invoke(app, [*base, "--name", "demo", "--init-from", "demo"])
    one_line_error(demo, "demo-toy-64x128.pt: its model is not this run's", "image_size [64, 128] there, [16, 32] here")


def test_wrong_path(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--masks", str(tmp_path / "nope"), "--model", "demo"])
    one_line_error(result, "nope", "no such file")


@pytest.mark.parametrize(
    "command",
    [
        "generate --masks {tree}/gtFine/val --out {tmp}/out",
        "transfer {photo} {mask} -o {tmp}/moved.png",
        "evaluate quality {tree} --out {tmp}/quality",
        "evaluate augment {tree} --out {tmp}/augment",
    ],
)
def test_commands_that_sample_need_a_named_model(
    command: str, small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No checkpoint is picked up from ./runs or the bundled demo model unless it is named."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FGAUG_MODEL", raising=False)
    (tmp_path / "runs" / "old" / "checkpoints").mkdir(parents=True)
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    mask = next((small_tree / "gtFine" / "val").rglob("*_labelIds.png"))
    arguments = command.format(tree=small_tree, tmp=tmp_path, photo=photo, mask=mask).split()
    result = runner.invoke(app, arguments)
    one_line_error(result, "no model named: pass --model CHECKPOINT (--model demo", "$FGAUG_MODEL", code=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"], "nothing written"


def test_transfer_records_its_model(small_tree: Path, tmp_path: Path, monkeypatch) -> None:
    bundled = find_model("demo")[0]
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    mask = next((small_tree / "gtFine" / "val").rglob("*_labelIds.png"))
    monkeypatch.setenv("FGAUG_MODEL", "demo")
    result = runner.invoke(app, ["transfer", str(photo), str(mask), "-o", str(tmp_path / "moved.png"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["model"], summary["model_sha256"]) == (str(bundled), file_digest(bundled))
    assert summary["model_source"] == "$FGAUG_MODEL demo: the bundled toy-world model"
    result = runner.invoke(app, ["transfer", str(photo), str(mask), "-o", str(tmp_path / "moved.png")])
    assert result.stdout.strip().splitlines()[-1].startswith(f"model: {bundled} ($FGAUG_MODEL demo")


def test_unknown_preset(small_tree: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(small_tree), "--preset", "huge", "--project", str(tmp_path)])
    one_line_error(result, "unknown preset 'huge'", code=2)


def test_mask_with_unknown_ids(test_checkpoint: Path, tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.full((16, 32), 77, np.uint8)).save(masks / "bad_gtFine_labelIds.png")
    result = runner.invoke(
        app, ["generate", "--masks", str(masks), "--model", str(test_checkpoint), "--out", str(tmp_path / "out")]
    )
    one_line_error(result, "bad_gtFine_labelIds.png", "unknown label ids [77]")


def test_corrupt_and_foreign_checkpoints(tmp_path: Path, small_tree: Path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    one_line_error(runner.invoke(app, ["info", str(corrupt)]), "corrupt.pt", "not a readable checkpoint")
    import torch

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    one_line_error(runner.invoke(app, ["info", str(foreign)]), "not an fgaug checkpoint")
    result = runner.invoke(
        app,
        [
            "generate",
            "--masks",
            str(small_tree / "gtFine" / "val"),
            "--model",
            str(corrupt),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    one_line_error(result, "corrupt.pt")


def test_a_checkpoint_with_one_byte_changed_is_refused_naming_the_damaged_record(
    tmp_path: Path, test_checkpoint: Path
) -> None:
    """torch.load took such a file without a word: a weight silently wrong."""
    flipped = tmp_path / "flipped.pt"
    data = bytearray(test_checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the weights' records, far from the archive's directory
    flipped.write_bytes(bytes(data))
    expected = r"flipped\.pt: a damaged checkpoint: its record data/\d+ does not match its checksum"
    one_line_error(runner.invoke(app, ["info", str(flipped)]), "flipped.pt", "does not match its checksum")
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(flipped)
    load_checkpoint(test_checkpoint)  # the file it was copied from loads


class NotWeights:
    """A class a pickle can hold but a weights-only checkpoint must not."""


@pytest.mark.parametrize(
    "content",
    [bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), b"hello\n", b"\x89PNG\r\n\x1a\n", b""],
    ids=["random bytes", "text", "png", "empty"],
)
def test_a_file_that_is_not_a_torch_file_is_named_as_such(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    result = runner.invoke(app, ["info", str(path)])
    one_line_error(result, f"{path}: not a checkpoint (not a torch file)")
    assert "PyTorch 2.6" not in result.output


def test_a_pickle_holding_objects_is_refused(tmp_path: Path) -> None:
    import pickle

    import torch

    saved, pickled = tmp_path / "saved.pt", tmp_path / "pickled.pt"
    torch.save({"model": NotWeights()}, saved)
    pickled.write_bytes(pickle.dumps(NotWeights(), protocol=2))
    for path in (saved, pickled):
        result = runner.invoke(app, ["info", str(path)])
        one_line_error(result, str(path), "refused to load: holds more than weights", "NotWeights")
        assert "PyTorch 2.6" not in result.output


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["generate"]).exit_code == 2
    assert runner.invoke(app, ["prepare", "x", "--size", "big"]).exit_code == 2


BAD_NUMBERS = [
    ("train x", "--batch-size", "0"),
    ("train x", "--lr", "0"),
    ("train x", "--steps", "0"),
    ("train x", "--epochs", "-1"),
    ("train x", "--lambda", "-1"),
    ("train x", "--condition-dropout", "1"),
    ("train x", "--seed", "-1"),
    ("train x", "--warmup-steps", "-1"),
    ("train x", "--grad-clip", "0"),
    ("train x", "--ema-decay", "1"),
    ("train x", "--checkpoint-every", "0"),
    ("train x", "--validate-every", "0"),
    ("train x", "--sample-every", "0"),
    ("train x", "--patience", "-1"),
    ("train x", "--log-every", "0"),
    ("train x", "--workers", "-1"),
    ("generate x", "--samples", "-1"),
    ("generate x", "--temp", "-1"),
    ("generate x", "--seed", "-1"),
    ("generate x", "--batch-size", "0"),
    ("generate x", "--best-of", "0"),
    ("generate x", "--limit", "0"),
    ("generate x", "--reject", "1"),
    ("generate x", "--ignore-below", "0"),
    ("generate x", "--allow-failed", "1.5"),
    ("layouts x", "--per-mask", "0"),
    ("layouts x", "--paste", "-1"),
    ("layouts x", "--flip-probability", "2"),
    ("layouts x", "--jitter-probability", "-0.5"),
    ("layouts x", "--max-scale", "0.5"),
    ("layouts x", "--rare-boost", "-1"),
    ("layouts x", "--seed", "-1"),
    ("layouts x", "--limit", "0"),
    ("demo", "--samples", "0"),
    ("demo", "--scenes", "0"),
    ("demo", "--temp", "-1"),
    ("segmenter train x --size 16x32", "--steps", "0"),
    ("segmenter train x --size 16x32", "--batch-size", "0"),
    ("segmenter train x --size 16x32", "--lr", "-1"),
    ("segmenter train x --size 16x32", "--width", "0"),
    ("segmenter train x --size 16x32", "--seed", "-1"),
    ("evaluate quality x", "--samples", "0"),
    ("evaluate quality x", "--rounds", "0"),
    ("evaluate quality x", "--limit", "0"),
    ("evaluate quality x", "--seed", "-1"),
    ("evaluate quality x", "--temps", "0.5,-1"),
    ("evaluate quality x", "--temps", "0.8,,0.9"),
    ("evaluate quality x", "--temps", "0.8,"),
    ("evaluate augment x", "--seeds", "0,,1"),
    ("evaluate augment x", "--sizes", "2,2"),
    ("evaluate augment x", "--seeds", "1,0,1"),
    ("evaluate augment x", "--sizes", "0,10"),
    ("evaluate augment x", "--sizes", "2.5"),
    ("evaluate augment x", "--seeds", "-1"),
    ("evaluate augment x", "--samples", "0"),
    ("evaluate augment x", "--temp", "-1"),
    ("evaluate augment x", "--width", "0"),
    ("evaluate augment x", "--batch-size", "0"),
    ("evaluate augment x", "--min-steps", "0"),
    ("evaluate augment x", "--max-steps", "0"),
    ("evaluate augment x", "--schedules", "0"),
]


@pytest.mark.parametrize(("command", "option", "value"), BAD_NUMBERS)
def test_out_of_range_numbers_are_usage_errors_naming_the_option(command: str, option: str, value: str) -> None:
    """Refused as the command line is read (exit 2), before any input is looked at."""
    result = runner.invoke(app, [*command.split(), option, value])
    assert result.exit_code == 2, result.output
    python_name = option.removeprefix("--").replace("-", "_")
    assert option in result.output and ("_" not in python_name or python_name not in result.output), result.output


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    ("command", "option", "template"),
    [
        ("train x", "--lr", "{}"),
        ("train x", "--epochs", "{}"),
        ("train x", "--lambda", "{}"),
        ("train x", "--grad-clip", "{}"),
        ("train x", "--ema-decay", "{}"),
        ("generate --masks x", "--temp", "{}"),
        ("demo", "--temp", "{}"),
        ("segmenter train x --size 16x32", "--lr", "{}"),
        ("evaluate augment x", "--temp", "{}"),
        ("evaluate augment x", "--seeds", "0,{}"),
        ("evaluate quality x", "--temps", "0.5,{}"),
    ],
)
def test_non_finite_numbers_are_usage_errors(command: str, option: str, template: str, value: str) -> None:
    result = runner.invoke(app, [*command.split(), option, template.format(value)])
    assert result.exit_code == 2, result.output
    assert "finite" in result.output and option in result.output, result.output


def test_options_the_api_refuses_are_usage_errors(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    arguments = ["generate", "--masks", str(small_tree / "gtFine" / "val"), "--model", str(test_checkpoint)]
    arguments += ["--out", str(tmp_path / "out")]
    one_line_error(runner.invoke(app, [*arguments, "--content-fill", "magic"]), "--content-fill must be one of", code=2)
    one_line_error(runner.invoke(app, [*arguments, "--device", "gpu"]), "unknown device 'gpu'", code=2)
    one_line_error(runner.invoke(app, [*arguments, "--precision", "fp8"]), "unknown precision 'fp8'", code=2)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_number_means_that_cuda_device_and_is_refused_without_cuda(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    arguments = ["generate", "--masks", str(small_tree / "gtFine" / "val"), "--model", str(test_checkpoint)]
    result = runner.invoke(app, [*arguments, "--out", str(tmp_path / "out"), "--device", "0"])
    one_line_error(result, "device '0' (cuda:0) asked for, but CUDA is not available on this machine")


def test_info_and_generate_json(test_checkpoint: Path, small_tree: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(test_checkpoint), "--json"])
    assert result.exit_code == 0
    details = json.loads(result.output)
    assert details["image_size"] == [16, 32] and details["resumable"] and details["preset"] == "test"
    assert details["has_ema"] and details["step"] == 8
    bundled = json.loads(runner.invoke(app, ["info", "demo", "--json"]).output)  # exported EMA weights only
    assert not bundled["has_ema"] and not bundled["resumable"] and bundled["preset"] == "tiny"
    result = runner.invoke(
        app,
        [
            "generate",
            "--masks",
            str(small_tree / "gtFine" / "val"),
            "--model",
            str(test_checkpoint),
            "--n",
            "2",
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["written"] == 8 and summary["failed"] == 0 and summary["model_source"] == "--model"
    digest = file_digest(test_checkpoint)
    assert summary["model"] == str(test_checkpoint) and summary["model_sha256"] == digest
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert {json.loads(line)["model_sha256"] for line in manifest} == {digest}


def test_prepare_takes_a_split_folders_own_split_and_refuses_another_named(small_tree: Path, tmp_path: Path) -> None:
    """``prepare cs/gtFine/val`` prepared the val pairs whatever ``--split`` said: a default could
    not be told from ``--split train`` given."""

    def prepared(*arguments: str) -> tuple[int, str]:
        cache = tmp_path / "c.h5"
        result = runner.invoke(app, ["prepare", *arguments, "--size", "16x32", "-o", str(cache), "--json"])
        cache.unlink(missing_ok=True)
        return result.exit_code, result.stdout.strip().splitlines()[-1]

    val = str(small_tree / "gtFine" / "val")
    assert json.loads(prepared(val)[1])["written"] == 4
    assert json.loads(prepared(val, "--split", "val")[1])["written"] == 4
    assert json.loads(prepared(str(small_tree), "--split", "val")[1])["written"] == 4
    code, line = prepared(val, "--split", "train")
    assert code == 1 and "a folder of split 'val', not of --split train" in json.loads(line)["error"]


def test_prepare_then_train_from_the_cache(small_tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "train.h5"
    result = runner.invoke(app, ["prepare", str(small_tree), "--size", "16x32", "-o", str(cache), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["written"] == 12
    result = runner.invoke(
        app,
        [
            "train",
            str(cache),
            "--preset",
            "test",
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--project",
            str(tmp_path),
            "--name",
            "cached",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["images"] == 3 * 4
    assert summary["seconds"] > 0 and summary["images_per_s"] == pytest.approx(12 / summary["seconds"], rel=0.01)
    assert summary["peak_memory_mib"] > 0 and summary["peak_memory_kind"] == "process resident set"
    assert summary["precision"] == "fp32"


def test_transfer_single_and_folders(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    structure = next((small_tree / "gtFine" / "train").rglob("*_labelIds.png"))
    out = tmp_path / "moved.png"
    result = runner.invoke(
        app, ["transfer", str(photo), str(structure), "-o", str(out), "--model", str(test_checkpoint)]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == Image.open(structure).size
    result = runner.invoke(
        app,
        [
            "transfer",
            str(small_tree / "leftImg8bit" / "val"),
            str(small_tree / "gtFine" / "val"),
            "-o",
            str(tmp_path / "many"),
            "--model",
            str(test_checkpoint),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    transfers = json.loads(result.stdout.strip().splitlines()[-1])["transfers"]
    assert len(transfers) == 4 * 4
    names = [path.name for path in (tmp_path / "many").iterdir()]  # no photo named like a label file
    assert len(names) == 16 and all(name.endswith("_000019.png") and "__on__" in name for name in names), names
    lonely = tmp_path / "lonely.png"
    Image.open(photo).save(lonely)
    one_line_error(
        runner.invoke(app, ["transfer", str(lonely), str(structure), "--model", str(test_checkpoint)]),
        "lonely.png",
        "--content-mask",
    )


def test_transfer_pairs_need_no_arguments_and_refuse_ones_that_are_no_folders(small_tree: Path, tmp_path: Path) -> None:
    """``transfer --pairs FILE`` asked for CONTENT and STRUCTURE, then ignored the paths given."""
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    structure = next((small_tree / "gtFine" / "train").rglob("*_labelIds.png"))
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"# content structure\n{photo} {structure}\n")
    base = ["transfer", "--pairs", str(pairs), "--model", "demo", "--device", "cpu", "-o", str(tmp_path / "out")]
    result = runner.invoke(app, [*base, "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout.strip().splitlines()[-1])["transfers"]) == 1
    ignored = runner.invoke(app, [*base[:1], str(tmp_path / "nothing"), str(tmp_path / "nowhere"), *base[1:]])
    one_line_error(ignored, "with --pairs, CONTENT is the folder its paths are relative to", code=2)
    one_line_error(runner.invoke(app, ["transfer", "--model", "demo"]), "give CONTENT and STRUCTURE", code=2)
    missing = tmp_path / "nope_leftImg8bit.png"
    one_line_error(
        runner.invoke(app, ["transfer", str(missing), str(structure), "--model", "demo"]), f"{missing}: file not found"
    )


def test_option_errors_raised_in_a_command_name_their_option(small_tree: Path, tmp_path: Path) -> None:
    """``--size 64``, ``interpolate --temp -1`` and ``transfer -o out.jpg`` named no option, or
    wrote PNG bytes under a .jpg name."""
    size = runner.invoke(app, ["prepare", str(small_tree), "--size", "64", "-o", str(tmp_path / "c.h5")])
    assert size.exit_code == 2 and "--size" in size.output and "HEIGHTxWIDTH" in size.output, size.output
    odd = runner.invoke(app, ["prepare", str(small_tree), "--size", "63x127", "-o", str(tmp_path / "c.h5")])
    assert odd.exit_code == 2 and "odd size" in odd.output and not (tmp_path / "c.h5").exists(), odd.output
    mask = next((small_tree / "gtFine" / "val").rglob("*_labelIds.png"))
    temp = runner.invoke(app, ["interpolate", str(mask), "--from", "1", "--to", "2", "--temp", "-1", "--model", "demo"])
    assert temp.exit_code == 2 and "--temp" in temp.output, temp.output
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    jpeg = runner.invoke(app, ["transfer", str(photo), str(mask), "-o", str(tmp_path / "t.jpg"), "--model", "demo"])
    one_line_error(jpeg, "transfer writes a PNG; name a .png file", code=2)
    assert not (tmp_path / "t.jpg").exists()


def test_segmenter_train_then_evaluate_quality_and_augment(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    probe = tmp_path / "probe.pt"
    result = runner.invoke(
        app,
        [
            "segmenter",
            "train",
            str(small_tree),
            "--size",
            "16x32",
            "--steps",
            "5",
            "--width",
            "4",
            "-o",
            str(probe),
            "--batch-size",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert probe.is_file()
    out = tmp_path / "evaluation"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "quality",
            str(small_tree),
            "--model",
            str(test_checkpoint),
            "--segmenter",
            str(probe),
            "--temps",
            "0.5,1.0",
            "--n",
            "2",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["protocol"]["segmenter_sha256"] and report["protocol"]["pairs"] == 4
    assert [row["temperature"] for row in report["samples"]["temperatures"]] == [0.5, 1.0]
    for name in ("report.json", "report.md", "consistency.png", "diversity.png", "colour_match.png"):
        assert (out / name).is_file(), name
    assert "Temperature sweep" in (out / "report.md").read_text()
    three_splits = tmp_path / "three-splits"
    write_toy_cityscapes(three_splits, {"train": 6, "val": 2, "test": 2}, size=(32, 64), seed=2)
    result = runner.invoke(
        app,
        [
            "evaluate",
            "augment",
            str(three_splits),
            "--model",
            str(test_checkpoint),
            "--sizes",
            "2,4",
            "--seeds",
            "0,1",
            "--min-steps",
            "25",
            "--max-steps",
            "30",
            "--schedules",
            "2",
            "--n",
            "1",
            "--width",
            "4",
            "--batch-size",
            "4",
            "--out",
            str(tmp_path / "aug"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["real"] for row in report["curve"]] == [2, 4] and len(report["arms"]) == 8
    steps = {(arm["real"], arm["synthetic"] > 0): arm["steps"] for arm in report["arms"]}
    assert steps == {(2, False): 50, (2, True): 60, (4, False): 60, (4, True): 60}, "2 x 40 epochs clamped to [25, 30]"
    for name in ("augment.json", "augment.md", "learning_curve.png", "class_difference.png"):
        assert (tmp_path / "aug" / name).is_file(), name
    one_line_error(
        runner.invoke(
            app, ["evaluate", "augment", str(three_splits), "--model", str(test_checkpoint), "--strategy", "magic"]
        ),
        "--strategy must be one of",
        code=2,
    )
    one_line_error(
        runner.invoke(
            app,
            [
                "evaluate",
                "quality",
                str(small_tree),
                "--model",
                str(test_checkpoint),
                "--segmenter",
                str(tmp_path / "none.pt"),
            ],
        ),
        "segmenter not found",
    )


def test_figures_that_could_not_be_computed_are_null_in_json(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """One sample per mask has no pairwise diversity: NaN in memory, null in report.json and --json."""
    out = tmp_path / "evaluation"
    arguments = ["evaluate", "quality", str(small_tree), "--model", str(test_checkpoint), "--temps", "0.8"]
    result = runner.invoke(app, [*arguments, "--n", "1", "--limit", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    for text in (result.stdout.strip().splitlines()[-1], (out / "report.json").read_text()):
        row = strict_json(text)["samples"]["temperatures"][0]
        assert row["pairwise_l1"] is None and row["pairwise_1_minus_ssim"] is None
        assert row["colour_w1_mean"] > 0
    printed = strict_json(result.stdout.strip().splitlines()[-1])  # where, and with which model, as generate says
    assert printed["out"] == str(out) and printed["model"] == str(test_checkpoint)
    assert printed["model_sha256"] == hashlib.sha256(test_checkpoint.read_bytes()).hexdigest()
    assert printed["model_id"] == printed["protocol"]["model_id"]


def masks_with_one_bad(small_tree: Path, folder: Path) -> Path:
    """Two good labelIds masks and one with an unknown id, in a folder of masks."""
    folder.mkdir()
    for source in sorted((small_tree / "gtFine" / "val").rglob("*_labelIds.png"))[:2]:
        shutil.copy(source, folder / source.name)
    Image.fromarray(np.full((32, 64), 77, np.uint8)).save(folder / "bad_000000_000019_gtFine_labelIds.png")
    return folder


def test_unwritten_samples_exit_3_unless_allowed(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    masks = masks_with_one_bad(small_tree, tmp_path / "masks")
    arguments = ["generate", "--masks", str(masks), "--model", str(test_checkpoint), "--n", "2", "--skip-bad"]
    arguments += ["--out", str(tmp_path / "out"), "--device", "cpu", "--json"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["requested"], summary["written"], summary["failed"]) == (6, 4, 2)
    assert summary["complete"] is False and summary["accepted"] is False and summary["allowed_failed_fraction"] == 0
    assert result.stderr.strip().splitlines()[-1] == "error: 2 of 6 requested samples not written (--allow-failed 0)"
    assert runner.invoke(app, [*arguments, "--allow-failed", "0.3"]).exit_code == 3  # 2 of 6 is more than 0.3
    result = runner.invoke(app, [*arguments, "--allow-failed", "0.34"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["skipped"], summary["failed"], summary["complete"], summary["accepted"]) == (4, 2, False, True)
    for bad in ("1.5", "-0.1", "nan"):
        assert runner.invoke(app, [*arguments, "--allow-failed", bad]).exit_code == 2


def test_generate_checks_every_mask_before_its_first_draw(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A mask cut short stopped ``generate`` only at its batch, after the samples of the masks before it."""
    masks = tmp_path / "masks"
    masks.mkdir()
    for source in sorted((small_tree / "gtFine" / "val").rglob("*_labelIds.png"))[:3]:
        shutil.copy(source, masks / source.name)
    last = sorted(masks.iterdir())[-1]
    last.write_bytes(last.read_bytes()[:-20])
    arguments = ["generate", "--masks", str(masks), "--model", str(test_checkpoint), "--n", "1", "--batch-size", "1"]
    arguments += ["--out", str(tmp_path / "out"), "--device", "cpu"]
    one_line_error(runner.invoke(app, arguments), f"{last}: not a readable image (cut short")
    assert not list((tmp_path / "out").rglob("*_leftImg8bit.png"))
    skipped = runner.invoke(app, [*arguments, "--skip-bad", "--allow-failed", "0.5", "--json"])
    assert skipped.exit_code == 0, skipped.output
    summary = json.loads(skipped.stdout.strip().splitlines()[-1])
    assert (summary["requested"], summary["written"], summary["failed"]) == (3, 2, 1)
    assert summary["failures"][0].startswith(f"{last}: not a readable image (cut short")


def test_generate_checks_the_label_files_it_copies_before_its_first_draw(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A polygons file cut short was copied into the output and the run exited 0."""
    tree = tmp_path / "cityscapes"
    shutil.copytree(small_tree, tree)
    polygons = sorted((tree / "gtFine" / "val").rglob("*_polygons.json"))[-1]
    polygons.write_bytes(polygons.read_bytes()[:30])
    out = tmp_path / "out"
    arguments = ["generate", str(tree / "gtFine" / "val"), "--model", str(test_checkpoint), "--n", "1"]
    one_line_error(
        runner.invoke(app, [*arguments, "--out", str(out), "--device", "cpu"]),
        f"{polygons}: not a readable polygons file",
    )
    assert not out.exists()


def test_a_run_that_fails_before_writing_anything_leaves_nothing(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A run that stopped at its first mask (unknown ids show only in the pixels) left an output
    folder holding an unfinished record."""
    masks = masks_with_one_bad(small_tree, tmp_path / "masks")
    assert sorted(path.name for path in masks.iterdir())[0].startswith("bad_")
    arguments = ["generate", str(masks), "--model", str(test_checkpoint), "--n", "1", "--batch-size", "1"]
    one_line_error(runner.invoke(app, [*arguments, "--out", str(tmp_path / "new")]), "unknown label ids [77]")
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    one_line_error(runner.invoke(app, [*arguments, "--out", str(mine)]), "unknown label ids [77]")
    assert [path.name for path in mine.iterdir()] == ["notes"]
    photo = next((small_tree / "leftImg8bit" / "train").rglob("*_leftImg8bit.png"))
    layouts = ["layouts", str(small_tree), "--split", "train", "--photos", "--out", str(tmp_path / "lay")]
    copy = tmp_path / "tree"
    shutil.copytree(small_tree, copy)
    (copy / photo.relative_to(small_tree)).unlink()
    layouts[1] = str(copy)
    one_line_error(runner.invoke(app, layouts), "no photo beside it in leftImg8bit/, needed by --photos")
    assert not (tmp_path / "lay").exists()


def test_a_folder_named_as_an_output_file_is_refused_before_the_work(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``segmenter train --out FOLDER`` and ``generate --preview FOLDER`` did all their work, then
    failed on a hidden temporary file's name."""
    probe = runner.invoke(app, ["segmenter", "train", str(small_tree), "--size", "16x32", "--out", str(tmp_path)])
    one_line_error(probe, f"{tmp_path}: is a folder; --out names the file to write")
    arguments = ["generate", str(small_tree / "gtFine" / "val"), "--model", str(test_checkpoint), "--n", "1"]
    preview = runner.invoke(app, [*arguments, "--preview", str(tmp_path), "--out", str(tmp_path / "out")])
    one_line_error(preview, f"{tmp_path}: is a folder; --preview names the file to write")
    assert not (tmp_path / "out").exists()
    jpeg = runner.invoke(app, [*arguments, "--preview", str(tmp_path / "p.jpg"), "--out", str(tmp_path / "out")])
    one_line_error(jpeg, f"--preview {tmp_path / 'p.jpg'}: the preview is a PNG; name a .png file", code=2)


def test_generate_names_the_model_once_with_its_id(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    arguments = ["generate", "--masks", str(small_tree / "gtFine" / "val"), "--model", str(test_checkpoint)]
    result = runner.invoke(app, [*arguments, "--n", "1", "--limit", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    named = [line for line in result.output.splitlines() if line.startswith("model:")]
    assert named == [f"model: {test_checkpoint} (--model), {load_checkpoint(test_checkpoint).model_id}"]


class MeanOfEverything(torch.nn.Module):
    """A feature network returning one number for a whole batch: the wrong shape."""

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        return photos.mean()


class ChannelDistances(torch.nn.Module):
    """An LPIPS network returning three distances per pair: the wrong shape."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return (first - second).abs().mean(dim=(2, 3))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("option", "network", "problem"),
    [
        ("--segmenter", torch.nn.Conv2d(1, 19, 1), "the segmenter fails on input of shape (1, 3, 16, 32)"),
        ("--features", MeanOfEverything(), "the feature network outputs () for 1 photos; (B, D) is needed"),
        ("--lpips", ChannelDistances(), "the LPIPS network outputs (1, 3) for 1 pairs; one distance each is needed"),
    ],
)
def test_a_users_network_that_fails_is_named_in_one_line(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path, option: str, network: torch.nn.Module, problem: str
) -> None:
    path = tmp_path / "network.pt"
    torch.jit.script(network).save(str(path))
    arguments = ["evaluate", "quality", str(small_tree), "--model", str(test_checkpoint), option, str(path)]
    result = runner.invoke(app, [*arguments, "--temps", "0.8", "--n", "2", "--limit", "1", "--out", str(tmp_path)])
    one_line_error(result, f"{path}: {problem}")


def test_the_docs_state_the_rounding_of_another_batch_composition() -> None:
    """--batch-size and torchrun change a pixel by one 8-bit level at most; the docs must not promise more."""
    from typer.main import get_command

    help_of = {parameter.name: parameter.help for parameter in get_command(app).commands["generate"].params}
    assert "one 8-bit level at most" in help_of["batch_size"]
    root = Path(__file__).resolve().parent.parent
    docs = "".join(path.read_text(encoding="utf-8") for path in [root / "README.md", *(root / "docs").glob("*.md")])
    assert "does not change the images" not in docs and "the same as a single process writes" not in docs
    output = (root / "docs" / "output.md").read_text(encoding="utf-8")
    reproducibility = " ".join(output.split("## Reproducibility", 1)[1].split("##", 1)[0].split())
    assert "one 8-bit level" in reproducibility and "torchrun" in reproducibility and "--batch-size" in reproducibility


def test_a_rerun_with_other_settings_is_refused_unless_overwrite(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """Issue 22, item 1: a resumed tree must hold only what this run would write."""
    out = tmp_path / "g"
    arguments = ["generate", "--masks", str(small_tree), "--split", "val", "--samples", "1", "--limit", "1"]
    arguments += ["--out", str(out), "--device", "cpu", "--json"]
    first = runner.invoke(app, [*arguments, "--model", str(test_checkpoint), "--temp", "0.8"])
    assert first.exit_code == 0, first.output
    record = json.loads((out / "fgaug-run.json").read_text())
    assert record["settings"]["temperature"] == 0.8 and record["settings"]["model"] == file_digest(test_checkpoint)
    photo = next((out / "leftImg8bit").rglob("*.png"))
    made_first = photo.read_bytes()

    other = runner.invoke(app, [*arguments, "--model", str(test_checkpoint), "--temp", "0.3", "--seed", "5"])
    one_line_error(
        other, f"{out} was made with --seed 0, --temp 0.8; this run has --seed 5, --temp 0.3; use --overwrite"
    )
    more = runner.invoke(app, [*arguments, "--model", str(test_checkpoint), "--samples", "2"])
    one_line_error(more, f"{out} was made with --samples 1; this run has --samples 2; use --overwrite")
    demo_model = find_model("demo")[0]
    other_model = runner.invoke(app, [*arguments, "--model", "demo"])
    one_line_error(
        other_model, f"--model {test_checkpoint} (sha256 {file_digest(test_checkpoint)[:12]})", str(demo_model)
    )
    assert photo.read_bytes() == made_first

    same = runner.invoke(app, [*arguments, "--model", str(test_checkpoint), "--batch-size", "3", "--limit", "2"])
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout.strip().splitlines()[-1])["skipped"] == 1, "batch size and --limit shape nothing"

    (out / "notes.txt").write_text("mine")
    inputs = {path: path.read_bytes() for path in small_tree.rglob("*") if path.is_file()}
    replaced = runner.invoke(app, [*arguments, "--model", "demo", "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    summary = json.loads(replaced.stdout.strip().splitlines()[-1])
    assert (summary["written"], summary["skipped"]) == (1, 0)
    assert [json.loads(line)["model_sha256"] for line in (out / "manifest.jsonl").read_text().splitlines()] == [
        file_digest(demo_model)
    ]
    assert (out / "notes.txt").read_text() == "mine" and photo.read_bytes() != made_first
    assert {path: path.read_bytes() for path in small_tree.rglob("*") if path.is_file()} == inputs


def test_the_run_record_holds_every_option_but_those_that_shape_nothing(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A GenerateOptions field added later is recorded without anyone listing it; an older record
    that lacks a setting counts it as its default; fgaug's output without a record is refused."""
    from dataclasses import fields

    from fgaug.generate.engine import generate
    from fgaug.generate.options import MASK_SELECTION, NOT_SHAPING, GenerateOptions, idle_fields

    out = tmp_path / "out"
    options = GenerateOptions(masks=str(small_tree / "gtFine" / "val"), out=str(out), model=str(test_checkpoint), n=1)
    generate(options)
    path = out / "fgaug-run.json"
    record = json.loads(path.read_text())
    expected = {field.name for field in fields(GenerateOptions)} - set(NOT_SHAPING) - set(MASK_SELECTION)
    expected -= idle_fields(options)
    assert set(record["settings"]) == expected
    del record["settings"]["best_of"]
    path.write_text(json.dumps(record))
    assert generate(options).skipped == 4, "a setting missing from the record is its default"
    path.unlink()
    arguments = ["generate", "--masks", str(small_tree / "gtFine" / "val"), "--model", str(test_checkpoint)]
    one_line_error(runner.invoke(app, [*arguments, "--n", "1", "--out", str(out)]), "no readable fgaug-run.json")


def test_generate_snaps_smoothly_resized_colour_masks_when_asked(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """Issue 22, item 4: --snap-colors reaches every reader of the masks, the writer's included."""
    masks = smoothly_resized_colour_masks(small_tree, tmp_path / "masks", 2)
    arguments = ["generate", "--masks", str(masks), "--model", str(test_checkpoint), "--n", "1", "--device", "cpu"]
    one_line_error(runner.invoke(app, [*arguments, "--out", str(tmp_path / "refused")]), "use --snap-colors")
    for extra in ([], ["--allocate", "rare"]):
        out = tmp_path / f"snapped{len(extra)}"
        result = runner.invoke(app, [*arguments, "--out", str(out), "--snap-colors", *extra, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.strip().splitlines()[-1])["written"] == 2
        assert validate_tree(out).problems == []


def test_a_photo_given_as_masks_is_named_a_photo(small_tree: Path, tmp_path: Path) -> None:
    """Issue 22, item 6: not told to use --snap-colors, with or without it."""
    photos = small_tree / "leftImg8bit" / "val"
    for extra in ([], ["--snap-colors"]):
        arguments = ["generate", "--masks", str(photos), "--model", "demo", "--out", str(tmp_path / "out"), *extra]
        result = runner.invoke(app, arguments)
        one_line_error(result, "_leftImg8bit.png: looks like a photo, not a mask", "not the photos (leftImg8bit/)")
    renamed = tmp_path / "masks" / "scene.png"  # no Cityscapes name to go by: the colours tell
    renamed.parent.mkdir()
    shutil.copy(next(photos.rglob("*.png")), renamed)
    result = runner.invoke(
        app, ["generate", "--masks", str(renamed.parent), "--model", "demo", "--out", str(tmp_path / "o")]
    )
    one_line_error(result, "scene.png: looks like a photo, not a mask (")
    assert "--snap-colors" not in result.output


def test_transfer_with_mask_and_photo_swapped_says_so(small_tree: Path, tmp_path: Path) -> None:
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    mask = next((small_tree / "gtFine" / "train").rglob("*_labelIds.png"))
    result = runner.invoke(app, ["transfer", str(mask), str(photo), "--model", "demo", "-o", str(tmp_path / "t.png")])
    one_line_error(result, f"the arguments look swapped: {mask} is a mask and {photo} a photo", "PHOTO MASK")
    assert "--content-mask" not in result.output and not (tmp_path / "t.png").exists()
    result = runner.invoke(app, ["transfer", str(mask), str(mask), "--model", "demo", "-o", str(tmp_path / "t.png")])
    one_line_error(result, f"{mask} is a mask, not a photo; the content photo comes first")


def test_the_preview_says_how_many_masks_it_shows(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    from typer.main import get_command

    from fgaug.generate.engine import PREVIEW_MASKS

    arguments = ["generate", "--masks", str(small_tree), "--split", "train", "--model", str(test_checkpoint)]
    arguments += ["--n", "1", "--out", str(tmp_path / "out"), "--preview", str(tmp_path / "grid.png")]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert f"preview: {tmp_path / 'grid.png'} (the first {PREVIEW_MASKS} of 12 masks)" in result.output
    help_of = {parameter.name: parameter.help for parameter in get_command(app).commands["generate"].params}
    assert f"the first {PREVIEW_MASKS} masks" in help_of["preview"]


def test_the_schedules_help_quotes_the_readme() -> None:
    from typer.main import get_command

    augment = get_command(app).commands["evaluate"].commands["augment"]
    help_of = {parameter.name: parameter.help for parameter in augment.params}
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "adds +2.6 to +3.1 mIoU to real only" in readme and "+2.6 to +3.1 mIoU" in help_of["schedules"]


def help_examples(command: Any) -> list[list[str]]:
    """The command lines of a command's help examples (``A && B`` gives both; a leading
    ``VAR=value`` is the environment, not an argument)."""
    lines = []
    for line in (command.help or "").splitlines():
        if not re.match(r"([A-Z_]+=\S* )*fgaug ", line.strip()):
            continue
        words = shlex.split(line.strip())
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if words[:1] == ["fgaug"]:
            parts = " ".join(shlex.quote(w) for w in words).split(" '&&' ")
            lines += [shlex.split(part) for part in parts]
    return lines


def parse_only(arguments: list[str]) -> tuple[Any, Any]:
    """The command an ``fgaug`` command line names and its parsed context, as the CLI would parse
    it (types, ranges, callbacks), without running the command."""
    command = get_command(app)
    context = command.make_context("fgaug", arguments[1:])
    while hasattr(command, "commands"):
        rest = [*getattr(context, "_protected_args", []), *context.args]
        name, command, rest = command.resolve_command(context, rest)
        context = command.make_context(name, rest, parent=context)
    return command, context


COMMANDS = list(walk(get_command(app), "fgaug"))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_every_help_example_parses(path: str, command: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example in a command's help is a command line the CLI accepts: the command it names
    exists and every option it spells is read from the line (a renamed option, a value of the
    wrong type or out of range fails here). A command with options shows at least one example."""
    monkeypatch.chdir(tmp_path)
    examples = help_examples(command)
    takes_options = any(param.name != "help" for param in command.params)
    assert examples or not takes_options, f"{path}: no example in its help"
    assert any(" ".join(example).startswith(path) for example in examples) or not takes_options
    for example in examples:
        for index, word in enumerate(example[:-1]):
            if word == "--config":  # read as the line is parsed: an empty option file stands in
                (tmp_path / example[index + 1]).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / example[index + 1]).write_text("{}")
        parsed, context = parse_only(example)
        spelled = {word.split("=")[0] for word in example if word.startswith("-")}
        for param in parsed.params:
            if spelled & {*param.opts, *param.secondary_opts}:
                assert context.get_parameter_source(param.name) == ParameterSource.COMMANDLINE, (example, param.name)
                spelled -= {*param.opts, *param.secondary_opts}
        assert not spelled, f"{example}: {spelled} not options of {parsed.name}"


def test_a_mistyped_example_would_not_parse() -> None:
    """The parser above refuses what the CLI refuses, without running anything."""
    from typer._click.exceptions import BadParameter, NoSuchOption, UsageError

    with pytest.raises(NoSuchOption):
        parse_only(["fgaug", "generate", "masks/", "--sample", "3"])
    with pytest.raises(BadParameter):
        parse_only(["fgaug", "generate", "masks/", "--temp", "-1"])
    with pytest.raises(UsageError):
        parse_only(["fgaug", "segmenter", "fit", "x"])


def documented_exit_codes() -> set[int]:
    import fgaug.cli

    paragraph = (fgaug.cli.__doc__ or "").split("Exit codes:", 1)[1].split("\n\n", 1)[0]
    return {int(code) for code in re.findall(r"(?:^|,)\s+(\d+)\s", paragraph)}


def test_the_documented_exit_codes_are_the_clis() -> None:
    import importlib

    app_module = importlib.import_module("fgaug.cli.app")  # fgaug.cli.app is also the Typer app's name
    constants = {value for name, value in vars(app_module).items() if name.startswith("EXIT_")}
    assert documented_exit_codes() == {0, *constants} == {0, 1, 2, 3, 130}


@pytest.fixture
def stop_signal_after_the_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM arriving during the first training step: its handler, the one ``train`` installs,
    is called as the signal would call it."""
    from fgaug.training import train as training

    step = training._Run.train_step

    def then_terminated(self: Any, *arguments: Any) -> None:
        step(self, *arguments)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler), "training runs without its SIGTERM handler"
        handler(signal.SIGTERM, None)

    monkeypatch.setattr(training._Run, "train_step", then_terminated)


@pytest.mark.parametrize("code", sorted(documented_exit_codes()))
def test_each_documented_exit_code_happens(
    code: int, small_tree: Path, test_checkpoint: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    val = str(small_tree / "gtFine" / "val")
    if code == 0:
        result = runner.invoke(app, ["presets"])
    elif code == 1:  # bad input: a file that is no checkpoint
        (tmp_path / "notes.pt").write_text("not a checkpoint")
        result = runner.invoke(app, ["info", str(tmp_path / "notes.pt")])
    elif code == 2:  # usage: an out-of-range option value
        result = runner.invoke(app, ["generate", val, "--best-of", "0"])
    elif code == 3:  # every draw of the one mask diverges: its sample is not written
        request.getfixturevalue("every_draw_diverges")
        arguments = ["generate", val, "--limit", "1", "--samples", "1", "--model", str(test_checkpoint)]
        result = runner.invoke(app, [*arguments, "--out", str(tmp_path / "out"), "--device", "cpu"])
    elif code == 130:  # training stopped by a signal, a checkpoint saved
        request.getfixturevalue("stop_signal_after_the_first_step")
        arguments = ["train", str(small_tree), "--preset", "test", "--steps", "5", "--batch-size", "2"]
        result = runner.invoke(app, [*arguments, "--project", str(tmp_path), "--device", "cpu", "--workers", "0"])
        assert "stopped by SIGTERM at step 1" in result.output
        assert list(tmp_path.rglob("last.pt")), "no checkpoint saved"
    else:
        pytest.fail(f"exit code {code} is documented but has no case here")
    assert result.exit_code == code, result.output
    if code == 2:  # click's usage message, naming the option
        assert "--best-of" in result.output
    elif code:
        one_line_error(result, code=code)
