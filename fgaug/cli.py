"""Command-line interface (placeholder until the CLI issue lands)."""

import typer

app = typer.Typer(help="fgaug: grow a Cityscapes-format dataset with Full-Glow.", no_args_is_help=True)


@app.command()
def presets() -> None:
    """List the model presets shipped with fgaug."""
    from fgaug.config import available_presets, load_preset

    for name in available_presets():
        typer.echo(f"{name:12s} {load_preset(name).description}")


def main() -> None:
    app()
