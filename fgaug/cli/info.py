"""``fgaug info``, ``fgaug demo``, ``fgaug presets``, ``fgaug env`` and ``--version``."""

from __future__ import annotations

import platform
import shlex
import time
from pathlib import Path
from typing import Annotated

import typer

from fgaug import __version__
from fgaug.cli.app import app
from fgaug.cli.command import (
    FgaugCommand,
)
from fgaug.cli.common import JsonOption, SamplesOption, bounded, clear_errors, emit, working


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

    with clear_errors(), working("img", as_json) as progress:
        result = run_demo(out, samples, scenes, temp, progress=progress)
    seconds = time.perf_counter() - started
    next_commands = demo_next_commands(out, result.splits["train"])
    summary = {**result.to_dict(), "seconds": round(seconds, 2), "next_commands": next_commands}  # the whole command

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


@app.command(cls=FgaugCommand)
def presets() -> None:
    """List the model presets shipped with fgaug."""
    from fgaug.training.presets import available_presets, load_preset

    for preset_name in available_presets():
        preset = load_preset(preset_name)
        height, width = preset.model.image_size
        typer.echo(f"{preset_name:12s} {height}x{width}  {preset.description}")


@app.command(cls=FgaugCommand)
def env() -> None:
    """Print versions and devices, for bug reports."""
    import torch

    from fgaug.cores import sharing_description
    from fgaug.flow.layers import onednn_preferred
    from fgaug.runtime import cpu_description

    typer.echo(f"fgaug {__version__}")
    typer.echo(f"python {platform.python_version()} on {platform.platform()}")
    typer.echo(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    for index in range(torch.cuda.device_count()):
        typer.echo(f"  cuda:{index} {torch.cuda.get_device_name(index)}")
    typer.echo(f"CPU: {cpu_description()}; threads: {torch.get_num_threads()}, {sharing_description()}")
    route = "oneDNN, called by fgaug" if onednn_preferred() else "torch's choice (fgaug calls oneDNN only on AVX512)"
    typer.echo(f"CPU kernels: {torch.backends.cpu.get_cpu_capability()}; the networks' float32 convolutions: {route}")


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
