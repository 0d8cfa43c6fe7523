"""One look across many layouts (style seeds) and walks between looks (interpolation), issue 25."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgaug.api import TransferOptions, transfer
from fgaug.data.cityscapes import ReadOptions, find_groups, load_mask, resize_photo, to_tensor
from fgaug.data.io import DataError
from fgaug.data.preview import to_uint8_image
from fgaug.generate.draws import DrawSeeds, draw_noise, draw_seed, style_seed
from fgaug.generate.engine import generate
from fgaug.generate.interpolate import WalkOptions, interpolate_photos, interpolate_styles, largest_jump_ratio, slerp
from fgaug.generate.options import GenerateOptions
from fgaug.resources import DEMO_MODEL_NAME, bundled_dir
from fgaug.training.checkpoint import load_checkpoint

DEMO = bundled_dir() / DEMO_MODEL_NAME


def test_a_style_gives_every_mask_the_same_seed_and_plain_draws_do_not() -> None:
    styled = DrawSeeds(seed=0, styles=(3, 7))
    assert styled.of("val/a/x", 0, 0) == styled.of("val/b/y", 0, 0) == style_seed(3)
    assert styled.of("val/a/x", 1, 2) == styled.of("val/b/y", 1, 2) == style_seed(7, 2)
    assert len({style_seed(3), style_seed(7), style_seed(3, 1)}) == 3
    assert DrawSeeds(seed=5, styles=(3,)).of("k", 0, 0) == DrawSeeds(seed=9, styles=(3,)).of("k", 0, 0)
    plain = DrawSeeds(seed=0)
    assert plain.of("val/a/x", 0, 0) == draw_seed(0, "val/a/x", 0, 0) != plain.of("val/b/y", 0, 0)


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_generate_with_style_seeds_shares_each_styles_noise_across_masks(toy_tree: Path, tmp_path: Path) -> None:
    common = {"masks": str(toy_tree), "model": str(DEMO), "splits": ["val"], "device": "cpu", "n": 2}
    generate(GenerateOptions(out=str(tmp_path / "styled"), style_seeds=[3, 7], **common))
    generate(GenerateOptions(out=str(tmp_path / "plain"), **common))
    styled, plain = manifest(tmp_path / "styled"), manifest(tmp_path / "plain")
    assert len({r["key"] for r in styled}) == 2, "two masks"
    for sample, style in enumerate((3, 7)):
        rows = [r for r in styled if r["draw"] == sample]
        assert {r["style"] for r in rows} == {style} and {r["seed"] for r in rows} == {style_seed(style)}
    assert len({r["seed"] for r in plain}) == 4, "plain draws: a seed per mask and sample"
    ignored = {"seed", "style", "log_likelihood", "bits_per_dim"}
    for a, b in zip(
        sorted(styled, key=lambda r: r["outputs"]["photo"]),
        sorted(plain, key=lambda r: r["outputs"]["photo"]),
        strict=True,
    ):
        assert {k: v for k, v in a.items() if k not in ignored} == {k: v for k, v in b.items() if k not in ignored}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n": 3}, "differs from the 2 style seeds"),
        ({"style_seeds": [4, 4], "n": 2}, "repeat a style"),
        ({"reject_fraction": 0.5}, "--reject cannot be combined"),
        ({"allocate": "rare"}, "--allocate cannot be combined"),
    ],
)
def test_style_seeds_refuse_what_would_break_one_sample_per_style(
    toy_tree: Path, tmp_path: Path, changes: dict, message: str
) -> None:
    values = {"masks": str(toy_tree), "out": str(tmp_path / "o"), "model": str(DEMO), "style_seeds": [1, 2], "n": 2}
    with pytest.raises(ValueError, match=message):
        generate(GenerateOptions(**{**values, **changes}))


def test_slerp_keeps_the_endpoints_exactly_and_the_norm_in_between() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4000, generator=generator), torch.randn(2, 4000, generator=generator)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    assert torch.allclose(middle.norm(dim=1), a.norm(dim=1), rtol=0.03)
    assert ((a + b) / 2).norm(dim=1).max() < 0.8 * a.norm(dim=1).min(), "the straight line would dip"
    torch.testing.assert_close(slerp(a, 2 * a, 0.25), 1.25 * a)  # parallel rows: linear


def test_a_style_walk_starts_and_ends_at_the_two_styles_draws(toy_tree: Path, tmp_path: Path) -> None:
    group = find_groups(toy_tree, ["val"], True).groups[0]
    walk = interpolate_styles(group.mask, tmp_path / "walk", 3, 7, 5, WalkOptions(model=DEMO, device="cpu"))
    assert len(walk.frames) == 5 and walk.strip.is_file() and walk.fractions[0] == 0 and walk.fractions[-1] == 1
    frames = [np.asarray(Image.open(path)) for path in walk.frames]
    model = load_checkpoint(DEMO).model
    read = ReadOptions(model.config.image_size)
    label_ids, condition = load_mask(group, read)
    for frame, style in ((frames[0], 3), (frames[-1], 7)):
        drawn = model.sample(to_tensor(condition)[None], 1, 0.8, noise=draw_noise(model, [style_seed(style)]))
        assert np.array_equal(frame, resize_photo(to_uint8_image(drawn.images[0, 0]), label_ids.shape))
    generated = tmp_path / "styled"
    generate(
        GenerateOptions(
            masks=str(toy_tree),
            out=str(generated),
            model=str(DEMO),
            splits=["val"],
            limit=1,
            n=1,
            style_seeds=[7],
            batch_size=1,
            device="cpu",
        )
    )
    written = np.asarray(Image.open(generated / manifest(generated)[0]["outputs"]["photo"]))
    assert np.array_equal(frames[-1], written), "the walk's end is generate --style-seed's image, bitwise"
    assert largest_jump_ratio(frames) < 3.0
    assert not np.array_equal(frames[0], frames[2])


def test_a_photo_walk_starts_and_ends_at_the_two_content_transfers(toy_tree: Path, tmp_path: Path) -> None:
    groups = find_groups(toy_tree, ["train"], True).groups
    layout, first, second = groups[0], groups[1], groups[2]
    walk = interpolate_photos(
        layout.mask,
        tmp_path / "walk",
        (first.photo, first.mask),
        (second.photo, second.mask),
        3,
        WalkOptions(model=DEMO, device="cpu"),
    )
    for frame, source in ((walk.frames[0], first), (walk.frames[-1], second)):
        target = tmp_path / f"{source.stem}.png"
        transfer(TransferOptions(source.photo, layout.mask, target, content_mask=source.mask, model=DEMO, device="cpu"))
        assert np.array_equal(np.asarray(Image.open(frame)), np.asarray(Image.open(target)))


def test_bad_walks_are_refused(toy_tree: Path, tmp_path: Path) -> None:
    group = find_groups(toy_tree, ["val"], True).groups[0]
    options = WalkOptions(model=DEMO, device="cpu")
    with pytest.raises(DataError, match="mask not found"):
        interpolate_styles(tmp_path / "nope.png", tmp_path / "w", 1, 2, 3, options)
    for steps in (0, 1):
        with pytest.raises(ValueError, match="--steps must be at least 2"):
            interpolate_styles(group.mask, tmp_path / "w", 1, 2, steps, options)


def test_interpolate_command_writes_frames_and_strip(toy_tree: Path, tmp_path: Path) -> None:
    from test_cli import one_line_error, runner

    from fgaug.cli.app import app

    group = find_groups(toy_tree, ["val"], True).groups[0]
    base = ["interpolate", str(group.mask), "--model", str(DEMO), "--device", "cpu", "--out", str(tmp_path / "w")]
    result = runner.invoke(app, [*base, "--from", "3", "--to", "7", "--steps", "3", "--json"])
    assert result.exit_code == 0, result.output
    walk = json.loads(result.stdout)
    assert [Path(f).name for f in walk["frames"]] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    assert Path(walk["strip"]).is_file() and walk["model"] == str(DEMO) and len(walk["model_sha256"]) == 64
    photos = [
        "--from-photo",
        str(group.photo),
        "--to-photo",
        str(find_groups(toy_tree, ["train"], True).groups[0].photo),
    ]
    assert runner.invoke(app, [*base, *photos, "--steps", "2"]).exit_code == 0
    assert sorted(path.name for path in (tmp_path / "w").glob("frame_*")) == ["frame_000.png", "frame_001.png"]
    for bad in (["--from", "3", "--to", "7", "--steps", "0"], ["--from", "3"], ["--from", "3", "--to", "7", *photos]):
        assert runner.invoke(app, [*base, *bad]).exit_code == 2, bad
    one_line_error(
        runner.invoke(
            app, ["interpolate", str(tmp_path / "nope.png"), "--from", "1", "--to", "2", "--model", str(DEMO)]
        ),
        "mask not found",
    )


def test_a_walk_replaces_an_earlier_walk_but_no_one_elses_frames(toy_tree: Path, tmp_path: Path) -> None:
    """``interpolate`` deleted every ``frame_NNN.png`` in its output folder that it had not just written."""
    mask = find_groups(toy_tree, ["val"], True).groups[0].mask
    options = WalkOptions(model=DEMO, device="cpu")
    out = tmp_path / "w"
    interpolate_styles(mask, out, 1, 2, 4, options)
    assert json.loads((out / "walk.json").read_text())["files"] == [f"frame_00{i}.png" for i in range(4)] + [
        "strip.png"
    ]
    interpolate_styles(mask, out, 1, 2, 2, options)
    assert sorted(path.name for path in out.iterdir()) == ["frame_000.png", "frame_001.png", "strip.png", "walk.json"]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "frame_007.png").write_bytes(b"a video's frame")
    with pytest.raises(DataError, match=f"^{theirs / 'frame_007.png'}: no walk.json of an fgaug walk names it"):
        interpolate_styles(mask, theirs, 1, 2, 2, options)
    assert [path.name for path in theirs.iterdir()] == ["frame_007.png"]
    (out / "walk.json").write_text('{"files": ["../theirs/frame_007.png"]}')
    with pytest.raises(DataError, match="not a walk record"):
        interpolate_styles(mask, out, 1, 2, 2, options)
    assert (theirs / "frame_007.png").read_bytes() == b"a video's frame"
    (out / "walk.json").unlink()  # a walk from before walks recorded their files: frames and their strip
    (out / "frame_005.png").write_bytes(b"an older, longer walk's")
    interpolate_styles(mask, out, 1, 2, 2, options)
    assert sorted(path.name for path in out.iterdir()) == ["frame_000.png", "frame_001.png", "strip.png", "walk.json"]


def test_a_photo_walk_finds_masks_beside_flat_photos_and_says_where_it_looked(toy_tree: Path, tmp_path: Path) -> None:
    """The documented ``--from-photo a_leftImg8bit.png`` failed whatever lay beside it, pointing to
    ``--content-mask``, an option of ``transfer`` only."""
    from test_cli import one_line_error, runner

    from fgaug.cli.app import app

    flat = tmp_path / "flat"
    flat.mkdir()
    for group in find_groups(toy_tree, ["train"], True).groups[:2]:
        assert group.photo is not None
        shutil.copyfile(group.photo, flat / group.photo.name)
        shutil.copyfile(group.mask, flat / group.mask.name)
    first, second = sorted(flat.glob("*_leftImg8bit.png"))
    layout = find_groups(toy_tree, ["val"], True).groups[0].mask
    walk = ["interpolate", str(layout), "--from-photo", str(first), "--to-photo", str(second), "--steps", "2"]
    walk += ["--model", str(DEMO), "--device", "cpu", "--out", str(tmp_path / "w")]
    assert runner.invoke(app, walk).exit_code == 0
    (flat / first.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")).unlink()
    mask_name = first.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
    one_line_error(
        runner.invoke(app, walk),
        f"{first}: no {mask_name} in the gtFine tree or beside it; put the photo's labelIds file there",
    )


def test_generate_style_options_through_the_command_line(toy_tree: Path, tmp_path: Path) -> None:
    from test_cli import runner

    from fgaug.cli.app import app

    base = ["generate", "--masks", str(toy_tree), "--split", "val", "--model", str(DEMO), "--device", "cpu"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "k"), "--styles", "2"])
    assert result.exit_code == 0, result.output
    assert sorted({(r["draw"], r["style"]) for r in manifest(tmp_path / "k")}) == [(0, 0), (1, 1)]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "s"), "--style-seed", "9", "--style-seed", "4"])
    assert result.exit_code == 0, result.output
    assert {r["seed"] for r in manifest(tmp_path / "s") if r["style"] == 4} == {style_seed(4)}
    for bad in (["--styles", "2", "--style-seed", "1"], ["--styles", "2", "--n", "3"], ["--styles", "0"]):
        assert runner.invoke(app, [*base, "--out", str(tmp_path / "bad"), *bad]).exit_code == 2, bad
