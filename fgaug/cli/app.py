"""The ``fgaug`` Typer application, its command groups and its exit codes."""

from __future__ import annotations

import typer

from fgaug.cli.command import (
    FgaugGroup,
)
from fgaug.interrupts import EXIT_INTERRUPTED as EXIT_INTERRUPTED  # 130: set where SIGTERM is handled

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
