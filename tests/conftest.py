"""Shared fixtures: a small toy Cityscapes tree, written once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fgaug.data.toyworld import write_toy_cityscapes


@pytest.fixture(scope="session")
def toy_tree_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy") / "cityscapes"
    write_toy_cityscapes(root, {"train": 4, "val": 2}, size=(64, 128), seed=3)
    return root


@pytest.fixture
def toy_tree(toy_tree_master: Path, tmp_path: Path) -> Path:
    """A private copy of the toy tree, free to modify."""
    copy = tmp_path / "cityscapes"
    shutil.copytree(toy_tree_master, copy)
    return copy
