"""``fgaug generate``, ``fgaug transfer`` and ``fgaug interpolate``: drawing photos for masks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fgaug.cli.app import EXIT_INCOMPLETE, app
from fgaug.cli.command import (
    INPUT,
    OUTPUT,
    PERFORMANCE,
    SAMPLING,
    STRATEGIES,
    FgaugCommand,
)
from fgaug.cli.common import (
    BestOfOption,
    CompileOption,
    DenoiseOption,
    DenoiseScaleOption,
    DeviceOption,
    GuidanceOption,
    JsonOption,
    LimitOption,
    MaskFormatOption,
    MasksArgument,
    ModelOption,
    OverwriteOption,
    PrecisionOption,
    SkipBadOption,
    SnapOption,
    SplitOption,
    TempOption,
    WriteThreadsOption,
    bounded,
    clear_errors,
    emit,
    fail,
    sampling_options,
    working,
)


@app.command(cls=FgaugCommand)
def generate(
    masks: MasksArgument,
    split: SplitOption = None,
    limit: LimitOption = None,
    mask_format: MaskFormatOption = "auto",
    snap_colors: SnapOption = False,
    skip_bad: SkipBadOption = False,
    model: ModelOption = None,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples",
            help="Samples per mask: 5, one per style seed, or 1 with --content-from.",
            min=1,
            rich_help_panel=SAMPLING,
        ),
    ] = None,
    temp: TempOption = 0.8,
    seed: Annotated[
        int,
        typer.Option(
            help="Global seed; each image's seed derives from it and the mask's path.", min=0, rich_help_panel=SAMPLING
        ),
    ] = 0,
    best_of: BestOfOption = 1,
    style_seed: Annotated[
        list[int] | None,
        typer.Option(
            help="Style seed (repeatable): sample i of every mask is drawn with the i-th style's noise, the same "
            "for every mask, so all masks share that look. Recorded as `style` in the manifest.",
            min=0,
            metavar="S",
            rich_help_panel=SAMPLING,
        ),
    ] = None,
    styles: Annotated[
        int | None,
        typer.Option(
            help="Shorthand for --style-seed 0 ... --style-seed K-1.", min=1, metavar="K", rich_help_panel=SAMPLING
        ),
    ] = None,
    guidance: GuidanceOption = 0.0,
    denoise: DenoiseOption = False,
    denoise_scale: DenoiseScaleOption = 1.0,
    allocate: Annotated[
        str,
        typer.Option(
            help="uniform (the same count per mask), rare (more samples for masks holding rare classes) or weights "
            "(per --class-weights); samples x masks in all, every mask at least one.",
            metavar="RULE",
            rich_help_panel=STRATEGIES,
        ),
    ] = "uniform",
    class_weights: Annotated[
        Path | None,
        typer.Option(
            help='JSON {"class name": weight} for --allocate weights, e.g. 1 - IoU of a real-trained model.',
            rich_help_panel=STRATEGIES,
        ),
    ] = None,
    reject: Annotated[
        float,
        typer.Option(
            help="Draw samples / (1 - FRACTION) per mask and drop the least likely FRACTION of them.",
            callback=bounded(0, 1, open_high=True),
            metavar="FRACTION",
            rich_help_panel=STRATEGIES,
        ),
    ] = 0.0,
    content_from: Annotated[
        Path | None,
        typer.Option(
            help="MASKS are layouts of `fgaug layouts` made from this tree: each gets the real look of its source "
            "photo by content transfer (one photo per layout, --samples 1).",
            metavar="ROOT",
            rich_help_panel=STRATEGIES,
        ),
    ] = None,
    keep_unchanged: Annotated[
        bool,
        typer.Option(
            help="With --content-from, keep the real photo's pixels where the layout did not change (2-pixel "
            "margin); --no-keep-unchanged writes the whole decoded image (the paper's transfer).",
            rich_help_panel=STRATEGIES,
        ),
    ] = True,
    content_fill: Annotated[
        str,
        typer.Option(
            help="With --content-from: what draws the edited regions, 'transfer' (the photo's latents decoded "
            "under the layout) or 'prior' (the model's sample of the layout at --temp, as plain generate draws it).",
            metavar="FILL",
            rich_help_panel=STRATEGIES,
        ),
    ] = "transfer",
    ignore_map: Annotated[
        Path | None,
        typer.Option(
            help="Segmenter trained on real photos: pixels whose label it gives a probability below --ignore-below "
            "are marked in an extra `<stem>_gtFine_fgaugIgnore.png` (255 = ignore); label files stay as they are.",
            metavar="SEGMENTER",
            rich_help_panel=STRATEGIES,
        ),
    ] = None,
    ignore_below: Annotated[
        float,
        typer.Option(
            help="Probability threshold of --ignore-map.",
            callback=bounded(0, 1, True, True),
            rich_help_panel=STRATEGIES,
        ),
    ] = 0.05,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Root of the augmented Cityscapes tree (created; never inside MASKS).",
            rich_help_panel=OUTPUT,
        ),
    ] = Path("augmented"),
    preview: Annotated[
        Path | None,
        typer.Option(
            help="Write a PNG grid of the first 6 masks (with samples) and their samples.",
            metavar="PNG",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    at_model_resolution: Annotated[
        bool,
        typer.Option(
            help="Write photos at model size with labels resized (default: labels untouched).", rich_help_panel=OUTPUT
        ),
    ] = False,
    overwrite: OverwriteOption = False,
    allow_failed: Annotated[
        float,
        typer.Option(
            help="Fraction (0-1) of the requested samples that may go unwritten (diverged on every redraw, or "
            "of masks skipped with --skip-bad) and still exit 0; beyond it the exit code is 3.",
            callback=bounded(0, 1),
            metavar="FRACTION",
            rich_help_panel=OUTPUT,
        ),
    ] = 0.0,
    as_json: JsonOption = False,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Images decoded per batch (a pixel moves one 8-bit level at most: float rounding).",
            min=1,
            rich_help_panel=PERFORMANCE,
        ),
    ] = 8,
    write_threads: WriteThreadsOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    compile_networks: CompileOption = False,
    cuda_graphs: Annotated[
        bool | None,
        typer.Option(
            "--cuda-graphs/--no-cuda-graphs",
            help="Sample from CUDA graphs (the same images). Default: on with CUDA unless --denoise or --compile, "
            "eager if a graph does not fit; --cuda-graphs insists.",
            show_default=False,
            rich_help_panel=PERFORMANCE,
        ),
    ] = None,
) -> None:
    """Generate diverse photos for every mask as an augmented Cityscapes tree.

    Every label file of each mask is copied byte for byte beside its synthetic photo, which is
    resized to the mask's own resolution; `manifest.jsonl` records sources, seeds and
    likelihoods, `fgaug-run.json` the settings that shaped the samples. A rerun with the same
    settings skips finished samples; one with other settings (another model, temperature, seed...)
    stops with an error naming them, unless `--overwrite`. A requested sample left unwritten makes
    the exit code 3, unless `--allow-failed` allows that many.

    Examples:

        fgaug generate cityscapes/gtFine/train --samples 5 --temp 0.8 --model runs/city256/checkpoints/best.pt

        FGAUG_MODEL=runs/city256/checkpoints/best.pt fgaug generate masks/ --samples 3 --best-of 4 --json
    """
    from fgaug.api import GenerateOptions
    from fgaug.api import generate as run_generation

    if style_seed and styles:
        raise typer.BadParameter("give --style-seed S (repeatable) or --styles K, not both", param_hint="--styles")
    style_seeds = list(style_seed) if style_seed else (list(range(styles)) if styles else None)
    options = GenerateOptions(
        masks=str(masks),
        out=str(out),
        model=model,
        n=samples,
        temperature=temp,
        seed=seed,
        style_seeds=style_seeds,
        batch_size=batch_size,
        best_of=best_of,
        device=device,
        precision=precision,
        compile=compile_networks,
        write_threads=write_threads,
        cuda_graphs=cuda_graphs,
        allocate=allocate,
        class_weights=str(class_weights) if class_weights else None,
        reject_fraction=reject,
        content_from=str(content_from) if content_from else None,
        keep_unchanged=keep_unchanged,
        content_fill=content_fill,
        ignore_segmenter=str(ignore_map) if ignore_map else None,
        ignore_below=ignore_below,
        splits=split,
        mask_format=mask_format,
        snap_colors=snap_colors,
        skip_bad=skip_bad,
        at_model_resolution=at_model_resolution,
        preview=str(preview) if preview else None,
        limit=limit,
        allowed_failed=allow_failed,
        guidance=guidance,
        denoise_scale=denoise_scale if denoise else None,
        overwrite=overwrite,
    )
    with clear_errors(), working("img", as_json) as progress:
        summary = run_generation(options, progress)

    def lines() -> None:  # the model was logged with its id before generating
        typer.echo(
            f"{summary.written} images written, {summary.skipped} already done, {summary.failed_samples} failed, "
            f"{summary.seconds:.1f} s ({summary.images_per_second:.2f} images/s)"
        )
        if summary.diverged_draws:
            typer.echo(f"{summary.diverged_draws} diverged draw(s) passed over and drawn again with the next seed")
        for failure in summary.failed:
            typer.echo(f"  failed: {failure}", err=True)
        typer.echo(f"augmented tree: {summary.out}")
        if summary.preview:
            typer.echo(f"preview: {summary.preview} (the first {summary.preview_masks} of {summary.masks} masks)")

    emit(summary.to_dict(), as_json, lines)
    if not summary.accepted:
        raise fail(
            f"{summary.failed_samples} of {summary.requested} requested samples not written "
            f"(--allow-failed {summary.allowed_failed:g})",
            EXIT_INCOMPLETE,
        )


@app.command(cls=FgaugCommand)
def transfer(
    content: Annotated[
        Path | None,
        typer.Argument(
            help="A photo (its mask in gtFine/ or beside it) or a folder of photos.",
            metavar="CONTENT",
            show_default=False,
        ),
    ] = None,
    structure: Annotated[
        Path | None, typer.Argument(help="A mask, or a folder of masks.", metavar="STRUCTURE", show_default=False)
    ] = None,
    content_mask: Annotated[
        Path | None, typer.Option(help="The content photo's mask, when not beside it.", rich_help_panel=INPUT)
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help="File of 'CONTENT STRUCTURE' lines to transfer, instead of the arguments (which, given, are the "
            "folders its paths are relative to).",
            rich_help_panel=INPUT,
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Output PNG (a folder when an argument is one).", rich_help_panel=OUTPUT),
    ] = Path("transfer.png"),
    model: ModelOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    mask_format: MaskFormatOption = "auto",
    snap_colors: SnapOption = False,
    as_json: JsonOption = False,
) -> None:
    """Put a real photo's content onto a new layout: encode the photo given its own mask, decode
    the same latents given the new mask.

    Each output is written whole and replaces a file of its name; nothing else in --out is touched
    and no record of the run is kept (unlike generate's trees), so give each run its own --out.

    Examples:

        fgaug transfer leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png new_labelIds.png --model demo

        fgaug transfer photos/ layouts/ --out transferred/ --model runs/city256/checkpoints/best.pt
    """
    from fgaug.api import TransferOptions
    from fgaug.api import transfer as run_transfer

    options = TransferOptions(
        content=content,
        structure=structure,
        out=out,
        content_mask=content_mask,
        pairs=pairs,
        model=model,
        device=device,
        precision=precision,
        mask_format=mask_format,
        snap_colors=snap_colors,
    )
    with clear_errors(), working("img", as_json) as progress:
        summary = run_transfer(options, progress)

    def lines() -> None:
        for result in summary.transfers:
            typer.echo(f"{result.output}  ({result.content} on {result.structure})")
        typer.echo(f"model: {summary.model}")

    emit(summary.to_dict(), as_json, lines)


@app.command(cls=FgaugCommand)
def interpolate(
    mask: Annotated[
        Path,
        typer.Argument(help="The layout every frame is drawn on (a mask file).", metavar="MASK", show_default=False),
    ],
    start_style: Annotated[
        int | None,
        typer.Option("--from", help="Style seed of the first frame.", min=0, metavar="S", rich_help_panel=INPUT),
    ] = None,
    end_style: Annotated[
        int | None,
        typer.Option("--to", help="Style seed of the last frame.", min=0, metavar="S", rich_help_panel=INPUT),
    ] = None,
    start_photo: Annotated[
        Path | None,
        typer.Option(
            "--from-photo",
            help="Real photo whose look starts the walk (its mask beside it).",
            metavar="PHOTO",
            rich_help_panel=INPUT,
        ),
    ] = None,
    end_photo: Annotated[
        Path | None,
        typer.Option("--to-photo", help="Real photo whose look ends the walk.", metavar="PHOTO", rich_help_panel=INPUT),
    ] = None,
    mask_format: MaskFormatOption = "auto",
    snap_colors: SnapOption = False,
    model: ModelOption = None,
    steps: Annotated[
        int, typer.Option(help="Frames, both ends included (at least 2).", min=2, rich_help_panel=SAMPLING)
    ] = 8,
    temp: Annotated[
        float,
        typer.Option(
            "--temp", help="Sampling temperature (style walks).", callback=bounded(0), rich_help_panel=SAMPLING
        ),
    ] = 0.8,
    guidance: GuidanceOption = 0.0,
    denoise: DenoiseOption = False,
    denoise_scale: DenoiseScaleOption = 1.0,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for frame_000.png ..., strip.png and walk.json (which names them: a later walk "
            "replaces them, and no other frame_NNN.png there).",
            rich_help_panel=OUTPUT,
        ),
    ] = Path("interpolation"),
    as_json: JsonOption = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Walk from one look to another on one layout, along a great circle of the latent space.

    Between two style seeds (the looks `generate --style-seed` draws), or between two real
    photos' looks (their latents, as `transfer` lays them onto the layout). The first and last
    frames are those draws or transfers exactly; a strip of all frames is written beside them.

    Examples:

        fgaug interpolate masks/aachen_000000_000019_gtFine_labelIds.png --from 3 --to 7 --steps 8 --model demo

        fgaug interpolate layout.png --from-photo a_leftImg8bit.png --to-photo b_leftImg8bit.png --out walk --model demo
    """
    from fgaug.api import InterpolateOptions, WalkOptions
    from fgaug.api import interpolate as walk_between

    with clear_errors():
        options = InterpolateOptions(
            mask=mask,
            out=out,
            start_style=start_style,
            end_style=end_style,
            start_photo=start_photo,
            end_photo=end_photo,
            steps=steps,
            walk=WalkOptions(
                model=model,
                temperature=temp,
                sampling=sampling_options(guidance, denoise, denoise_scale),
                device=device,
                precision=precision,
                mask_format=mask_format,
                snap_colors=snap_colors,
            ),
        )
        walk = walk_between(options)

    def lines() -> None:
        typer.echo(f"{len(walk.frames)} frames in {out} (model {walk.model}); strip: {walk.strip}")

    emit(walk.to_dict(), as_json, lines)
