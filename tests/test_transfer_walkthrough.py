"""A seventh walkthrough's defects in ``transfer``, ``interpolate`` and their options: outputs
written over the inputs, outputs of one name written over each other, a bad input found after
outputs were written, and errors that named no option, printed no JSON, or named the wrong
problem."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fgaug.cli.app import app

runner = CliRunner()


def error_line(result, code: int = 1) -> str:
    """The one ``error:`` line of a failed command."""
    assert result.exit_code == code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def digests(root: Path) -> dict[str, str]:
    files = (path for path in root.rglob("*") if path.is_file())
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


@pytest.fixture
def pair(small_tree: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A photo and its labelIds mask copied into a folder of their own, and another mask there."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    photo = next((small_tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    mask = small_tree / "gtFine" / "val" / photo.parent.name / photo.name.replace("leftImg8bit", "gtFine_labelIds")
    other = next((small_tree / "gtFine" / "train").rglob("*_labelIds.png"))
    shutil.copy(photo, folder / photo.name)
    shutil.copy(mask, folder / mask.name)
    shutil.copy(other, folder / "layout_gtFine_labelIds.png")
    return folder / photo.name, folder / mask.name, folder / "layout_gtFine_labelIds.png"


def test_transfer_never_writes_over_its_inputs(pair: tuple[Path, Path, Path], test_checkpoint: Path) -> None:
    """``--out`` naming the content photo or the structure mask replaced it (a mask became a photo);
    a folder of layouts as ``--out`` took the transfers in, and the next run read them as masks."""
    photo, _, layout = pair
    before = digests(photo.parent)
    model = ["--model", str(test_checkpoint)]
    for target in (photo, layout):
        line = error_line(runner.invoke(app, ["transfer", str(photo), str(layout), *model, "-o", str(target)]))
        assert f"--out {target}: that is an input file" in line
    line = error_line(runner.invoke(app, ["transfer", str(photo), str(photo.parent), *model, "-o", str(photo.parent)]))
    assert "the output must not be inside the input" in line
    assert digests(photo.parent) == before


def test_transfer_never_writes_into_the_cityscapes_tree_of_an_input(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A single transfer's ``--out`` beside its structure mask in ``gtFine/`` was written there, and
    ``generate`` then refused the tree (an RGB image named as a labelIds mask)."""
    tree = tmp_path / "tree"
    shutil.copytree(small_tree, tree)
    before = digests(tree)
    photo = next((tree / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    mask = next((tree / "gtFine" / "train").rglob("*_labelIds.png"))
    model = ["--model", str(test_checkpoint)]
    beside_mask = mask.parent / "new_000009_000019_gtFine_labelIds.png"
    for target, data in (
        (beside_mask, tree / "gtFine"),
        (tree / "gtFine" / "x.png", tree / "gtFine"),
        (photo.parent / "y.png", tree / "leftImg8bit"),
    ):
        line = error_line(runner.invoke(app, ["transfer", str(photo), str(mask), *model, "-o", str(target)]))
        assert f"--out {target}: inside {data}, the Cityscapes data of the input {mask}" in line
    assert digests(tree) == before
    for outside in (
        tmp_path / "transfer.png",
        tree / "transfer.png",
    ):  # a tree's root holds no data: docs/cli.md's example
        assert runner.invoke(app, ["transfer", str(photo), str(mask), *model, "-o", str(outside)]).exit_code == 0
        assert outside.is_file()


def test_transfers_of_one_name_are_refused_and_a_pair_listed_twice_is_made_once(
    pair: tuple[Path, Path, Path], test_checkpoint: Path, tmp_path: Path
) -> None:
    """Photos of one name in two folders were written to one file, the JSON listing both."""
    photo, mask, layout = pair
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(photo, twin / photo.name)
    shutil.copy(mask, twin / mask.name)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{photo} {layout}\n{twin / photo.name} {layout}\n")
    arguments = ["transfer", "--pairs", str(pairs), "--model", str(test_checkpoint), "-o", str(tmp_path / "out")]
    line = error_line(runner.invoke(app, arguments))
    assert f"both {photo} on {layout} and {twin / photo.name} on {layout} would be written there" in line
    assert not (tmp_path / "out").exists()
    pairs.write_text(f"{photo} {layout}\n{photo} {layout}\n")
    made = runner.invoke(app, [*arguments, "--json"])
    assert made.exit_code == 0, made.output
    assert len(json.loads(made.stdout.strip().splitlines()[-1])["transfers"]) == 1


def test_a_bad_input_anywhere_is_named_before_any_transfer_is_written(
    pair: tuple[Path, Path, Path], test_checkpoint: Path, tmp_path: Path
) -> None:
    """The transfers before a mask of unknown ids were written, and the error said nothing of them."""
    photo, _, layout = pair
    layouts = tmp_path / "layouts"
    layouts.mkdir()
    shutil.copy(layout, layouts / "a_gtFine_labelIds.png")
    ids = np.array(Image.open(layout))
    ids[0, 0] = 200
    Image.fromarray(ids).save(layouts / "z_gtFine_labelIds.png")
    out = tmp_path / "out"
    result = runner.invoke(app, ["transfer", str(photo), str(layouts), "--model", str(test_checkpoint), "-o", str(out)])
    assert "z_gtFine_labelIds.png" in error_line(result) and "200" in error_line(result)
    assert not out.exists() or not any(out.iterdir())


def test_transfer_errors_name_the_option_and_the_problem(
    pair: tuple[Path, Path, Path], test_checkpoint: Path, tmp_path: Path
) -> None:
    """A non-UTF-8 ``--pairs`` file gave a traceback; a folder as ``--out`` named a hidden
    temporary file after all the work; a grey photo was taken for a mask."""
    photo, _, layout = pair
    model = ["--model", str(test_checkpoint)]
    pairs = tmp_path / "pairs.txt"
    pairs.write_bytes(b"\xff\xfe\n")
    result = runner.invoke(app, ["transfer", "--pairs", str(pairs), *model, "--json"])
    assert f"--pairs {pairs}: not a UTF-8 text file" in error_line(result)
    assert json.loads(result.stdout.splitlines()[0])["exit_code"] == 1
    folder = tmp_path / "taken.png"
    folder.mkdir()
    result = runner.invoke(app, ["transfer", str(photo), str(layout), *model, "-o", str(folder)])
    assert f"{folder}: is a folder; --out names the file to write" in error_line(result)
    grey = photo.parent / "grey_leftImg8bit.png"
    Image.open(photo).convert("L").save(grey)
    shutil.copy(layout, photo.parent / "grey_gtFine_labelIds.png")
    result = runner.invoke(app, ["transfer", str(grey), str(layout), *model, "-o", str(tmp_path / "t.png")])
    assert "is a mask" not in error_line(result) and "RGB" in error_line(result)


def test_interpolate_refuses_an_out_that_holds_its_input_or_is_a_file(
    pair: tuple[Path, Path, Path], test_checkpoint: Path, tmp_path: Path
) -> None:
    """A mask saved as ``strip.png`` in ``--out`` was replaced by the strip; a file as ``--out``
    was found after every frame was drawn."""
    _, _, layout = pair
    folder = tmp_path / "walk"
    folder.mkdir()
    strip = folder / "strip.png"
    shutil.copy(layout, strip)
    walk = ["--from", "1", "--to", "2", "--steps", "2", "--model", str(test_checkpoint)]
    line = error_line(runner.invoke(app, ["interpolate", str(strip), *walk, "-o", str(folder)]))
    assert f"--out {folder}: it holds the input {strip}" in line
    assert strip.read_bytes() == layout.read_bytes()
    afile = tmp_path / "afile"
    afile.write_text("mine")
    line = error_line(runner.invoke(app, ["interpolate", str(layout), *walk, "-o", str(afile)]))
    assert f"--out {afile}: a file; a walk is written into a folder" in line
    masks = tmp_path / "masks"  # a folder of masks: frames written among them would be read as masks next time
    masks.mkdir()
    mask = Path(shutil.copy(layout, masks))
    line = error_line(runner.invoke(app, ["interpolate", str(mask), *walk, "-o", str(masks)]))
    assert f"--out {masks}: the folder of the input {mask}; the frames would lie among the inputs" in line
    assert sorted(masks.iterdir()) == [mask]


def test_usage_errors_a_command_raises_itself_print_json_and_a_lone_denoise_scale_is_refused(
    small_tree: Path, test_checkpoint: Path
) -> None:
    """``generate --styles 2 --style-seed 5 --json`` and ``train --json`` without DATA printed no
    JSON; ``--denoise-scale 5`` without ``--denoise`` changed nothing, silently."""
    masks = str(small_tree / "gtFine" / "val")
    clash = runner.invoke(app, ["generate", masks, "--styles", "2", "--style-seed", "5", "--json"])
    assert clash.exit_code == 2 and json.loads(clash.stdout)["exit_code"] == 2
    assert "--style-seed S (repeatable) or --styles K" in json.loads(clash.stdout)["error"]
    no_data = runner.invoke(app, ["train", "--json"])
    assert no_data.exit_code == 2 and "DATA is required" in json.loads(no_data.stdout)["error"]
    mask = next((small_tree / "gtFine" / "val").rglob("*_labelIds.png"))
    lone = ["--denoise-scale", "5", "--model", str(test_checkpoint), "--json"]
    for arguments in (["interpolate", str(mask), "--from", "1", "--to", "2"], ["generate", masks]):
        result = runner.invoke(app, [*arguments, *lone])
        assert result.exit_code == 2, result.output
        assert json.loads(result.stdout)["error"] == "--denoise-scale applies with --denoise only; add --denoise"


def test_the_api_refuses_tensors_and_values_it_cannot_mean(test_checkpoint: Path, tmp_path: Path) -> None:
    """A uint8 photo gave a loss and latents of nonsense, a float64 mask a dtype error from deep
    inside, an empty batch a reshape error, a NaN temperature a grey image; a style seed of 3.5 or
    True was drawn and recorded, and NumPy's integers failed as the manifest was written."""
    import torch

    from fgaug.api import GenerateOptions, InterpolateOptions
    from fgaug.flow.fullglow import SamplingError
    from fgaug.training.checkpoint import load_checkpoint
    from fgaug.usage import UsageError

    model = load_checkpoint(test_checkpoint).model
    height, width = model.config.image_size
    mask = torch.rand(1, model.config.mask_channels, height, width)
    photo = torch.rand(1, 3, height, width)
    with pytest.raises(ValueError, match=r"photo must be a float tensor in \[0, 1\] \(image / 255\), got torch.uint8"):
        model(mask, (photo * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"mask is torch\.float64 and this model torch\.float32: convert one"):
        model.encode(mask.double(), photo)
    with pytest.raises(ValueError, match="B >= 1"):
        model.encode(mask[:0], photo[:0])
    with pytest.raises(SamplingError, match="temperature must be a finite number >= 0, got nan"):
        model.sample(mask, 1, float("nan"))
    with pytest.raises(UsageError, match=r"--style-seed takes whole numbers, got 3\.5"):
        GenerateOptions(masks=str(tmp_path), style_seeds=[3.5, 7])
    assert GenerateOptions(masks=str(tmp_path), style_seeds=list(np.array([3, 7]))).style_seeds == [3, 7]
    assert all(type(seed) is int for seed in GenerateOptions(masks=".", style_seeds=list(np.array([3]))).style_seeds)
    with pytest.raises(UsageError, match="--from takes whole numbers, got True"):
        InterpolateOptions(mask=str(tmp_path), start_style=True, end_style=2)  # type: ignore[arg-type]


def test_pairs_relative_to_a_folder_may_write_inside_it(
    pair: tuple[Path, Path, Path], test_checkpoint: Path, tmp_path: Path
) -> None:
    """With ``--pairs`` the folders are only where the listed paths start: only the listed files
    are read, so an output under them is never read back (the review found it refused)."""
    photo, _, layout = pair
    base = photo.parent.parent
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{photo.relative_to(base)} {layout.relative_to(base)}\n")
    arguments = ["transfer", str(base), str(base), "--pairs", str(pairs), "--model", str(test_checkpoint)]
    result = runner.invoke(app, [*arguments, "-o", str(base / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert len(list((base / "out").glob("*.png"))) == 1
