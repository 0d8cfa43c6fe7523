"""Installing: the dev extra never replaces the installed torch, and the test set-up pins torchvision
to match it (issue 14, item 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_INSTALL = 'pip install -q torch==2.13.0 torchvision==0.28.0 -e ".[dev]"'


def test_the_dev_extra_holds_no_package_that_pins_torch() -> None:
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    names = {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in extras["dev"]}
    assert not names & {"torch", "torchvision", "torchaudio"}, names


def test_the_readme_and_ci_install_torchvision_matching_torch_for_the_tests() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tests_command = next(line for line in readme.splitlines() if "pip install" in line and "pytest" in line)
    assert TEST_INSTALL in tests_command
    assert TEST_INSTALL in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    demo_command = next(line for line in readme.splitlines() if "pip install" in line and "fgaug demo" in line)
    assert "torchvision" not in demo_command
