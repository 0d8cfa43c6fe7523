"""The package tree is its layering: each top-level folder of ``fgaug/`` is one layer, and no
module imports from a layer above its own (lazy imports inside functions included).

One module ranks below even the flow: :mod:`fgaug.errors`, the base of the errors users cause.
Every layer raises such errors, the flow too (``ConfigError``, ``SamplingError``), and one base
is what lets the CLI print exactly those as one line. So ``fgaug/errors.py`` imports nothing at
all, and is the one module outside ``fgaug/flow/`` that the flow may import: lifted out of
fgaug, the flow would take that one class along."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fgaug"
LAYERS = {
    "errors": -1,
    "flow": 0,
    "base": 1,
    "data": 2,
    "segmentation": 3,
    "training": 3,
    "generate": 4,
    "evaluation": 5,
    "api": 6,
    "cli": 7,
}
"""Rank of each layer; ``base`` is the small runtime helpers at the top level of ``fgaug/``, ``errors``
the dependency-free :mod:`fgaug.errors` below them all.
Layers of one rank (the segmenter and the flow's training) do not import each other."""
MAX_LINES = 600


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in {"__init__", "__main__"}:
        return "package"
    if parts[1] in LAYERS and parts[1] != "base":
        return parts[1]
    return "base"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fgaug"):
            if node.module == "fgaug":
                found.update(f"fgaug.{alias.name}" for alias in node.names if alias.name != "__version__")
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("fgaug."))
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above(path: Path) -> None:
    importer = layer_of(module_name(path))
    if importer == "package":
        return
    upward = []
    for target in imported_modules(path):
        imported = layer_of(target)
        if imported == "package":
            continue
        if LAYERS[imported] > LAYERS[importer] or (LAYERS[imported] == LAYERS[importer] and imported != importer):
            upward.append(f"{target} ({imported})")
    assert not upward, f"{module_name(path)} ({importer}) imports upwards: {upward}"


FLOW_MAY_IMPORT = "fgaug.errors"
"""The one module outside the flow that the flow imports (see the module docstring)."""


def test_the_flow_needs_nothing_but_torch_itself_and_the_error_base() -> None:
    outside = {
        f"{module_name(path)} -> {target}"
        for path in (PACKAGE / "flow").rglob("*.py")
        for target in imported_modules(path)
        if not target.startswith("fgaug.flow") and target != FLOW_MAY_IMPORT
    }
    assert not outside


def test_the_error_base_imports_nothing() -> None:
    tree = ast.parse((PACKAGE / "errors.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not imports, "fgaug/errors.py ranks below the flow: it may import nothing"


def test_importing_the_api_and_the_cli_loads_neither_scipy_stats_nor_matplotlib() -> None:
    """Every command imports :mod:`fgaug.api`; scipy.stats and matplotlib took 1.4 s of each
    command's start (``fgaug info demo``: 4.5 s, now 3.1; ``benchmarks/command_start.py``) for
    the intervals and figures that few commands make, so they are imported where they are used."""
    probe = (
        "import sys, fgaug.api, fgaug.cli.app; "
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('scipy.stats', 'matplotlib'))}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_is_over_600_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_layer_rule_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "example.py"
    module.write_text("def f():\n    from fgaug.cli.app import app\n    return app\n")
    assert imported_modules(module) == {"fgaug.cli.app"}
    assert LAYERS[layer_of("fgaug.cli.app")] > LAYERS[layer_of("fgaug.data.io")]
    assert LAYERS[layer_of("fgaug.errors")] < LAYERS[layer_of("fgaug.flow.config")]
