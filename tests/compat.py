"""Loaders of the tools users read fgaug's output with: torchvision and cityscapesScripts.

torchvision's wheel does not import beside the CPU build of torch (its C operators are built for
the CUDA one), so :func:`torchvision_cityscapes` loads torchvision's own ``datasets/cityscapes.py``
without running ``torchvision/__init__`` (which registers those operators). The Cityscapes class
itself is pure Python, so this checks exactly the code users run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest


def torchvision_cityscapes() -> type:
    try:
        import torchvision.datasets as datasets  # noqa: F401

        return importlib.import_module("torchvision.datasets").Cityscapes
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchvision is not installed")
    root = spec.submodule_search_locations[0]
    for name, path in (("torchvision", root), ("torchvision.datasets", f"{root}/datasets")):
        module = types.ModuleType(name)
        module.__path__ = [path]
        sys.modules[name] = module
    return importlib.import_module("torchvision.datasets.cityscapes").Cityscapes
