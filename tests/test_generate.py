"""Generation: reproducible per-sample seeds, best-of-K, resumption, the written tree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from same_images import assert_same_up_to_rounding, photos

from fgaug.data.cityscapes import ReadOptions, find_groups, load_mask, to_tensor
from fgaug.data.writer import WriterOptions, sample_names
from fgaug.flow import Samples
from fgaug.generate.draws import MAX_REDRAWS, Draw, DrawFailure, draw_best, draw_noise, draw_seed
from fgaug.generate.engine import generate
from fgaug.generate.options import GenerateOptions, find_model
from fgaug.progress import SilentProgress
from fgaug.training.checkpoint import load_checkpoint
from fgaug.usage import UsageError


def run(masks: Path, out: Path, checkpoint: Path, **changes: object):
    options = GenerateOptions(masks=str(masks), out=str(out), model=str(checkpoint), n=3, device="cpu", seed=5)
    for key, value in changes.items():
        setattr(options, key, value)
    return generate(options)


def test_same_command_same_images_whatever_the_batch_size(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    masks = small_tree / "gtFine" / "val"
    summary = run(masks, tmp_path / "a", test_checkpoint, batch_size=8)
    run(masks, tmp_path / "b", test_checkpoint, batch_size=8)
    run(masks, tmp_path / "c", test_checkpoint, batch_size=1)
    run(masks, tmp_path / "d", test_checkpoint, batch_size=5)
    assert summary.written == 12 and summary.skipped == 0 and not summary.failed
    reference = photos(tmp_path / "a")
    for other in ("b", "c", "d"):
        assert_same_up_to_rounding(reference, photos(tmp_path / other))
    images = list(reference.values())
    assert any(np.abs(images[0] - image).mean() > 1 for image in images[1:]), "samples must differ"


def test_interrupted_and_resumed_run_writes_the_same_images(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    masks = small_tree / "gtFine" / "val"
    run(masks, tmp_path / "whole", test_checkpoint)
    run(masks, tmp_path / "part", test_checkpoint, limit=2)  # as if stopped after two masks
    (tmp_path / "part" / "manifest.jsonl").open("a").write('{"key": "val/flow')  # torn last line
    resumed = run(masks, tmp_path / "part", test_checkpoint)
    assert resumed.skipped == 6 and resumed.written == 6
    assert_same_up_to_rounding(photos(tmp_path / "whole"), photos(tmp_path / "part"))
    keys = [json.loads(line)["key"] for line in (tmp_path / "part" / "manifest.jsonl").read_text().splitlines()]
    assert len(keys) == 12


def test_rerun_writes_again_the_samples_deleted_since(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    """A user walkthrough: a rerun after deleting a photo and a whole sample city folder said
    every sample was already done, and the tree failed ``validate``."""
    from fgaug.data.validate import validate_tree

    masks, out = small_tree / "gtFine" / "val", tmp_path / "out"
    run(masks, out, test_checkpoint)
    folder = sorted((out / "leftImg8bit" / "val").iterdir())[-1]
    deleted = len(list(folder.iterdir()))
    for tree in ("leftImg8bit", "gtFine"):
        shutil.rmtree(out / tree / "val" / folder.name)
    next((out / "leftImg8bit").rglob("*_leftImg8bit.png")).unlink()
    logged: list[str] = []

    class LoggedProgress(SilentProgress):
        def log(self, message: str) -> None:
            logged.append(message)

    options = GenerateOptions(masks=str(masks), out=str(out), model=str(test_checkpoint), n=3, device="cpu", seed=5)
    resumed = generate(options, LoggedProgress())
    assert (resumed.written, resumed.skipped) == (deleted + 1, 12 - deleted - 1)
    assert f"{deleted + 1} sample(s) of an earlier run damaged or missing" in "\n".join(logged)
    assert validate_tree(out, masks).problems == []


def test_an_instance_ids_file_whose_values_name_no_label_id_is_refused_before_its_samples(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path
) -> None:
    """A user walkthrough: such a file was copied beside every sample, and ``validate`` then
    refused the output's copy; now the source is named, its mask's samples unwritten."""
    from fgaug.data.io import DataError

    masks = tmp_path / "masks"
    shutil.copytree(small_tree / "gtFine" / "val", masks)
    bad = sorted(masks.rglob("*_gtFine_instanceIds.png"))[1]
    Image.fromarray(np.full(Image.open(bad).size[::-1], 60000, np.uint16)).save(bad)
    with pytest.raises(DataError, match=f"^{bad}: instanceIds values that name no label id: \\[60000\\]"):
        run(masks, tmp_path / "out", test_checkpoint, batch_size=1)
    group = next(g for g in find_groups(masks, require_photos=False).groups if g.instance_ids == bad)
    names = [sample_names(group, index, WriterOptions())[2] for index in range(3)]
    assert not [path for name in names for path in (tmp_path / "out").rglob(f"{name}_*")]
    skipped = run(masks, tmp_path / "skipped", test_checkpoint, skip_bad=True)
    assert (skipped.written, skipped.failed_samples) == (9, 3) and skipped.failed[0].startswith(f"{bad}: ")
    split = run(masks, tmp_path / "split", test_checkpoint, skip_bad=True, batch_size=2)  # 3 draws: 2 batches
    assert (split.written, split.failed_samples) == (9, 3), "a mask drawn in two batches was skipped in its first only"


def test_best_of_keeps_the_most_likely_draw(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    masks = small_tree / "gtFine" / "val"
    run(masks, tmp_path / "best", test_checkpoint, best_of=3, n=1, temperature=1.0)
    records = [json.loads(line) for line in (tmp_path / "best" / "manifest.jsonl").read_text().splitlines()]
    model = load_checkpoint(test_checkpoint).model
    groups = {g.key: g for g in find_groups(masks, require_photos=False).groups}
    for record in records:
        group = groups[record["key"]]
        condition = to_tensor(load_mask(group, ReadOptions(model.config.image_size))[1])[None]
        seeds = [draw_seed(5, group.key, 0, k) for k in range(3)]
        drawn = model.sample(condition, 3, 1.0, noise=draw_noise(model, seeds))
        likelihoods = drawn.log_likelihood[0]
        assert record["candidate"] == int(likelihoods.argmax())
        torch.testing.assert_close(torch.tensor(record["log_likelihood"]), likelihoods.max(), rtol=1e-4, atol=1e-2)


def test_preview_and_native_resolution(small_tree: Path, test_checkpoint: Path, tmp_path: Path) -> None:
    summary = run(small_tree / "gtFine" / "val", tmp_path / "out", test_checkpoint, preview=str(tmp_path / "grid.png"))
    assert summary.preview == tmp_path / "grid.png"
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size[0] > 4 * 32 and grid.size[1] > 4 * 16
    first = next((tmp_path / "out" / "leftImg8bit").rglob("*.png"))
    assert Image.open(first).size == (64, 32)  # the masks' size, not the model's 32x16


def test_only_a_named_model_is_used(tmp_path: Path, monkeypatch) -> None:
    """--model, else $FGAUG_MODEL; 'demo' names the bundled model; a run folder nearby is not a choice."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FGAUG_MODEL", raising=False)
    newest = tmp_path / "runs" / "x" / "checkpoints" / "last.pt"
    newest.parent.mkdir(parents=True)
    newest.write_bytes(b"")
    with pytest.raises(UsageError, match=r"no model named: pass --model CHECKPOINT \(--model demo .*\$FGAUG_MODEL"):
        find_model(None)
    path, source = find_model("demo")
    assert path.name == "demo-toy-64x128.pt" and path.is_file() and source.startswith("--model demo")
    monkeypatch.setenv("FGAUG_MODEL", "/models/env.pt")
    assert find_model(None) == (Path("/models/env.pt"), "$FGAUG_MODEL")
    assert find_model("given.pt") == (Path("given.pt"), "--model")
    monkeypatch.setenv("FGAUG_MODEL", "demo")
    assert find_model(None)[0].name == "demo-toy-64x128.pt"


class SeedDrivenModel:
    """A stand-in for FullGlow whose draw is one noise value: the image is that value, its
    log-likelihood is minus its size, and it diverges where the value exceeds ``limit``."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def sample_noise(self, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
        return [torch.randn(batch, 1, generator=generator)]

    def sample(self, masks: torch.Tensor, n: int, temperature: float, noise: list[torch.Tensor]) -> Samples:
        values = noise[0].view(len(masks), n)
        diverged = values > self.limit
        likelihood = (-values.abs()).masked_fill(diverged, -torch.inf)
        return Samples(values[..., None, None, None].expand(-1, -1, 1, 2, 2), likelihood, diverged)


def first_draws(key: str, sample: int, count: int) -> torch.Tensor:
    return torch.cat(
        [torch.randn(1, generator=torch.Generator().manual_seed(draw_seed(0, key, sample, c))) for c in range(count)]
    )


def test_draw_best_passes_over_diverged_draws_with_the_next_candidates() -> None:
    model, best_of, keys = SeedDrivenModel(limit=0.0), 2, [f"city/mask{i}" for i in range(6)]
    draws = draw_best(model, torch.zeros(6, 1, 2, 2), keys, [[0, 1]] * 6, 1.0, seed=0, best_of=best_of)
    redrawn = 0
    for key, row in zip(keys, draws, strict=True):
        for sample, draw in zip((0, 1), row, strict=True):
            values = first_draws(key, sample, best_of * (MAX_REDRAWS + 1))
            calm = [c for c, v in enumerate(values) if v <= 0]
            rounds_needed = calm[0] // best_of
            candidates = range(rounds_needed * best_of, (rounds_needed + 1) * best_of)
            expected = max((c for c in candidates if values[c] <= 0), key=lambda c: -abs(values[c]))
            assert isinstance(draw, Draw) and draw.candidate == expected
            assert draw.image[0, 0, 0] == values[expected]
            assert draw.diverged == sum(int(values[c] > 0) for c in range(candidates.stop))
            redrawn += rounds_needed > 0
    assert redrawn > 0, "no sample needed a redraw: pick other keys"


def test_draw_best_reports_a_sample_whose_every_draw_diverged() -> None:
    draws = draw_best(SeedDrivenModel(limit=-10.0), torch.zeros(1, 1, 2, 2), ["k"], [[0]], 1.0, seed=0, best_of=3)
    assert draws == [[DrawFailure(3 * (MAX_REDRAWS + 1))]]


def test_samples_that_diverged_on_every_draw_are_counted_as_not_written(
    small_tree: Path, test_checkpoint: Path, tmp_path: Path, every_draw_diverges: None
) -> None:
    masks = small_tree / "gtFine" / "val"
    summary = run(masks, tmp_path / "out", test_checkpoint, n=1, limit=2)
    assert (summary.requested, summary.written, summary.failed_samples) == (2, 0, 2)
    assert not summary.complete and not summary.accepted
    assert summary.to_dict()["complete"] is False and summary.to_dict()["failed"] == 2
    allowed = run(masks, tmp_path / "out", test_checkpoint, n=1, limit=2, allowed_failed=1.0)
    assert not allowed.complete and allowed.accepted and allowed.to_dict()["allowed_failed_fraction"] == 1.0
