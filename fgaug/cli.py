"""The ``fgaug`` command: a thin layer that parses options, calls :mod:`fgaug.api` and prints.

Exit codes: 0 success, 1 bad input or a failed run (one line on stderr naming the file and the
problem; also a device this machine lacks, and an output tree made with other settings), 2 usage
errors (a malformed or out-of-range option value, options that cannot be combined, no model named:
one line naming the option), 3 ``generate`` left requested samples unwritten (beyond
``--allow-failed``), 130 training stopped by a signal (a checkpoint was saved).
"""

from __future__ import annotations

import math
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fgaug import __version__
from fgaug.command import (
    INPUT,
    MODEL,
    OUTPUT,
    PERFORMANCE,
    PROTOCOL,
    RUN,
    SAMPLING,
    STRATEGIES,
    TRAINING,
    FgaugCommand,
    FgaugGroup,
)
from fgaug.finite import to_json

if TYPE_CHECKING:
    from fgaug.flow.sampling import SamplingOptions

app = typer.Typer(
    cls=FgaugGroup,
    help="fgaug: grow a Cityscapes-format dataset with Full-Glow. Train p(photo | mask), then sample "
    "many different street scenes for every mask; the labels of every synthetic image are exact.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not HEIGHTxWIDTH, e.g. 256x512") from None
    if height <= 0 or width <= 0:
        raise typer.BadParameter(f"{text!r}: height and width must be positive")
    return height, width


def finite(value: float | None) -> float | None:
    """NaN and infinities are usage errors (exit 2)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def noise_option(value: str | None) -> str | None:
    """Callback of ``--noise``: ``uniform`` or ``gaussian:SIGMA``, else a usage error (exit 2)."""
    from fgaug.config import ConfigError, parse_noise

    if value is not None:
        try:
            parse_noise(value)
        except ConfigError as error:
            raise typer.BadParameter(str(error)) from None
    return value


def bounded(
    low: float | None = None, high: float | None = None, open_low: bool = False, open_high: bool = False
) -> Callable[[float | None], float | None]:
    """The callback of a float option: finite and within ``[low, high]`` (an end open when asked),
    else a usage error naming the option (exit 2), in click's words for integer ranges."""
    low_text = "" if low is None else f"{low:g}{'<' if open_low else '<='}"
    high_text = "" if high is None else f"{'<' if open_high else '<='}{high:g}"

    def check(value: float | None) -> float | None:
        if finite(value) is None:
            return None
        below = low is not None and (value <= low if open_low else value < low)
        above = high is not None and (value >= high if open_high else value > high)
        if below or above:
            raise typer.BadParameter(f"{value:g} is not in the range {low_text}x{high_text}.")
        return value

    return check


def fail(message: str, code: int = EXIT_INPUT_ERROR) -> typer.Exit:
    from fgaug.console import err_console

    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the API's usage errors into one line on stderr and exit code 2, its input errors into one
    line and exit code 1."""
    from fgaug.checkpoint import CheckpointError
    from fgaug.config import ConfigError
    from fgaug.data.io import DataError
    from fgaug.runtime import RuntimeChoiceError
    from fgaug.usage import UsageError

    try:
        yield
    except UsageError as error:
        raise fail(str(error).splitlines()[0], EXIT_USAGE) from None
    except (DataError, ConfigError, CheckpointError, RuntimeChoiceError, ValueError, OSError) as error:
        raise fail(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED) from None


def emit(result: dict[str, Any], as_json: bool, lines: Callable[[], None]) -> None:
    if as_json:
        typer.echo(to_json(result))
    else:
        lines()


def progress_for(unit: str, as_json: bool) -> Any:
    from fgaug.console import make_progress

    return make_progress(unit, quiet=as_json)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (for CI) instead of text.", rich_help_panel=OUTPUT)
]
DeviceOption = Annotated[
    str, typer.Option(help="auto, cpu, cuda, cuda:N or N (= cuda:N).", metavar="DEVICE", rich_help_panel=PERFORMANCE)
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        help="Precision of the coupling networks: auto (bf16 on CUDA, fp32 on CPU), fp32, "
        "tf32 (fp32 on TF32 tensor cores, CUDA), bf16, fp16.",
        metavar="NAME",
        rich_help_panel=PERFORMANCE,
    ),
]
CompileOption = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the coupling and conditioning networks (the invertible arithmetic stays eager); "
        "the first batches pay the compilation.",
        rich_help_panel=PERFORMANCE,
    ),
]
MaskFormatOption = Annotated[
    str,
    typer.Option(
        help="labelIds, labelTrainIds, color, or auto (from the file name, then the content). "
        "Colour masks must hold exact palette colours unless --snap-colors is given.",
        metavar="FORMAT",
        rich_help_panel=INPUT,
    ),
]
SnapOption = Annotated[
    bool,
    typer.Option(
        help="Map off-palette pixels of colour masks (left by smooth resizing) to the nearest palette "
        "colour present in the mask. Without it such masks are refused, with the fraction named.",
        rich_help_panel=INPUT,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        help="The checkpoint to sample with, or 'demo' for the bundled toy-world model. Default: $FGAUG_MODEL; "
        "one of them is required.",
        metavar="CHECKPOINT",
        rich_help_panel=SAMPLING,
    ),
]
OverwriteOption = Annotated[
    bool,
    typer.Option(
        help="Replace an output tree that other settings made (its fgaug-run.json says which): fgaug's own "
        "files in it are removed first, nothing else. Without it such a rerun stops with exit 1; a rerun with "
        "the same settings resumes.",
        rich_help_panel=OUTPUT,
    ),
]
SkipBadOption = Annotated[
    bool,
    typer.Option(
        help="Skip and count bad or incomplete groups instead of stopping at the first.", rich_help_panel=INPUT
    ),
]
GuidanceOption = Annotated[
    float,
    typer.Option(
        help="Classifier-free guidance weight W (a model trained with --condition-dropout): each conditioning "
        "network's output is pushed W times further from the null condition's. 0: none. Keep it small: on the "
        "toy world draws diverge from W = 0.1 on.",
        callback=bounded(0),
        metavar="W",
        rich_help_panel=SAMPLING,
    ),
]
DenoiseOption = Annotated[
    bool,
    typer.Option(
        "--denoise",
        help="One score step after each draw, x + S sigma^2 grad log p(x | mask) (Tweedie; a model trained with "
        "--noise gaussian:SIGMA). Costs one forward and one backward pass per draw.",
        rich_help_panel=SAMPLING,
    ),
]
DenoiseScaleOption = Annotated[
    float,
    typer.Option(
        help="S of --denoise (1 is Tweedie's value).",
        callback=bounded(0, open_low=True),
        metavar="S",
        rich_help_panel=SAMPLING,
    ),
]
MasksArgument = Annotated[
    Path,
    typer.Argument(
        help="A Cityscapes root, a gtFine split or city folder, or a folder of masks.",
        metavar="MASKS",
        show_default=False,
    ),
]
SplitOption = Annotated[
    list[str] | None,
    typer.Option(help="Splits of a Cityscapes root (repeatable; default all).", metavar="SPLIT", rich_help_panel=INPUT),
]
LimitOption = Annotated[int | None, typer.Option(help="Use only the first N masks.", min=1, rich_help_panel=INPUT)]
TempOption = Annotated[
    float,
    typer.Option(
        "--temp", help="Sampling temperature (the paper found 0.8 best).", callback=bounded(0), rich_help_panel=SAMPLING
    ),
]
SamplesOption = Annotated[int, typer.Option("--samples", help="Samples per mask.", min=1, rich_help_panel=SAMPLING)]


def sampling_options(guidance: float, denoise: bool, denoise_scale: float) -> SamplingOptions:
    """The guidance and denoising options as the API takes them."""
    from fgaug.flow.sampling import SamplingOptions

    return SamplingOptions(guidance, denoise_scale if denoise else None)


NOT_IN_CONFIG = ("config", "json", "dry_run", "resume", "help")
"""Options of ``train`` that a config file cannot set: what one invocation asks for."""


def config_defaults(ctx: typer.Context, value: Path | None) -> Path | None:
    """Callback of ``train --config``: the file's values become the defaults that the command line
    overrides (click's ``default_map``, so they are checked as typed options are). A key that is no
    option of ``train`` is a usage error naming the file and the key (exit 2)."""
    if value is None or ctx.resilient_parsing:
        return value
    from fgaug.config import ConfigError
    from fgaug.optionfile import read_option_file

    keys = {}
    for param in ctx.command.params:
        for spelling in [opt for opt in param.opts if opt.startswith("--")] or [str(param.name)]:
            keys[spelling.lstrip("-").replace("-", "_")] = param.name
    try:
        values = read_option_file(value)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from None
    for key in values:
        if key not in keys or key in NOT_IN_CONFIG:
            raise fail(f"{value}: unknown key '{key}' (the keys are train's options: fgaug train --help)", EXIT_USAGE)
    ctx.default_map = {**(ctx.default_map or {}), **{keys[key]: values[key] for key in values}}
    return value


@app.command(cls=FgaugCommand)
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Argument(
            help="A Cityscapes root, or an HDF5 cache from `fgaug prepare`.", metavar="DATA", show_default=False
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Options from a file: a run's config.json (trains that run again) or YAML/JSON of option names "
            "(batch_size: 8). Options given on the command line override it.",
            is_eager=True,
            callback=config_defaults,
            rich_help_panel=INPUT,
        ),
    ] = None,
    val: Annotated[
        Path | None, typer.Option(help="Validation data (default: the tree's val split).", rich_help_panel=INPUT)
    ] = None,
    mask_format: MaskFormatOption = "auto",
    snap_colors: SnapOption = False,
    skip_bad: SkipBadOption = False,
    preset: Annotated[
        str,
        typer.Option(
            help="Model preset name (see `fgaug presets`) or a JSON file.", metavar="NAME", rich_help_panel=MODEL
        ),
    ] = "tiny",
    size: Annotated[
        str | None,
        typer.Option(
            help="Training size HxW, overriding the preset (e.g. 256x512).", metavar="HxW", rich_help_panel=MODEL
        ),
    ] = None,
    lambda_: Annotated[
        float | None,
        typer.Option(
            "--lambda", help="Weight of the mask NLL (paper: 1e-4).", callback=bounded(0), rich_help_panel=MODEL
        ),
    ] = None,
    conditioning: Annotated[
        str | None,
        typer.Option(
            help="Ablations of the paper's Table 1: full (Full-Glow, default), coupling (Dual-Glow/C-Flow style: "
            "only couplings conditioned), raw (C-Glow style: the raw mask conditions every operation).",
            metavar="MODE",
            rich_help_panel=MODEL,
        ),
    ] = None,
    noise: Annotated[
        str | None,
        typer.Option(
            help="Training noise: uniform (the paper's dequantisation, default; its bits/dim compare with the "
            "paper's) or gaussian:SIGMA (noise augmentation, SIGMA on the [0, 1] photo scale, e.g. gaussian:0.02; "
            "the samples can then be denoised with generate --denoise).",
            callback=noise_option,
            metavar="KIND",
            rich_help_panel=MODEL,
        ),
    ] = None,
    condition_dropout: Annotated[
        float | None,
        typer.Option(
            help="Fraction of each batch trained with the null condition (an all-zero mask), so that "
            "generate --guidance W can be used (e.g. 0.1; default 0).",
            callback=bounded(0, 1, open_high=True),
            metavar="P",
            rich_help_panel=MODEL,
        ),
    ] = None,
    boundary: Annotated[
        bool, typer.Option(help="Add the instance-boundary channel to the condition.", rich_help_panel=MODEL)
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Batch size per process (default: the preset's).", min=1, rich_help_panel=TRAINING),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Adam learning rate (default: the preset's).",
            callback=bounded(0, open_low=True),
            rich_help_panel=TRAINING,
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Training steps (overrides --epochs).", min=1, rich_help_panel=TRAINING)
    ] = None,
    epochs: Annotated[
        float | None,
        typer.Option(
            help="Epochs over the training set (default 45, the paper's).",
            callback=bounded(0, open_low=True),
            rich_help_panel=TRAINING,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of initialisation, data order and noise.", min=0, rich_help_panel=TRAINING)
    ] = 0,
    warmup_steps: Annotated[
        int, typer.Option(help="Linear learning-rate warm-up steps.", min=0, rich_help_panel=TRAINING)
    ] = 200,
    grad_clip: Annotated[
        float,
        typer.Option(
            help="Gradient-norm clipping threshold.", callback=bounded(0, open_low=True), rich_help_panel=TRAINING
        ),
    ] = 50.0,
    ema_decay: Annotated[
        float,
        typer.Option(
            help="Decay of the weight average used for samples.",
            callback=bounded(0, 1, open_high=True),
            rich_help_panel=TRAINING,
        ),
    ] = 0.999,
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many validations in a row without a better validation bits/dim.",
            min=1,
            rich_help_panel=TRAINING,
        ),
    ] = None,
    project: Annotated[
        Path,
        typer.Option(
            help="Folder holding run folders; the run folder is PROJECT/NAME (ultralytics' convention, so train "
            "takes these two instead of --out).",
            rich_help_panel=RUN,
        ),
    ] = Path("runs"),
    name: Annotated[str, typer.Option(help="Run name: the run folder is PROJECT/NAME.", rich_help_panel=RUN)] = (
        "fullglow"
    ),
    resume: Annotated[
        bool, typer.Option(help="Continue the run in PROJECT/NAME from its last checkpoint.", rich_help_panel=RUN)
    ] = False,
    exist_ok: Annotated[
        bool, typer.Option(help="Start afresh in an existing run folder.", rich_help_panel=RUN)
    ] = False,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.", min=1, rich_help_panel=RUN)] = 500,
    validate_every: Annotated[int, typer.Option(help="Steps between validations.", min=1, rich_help_panel=RUN)] = 250,
    sample_every: Annotated[int, typer.Option(help="Steps between sample grids.", min=1, rich_help_panel=RUN)] = 500,
    log_every: Annotated[
        int,
        typer.Option(
            help="Steps between lines of metrics.jsonl (the loss is read from the GPU only then).",
            min=1,
            rich_help_panel=RUN,
        ),
    ] = 10,
    tensorboard: Annotated[
        bool | None,
        typer.Option(
            "--tensorboard/--no-tensorboard",
            help="TensorBoard events in RUN/tensorboard (default: when the tensorboard package is installed).",
            rich_help_panel=RUN,
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.", min=0, rich_help_panel=PERFORMANCE)] = 2,
    checkpointing: Annotated[
        bool,
        typer.Option(
            help="Gradient checkpointing per flow step: far less memory, about 30% more time.",
            rich_help_panel=PERFORMANCE,
        ),
    ] = False,
    compile_networks: CompileOption = False,
    cuda_graphs: Annotated[
        bool,
        typer.Option(
            "--cuda-graphs",
            help="Replay each step's forward and backward passes from a CUDA graph: for small batches, where "
            "kernel launches set the pace (CUDA, one process, no --checkpointing or --compile).",
            rich_help_panel=PERFORMANCE,
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Run two steps on random data and report peak memory and time per step; no DATA needed.",
            rich_help_panel=PERFORMANCE,
        ),
    ] = False,
) -> None:
    """Train Full-Glow on photo/mask pairs. The run folder is PROJECT/NAME, as in ultralytics.

    Examples:

        fgaug train cityscapes/ --preset paper-256 --name city256

        fgaug train --config runs/city256/config.json --name city256-again

        fgaug train --config city.yaml --steps 20000

        fgaug prepare cityscapes/ --size 256x512 -o train.h5 && fgaug train train.h5 --val cityscapes/ --size 256x512

        fgaug train cityscapes/ --name city256 --resume

        fgaug train --dry-run --preset hd-512x1024 --batch-size 1 --checkpointing --device cuda

        torchrun --nproc_per_node 4 -m fgaug train cityscapes/ --preset paper-256 --name city256
    """
    from fgaug.api import TrainOptions
    from fgaug.api import train as run_training
    from fgaug.train import TrainingStoppedError
    from fgaug.train import dry_run as measure

    if dry_run:
        with clear_errors():
            report = measure(
                preset,
                parse_size(size) if size else None,
                batch_size,
                device,
                precision,
                checkpointing,
                compile=compile_networks,
                cuda_graphs=cuda_graphs,
            )

        def report_lines() -> None:
            for key, value in report.items():
                typer.echo(f"{key:24s} {value}")

        emit(report, as_json, report_lines)
        return
    if data is None:
        raise typer.BadParameter("DATA is required (or use --dry-run)", param_hint="DATA")

    options = TrainOptions(
        data=str(data),
        run_dir=str(project / name),
        preset=preset,
        size=parse_size(size) if size else None,
        batch_size=batch_size,
        lr=lr,
        steps=steps,
        epochs=epochs,
        source_weight=lambda_,
        conditioning=conditioning,
        noise=noise,
        condition_dropout=condition_dropout,
        seed=seed,
        device=device,
        precision=precision,
        warmup_steps=warmup_steps,
        grad_clip=grad_clip,
        ema_decay=ema_decay,
        checkpoint_every=checkpoint_every,
        validate_every=validate_every,
        sample_every=sample_every,
        log_every=log_every,
        patience=patience,
        tensorboard=tensorboard,
        val_data=str(val) if val else None,
        workers=workers,
        boundary=boundary,
        mask_format=mask_format,
        snap_colors=snap_colors,
        skip_bad=skip_bad,
        gradient_checkpointing=checkpointing,
        compile=compile_networks,
        cuda_graphs=cuda_graphs,
        resume=resume,
        exist_ok=exist_ok,
    )
    with clear_errors():
        try:
            result = run_training(options, progress_for("steps", as_json))
        except TrainingStoppedError as stopped:
            code = EXIT_INTERRUPTED if "stopped by" in str(stopped) else EXIT_INPUT_ERROR
            raise fail(f"{stopped} (checkpoint: {stopped.checkpoint})", code) from None
    summary = {
        "run_dir": str(result.run_dir),
        "steps": result.steps,
        "last_checkpoint": str(result.last_checkpoint),
        "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        "first_val_bpd": result.first_val_bpd,
        "last_val_bpd": result.last_val_bpd,
        "skipped_steps": result.skipped_steps,
        "images": result.images,
        "seconds": round(result.seconds, 3),
        "images_per_s": round(result.images_per_second, 3),
        "peak_memory_mib": round(result.peak_memory_mib, 1),
        "peak_memory_kind": result.peak_memory_kind,
        "stopped_early": result.stopped_early,
        "precision": result.precision,
    }

    def lines() -> None:
        early = " (stopped early: validation stopped improving)" if result.stopped_early else ""
        typer.echo(f"trained {result.steps} steps{early}; run folder {result.run_dir}")
        typer.echo(
            f"{result.images} images in {result.seconds:.1f} s ({result.images_per_second:.2f} images/s); "
            f"peak memory {result.peak_memory_mib:.0f} MiB ({result.peak_memory_kind})"
        )
        if result.first_val_bpd is not None:
            typer.echo(f"validation bits/dim {result.first_val_bpd:.4f} -> {result.last_val_bpd:.4f}")
        typer.echo(f"checkpoint: {result.last_checkpoint}")

    emit(summary, as_json, lines)


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
            help="Samples per mask (default 5; with style seeds, one per style).",
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
    best_of: Annotated[
        int,
        typer.Option(
            help="Keep the most likely of K draws for every sample.", min=1, metavar="K", rich_help_panel=SAMPLING
        ),
    ] = 1,
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
            help="With --content-from, --no-keep-unchanged writes the whole decoded image (the paper's transfer); "
            "by default the real photo's pixels are kept wherever the layout did not change (2-pixel margin).",
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
            help="Images decoded per batch (changes a pixel by one 8-bit level at most: float rounding).",
            min=1,
            rich_help_panel=PERFORMANCE,
        ),
    ] = 8,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    compile_networks: CompileOption = False,
    cuda_graphs: Annotated[
        bool,
        typer.Option(
            "--cuda-graphs",
            help="Replay each batch shape's sampling from a CUDA graph (CUDA only; the same images as without). "
            "Measured in benchmarks/RESULTS.md.",
            rich_help_panel=PERFORMANCE,
        ),
    ] = False,
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
        n=samples or (len(style_seeds) if style_seeds else GenerateOptions.n),
        temperature=temp,
        seed=seed,
        style_seeds=style_seeds,
        batch_size=batch_size,
        best_of=best_of,
        device=device,
        precision=precision,
        compile=compile_networks,
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
    with clear_errors():
        summary = run_generation(options, progress_for("img", as_json))

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
        Path,
        typer.Argument(
            help="A photo (its mask beside it in gtFine/) or a folder of photos.", metavar="CONTENT", show_default=False
        ),
    ],
    structure: Annotated[
        Path, typer.Argument(help="A mask, or a folder of masks.", metavar="STRUCTURE", show_default=False)
    ],
    content_mask: Annotated[
        Path | None, typer.Option(help="The content photo's mask, when not beside it.", rich_help_panel=INPUT)
    ] = None,
    pairs: Annotated[
        Path | None, typer.Option(help="File of 'CONTENT STRUCTURE' lines to transfer.", rich_help_panel=INPUT)
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

    Examples:

        fgaug transfer leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png new_labelIds.png --model demo

        fgaug transfer photos/ layouts/ --out transferred/ --model runs/city256/checkpoints/best.pt
    """
    from fgaug.api import transfer as run_transfer

    if (content.is_dir() or structure.is_dir() or pairs) and out.suffix == ".png":
        out = out.with_suffix("")
    with clear_errors():
        summary = run_transfer(
            content,
            structure,
            out,
            content_mask,
            pairs,
            model,
            device,
            precision,
            mask_format,
            snap_colors,
            progress_for("img", as_json),
        )

    def lines() -> None:
        for result in summary.transfers:
            typer.echo(f"{result.output}  ({result.content} on {result.structure})")
        typer.echo(f"model: {summary.model}")

    emit(summary.to_dict(), as_json, lines)


@app.command(cls=FgaugCommand)
def layouts(
    masks: MasksArgument,
    split: SplitOption = None,
    limit: LimitOption = None,
    mask_format: MaskFormatOption = "auto",
    snap_colors: SnapOption = False,
    per_mask: Annotated[
        int, typer.Option(help="New layouts written per source mask.", min=1, rich_help_panel=STRATEGIES)
    ] = 4,
    paste: Annotated[
        int, typer.Option(help="Objects pasted from other masks into each layout.", min=0, rich_help_panel=STRATEGIES)
    ] = 2,
    flip_probability: Annotated[
        float,
        typer.Option(help="Probability of a left-right flip.", callback=bounded(0, 1), rich_help_panel=STRATEGIES),
    ] = 0.5,
    jitter_probability: Annotated[
        float,
        typer.Option(
            help="Probability of a scale-and-crop jitter.", callback=bounded(0, 1), rich_help_panel=STRATEGIES
        ),
    ] = 0.5,
    max_scale: Annotated[
        float,
        typer.Option(help="Largest jitter scale (drawn in [1, MAX]).", callback=bounded(1), rich_help_panel=STRATEGIES),
    ] = 1.5,
    rare_boost: Annotated[
        float,
        typer.Option(
            help="Pick pasted classes with probability ~ pixel frequency^(1 - BOOST): 0 as found, 1 uniform.",
            callback=bounded(0),
            metavar="BOOST",
            rich_help_panel=STRATEGIES,
        ),
    ] = 0.0,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed; each layout derives its own from it and the mask's path.", min=0, rich_help_panel=STRATEGIES
        ),
    ] = 0,
    photos: Annotated[
        bool,
        typer.Option(
            help="Also write each layout's photo from real pixels: the source photo flipped, scaled and cropped "
            "as its labels, pasted objects cut from their own photos (copy-paste augmentation, no generator; "
            "the strategy the measurements recommend).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Root of the new tree (created; never inside MASKS).", rich_help_panel=OUTPUT),
    ] = Path("layouts"),
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
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
    from fgaug.api import LayoutOptions
    from fgaug.api import layouts as make_layouts

    with clear_errors():
        options = LayoutOptions(
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
        summary = make_layouts(
            masks, out, options, split, mask_format, limit, progress_for("masks", as_json), overwrite
        )

    def lines() -> None:
        typer.echo(
            f"{summary.written} layouts written, {summary.skipped} already done, from {summary.sources} masks "
            f"({summary.pasted} objects pasted from a bank of {summary.objects}), {summary.seconds:.1f} s"
        )
        typer.echo(f"label tree: {summary.out}")

    emit(summary.to_dict(), as_json, lines)


@app.command(cls=FgaugCommand)
def prepare(
    data: Annotated[
        Path,
        typer.Argument(help="A Cityscapes root (or a gtFine split folder).", metavar="DATA", show_default=False),
    ],
    size: Annotated[
        str, typer.Option(help="Size HxW to store, the model's training size (e.g. 256x512).", metavar="HxW")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HDF5 file to write.")] = Path("train.h5"),
    split: Annotated[str, typer.Option(help="Split to prepare.")] = "train",
    boundary: Annotated[bool, typer.Option(help="Store the instance-boundary channel too.")] = False,
    mask_format: MaskFormatOption = "auto",
    snap_colors: SnapOption = False,
    skip_bad: SkipBadOption = False,
    as_json: JsonOption = False,
) -> None:
    """Decode, check and resize a split once into an HDF5 cache for fast training.

    Example:

        fgaug prepare cityscapes/ --size 256x512 --split train --out train256.h5
    """
    from fgaug.api import prepare as run_prepare

    with clear_errors():
        report = run_prepare(
            data,
            out,
            parse_size(size),
            split,
            boundary,
            mask_format,
            snap_colors,
            skip_bad,
            progress_for("pairs", as_json),
        )
    summary = {
        "path": str(report.path),
        "written": report.written,
        "skipped": report.skipped,
        "seconds": report.seconds,
    }

    def lines() -> None:
        typer.echo(f"{report.written} pairs written to {report.path} in {report.seconds:.1f} s")
        for skipped in report.skipped:
            typer.echo(f"  skipped: {skipped}", err=True)

    emit(summary, as_json, lines)


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
    """Check an augmented tree: every file of every manifest entry present and readable, photos the
    size of their labels, copied label files identical to their sources; a `layouts` tree by its
    `layouts.jsonl`. Exit 1 on any problem.

    Example:

        fgaug validate augmented/ --source cityscapes/
    """
    from fgaug.data.writer import validate_tree

    with clear_errors():
        report = validate_tree(augmented, source)
    summary = {"samples": report.samples, "problems": report.problems}

    def lines() -> None:
        typer.echo(f"{report.samples} samples checked, {len(report.problems)} problem(s)")
        for problem in report.problems:
            typer.echo(f"  {problem}", err=True)

    emit(summary, as_json, lines)
    if report.problems:
        raise typer.Exit(EXIT_INPUT_ERROR)


@app.command(cls=FgaugCommand)
def info(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A checkpoint file (.pt), or 'demo' for the bundled model.", metavar="CHECKPOINT", show_default=False
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Describe a checkpoint: preset, size, parameters, training step, data fingerprint, versions,
    and the SHA-256 that generated trees and `--json` outputs record the model by.

    Example:

        fgaug info runs/city256/checkpoints/best.pt
    """
    from fgaug.api import info as describe

    with clear_errors():
        details = describe(checkpoint)

    def lines() -> None:
        for key, value in details.items():
            typer.echo(f"{key:17s} {value}")

    emit(details, as_json, lines)


def demo_next_commands(out: Path, train_scenes: int) -> list[str]:
    """What to run next on the data `fgaug demo` left in ``out`` (its train split holding
    ``train_scenes`` scenes); the README lists them for the default ``--out``."""
    toy, runs, layouts = (shlex.quote(str(out / name)) for name in ("toy-cityscapes", "runs", "layouts"))
    evaluation = shlex.quote(str(out / "evaluate-augment"))
    sizes = f"{max(1, train_scenes // 2)},{train_scenes}"
    return [
        f"fgaug train {toy} --project {runs} --name toy --steps 100",
        f"fgaug layouts {toy} --split train --out {layouts} --per-mask 2 --photos",
        f"fgaug evaluate augment {toy} --model demo --strategy copy-paste-real --sizes {sizes} --seeds 0,1 "
        f"--max-steps 200 --out {evaluation}",
    ]


@app.command(cls=FgaugCommand)
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the toy masks, the augmented tree and the preview.")
    ] = Path("fgaug-demo"),
    samples: SamplesOption = 4,
    scenes: Annotated[int, typer.Option(help="Toy training scenes to generate from.", min=1)] = 6,
    temp: Annotated[float, typer.Option("--temp", help="Sampling temperature.", callback=bounded(0))] = 0.8,
    as_json: JsonOption = False,
) -> None:
    """Run fgaug end to end on the bundled toy world, offline, on CPU in well under a minute.

    Writes a toy Cityscapes tree (train, val and test splits), generates `--samples` photos for
    each of the first `--scenes` training masks with the bundled demo model, writes the augmented
    Cityscapes tree and a preview grid, prints where everything is and the commands to run next on
    that data (train, layouts, evaluate augment). A rerun with other options replaces its output.

    Example:

        fgaug demo --out /tmp/fgaug-demo
    """
    started = time.perf_counter()  # the whole command: loading torch and the model included
    from fgaug.api import demo as run_demo

    with clear_errors():
        result = run_demo(out, samples, scenes, temp, progress=progress_for("img", as_json))
    seconds = time.perf_counter() - started
    next_commands = demo_next_commands(out, result.splits["train"])
    summary = {
        "masks": str(result.masks),
        "augmented": str(result.augmented),
        "preview": str(result.preview) if result.preview else None,
        "preview_masks": result.summary.preview_masks,
        "images": result.summary.written + result.summary.skipped,
        "seconds": round(seconds, 2),
        **result.summary.model.to_dict(),
        "next_commands": next_commands,
    }

    def lines() -> None:
        splits = ", ".join(f"{count} {split}" for split, count in result.splits.items())
        typer.echo(f"toy Cityscapes:   {result.masks}  ({splits} scenes)")
        typer.echo(f"augmented tree:   {result.augmented}  ({summary['images']} synthetic images + labels)")
        typer.echo(f"preview:          {result.preview}  (the first {result.summary.preview_masks} masks)")
        typer.echo(f"model:            {result.summary.model.path}")
        typer.echo(f"done in {seconds:.1f} s (the whole command, loading torch included)")
        typer.echo("next, on the toy data:")
        for command in next_commands:
            typer.echo(f"  {command}")

    emit(summary, as_json, lines)


segmenter_app = typer.Typer(
    cls=FgaugGroup,
    help="The probe segmenter used for label-consistency checks.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
evaluate_app = typer.Typer(
    cls=FgaugGroup,
    help="Measure a model: likelihood, label consistency, diversity, augmentation value.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(segmenter_app, name="segmenter")
app.add_typer(evaluate_app, name="evaluate")


def parse_floats(text: str, option: str, low: float) -> list[float]:
    """The comma-separated finite numbers of ``option``, none below ``low`` (anything else is a usage
    error, exit 2)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=option) from None
    if not all(math.isfinite(value) for value in values):
        raise typer.BadParameter(f"{text!r} holds a number that is not finite", param_hint=option)
    if not values or min(values) < low:
        raise typer.BadParameter(f"{text!r}: give numbers of at least {low:g}", param_hint=option)
    return values


def parse_ints(text: str, option: str, low: int) -> list[int]:
    """The comma-separated whole numbers of ``option``, none below ``low`` (else exit 2)."""
    values = parse_floats(text, option, low)
    if any(value != int(value) for value in values):
        raise typer.BadParameter(f"{text!r} holds a number that is not whole", param_hint=option)
    return [int(value) for value in values]


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
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the probe.")] = Path("probe.pt"),
    split: Annotated[str, typer.Option(help="Training split.")] = "train",
    steps: Annotated[int, typer.Option(help="Training steps.", min=1)] = 2000,
    batch_size: Annotated[int, typer.Option(help="Batch size.", min=1)] = 8,
    lr: Annotated[
        float, typer.Option(help="Peak learning rate (one-cycle schedule).", callback=bounded(0, open_low=True))
    ] = 2e-3,
    width: Annotated[int, typer.Option(help="Channels of the first level (doubling per level).", min=1)] = 32,
    seed: Annotated[int, typer.Option(help="Seed.", min=0)] = 0,
    device: DeviceOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Train fgaug's probe segmenter on real photos (for `fgaug evaluate --segmenter`).

    Example:

        fgaug segmenter train cityscapes/ --size 256x512 --steps 4000 --out probe256.pt
    """
    from fgaug.data.cityscapes import find_groups
    from fgaug.runtime import resolve_device
    from fgaug.segmenter import SegmentationPairs, train_probe

    with clear_errors():
        groups = find_groups(data, [split]).groups
        dataset = SegmentationPairs(groups, parse_size(size), flip=True)
        report = train_probe(
            dataset, out, steps, batch_size, lr, width, seed, resolve_device(device), progress_for("steps", as_json)
        )
    summary = {
        "path": str(report.path),
        "steps": report.steps,
        "final_loss": report.final_loss,
        "seconds": round(report.seconds, 1),
        "photos": len(groups),
    }
    emit(
        summary,
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
    split: Annotated[str, typer.Option(help="Split to evaluate.", rich_help_panel=INPUT)] = "val",
    limit: Annotated[int | None, typer.Option(help="Use only the first N pairs.", min=1, rich_help_panel=INPUT)] = None,
    model: ModelOption = None,
    temps: Annotated[
        str, typer.Option(help="Temperatures of the sweep, comma-separated.", metavar="LIST", rich_help_panel=SAMPLING)
    ] = "0.5,0.6,0.7,0.8,0.9,1.0",
    samples: SamplesOption = 3,
    seed: Annotated[int, typer.Option(help="Seed of the draws and the noise.", min=0, rich_help_panel=SAMPLING)] = 0,
    guidance: GuidanceOption = 0.0,
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
    ] = 1,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Report folder (report.json, report.md, plots).", rich_help_panel=OUTPUT),
    ] = Path("evaluation"),
    as_json: JsonOption = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Conditional bits/dim, label consistency (with the segmenter's score on real photos as the
    ceiling), diversity and colour match, over a temperature sweep.

    Example:

        fgaug evaluate quality cityscapes/ --model runs/city/checkpoints/best.pt --segmenter pspnet.pt --samples 3
    """
    from fgaug.api import evaluate_quality as run_quality

    with clear_errors():
        report, paths = run_quality(
            data,
            out,
            model,
            segmenter,
            split,
            parse_floats(temps, "--temps", 0),
            samples,
            rounds,
            limit,
            seed,
            device,
            precision,
            progress_for("masks", as_json),
            features,
            lpips,
            sampling_options(guidance, denoise, denoise_scale),
        )

    def lines() -> None:
        from fgaug.console import quality_table

        quality_table(report)
        typer.echo(f"report: {paths['markdown']} ({paths['json'].name} and plots beside it)")

    emit(report, as_json, lines)


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
            help="How the synthetic data is made: prior (prior samples of each mask), content-paste-prior (new "
            "layouts of each mask with 3 pasted objects, the real photo kept outside them, the pasted regions drawn "
            "from the prior) or copy-paste-real (the same layouts in real pixels, no model: the baseline, and the "
            "strategy the toy-world study recommends).",
            metavar="NAME",
            rich_help_panel=STRATEGIES,
        ),
    ] = "prior",
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            help="Synthetic images per real training mask (prior samples or layouts).",
            min=1,
            rich_help_panel=STRATEGIES,
        ),
    ] = 4,
    mixing: Annotated[
        str,
        typer.Option(
            help="concat (one pool), ratio (half of each batch real) or pretrain (then fine-tune).",
            metavar="HOW",
            rich_help_panel=STRATEGIES,
        ),
    ] = "concat",
    model: ModelOption = None,
    temp: Annotated[
        float, typer.Option("--temp", help="Sampling temperature.", callback=bounded(0), rich_help_panel=SAMPLING)
    ] = 0.8,
    guidance: GuidanceOption = 0.0,
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
    val_split: Annotated[str, typer.Option(help="Split for early stopping.", rich_help_panel=PROTOCOL)] = "val",
    test_split: Annotated[
        str, typer.Option(help="Labelled split for the scores, used for nothing else.", rich_help_panel=PROTOCOL)
    ] = "test",
    width: Annotated[int, typer.Option(help="Probe width.", min=1, rich_help_panel=PROTOCOL)] = 16,
    batch_size: Annotated[int, typer.Option(help="Probe batch size.", min=1, rich_help_panel=PROTOCOL)] = 8,
    min_steps: Annotated[
        int,
        typer.Option(
            help="Fewest steps of a probe. Longer probes check that a gain is not an under-trained baseline's.",
            min=1,
            rich_help_panel=PROTOCOL,
        ),
    ] = 1000,
    max_steps: Annotated[
        int,
        typer.Option(
            help="Most steps of a probe (40 epochs of its data, clamped to [min(MIN, MAX), MAX]).",
            min=1,
            rich_help_panel=PROTOCOL,
        ),
    ] = 3000,
    schedules: Annotated[
        int,
        typer.Option(
            help="One-cycle schedules per probe, back to back from the best weights: 2 is a warm restart, a "
            "stronger baseline (on the toy world +2.6 to +3.1 mIoU for real only at up to 40 real images).",
            min=1,
            rich_help_panel=PROTOCOL,
        ),
    ] = 1,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.", rich_help_panel=OUTPUT)] = Path(
        "evaluation-augment"
    ),
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace the layouts and generated trees under OUT/synthetic that other settings made (without "
            "it such a rerun stops with exit 1; with the same settings they are reused).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
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

        fgaug evaluate augment cityscapes/ --model runs/city/best.pt --strategy copy-paste-real --sizes 10,20

        fgaug evaluate augment cityscapes/ --model runs/city/checkpoints/best.pt --strategy content-paste-prior
    """
    from fgaug.api import evaluate_augment as run_augment

    with clear_errors():
        report = run_augment(
            data,
            out,
            model,
            parse_ints(sizes, "--sizes", 1),
            parse_ints(seeds, "--seeds", 0),
            samples,
            temp,
            mixing,
            strategy,
            val_split,
            test_split,
            width,
            batch_size,
            max_steps,
            device,
            precision,
            progress_for("probes", as_json),
            min_steps,
            schedules,
            overwrite=overwrite,
            sampling=sampling_options(guidance, denoise, denoise_scale),
        )

    def lines() -> None:
        from fgaug.stats import signed_interval

        for row in report["curve"]:
            typer.echo(f"real only, N={row['real']}: test mIoU {row['mean']:.4f} ± {row['half_width']:.4f}")
        for row in report["strategies"]:
            typer.echo(
                f"real + {row['synthetic']} synthetic, N={row['real']}: mIoU {signed_interval(row['difference'])}, "
                f"worth {row['worth']} real images"
            )
        typer.echo(f"report: {out / 'augment.md'}")

    emit(report, as_json, lines)


@app.command(cls=FgaugCommand)
def interpolate(
    mask: Annotated[
        Path,
        typer.Argument(help="The layout every frame is drawn on (a mask file).", metavar="MASK", show_default=False),
    ],
    start_style: Annotated[
        int | None, typer.Option("--from", help="Style seed of the first frame.", metavar="S", rich_help_panel=INPUT)
    ] = None,
    end_style: Annotated[
        int | None, typer.Option("--to", help="Style seed of the last frame.", metavar="S", rich_help_panel=INPUT)
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
        typer.Option("--temp", help="Sampling temperature (style walks).", callback=finite, rich_help_panel=SAMPLING),
    ] = 0.8,
    guidance: GuidanceOption = 0.0,
    denoise: DenoiseOption = False,
    denoise_scale: DenoiseScaleOption = 1.0,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for frame_000.png ... and strip.png.", rich_help_panel=OUTPUT)
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

        fgaug interpolate layout.png --from-photo a_leftImg8bit.png --to-photo b_leftImg8bit.png --out walk
    """
    from fgaug.api import find_content_mask
    from fgaug.interpolate import WalkOptions, interpolate_photos, interpolate_styles

    styles, photos = (start_style, end_style), (start_photo, end_photo)
    if any(v is not None for v in styles) == any(v is not None for v in photos):
        raise typer.BadParameter("give --from and --to (style seeds), or --from-photo and --to-photo")
    if None in styles and None in photos:
        raise typer.BadParameter("a walk needs both ends: --from with --to, or --from-photo with --to-photo")
    options = WalkOptions(
        model, temp, sampling_options(guidance, denoise, denoise_scale), device, precision, mask_format, snap_colors
    )
    with clear_errors():
        if start_style is not None and end_style is not None:
            walk = interpolate_styles(mask, out, start_style, end_style, steps, options)
        else:
            assert start_photo is not None and end_photo is not None
            ends = [(photo, find_content_mask(photo)) for photo in (start_photo, end_photo)]
            walk = interpolate_photos(mask, out, ends[0], ends[1], steps, options)

    def lines() -> None:
        typer.echo(f"{len(walk.frames)} frames in {out} (model {walk.model}); strip: {walk.strip}")

    emit(walk.to_dict(), as_json, lines)


@app.command(cls=FgaugCommand)
def presets() -> None:
    """List the model presets shipped with fgaug."""
    from fgaug.config import available_presets, load_preset

    for preset_name in available_presets():
        preset = load_preset(preset_name)
        height, width = preset.model.image_size
        typer.echo(f"{preset_name:12s} {height}x{width}  {preset.description}")


@app.command(cls=FgaugCommand)
def env() -> None:
    """Print versions and devices, for bug reports."""
    import torch

    from fgaug.runtime import cpu_description

    typer.echo(f"fgaug {__version__}")
    typer.echo(f"python {platform.python_version()} on {platform.platform()}")
    typer.echo(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    for index in range(torch.cuda.device_count()):
        typer.echo(f"  cuda:{index} {torch.cuda.get_device_name(index)}")
    typer.echo(f"CPU: {cpu_description()}; threads: {torch.get_num_threads()}")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"fgaug {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """fgaug: grow a Cityscapes-format dataset with Full-Glow."""


def main() -> None:
    app(prog_name="fgaug")


if __name__ == "__main__":
    sys.exit(main())
