"""A third walkthrough's defects on the sampling side: reruns that were refused though nothing
that shapes the images changed (masks mounted elsewhere, options that shape nothing), masks
changed under the same keys, defaults the API lacked, and errors that named the wrong thing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fgaug.cli.app import app
from fgaug.data.io import DataError, check_file_to_write, temporary_beside
from fgaug.data.record import OutputConflictError
from fgaug.generate.engine import generate
from fgaug.generate.options import DEFAULT_SAMPLES, GenerateOptions
from fgaug.usage import UsageError

runner = CliRunner()


def options(masks: Path, out: Path, checkpoint: Path, **changes: object) -> GenerateOptions:
    return GenerateOptions(masks=str(masks), out=str(out), model=str(checkpoint), device="cpu", **changes)  # type: ignore[arg-type]


def test_the_same_masks_elsewhere_resume_and_other_masks_under_the_same_keys_are_refused(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """MASKS was recorded as an absolute path: a CI job whose dataset is mounted elsewhere could
    not resume, while another mask at the same path and key resumed silently."""
    out = tmp_path / "out"
    generate(options(small_tree / "gtFine" / "val", out, test_checkpoint, n=1, limit=2))
    moved = tmp_path / "mounted-elsewhere"
    shutil.copytree(small_tree, moved)
    resumed = generate(options(moved / "gtFine" / "val", out, test_checkpoint, n=1))
    assert (resumed.skipped, resumed.written) == (2, 2)
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(len(line["mask_sha256"]) == 64 for line in lines)
    changed = sorted((moved / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))[0]
    ids = np.array(Image.open(changed))
    ids[:4, :4] = 7 if ids[0, 0] != 7 else 8
    Image.fromarray(ids).save(changed)
    with pytest.raises(OutputConflictError, match=r"were drawn from another mask than .*; use --overwrite"):
        generate(options(moved / "gtFine" / "val", out, test_checkpoint, n=1))
    replaced = generate(options(moved / "gtFine" / "val", out, test_checkpoint, n=1, overwrite=True))
    assert (replaced.skipped, replaced.written) == (0, 4), "--overwrite, as the error says, replaces the samples"


def test_a_label_file_changed_or_removed_in_the_source_since_is_refused_not_left_stale(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A source label file other than the mask (polygons, instanceIds, colour) changed since was not
    noticed: the rerun exited 0 with the old copies in the tree."""
    source = tmp_path / "source"
    shutil.copytree(small_tree, source)
    masks, out = source / "gtFine" / "val", tmp_path / "out"
    generate(options(masks, out, test_checkpoint, n=1, limit=2))
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(set(line["labels_sha256"]) == set(line["source"]["labels"]) for line in lines)
    assert generate(options(masks, out, test_checkpoint, n=1, limit=2)).skipped == 2  # nothing changed: resumes
    polygons = next(masks.rglob(f"{lines[0]['key'].split('/')[-1]}_gtFine_polygons.json"))
    polygons.write_text(polygons.read_text().replace('"objects"', '"objects" ', 1))
    with pytest.raises(OutputConflictError, match=r"hold another gtFine_polygons\.json file than .*; use --overwrite"):
        generate(options(masks, out, test_checkpoint, n=1, limit=2))
    polygons.unlink()
    with pytest.raises(OutputConflictError, match=r"hold another gtFine_polygons\.json file than the source has now"):
        generate(options(masks, out, test_checkpoint, n=1, limit=2))
    replaced = generate(options(masks, out, test_checkpoint, n=1, limit=2, overwrite=True))
    assert (replaced.skipped, replaced.written) == (0, 2)


def test_options_that_shape_nothing_are_not_recorded_or_refused(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """``--seed`` beside style seeds and ``--ignore-below`` without ``--ignore-map`` were recorded
    and blocked a rerun that would write the same images; ``--class-weights`` without
    ``--allocate weights`` was accepted and did nothing."""
    masks, out = small_tree / "gtFine" / "val", tmp_path / "styles"
    generate(options(masks, out, test_checkpoint, style_seeds=[3, 7], seed=4, limit=1))
    again = generate(options(masks, out, test_checkpoint, style_seeds=[3, 7], seed=5, ignore_below=0.3, limit=1))
    assert (again.skipped, again.written) == (2, 0)
    recorded = json.loads((out / "fgaug-run.json").read_text())["settings"]
    assert "seed" not in recorded and "ignore_below" not in recorded
    with pytest.raises(UsageError, match="--class-weights is read by --allocate weights alone"):
        generate(options(masks, tmp_path / "weights", test_checkpoint, class_weights=str(tmp_path / "w.json")))


def test_the_sample_count_defaults_to_what_the_other_options_imply(tmp_path: Path) -> None:
    """The API asked for ``n`` beside style seeds, and ``--content-from`` failed with the default
    ``--samples``."""
    assert GenerateOptions(masks=str(tmp_path)).n == DEFAULT_SAMPLES
    assert GenerateOptions(masks=str(tmp_path), style_seeds=[3, 7]).n == 2
    assert GenerateOptions(masks=str(tmp_path), content_from=str(tmp_path)).n == 1
    assert GenerateOptions(masks=str(tmp_path), style_seeds=[3, 7], n=3).n == 3


def test_an_old_spelling_beside_its_new_one_is_refused(small_tree: Path, tmp_path: Path) -> None:
    """``--n 2 --samples 3`` wrote 3 per mask and ``--samples 3 --n 2`` 2: the last one won."""
    masks = str(small_tree / "gtFine" / "val")
    result = runner.invoke(app, ["generate", masks, "--model", "demo", "--n", "2", "--samples", "3"])
    assert result.exit_code == 2 and "--n is the old spelling of --samples" in result.output


def test_a_file_that_cannot_be_written_is_named_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unwritable ``--preview`` failed after every sample was drawn, naming a hidden temporary
    file (``.fgaug-run.json.2m83r6ql.part: Read-only file system``)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(DataError, match=r"p\.png: cannot write it \(.*a-file is a file\)"):
        check_file_to_write(a_file / "p.png", "--preview", "preview.png")
    with pytest.raises(DataError, match="is a folder; --preview names the file to write"):
        check_file_to_write(tmp_path, "--preview", "preview.png")
    monkeypatch.setattr("fgaug.data.io.os.access", lambda path, mode: False)  # root writes anywhere
    with pytest.raises(DataError, match=r"p\.png: cannot write it \(.* is read-only\)"):
        check_file_to_write(tmp_path / "p.png", "--preview", "preview.png")

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system", str(tmp_path / ".fgaug-run.json.x.part"))

    monkeypatch.setattr("fgaug.data.io.tempfile.mkstemp", read_only)
    with pytest.raises(OSError) as refused:
        temporary_beside(tmp_path / "fgaug-run.json")
    assert refused.value.filename == str(tmp_path / "fgaug-run.json") and "Read-only" in str(refused.value)


def test_wrong_inputs_of_the_sampling_commands_are_named(small_tree: Path, tmp_path: Path) -> None:
    """An output that is a file said "File exists"; a folder as MASK or as a checkpoint said "not
    found"; an empty ``--pairs`` file exited 0 having done nothing; ``interpolate --from -1`` ran
    though ``generate --style-seed -1`` is refused."""
    masks = str(small_tree / "gtFine" / "val")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = runner.invoke(app, ["generate", masks, "--model", "demo", "--out", str(a_file)])
    assert result.exit_code == 1 and "a-file: a file; the output is a folder" in result.output
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 1 and "a folder, not a checkpoint file" in result.output
    walk = ["--model", "demo", "--from", "1", "--to", "2", "--out", str(tmp_path / "w")]
    result = runner.invoke(app, ["interpolate", str(tmp_path), *walk])
    assert result.exit_code == 1 and "a folder; MASK is one mask file" in result.output
    empty = tmp_path / "pairs.txt"
    empty.write_text("# nothing yet\n")
    result = runner.invoke(app, ["transfer", "--pairs", str(empty), "--model", "demo", "--out", str(tmp_path / "t")])
    assert result.exit_code == 1 and "lists no 'CONTENT STRUCTURE' pair" in result.output
    mask = next((small_tree / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    result = runner.invoke(app, ["interpolate", str(mask), "--model", "demo", "--from", "-1", "--to", "2"])
    assert result.exit_code == 2


def test_style_seeds_are_zero_or_more_in_both_apis(small_tree: Path, tmp_path: Path) -> None:
    from fgaug.generate.interpolate import InterpolateOptions

    with pytest.raises(UsageError, match="--from must be at least 0, got -1"):
        InterpolateOptions(mask=str(tmp_path / "m.png"), out=str(tmp_path / "w"), start_style=-1, end_style=2)
    masks = small_tree / "gtFine" / "val"
    with pytest.raises(UsageError, match="--style-seed must be at least 0, got -1"):
        generate(GenerateOptions(masks=str(masks), out=str(tmp_path / "o"), model="demo", style_seeds=[-1, 2]))


def test_a_changed_denoise_is_named_as_the_user_gives_it(tmp_path: Path) -> None:
    """Adding ``--denoise`` to a rerun was refused as "made with --denoise-scale none"."""
    from fgaug.data.record import check_output
    from fgaug.data.writer import TREE_OUTPUTS
    from fgaug.generate.engine import run_record
    from fgaug.generate.options import ModelUsed

    model = ModelUsed(tmp_path / "m.pt", "--model", "run@1", "0" * 64)
    plain = run_record(GenerateOptions(masks=str(tmp_path)), model, [])
    (tmp_path / "fgaug-run.json").write_text(plain.to_json(finished=True))
    (tmp_path / "manifest.jsonl").write_text("{}\n")  # a tree with samples, not a new one
    denoised = run_record(GenerateOptions(masks=str(tmp_path), denoise_scale=0.5), model, [])
    with pytest.raises(
        OutputConflictError, match=r"made with no --denoise; this run has --denoise --denoise-scale 0\.5"
    ):
        check_output(tmp_path, denoised, TREE_OUTPUTS, overwrite=False)
