"""The click command class behind every ``fgaug`` command: readable help, deprecated spellings, and
the right flag suggested for a wrong one.

- Help: flags show no ``<bool>`` and counts no ``[x>=1]`` in the type column; a value option shows
  its metavar (``--temp FLOAT``), so the help text keeps most of the width.
- Deprecated spellings (issue 22, item 9) are rewritten to the current ones before parsing, so
  they keep working for one release without showing in ``--help``; :data:`DEPRECATED` lists them
  per command and ``docs/cli.md`` names them.
- An unknown option common in other tools (``--output-dir``, ``--temperature``, ``--weights``...)
  is answered with this command's spelling, besides click's own close matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from typer import Exit
from typer._click.exceptions import NoSuchOption, UsageError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

POSITIONAL = ""
"""The new spelling of an option that became an argument: its value is passed positionally."""


INPUT, SAMPLING, STRATEGIES, OUTPUT, PERFORMANCE = "Input", "Sampling", "Strategies", "Output", "Performance"


MODEL, TRAINING, RUN, PROTOCOL = "Model", "Training", "Run folder and logging", "Protocol"
"""Help panels (``rich_help_panel``)."""


PANELS_FROM = 12
"""Options a command needs before its help is split into panels; fewer read best as one list."""


DEPRECATED: dict[str, dict[str, str]] = {
    "generate": {"--masks": POSITIONAL, "--n": "--samples"},
    "layouts": {"--n": "--per-mask"},
    "transfer": {"--output": "--out"},
    "prepare": {"--output": "--out"},
    "segmenter train": {"--output": "--out"},
    "demo": {"--masks": "--scenes", "--n": "--samples"},
    "evaluate quality": {"--n": "--samples"},
    "evaluate augment": {"--n": "--samples"},
}
"""Old spelling -> current one, per command path (without ``fgaug``): accepted until the next
release, hidden from ``--help``."""


DEPRECATED_POSITIONAL: dict[str, str] = {
    command: old for command, aliases in DEPRECATED.items() for old, new in aliases.items() if new == POSITIONAL
}
"""The old option that became each command's argument (``generate --masks``)."""


OUT = ("--out", "--project")


USED_ONLY_WITH: dict[str, str] = {"denoise_scale": "denoise"}
"""Options that only a flag puts to use, by parameter name: given on the command line without
that flag they would change nothing, so :meth:`FgaugCommand.invoke` refuses them (exit 2)."""


WRONG_FLAGS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("-o", "--output", "--output-dir", "--output_dir", "--outdir", "--out-dir", "--save-dir"), OUT),
    **dict.fromkeys(("-n", "--n", "--num-samples", "--n-samples", "--num_samples"), ("--samples", "--per-mask")),
    "--samples": ("--per-mask",),
    "--per-mask": ("--samples",),
    "--temperature": ("--temp",),
    **dict.fromkeys(("--weights", "--checkpoint", "--ckpt"), ("--model",)),
    **dict.fromkeys(("--gpu", "--gpus", "--cuda"), ("--device",)),
    **dict.fromkeys(("--batch", "--bs"), ("--batch-size",)),
    "--cfg": ("--config",),
    **dict.fromkeys(("--name", "--project"), ("--out",)),
}
"""Options users bring from other tools -> fgaug's spellings; the first this command has is suggested."""


POSITIONAL_GUESSES = ("--masks", "--data", "--input", "--source", "--mask", "--checkpoint")
"""Options users try for an input that is an argument here."""


class FgaugCommand(TyperCommand):
    """A Typer command with :data:`DEPRECATED` spellings, flag suggestions and a tidy type column."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = [param for param in self.params if isinstance(param, TyperOption)]
        for param in options:
            tidy(param)
            if len(options) < PANELS_FROM:
                param.rich_help_panel = None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        taken = quiet_negatives(self.params)
        try:
            super().format_help(ctx, formatter)
        finally:
            for param, opts, secondary_opts in taken:
                param.opts, param.secondary_opts = opts, secondary_opts

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def invoke(self, ctx: Any) -> Any:
        """The command; with ``--json``, a failure leaves its error as JSON on stdout too
        (:func:`~fgaug.cli.common.json_failure`)."""
        from fgaug.cli.common import REPORT, json_failure

        REPORT.reset()
        try:
            self.check_used_only_with(ctx)
            return super().invoke(ctx)
        except Exit as stop:
            if stop.exit_code and ctx.params.get("as_json"):
                json_failure(stop.exit_code)
            raise
        except UsageError as error:  # raised by the command itself (typer.BadParameter: options that clash)
            if ctx.params.get("as_json"):
                json_usage_error(error)
            raise

    def check_used_only_with(self, ctx: Any) -> None:
        """Refuse an option given without the flag that puts it to use (:data:`USED_ONLY_WITH`)."""
        from typer._click.core import ParameterSource

        for name, flag in USED_ONLY_WITH.items():
            given = name in ctx.params and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
            if given and not ctx.params.get(flag):
                option, needed = (f"--{key.replace('_', '-')}" for key in (name, flag))
                raise UsageError(f"{option} applies with {needed} only; add {needed}", ctx)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """The arguments, deprecated spellings rewritten. An error found while they are read (a
        value out of range, a missing argument, an option's callback such as ``train --config``
        with a wrong key) leaves its error as JSON on stdout with ``--json`` too, as :meth:`invoke`
        does; click's message stays on stderr."""
        from fgaug.cli.common import REPORT, json_failure

        REPORT.reset()
        aliases, as_json = DEPRECATED.get(command_path(ctx), {}), "--json" in args  # click consumes args
        try:
            return super().parse_args(ctx, rewrite(args, aliases))
        except Exit as stop:
            if stop.exit_code and as_json:
                json_failure(stop.exit_code)
            raise
        except UsageError as error:
            failure = (
                self.suggest(error, ctx) if isinstance(error, NoSuchOption) else self.given_twice(error, args, ctx)
            )
            if as_json:
                json_usage_error(failure)
            raise failure from None

    def given_twice(self, error: UsageError, args: list[str], ctx: Any) -> UsageError:
        """The error, or where an input was given both as the argument and as the old option that
        became it (``generate MASKS --masks OTHER``: click saw an extra argument), one that says so."""
        old = DEPRECATED_POSITIONAL.get(command_path(ctx))
        options = args[: args.index("--") if "--" in args else len(args)]
        if old not in {arg.partition("=")[0] for arg in options} or "unexpected extra argument" not in error.message:
            return error
        argument = next(param for param in self.params if isinstance(param, TyperArgument))
        name = argument.metavar or str(argument.name).upper()
        return UsageError(f"{old} is the old spelling of the argument {name}: give {name} once", ctx)

    def suggest(self, error: NoSuchOption, ctx: Any) -> NoSuchOption:
        """The error with this command's spelling of a flag from another tool."""
        wrong = error.option_name.split("=", 1)[0]
        right = next((name for name in WRONG_FLAGS.get(wrong, ()) if self.has_option(name)), None)
        arguments = [param for param in self.params if isinstance(param, TyperArgument)]
        if right is None and wrong in POSITIONAL_GUESSES and arguments:
            names = [param.metavar or str(param.name).upper() for param in arguments]
            usage = " ".join(
                name if param.required else f"[{name}]" for name, param in zip(names, arguments, strict=True)
            )
            message = f"No such option: {wrong}; give the input as an argument: {ctx.command_path} {usage} [OPTIONS]"
            return NoSuchOption(wrong, message=message, ctx=ctx)
        possibilities = list(error.possibilities or [])
        if right and right not in possibilities:
            possibilities.insert(0, right)
        return NoSuchOption(wrong, possibilities=possibilities, ctx=ctx)

    def has_option(self, name: str) -> bool:
        return any(name in param.opts or name in param.secondary_opts for param in self.params)


class FgaugGroup(TyperGroup):
    """A Typer group whose own options (``--version``, completion, help) get the tidy type column."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):
            if isinstance(param, TyperOption):
                tidy(param)
        super().format_help(ctx, formatter)


def command_path(ctx: Any) -> str:
    """``generate``, ``segmenter train``...: the command's path without the program name."""
    return ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ctx.command_path


def rewrite(args: list[str], aliases: Mapping[str, str]) -> list[str]:
    """``args`` with every deprecated spelling in ``aliases`` replaced (``--old=value`` too); an
    option that became an argument leaves its value in place. Nothing after ``--`` changes. An
    old spelling given beside its current one is a usage error: the last of the two won, silently."""
    if not aliases:
        return args
    given = {arg.partition("=")[0] for arg in args[: args.index("--") if "--" in args else len(args)]}
    for old, current in aliases.items():
        if old in given and current in given:
            raise UsageError(f"{old} is the old spelling of {current}: give one of them")
    rewritten: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            return rewritten + args[index:]
        name, equals, value = arg.partition("=")
        if name not in aliases:
            rewritten.append(arg)
        elif aliases[name] == POSITIONAL:
            rewritten += [value] if equals else []
        else:
            rewritten.append(aliases[name] + equals + value)
    return rewritten


def tidy(param: TyperOption) -> None:
    """``param`` as ``--help`` shows it: a value option with its metavar (``INT``, ``PATH``, or the
    placeholder its help text uses), no range (left to the help text and to the error a wrong value
    gets), and a flag with no type and, when it is off by default, no ``[default: no-...]``."""
    if param.is_flag:
        param.metavar = ""
        param.show_default = param.default is None
    elif param.metavar is None:
        label = param.display_type(None)[1:-1].removesuffix(" range")  # type: ignore[arg-type]  # typer wants a Context; none exists yet, and it works without
        label = label.removeprefix("list[").removesuffix("]").upper()
        param.metavar = "TEXT" if label == "STR" else label
    param.min = param.max = None


def shown_names(param: Any) -> tuple[list[str], list[str]]:
    """``(opts, secondary_opts)`` of ``param`` as the help shows them: an on/off flag by the
    spelling that changes something, ``--x`` for a flag off by default, ``--no-x`` for one on by
    default. The other spelling still parses (it overrides a ``train --config`` file)."""
    if isinstance(param, TyperOption) and param.is_flag and param.secondary_opts and param.default is not None:
        return (param.opts if param.default is False else param.secondary_opts), []
    return param.opts, param.secondary_opts


def quiet_negatives(params: list[Any]) -> list[tuple[Any, list[str], list[str]]]:
    """Give every parameter its :func:`shown_names` for the help; returns what to put back."""
    taken = []
    for param in params:
        shown = shown_names(param)
        if shown != (param.opts, param.secondary_opts):
            taken.append((param, param.opts, param.secondary_opts))
            param.opts, param.secondary_opts = shown
    return taken


def json_usage_error(error: UsageError) -> None:
    """With ``--json``, click's usage error as the JSON error on stdout too (its message, made one
    line, and exit code 2); click prints its own message on stderr."""
    from fgaug.cli.common import REPORT, json_failure

    REPORT.error = " ".join(error.format_message().split())
    json_failure(error.exit_code)
