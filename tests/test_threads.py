"""fgaug bounds OpenMP spinning before torch loads, and leaves a user's own setting alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fgaug.threads import SPIN_COUNT

PROBE = "import os, fgaug, torch; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"


def seen(**settings: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "FGAUG_OMP")}
    environment.update(settings)
    return subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=environment, check=True
    ).stdout.strip()


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
