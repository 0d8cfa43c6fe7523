"""``fgaug layouts``, ``fgaug prepare`` and ``fgaug validate``: making, preparing and checking
Cityscapes trees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fgaug.cli.app import EXIT_INPUT_ERROR, app
from fgaug.cli.command import (
    OUTPUT,
    STRATEGIES,
    FgaugCommand,
)
from fgaug.cli.common import (
    JsonOption,
    LimitOption,
    MaskFormatOption,
    MasksArgument,
    OverwriteOption,
    SkipBadOption,
    SnapOption,
    SplitOption,
    WriteThreadsOption,
    bounded,
    clear_errors,
    emit,
    parse_size,
    working,
)
from fgaug.data.options import LayoutOptions, LayoutRunOptions, ValidateOptions


@app.command(cls=FgaugCommand)
def layouts(
    masks: MasksArgument,
    split: SplitOption = None,
    limit: LimitOption = None,
    mask_format: MaskFormatOption = LayoutRunOptions.mask_format,
    snap_colors: SnapOption = LayoutOptions.snap_colors,
    per_mask: Annotated[
        int, typer.Option(help="New layouts written per source mask.", min=1, rich_help_panel=STRATEGIES)
    ] = LayoutOptions.n,
    paste: Annotated[
        int, typer.Option(help="Objects pasted from other masks into each layout.", min=0, rich_help_panel=STRATEGIES)
    ] = LayoutOptions.paste,
    flip_probability: Annotated[
        float,
        typer.Option(help="Probability of a left-right flip.", callback=bounded(0, 1), rich_help_panel=STRATEGIES),
    ] = LayoutOptions.flip_probability,
    jitter_probability: Annotated[
        float,
        typer.Option(
            help="Probability of a scale-and-crop jitter.", callback=bounded(0, 1), rich_help_panel=STRATEGIES
        ),
    ] = LayoutOptions.jitter_probability,
    max_scale: Annotated[
        float,
        typer.Option(help="Largest jitter scale (drawn in [1, MAX]).", callback=bounded(1), rich_help_panel=STRATEGIES),
    ] = LayoutOptions.scale_range[1],
    rare_boost: Annotated[
        float,
        typer.Option(
            help="Pick pasted classes with probability ~ pixel frequency^(1 - BOOST): 0 as found, 1 uniform, "
            "above 1 the rarer the likelier.",
            callback=bounded(0),
            metavar="BOOST",
            rich_help_panel=STRATEGIES,
        ),
    ] = LayoutOptions.rare_boost,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed; each layout derives its own from it and the mask's path.", min=0, rich_help_panel=STRATEGIES
        ),
    ] = LayoutOptions.seed,
    photos: Annotated[
        bool,
        typer.Option(
            help="Also write each layout's photo from real pixels: the source photo flipped, scaled and cropped "
            "as its labels, pasted objects cut from their own photos (copy-paste augmentation, no generator; "
            "the strategy the measurements recommend).",
            rich_help_panel=OUTPUT,
        ),
    ] = LayoutOptions.photos,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Root of the new tree (created; never inside MASKS).", rich_help_panel=OUTPUT),
    ] = Path(LayoutRunOptions.out),
    overwrite: OverwriteOption = LayoutRunOptions.overwrite,
    as_json: JsonOption = False,
    write_threads: WriteThreadsOption = LayoutRunOptions.write_threads,
) -> None:
    """Write new label sets made from existing masks: flips, scale-and-crop jitter, and objects
    (person, rider, car, bicycle, motorcycle, traffic sign or light with its pole) pasted from other
    masks where they could stand, scaled with depth and occluded by nearer objects.

    Every label file is written (labelIds, instanceIds, color, labelTrainIds, polygons) and
    `layouts.jsonl` records how each layout was made, `fgaug-run.json` the settings (a rerun with
    others stops unless `--overwrite`). With `--photos` the tree is a training set in real pixels
    (copy-paste augmentation); without, it is MASKS for `fgaug generate` (prior samples, or
    `--content-from` for real photos' appearance).

    Examples:

        fgaug layouts cityscapes/ --split train --out copy-paste --per-mask 4 --paste 3 --photos

        fgaug layouts cityscapes/ --split train --out new-masks --per-mask 4 --paste 3 --rare-boost 1
    """
    from fgaug.api import layouts as make_layouts

    with clear_errors():
        layout = LayoutOptions(
            n=per_mask,
            flip_probability=flip_probability,
            jitter_probability=jitter_probability,
            scale_range=(1.0, max_scale),
            paste=paste,
            rare_boost=rare_boost,
            seed=seed,
            photos=photos,
            snap_colors=snap_colors,
        )
        options = LayoutRunOptions(
            masks=masks,
            out=out,
            layout=layout,
            splits=split,
            limit=limit,
            mask_format=mask_format,
            overwrite=overwrite,
            write_threads=write_threads,
        )
        with working("masks", as_json) as progress:
            summary = make_layouts(options, progress)

    def lines() -> None:
        typer.echo(
            f"{summary.written} layouts written, {summary.skipped} already done, from {summary.sources} masks "
            f"({summary.pasted} objects pasted from a bank of {summary.objects}), {summary.seconds:.1f} s"
        )
        typer.echo(f"{'Cityscapes tree (photos and labels)' if photos else 'label tree'}: {summary.out}")

    emit(summary.to_dict(), as_json, lines)


def training_size(text: str) -> tuple[int, int]:
    """``--size`` of ``prepare``: every level of a Glow halves both sides, so no model trains at an odd size."""
    height, width = parse_size(text)
    if height % 2 or width % 2:
        raise typer.BadParameter(
            f"{text!r}: no model trains at an odd size (each level halves both sides; 2**n_block must divide them)",
            param_hint="--size",
        )
    return height, width


@app.command(cls=FgaugCommand)
def prepare(
    data: Annotated[
        Path,
        typer.Argument(help="A Cityscapes root (or a gtFine split folder).", metavar="DATA", show_default=False),
    ],
    size: Annotated[
        str,
        typer.Option(
            help="Size HxW to store, the model's training size (e.g. 256x512): even, and divisible by the model's "
            "2**n_block (8 for tiny, 16 for paper-256).",
            metavar="HxW",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HDF5 file to write.")] = Path("train.h5"),
    split: Annotated[
        str | None,
        typer.Option(help="Split to prepare: train by default, or the split of a split or city folder given as DATA."),
    ] = None,
    boundary: Annotated[bool, typer.Option(help="Store the instance-boundary channel too.")] = False,
    mask_format: MaskFormatOption = "auto",
    snap_colors: SnapOption = False,
    skip_bad: SkipBadOption = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace an existing --out, if it is an fgaug cache (written whole, then swapped in). Without it "
            "an existing file exits 1."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Decode, check and resize a split once into an HDF5 cache for fast training.

    Example:

        fgaug prepare cityscapes/ --size 256x512 --split train --out train256.h5
    """
    from fgaug.api import prepare as run_prepare

    with clear_errors(), working("pairs", as_json) as progress:
        report = run_prepare(
            data, out, training_size(size), split, boundary, mask_format, snap_colors, skip_bad, progress, overwrite
        )

    def lines() -> None:
        typer.echo(f"{report.written} pairs written to {report.path} in {report.seconds:.1f} s")
        for skipped in report.skipped:
            typer.echo(f"  skipped: {skipped}", err=True)

    emit(report.to_dict(), as_json, lines)


@app.command(cls=FgaugCommand)
def validate(
    augmented: Annotated[
        Path,
        typer.Argument(
            help="A tree written by `fgaug generate` or `fgaug layouts`.", metavar="AUGMENTED", show_default=False
        ),
    ],
    source: Annotated[
        Path | None,
        typer.Option(
            help="The masks it was generated from, as `generate MASKS` takes them (a Cityscapes root, a split or "
            "city folder, a folder of masks): check copied labels byte for byte."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check an augmented tree: every file of every sample present, readable and of its kind (RGB
    photos, valid ids, matching train ids, colour masks, 16-bit instances, polygons that parse),
    all the size of its labelIds; copied label files identical to their sources; the run finished
    and every requested sample written (or allowed to fail); no temporary file or photo without
    labels left. A `layouts` tree by its `layouts.jsonl`. Exit 1 on any problem.

    Example:

        fgaug validate augmented/ --source cityscapes/
    """
    from fgaug.api import validate as run_validation

    with clear_errors():
        report = run_validation(ValidateOptions(augmented, source))

    def lines() -> None:
        typer.echo(f"{report.samples} samples checked, {len(report.problems)} problem(s)")
        for problem in report.problems:
            typer.echo(f"  {problem}", err=True)

    emit(report.to_dict(), as_json, lines)
    if report.problems:
        raise typer.Exit(EXIT_INPUT_ERROR)
