"""What the commands share: option types and validators, the one-line error handling, output
as text or JSON, and progress bars.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fgaug.cli.command import (
    INPUT,
    OUTPUT,
    PERFORMANCE,
    SAMPLING,
)
from fgaug.errors import FgaugError
from fgaug.finite import to_json
from fgaug.interrupts import EXIT_INTERRUPTED, LAST_SIGNAL
from fgaug.progress import Progress

if TYPE_CHECKING:
    from fgaug.flow.sampling import SamplingOptions
from fgaug.cli.app import EXIT_INPUT_ERROR, EXIT_USAGE


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``HEIGHTxWIDTH`` as a pair of positive integers; anything else is a usage error naming ``option``."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not HEIGHTxWIDTH, e.g. 256x512", param_hint=option) from None
    if height <= 0 or width <= 0:
        raise typer.BadParameter(f"{text!r}: height and width must be positive", param_hint=option)
    return height, width


def finite(value: float | None) -> float | None:
    """NaN and infinities are usage errors (exit 2)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def noise_option(value: str | None) -> str | None:
    """Callback of ``--noise``: ``uniform`` or ``gaussian:SIGMA``, else a usage error (exit 2)."""
    from fgaug.flow.config import ConfigError, parse_noise

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
        value = finite(value)
        if value is None:
            return None
        below = low is not None and (value <= low if open_low else value < low)
        above = high is not None and (value >= high if open_high else value > high)
        if below or above:
            raise typer.BadParameter(f"{value:g} is not in the range {low_text}x{high_text}.")
        return value

    return check


@dataclass
class CommandReport:
    """What this process's command has reported: its ``--json`` object, the one-line error it
    failed with. Read by :func:`json_failure`."""

    printed_json: bool = False
    error: str | None = None

    def reset(self) -> None:
        """A new command begins (tests run several in one process)."""
        self.printed_json, self.error = False, None


REPORT = CommandReport()


def fail(message: str, code: int = EXIT_INPUT_ERROR) -> typer.Exit:
    from fgaug.cli.console import err_console

    REPORT.error = message
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def json_failure(code: int) -> None:
    """With ``--json``, a command that failed before printing its object prints
    ``{"error": <its one-line error>, "exit_code": code}`` on stdout, so that a CI job keeping
    stdout as its summary keeps the reason (the line on stderr stays)."""
    if not REPORT.printed_json and REPORT.error is not None:
        typer.echo(to_json({"error": REPORT.error, "exit_code": code}))
        REPORT.printed_json = True


FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
"""Errors of the file system that a user causes (a path that is missing, forbidden, a folder where
a file belongs or the reverse): printed as one line naming the file, like a :class:`FgaugError`."""


FULL_OR_READ_ONLY = frozenset({errno.ENOSPC, errno.EROFS})
"""``OSError`` numbers of a full or a read-only disk: the user's to fix, too."""


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is the user's to fix (an :class:`FgaugError`, or a file the user named
    that is missing, forbidden or on a full or read-only disk) rather than a bug."""
    if isinstance(error, (FgaugError, *FILE_ERRORS)):
        return True
    return isinstance(error, OSError) and error.errno in FULL_OR_READ_ONLY


def one_line(error: BaseException) -> str:
    """The first line of ``error``'s message; a file system error as ``FILE: what is wrong``."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__


@contextmanager
def clear_errors() -> Iterator[None]:
    """Print the errors a user causes as one line on stderr: a :class:`~fgaug.usage.UsageError` with
    exit code 2, any other :class:`~fgaug.errors.FgaugError` or a file error (:func:`is_user_error`)
    with exit code 1. Anything else is a bug and propagates with its traceback."""
    from fgaug.usage import UsageError

    try:
        yield
    except UsageError as error:
        raise fail(one_line(error), EXIT_USAGE) from None
    except (FgaugError, OSError) as error:
        if not is_user_error(error):
            raise
        raise fail(one_line(error)) from None
    except KeyboardInterrupt as interrupt:
        raise interrupted(interrupt) from None


def interrupted(interrupt: KeyboardInterrupt) -> typer.Exit:
    """The one line and exit code 130 of a command stopped by SIGTERM or Ctrl-C (whose interrupt
    names no signal)."""
    return fail(f"interrupted by {str(interrupt) or 'SIGINT'}", EXIT_INTERRUPTED)


def unannounced_interrupt(code: object, arguments: Sequence[str]) -> None:
    """Announce an interrupt that ended the command before any of fgaug's handling saw it: while
    Typer built the commands or read the options, where Typer exits 130 without a word. The one
    line, and with ``--json`` in ``arguments`` the JSON error; nothing for any other ending."""
    if code != EXIT_INTERRUPTED or REPORT.error is not None:
        return
    stop = interrupted(KeyboardInterrupt(LAST_SIGNAL[0]))
    if "--json" in arguments:
        json_failure(stop.exit_code)


def emit(result: dict[str, Any], as_json: bool, lines: Callable[[], None]) -> None:
    if as_json:
        typer.echo(to_json(result))
        REPORT.printed_json = True
    else:
        lines()


@contextmanager
def working(unit: str, as_json: bool) -> Iterator[Progress]:
    """The progress display of a command that computes (a bar on a terminal, plain lines
    otherwise), while the command shares the CPU's cores with the other fgaug processes running
    (:mod:`fgaug.cores`)."""
    from fgaug.cli.console import make_progress
    from fgaug.cores import shared_cores

    progress = make_progress(unit, quiet=as_json)
    with shared_cores(log=progress.log):
        yield progress


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


BestOfOption = Annotated[
    int,
    typer.Option(
        help="Keep the most likely of K draws for every sample.", min=1, metavar="K", rich_help_panel=SAMPLING
    ),
]

CompileOption = Annotated[
    bool,
    typer.Option(
        "--compile/--no-compile",
        help="torch.compile the networks (on CUDA also the flow's element-wise arithmetic); "
        "the first batches pay the compilation.",
        rich_help_panel=PERFORMANCE,
    ),
]


MaskFormatOption = Annotated[
    str,
    typer.Option(
        help="labelIds, labelTrainIds, color, or auto (from the file name, then the content).",
        metavar="FORMAT",
        rich_help_panel=INPUT,
    ),
]


SnapOption = Annotated[
    bool,
    typer.Option(
        help="Map off-palette pixels of colour masks (left by smooth resizing) to the nearest palette "
        "colour in the mask; without it such masks are refused.",
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
        help="Replace an output tree that other settings made (its fgaug-run.json says which), removing "
        "fgaug's own files only. Without it such a rerun exits 1; one with the same settings resumes.",
        rich_help_panel=OUTPUT,
    ),
]


WriteThreadsOption = Annotated[
    int | None,
    typer.Option(
        help="Threads writing the files while the work goes on (the same files). Default: the CPU threads, "
        "up to 8; 0 writes in the loop.",
        min=0,
        show_default=False,
        rich_help_panel=PERFORMANCE,
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
        "--denoise/--no-denoise",
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
    typer.Option(
        help="Splits of a Cityscapes root or its gtFine folder (repeatable; default all).",
        metavar="SPLIT",
        rich_help_panel=INPUT,
    ),
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


def parse_floats(text: str, option: str, low: float) -> list[float]:
    """The comma-separated finite numbers of ``option``, none below ``low`` (anything else is a usage
    error, exit 2)."""
    if any(not item.strip() for item in text.split(",")):
        raise typer.BadParameter(f"{text!r} holds an empty entry: one comma between numbers", param_hint=option)
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=option) from None
    if not all(math.isfinite(value) for value in values):
        raise typer.BadParameter(f"{text!r} holds a number that is not finite", param_hint=option)
    if min(values) < low:
        raise typer.BadParameter(f"{text!r}: give numbers of at least {low:g}", param_hint=option)
    return values


def parse_ints(text: str, option: str, low: int) -> list[int]:
    """The comma-separated whole numbers of ``option``, none below ``low`` (else exit 2)."""
    values = parse_floats(text, option, low)
    if any(value != int(value) for value in values):
        raise typer.BadParameter(f"{text!r} holds a number that is not whole", param_hint=option)
    return [int(value) for value in values]
