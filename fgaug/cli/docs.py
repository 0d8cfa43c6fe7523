"""The command reference ``docs/cli.md``, generated from the CLI itself so that it cannot drift.

    python -m fgaug.cli.docs docs/cli.md           # write it
    python -m fgaug.cli.docs --check docs/cli.md   # exit 1 if the file differs from the CLI (.ci/run)

Every command, its help, its arguments and its options (grouped as ``--help`` groups them) with
their types, defaults and help, and the deprecated spellings each command still accepts. The text
depends on nothing but the CLI's declarations: no terminal width, no environment.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typer.main import get_command

from fgaug.cli.command import DEPRECATED, shown_names

HEADER = """# Command reference

Generated from the CLI by `python -m fgaug.cli.docs docs/cli.md`; do not edit by hand (`.ci/run`
checks that it matches). `fgaug COMMAND --help` shows the same. An on/off flag is listed by the
spelling that changes its default; the opposite one (`--no-x`, or `--x`) is accepted too, to
override a `train --config` file. Exit codes: 0 success, 1 bad input or a failed run, 2 usage
errors, 3 `generate` left requested samples unwritten, 130 stopped by Ctrl-C or SIGTERM (training
saves a checkpoint first).
"""


def reference() -> str:
    """The whole Markdown reference."""
    from fgaug.cli.app import app

    root = get_command(app)
    commands = list(walk(root, "fgaug"))
    lines = [HEADER, help_text(root.help or ""), ""]
    lines += [f"- [`{path}`](#{anchor(path)})" for path, _ in commands]
    for path, command in commands:
        lines += ["", *command_section(path, command)]
    return "\n".join(lines).rstrip() + "\n"


def walk(group: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(fgaug generate, command)`` for every command, subcommands after their group's."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from walk(command, f"{path} {name}")
        elif not command.hidden:
            yield f"{path} {name}", command


def anchor(path: str) -> str:
    """GitHub's anchor of the heading ``path``."""
    return path.replace(" ", "-")


def command_section(path: str, command: Any) -> list[str]:
    arguments = [param for param in command.params if param.param_type_name == "argument"]
    usage = " ".join(argument_name(param) for param in arguments)
    lines = [f"## {path}", "", f"`{path} [OPTIONS]{' ' + usage if usage else ''}`", "", help_text(command.help or "")]
    if arguments:
        lines += ["", "| argument | help |", "| --- | --- |"]
        lines += [f"| `{argument_name(param)}` | {cell(param.help or '')} |" for param in arguments]
    panels: dict[str, list[Any]] = {}
    for param in command.params:
        if param.param_type_name == "option":
            panels.setdefault(param.rich_help_panel or "Options", []).append(param)
    for panel, options in panels.items():
        lines += ["", f"**{panel}**", "", "| option | type | default | help |", "| --- | --- | --- | --- |"]
        lines += [option_row(param) for param in options]
    old = DEPRECATED.get(path.removeprefix("fgaug "), {})
    if old:
        spelled = ", ".join(f"`{name}` (now {(new and f'`{new}`') or 'an argument'})" for name, new in old.items())
        lines += ["", f"Deprecated spellings, still accepted until the next release: {spelled}."]
    return lines


def argument_name(param: Any) -> str:
    name = param.metavar or str(param.name).upper()
    return name if param.required else f"[{name}]"


def option_row(param: Any) -> str:
    opts, secondary_opts = shown_names(param)
    names = " / ".join(f"`{name}`" for name in [*opts, *secondary_opts])
    kind = "flag" if param.is_flag else (param.metavar or "")
    if param.multiple:
        kind += ", repeatable"
    return f"| {names} | {kind} | {default(param)} | {cell(param.help or '')} |"


def default(param: Any) -> str:
    if param.required:
        return "required"
    return "" if param.is_flag or param.default is None else f"`{param.default}`"


def cell(text: str) -> str:
    """``text`` on one line, safe in a Markdown table cell (``<`` escaped outside code spans)."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    return "`".join(part if index % 2 else part.replace("<", "&lt;") for index, part in enumerate(parts))


def help_text(text: str) -> str:
    """A command's docstring as Markdown: its indented example lines become a ``bash`` block."""
    lines, block = [], []
    for line in inspect.cleandoc(text).splitlines():
        if line.startswith("    "):
            block.append(line.strip())
            continue
        if block and not line.strip():
            continue
        if block:
            lines += ["```bash", *block, "```", ""]
            block = []
        lines.append(line)
    if block:
        lines += ["```bash", *block, "```"]
    return "\n".join(lines).strip()


def main(arguments: list[str]) -> int:
    check = "--check" in arguments
    paths = [argument for argument in arguments if argument != "--check"]
    if len(paths) != 1 or paths[0].startswith("-"):  # `--help` wrote a file of that name
        print("usage: python -m fgaug.cli.docs [--check] docs/cli.md", file=sys.stderr)
        return 2
    path, text = Path(paths[0]), reference()
    if not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return 0
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return 0
    print(f"{path} does not match the CLI; regenerate it: python -m fgaug.cli.docs {path}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
