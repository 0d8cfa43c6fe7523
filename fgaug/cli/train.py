"""``fgaug train``: options (from the command line or a ``--config`` file) into
:class:`~fgaug.training.options.TrainOptions`, then the run.
"""

from __future__ import annotations

import difflib
from dataclasses import fields
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Annotated

import typer

from fgaug.cli.command import (
    INPUT,
    MODEL,
    PERFORMANCE,
    RUN,
    TRAINING,
    FgaugCommand,
)

if TYPE_CHECKING:
    from fgaug.training.options import StopReason
from fgaug.cli.app import EXIT_INPUT_ERROR, EXIT_USAGE, app
from fgaug.cli.common import (
    CompileOption,
    DeviceOption,
    JsonOption,
    MaskFormatOption,
    PrecisionOption,
    SkipBadOption,
    SnapOption,
    bounded,
    clear_errors,
    emit,
    fail,
    noise_option,
    parse_size,
    working,
)
from fgaug.interrupts import EXIT_INTERRUPTED
from fgaug.training.options import CLI_NAMES, TrainOptions

STOP_EXIT_CODES: dict[StopReason, int] = {"signal": EXIT_INTERRUPTED, "non-finite loss": EXIT_INPUT_ERROR}
"""The exit code of a run stopped early, by its :data:`~fgaug.training.options.StopReason`."""


NOT_IN_CONFIG = ("config", "json", "dry_run", "resume", "help")
"""Options of ``train`` that a config file cannot set: what one invocation asks for."""


def config_defaults(ctx: typer.Context, value: Path | None) -> Path | None:
    """Callback of ``train --config``: the file's values become the defaults that the command line
    overrides (click's ``default_map``, so they are checked as typed options are). A key that is no
    option of ``train`` is a usage error naming the file and the key (exit 2)."""
    if value is None or ctx.resilient_parsing:
        return value
    from fgaug.cli.optionfile import read_option_file
    from fgaug.flow.config import ConfigError

    keys, params = {}, {param.name: param for param in ctx.command.params}
    for param in ctx.command.params:
        for spelling in [opt for opt in param.opts if opt.startswith("--")] or [str(param.name)]:
            keys[spelling.lstrip("-").replace("-", "_")] = param.name
    try:
        values = read_option_file(value)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from None
    for key in values:
        if key not in keys or key in NOT_IN_CONFIG:
            close = difflib.get_close_matches(key, [k for k in keys if k not in NOT_IN_CONFIG], n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            known = "the keys are train's options: fgaug train --help"
            raise fail(f"{value}: unknown key '{key}' ({hint}{known})", EXIT_USAGE)
        param = params[keys[key]]
        if isinstance(values[key], bool) and not getattr(param, "is_flag", False):  # click reads true as 1
            raise fail(
                f"{value}: {key}: {str(values[key]).lower()} is not a valid value; it is no on/off option", EXIT_USAGE
            )
        try:
            param.process_value(ctx, values[key])
        except typer.BadParameter as error:
            raise fail(f"{value}: {key}: {error.format_message()}", EXIT_USAGE) from None
    ctx.default_map = {**(ctx.default_map or {}), **{keys[key]: values[key] for key in values}}
    return value


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def given_options(ctx: typer.Context) -> frozenset[str]:
    """The ``TrainOptions`` fields given on the command line or in a ``--config`` file, even where
    the value given is the default (``--resume`` compares them with the run's); each parameter is
    known by its spelling, ``--lambda`` the field ``source_weight`` (:data:`CLI_NAMES`)."""
    field_of = {CLI_NAMES.get(option.name, option.name): option.name for option in fields(TrainOptions)}
    given = set()
    for param in ctx.command.params:
        spelling = next((opt[2:].replace("-", "_") for opt in param.opts if opt.startswith("--")), str(param.name))
        source = ctx.get_parameter_source(str(param.name))
        if spelling in field_of and source is not None and source.name in ("COMMANDLINE", "DEFAULT_MAP", "ENVIRONMENT"):
            given.add(field_of[spelling])
    return frozenset(given)


def conditioning_mode(value: str | None) -> str | None:
    """Callback of ``train --conditioning``: one of the modes, else a usage error (exit 2)."""
    from fgaug.flow.config import CONDITIONING_MODES

    if value is not None and value not in CONDITIONING_MODES:
        raise typer.BadParameter(f"{value!r} is none of {', '.join(CONDITIONING_MODES)}")
    return value


def run_name(value: str) -> str:
    """Callback of ``train --name``: a folder inside PROJECT (``city256``, or ``city/256``), never
    a path out of it (``../x``, an absolute path) or PROJECT itself."""
    parts = PurePath(value).parts
    if not parts or PurePath(value).is_absolute() or ".." in parts:
        raise typer.BadParameter(
            f"{value!r} is no run name inside --project; give a folder name, and the folder above it as --project"
        )
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
    mask_format: MaskFormatOption = TrainOptions.mask_format,
    snap_colors: SnapOption = TrainOptions.snap_colors,
    skip_bad: SkipBadOption = TrainOptions.skip_bad,
    preset: Annotated[
        str,
        typer.Option(
            help="Model preset name (see `fgaug presets`) or a JSON file.", metavar="NAME", rich_help_panel=MODEL
        ),
    ] = TrainOptions.preset,
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
    ] = TrainOptions.source_weight,
    conditioning: Annotated[
        str | None,
        typer.Option(
            help="Ablations of the paper's Table 1: full (Full-Glow, default), coupling (Dual-Glow/C-Flow style: "
            "only couplings conditioned), raw (C-Glow style: the raw mask conditions every operation).",
            metavar="MODE",
            callback=conditioning_mode,
            rich_help_panel=MODEL,
        ),
    ] = TrainOptions.conditioning,
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
    ] = TrainOptions.noise,
    condition_dropout: Annotated[
        float | None,
        typer.Option(
            help="Fraction of each batch trained with the null condition (an all-zero mask), so that "
            "generate --guidance W can be used (e.g. 0.1; default 0).",
            callback=bounded(0, 1, open_high=True),
            metavar="P",
            rich_help_panel=MODEL,
        ),
    ] = TrainOptions.condition_dropout,
    init_from: Annotated[
        str | None,
        typer.Option(
            help="Fine-tune: start from this checkpoint's weights (demo: the bundled model) instead of a random "
            "initialisation. Its model must be the run's (same preset and model options; --noise, "
            "--condition-dropout and --lambda may differ).",
            metavar="MODEL",
            rich_help_panel=MODEL,
        ),
    ] = None,
    boundary: Annotated[
        bool, typer.Option(help="Add the instance-boundary channel to the condition.", rich_help_panel=MODEL)
    ] = TrainOptions.boundary,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Batch size per process (default: the preset's).", min=1, rich_help_panel=TRAINING),
    ] = TrainOptions.batch_size,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Adam learning rate (default: the preset's).",
            callback=bounded(0, open_low=True),
            rich_help_panel=TRAINING,
        ),
    ] = TrainOptions.lr,
    steps: Annotated[
        int | None, typer.Option(help="Training steps (overrides --epochs).", min=1, rich_help_panel=TRAINING)
    ] = TrainOptions.steps,
    epochs: Annotated[
        float | None,
        typer.Option(
            help="Epochs over the training set (default 45, the paper's).",
            callback=bounded(0, open_low=True),
            rich_help_panel=TRAINING,
        ),
    ] = TrainOptions.epochs,
    seed: Annotated[
        int, typer.Option(help="Seed of initialisation, data order and noise.", min=0, rich_help_panel=TRAINING)
    ] = TrainOptions.seed,
    warmup_steps: Annotated[
        int, typer.Option(help="Linear learning-rate warm-up steps.", min=0, rich_help_panel=TRAINING)
    ] = TrainOptions.warmup_steps,
    grad_clip: Annotated[
        float,
        typer.Option(
            help="Gradient-norm clipping threshold.", callback=bounded(0, open_low=True), rich_help_panel=TRAINING
        ),
    ] = TrainOptions.grad_clip,
    ema_decay: Annotated[
        float,
        typer.Option(
            help="Decay of the weight average used for samples.",
            callback=bounded(0, 1, open_high=True),
            rich_help_panel=TRAINING,
        ),
    ] = TrainOptions.ema_decay,
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many validations in a row without a better validation bits/dim (0: never; "
            "switches off a resumed run's).",
            min=0,
            rich_help_panel=TRAINING,
        ),
    ] = TrainOptions.patience,
    project: Annotated[
        Path,
        typer.Option(
            help="Folder holding run folders; the run folder is PROJECT/NAME (ultralytics' convention, so train "
            "takes these two instead of --out).",
            rich_help_panel=RUN,
        ),
    ] = Path("runs"),
    name: Annotated[
        str, typer.Option(help="Run name: the run folder is PROJECT/NAME.", callback=run_name, rich_help_panel=RUN)
    ] = "fullglow",
    resume: Annotated[
        bool, typer.Option(help="Continue the run in PROJECT/NAME from its last checkpoint.", rich_help_panel=RUN)
    ] = TrainOptions.resume,
    exist_ok: Annotated[
        bool, typer.Option(help="Start afresh in an existing run folder.", rich_help_panel=RUN)
    ] = TrainOptions.exist_ok,
    checkpoint_every: Annotated[
        int, typer.Option(help="Steps between checkpoints.", min=1, rich_help_panel=RUN)
    ] = TrainOptions.checkpoint_every,
    validate_every: Annotated[
        int, typer.Option(help="Steps between validations.", min=1, rich_help_panel=RUN)
    ] = TrainOptions.validate_every,
    sample_every: Annotated[
        int, typer.Option(help="Steps between sample grids.", min=1, rich_help_panel=RUN)
    ] = TrainOptions.sample_every,
    log_every: Annotated[
        int,
        typer.Option(
            help="Steps between lines of metrics.jsonl (the loss is read from the GPU only then).",
            min=1,
            rich_help_panel=RUN,
        ),
    ] = TrainOptions.log_every,
    tensorboard: Annotated[
        bool | None,
        typer.Option(
            "--tensorboard/--no-tensorboard",
            help="TensorBoard events in RUN/tensorboard (default: when the tensorboard package is installed).",
            rich_help_panel=RUN,
            show_default=False,
        ),
    ] = TrainOptions.tensorboard,
    as_json: JsonOption = False,
    device: DeviceOption = TrainOptions.device,
    precision: PrecisionOption = TrainOptions.precision,
    workers: Annotated[
        int, typer.Option(help="DataLoader worker processes.", min=0, rich_help_panel=PERFORMANCE)
    ] = TrainOptions.workers,
    checkpointing: Annotated[
        bool,
        typer.Option(
            help="Gradient checkpointing per flow step: far less memory, about 30% more time.",
            rich_help_panel=PERFORMANCE,
        ),
    ] = TrainOptions.gradient_checkpointing,
    compile_networks: CompileOption = TrainOptions.compile,
    cuda_graphs: Annotated[
        bool | None,
        typer.Option(
            "--cuda-graphs/--no-cuda-graphs",
            help="Replay each step's forward and backward passes from a CUDA graph, so kernel launches do not "
            "set the pace. Default: on where valid (CUDA, one process, no --checkpointing or --compile), "
            "falling back to eager steps if the graph's memory does not fit; --cuda-graphs refuses to fall back.",
            show_default=False,
            rich_help_panel=PERFORMANCE,
        ),
    ] = TrainOptions.cuda_graphs,
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
    from fgaug.api import train as run_training
    from fgaug.training.dry_run import dry_run as measure
    from fgaug.training.options import TrainingStoppedError

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
    if resume and exist_ok:
        raise typer.BadParameter(
            "--resume goes on with the run, --exist-ok starts it afresh: give one", param_hint="--resume"
        )

    if _on_command_line(ctx, "epochs") and not _on_command_line(ctx, "steps"):
        steps = None  # --epochs on the command line outweighs a config file's steps
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
        init_from=init_from,
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
        given=given_options(ctx),
    )
    with clear_errors(), working("steps", as_json) as progress:
        try:
            result = run_training(options, progress)
        except TrainingStoppedError as stopped:
            raise fail(f"{stopped} (checkpoint: {stopped.checkpoint})", STOP_EXIT_CODES[stopped.reason]) from None

    def lines() -> None:
        early = " (stopped early: validation stopped improving)" if result.stopped_early else ""
        typer.echo(f"trained to step {result.steps}{early}; run folder {result.run_dir}")
        typer.echo(
            f"{result.images} images in {result.seconds:.1f} s ({result.images_per_second:.2f} images/s); "
            f"peak memory {result.peak_memory_mib:.0f} MiB ({result.peak_memory_kind})"
        )
        if result.first_val_bpd is not None:
            typer.echo(f"validation bits/dim {result.first_val_bpd:.4f} -> {result.last_val_bpd:.4f}")
        typer.echo(f"checkpoint: {result.last_checkpoint}")

    emit(result.to_dict(), as_json, lines)
