"""``fgaug segmenter train``, ``fgaug evaluate quality`` and ``fgaug evaluate augment``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fgaug.cli.app import evaluate_app, segmenter_app
from fgaug.cli.command import (
    INPUT,
    OUTPUT,
    PROTOCOL,
    SAMPLING,
    STRATEGIES,
    FgaugCommand,
)
from fgaug.cli.common import (
    BestOfOption,
    DenoiseOption,
    DenoiseScaleOption,
    DeviceOption,
    GuidanceOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    SamplesOption,
    bounded,
    clear_errors,
    emit,
    parse_floats,
    parse_ints,
    parse_size,
    working,
)
from fgaug.evaluation.options import AugmentOptions, QualityOptions
from fgaug.segmentation.options import SegmenterTrainOptions


@segmenter_app.command("train", cls=FgaugCommand)
def segmenter_train(
    data: Annotated[
        Path,
        typer.Argument(
            help="A Cityscapes root; its real training photos are used.", metavar="DATA", show_default=False
        ),
    ],
    size: Annotated[
        str, typer.Option(help="Size HxW to train at (the model's size to score its samples).", metavar="HxW")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the probe.")] = Path(
        SegmenterTrainOptions.out
    ),
    split: Annotated[str, typer.Option(help="Training split.")] = SegmenterTrainOptions.split,
    steps: Annotated[int, typer.Option(help="Training steps.", min=1)] = SegmenterTrainOptions.steps,
    batch_size: Annotated[int, typer.Option(help="Batch size.", min=1)] = SegmenterTrainOptions.batch_size,
    lr: Annotated[
        float, typer.Option(help="Peak learning rate (one-cycle schedule).", callback=bounded(0, open_low=True))
    ] = SegmenterTrainOptions.lr,
    width: Annotated[
        int, typer.Option(help="Channels of the first level (doubling per level).", min=1)
    ] = SegmenterTrainOptions.width,
    seed: Annotated[int, typer.Option(help="Seed.", min=0)] = SegmenterTrainOptions.seed,
    device: DeviceOption = SegmenterTrainOptions.device,
    as_json: JsonOption = False,
) -> None:
    """Train fgaug's probe segmenter on real photos (for `fgaug evaluate --segmenter`).

    Example:

        fgaug segmenter train cityscapes/ --size 256x512 --steps 4000 --out probe256.pt
    """
    from fgaug.api import train_segmenter

    with clear_errors():
        options = SegmenterTrainOptions(
            data=data,
            size=parse_size(size),
            out=out,
            split=split,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            width=width,
            seed=seed,
            device=device,
        )
        with working("steps", as_json) as progress:
            report = train_segmenter(options, progress)
    emit(
        report.to_dict(),
        as_json,
        lambda: typer.echo(
            f"probe saved to {report.path} ({report.steps} steps, loss {report.final_loss:.4f}, {report.seconds:.0f} s)"
        ),
    )


@evaluate_app.command("quality", cls=FgaugCommand)
def evaluate_quality(
    data: Annotated[
        Path,
        typer.Argument(help="A Cityscapes root (the split below is evaluated).", metavar="DATA", show_default=False),
    ],
    split: Annotated[str, typer.Option(help="Split to evaluate.", rich_help_panel=INPUT)] = QualityOptions.split,
    limit: Annotated[int | None, typer.Option(help="Use only the first N pairs.", min=1, rich_help_panel=INPUT)] = None,
    model: ModelOption = None,
    temps: Annotated[
        str, typer.Option(help="Temperatures of the sweep, comma-separated.", metavar="LIST", rich_help_panel=SAMPLING)
    ] = "0.5,0.6,0.7,0.8,0.9,1.0",
    samples: SamplesOption = QualityOptions.n,
    seed: Annotated[
        int, typer.Option(help="Seed of the draws and the noise.", min=0, rich_help_panel=SAMPLING)
    ] = QualityOptions.seed,
    best_of: BestOfOption = QualityOptions.best_of,
    guidance: GuidanceOption = QualityOptions.guidance,
    denoise: DenoiseOption = False,
    denoise_scale: DenoiseScaleOption = 1.0,
    segmenter: Annotated[
        Path | None,
        typer.Option(help="Segmenter: fgaug's probe, TorchScript or torch.export (.pt2).", rich_help_panel=PROTOCOL),
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option(
            help="Local feature network for FID (photos in [0, 1] -> (B, D)), TorchScript or .pt2.",
            rich_help_panel=PROTOCOL,
        ),
    ] = None,
    lpips: Annotated[
        Path | None,
        typer.Option(
            help="Local LPIPS network ((photos, photos) -> (B,)), TorchScript or .pt2.", rich_help_panel=PROTOCOL
        ),
    ] = None,
    rounds: Annotated[
        int, typer.Option(help="Dequantisation rounds for bits/dim.", min=1, rich_help_panel=PROTOCOL)
    ] = QualityOptions.rounds,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Report folder (report.json, report.md, plots).", rich_help_panel=OUTPUT),
    ] = Path(QualityOptions.out),
    as_json: JsonOption = False,
    device: DeviceOption = QualityOptions.device,
    precision: PrecisionOption = QualityOptions.precision,
) -> None:
    """Conditional bits/dim, label consistency (with the segmenter's score on real photos as the
    ceiling), diversity and colour match, over a temperature sweep.

    Example:

        fgaug evaluate quality cityscapes/ --model runs/city/checkpoints/best.pt --segmenter pspnet.pt --samples 3
    """
    from fgaug.api import evaluate_quality as run_quality

    temperatures = parse_floats(temps, "--temps", 0)
    with clear_errors():
        options = QualityOptions(
            data=data,
            out=out,
            model=model,
            split=split,
            limit=limit,
            temperatures=temperatures,
            n=samples,
            seed=seed,
            best_of=best_of,
            guidance=guidance,
            denoise_scale=denoise_scale if denoise else None,
            segmenter=segmenter,
            features=features,
            lpips=lpips,
            rounds=rounds,
            device=device,
            precision=precision,
        )
        with working("masks", as_json) as progress:
            result = run_quality(options, progress)

    def lines() -> None:
        from fgaug.cli.console import quality_table

        quality_table(result.report)
        typer.echo(f"report: {result.paths['markdown']} ({result.paths['json'].name} and plots beside it)")

    emit(sampled_output(result.paths["json"].parent, result.to_dict()), as_json, lines)


@evaluate_app.command("augment", cls=FgaugCommand)
def evaluate_augment(
    data: Annotated[
        Path,
        typer.Argument(
            help="A Cityscapes root with train, validation and test splits.", metavar="DATA", show_default=False
        ),
    ],
    strategy: Annotated[
        str,
        typer.Option(
            help="The arm that makes the synthetic data (table: docs/augmentation.md): prior, prior-ratio, "
            "prior-pretrain, real-pretrain-control, layouts-flip, layouts-jitter, layouts-paste, layouts-paste-rare, "
            "layouts-all, content-paste, content-paste-raw, content-paste-prior, content-all, copy-paste-real (no "
            "model: the baseline, and the toy-world study's recommendation), copy-paste-real+content-paste-prior, "
            "copy-paste-real+prior (with a generator trained with --noise gaussian and --denoise: the study's best "
            "arm), targeted-rare, targeted-hard, filter-best-of-4, filter-reject-half, filter-ignore-map; "
            "prior-early-generator and prior-more-data need a second model (benchmarks/augmentation_study.py).",
            metavar="NAME",
            rich_help_panel=STRATEGIES,
        ),
    ] = AugmentOptions.strategy,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            help="Synthetic images per real training mask (prior samples or layouts).",
            min=1,
            rich_help_panel=STRATEGIES,
        ),
    ] = AugmentOptions.n,
    mixing: Annotated[
        str | None,
        typer.Option(
            help="concat (one pool), ratio (half of each batch real) or pretrain (then fine-tune); default: the "
            "arm's (concat but for prior-ratio and the pretrain arms).",
            metavar="HOW",
            show_default=False,
            rich_help_panel=STRATEGIES,
        ),
    ] = AugmentOptions.mixing,
    model: ModelOption = None,
    temp: Annotated[
        float, typer.Option("--temp", help="Sampling temperature.", callback=bounded(0), rich_help_panel=SAMPLING)
    ] = AugmentOptions.temperature,
    guidance: GuidanceOption = AugmentOptions.guidance,
    denoise: DenoiseOption = False,
    denoise_scale: DenoiseScaleOption = 1.0,
    sizes: Annotated[
        str,
        typer.Option(
            help="Real training-set sizes, comma-separated; a size R trains on the first R train masks.",
            metavar="LIST",
            rich_help_panel=PROTOCOL,
        ),
    ] = "40",
    seeds: Annotated[
        str,
        typer.Option(help="Seeds of the paired trainings, comma-separated.", metavar="LIST", rich_help_panel=PROTOCOL),
    ] = "0,1,2,3,4",
    val_split: Annotated[
        str, typer.Option(help="Split for early stopping.", rich_help_panel=PROTOCOL)
    ] = AugmentOptions.val_split,
    test_split: Annotated[
        str, typer.Option(help="Labelled split for the scores, used for nothing else.", rich_help_panel=PROTOCOL)
    ] = AugmentOptions.test_split,
    width: Annotated[int, typer.Option(help="Probe width.", min=1, rich_help_panel=PROTOCOL)] = AugmentOptions.width,
    batch_size: Annotated[
        int, typer.Option(help="Probe batch size.", min=1, rich_help_panel=PROTOCOL)
    ] = AugmentOptions.batch_size,
    min_steps: Annotated[
        int,
        typer.Option(
            help="Fewest steps of a probe. Longer probes check that a gain is not an under-trained baseline's.",
            min=1,
            rich_help_panel=PROTOCOL,
        ),
    ] = AugmentOptions.min_steps,
    max_steps: Annotated[
        int,
        typer.Option(
            help="Most steps of a probe (40 epochs of its data, clamped to [min(MIN, MAX), MAX]).",
            min=1,
            rich_help_panel=PROTOCOL,
        ),
    ] = AugmentOptions.max_steps,
    schedules: Annotated[
        int,
        typer.Option(
            help="One-cycle schedules per probe, back to back from the best weights: 2 is a warm restart, a "
            "stronger baseline (on the toy world +2.6 to +3.1 mIoU for real only at up to 40 real images).",
            min=1,
            rich_help_panel=PROTOCOL,
        ),
    ] = AugmentOptions.schedules,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.", rich_help_panel=OUTPUT)] = Path(
        "evaluation-augment"
    ),
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace a study in OUT that other settings made, its probes and synthetic trees (without it "
            "such a rerun stops with exit 1 before training; with the same settings finished probes are reused).",
            rich_help_panel=OUTPUT,
        ),
    ] = AugmentOptions.overwrite,
    as_json: JsonOption = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Does augmentation help? At each real-set size R (`--sizes`), probes trained on the first R
    real pairs only and on them plus `--samples` synthetic images per real mask, paired by seed,
    early-stopped on the validation split and scored on the test split: the real-only learning
    curve with 95% intervals, the mIoU gain with its interval, per-class gains and the gain's worth
    in real images. `fgaug demo` writes a toy tree to try it on.

    Example:

        fgaug evaluate augment cityscapes --model runs/city/checkpoints/best.pt --strategy copy-paste-real --sizes 10,20

        fgaug evaluate augment cityscapes/ --model runs/city/checkpoints/best.pt --strategy content-paste-prior
    """
    from fgaug.api import evaluate_augment as run_augment

    with clear_errors():
        options = AugmentOptions(
            data,
            out=out,
            model=model,
            strategy=strategy,
            n=samples,
            mixing=mixing,
            temperature=temp,
            guidance=guidance,
            denoise_scale=denoise_scale if denoise else None,
            sizes=parse_ints(sizes, "--sizes", 1),
            seeds=parse_ints(seeds, "--seeds", 0),
            val_split=val_split,
            test_split=test_split,
            width=width,
            batch_size=batch_size,
            min_steps=min_steps,
            max_steps=max_steps,
            schedules=schedules,
            overwrite=overwrite,
            device=device,
            precision=precision,
        )
        with working("probes", as_json) as progress:
            report = run_augment(options, progress)

    def lines() -> None:
        from fgaug.evaluation.stats import plus_minus, signed_interval

        summary = report.study.summary
        for point in summary.curve:
            typer.echo(f"real only, N={point.real}: test mIoU {point.miou.mean:.4f} {plus_minus(point.miou)}")
        for row in summary.strategies:
            typer.echo(
                f"real + {row.synthetic} synthetic, N={row.real}: mIoU {signed_interval(row.difference)}, "
                f"worth in real images: {row.worth_described}"
            )
        typer.echo(f"report: {out / 'augment.md'}")

    emit(sampled_output(out, report.to_dict()), as_json, lines)


def sampled_output(out: Path, report: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's ``--json``: where its report is and the model it sampled (``model``,
    ``model_sha256``, ``model_id``, ``model_source``, as every command that samples gives them at
    the top), then the report, which records them in its protocol."""
    from fgaug.generate.options import MODEL_KEYS

    model = {key: report["protocol"][key] for key in MODEL_KEYS}
    return {"out": str(out), **model, **report}
