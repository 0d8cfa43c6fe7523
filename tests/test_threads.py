"""fgaug bounds OpenMP spinning before torch loads, and leaves a user's own setting alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fgaug.threads import SPIN_COUNT

WATCH_TORCH = """
import importlib.abc, os, sys
class StopAtTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("torch loads with", os.environ.get("GOMP_SPINCOUNT"), os.environ.get("OMP_WAIT_POLICY"))
            sys.stdout.flush()
            os._exit(0)
        return None
sys.meta_path.insert(0, StopAtTorch())
"""
"""A prelude that prints libgomp's settings as they are when ``torch`` is first imported, then ends
the process (torch's own import, 2 s, would add nothing to the answer)."""

PROBE = WATCH_TORCH + "import fgaug, torch"


def seen(**settings: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "FGAUG_OMP")}
    environment.update(settings)
    printed = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=environment, check=True
    ).stdout.strip()
    return printed.removeprefix("torch loads with ")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, f"{SPIN_COUNT} None"),
        ({"GOMP_SPINCOUNT": "50"}, "50 None"),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "None PASSIVE"),
        ({"FGAUG_OMP": "leave"}, "None None"),
    ],
    ids=["bounded", "user-spin-count", "user-wait-policy", "left-alone"],
)
def test_spin_count_is_set_before_torch_unless_the_user_chose(settings: dict[str, str], expected: str) -> None:
    assert seen(**settings) == expected


REPOSITORY = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(path.stem for path in (REPOSITORY / "benchmarks").glob("*.py"))

IMPORT_ORDER_PROBE = (
    WATCH_TORCH
    + """
sys.path.insert(0, "benchmarks")
import {module}
"""
)


@pytest.mark.parametrize("module", BENCHMARKS)
def test_every_benchmark_bounds_spinning_before_torch_loads(module: str) -> None:
    """A benchmark that imports torch (directly or through a sibling script) before fgaug runs
    with libgomp's default spinning, which issue 14 measured at 3.4-5x beside a second process."""
    environment = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "FGAUG_OMP")}
    printed = subprocess.run(
        [sys.executable, "-c", IMPORT_ORDER_PROBE.replace("{module}", module)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPOSITORY,
        check=True,
    ).stdout
    assert "torch loads" not in printed or f"torch loads with {SPIN_COUNT} None" in printed
