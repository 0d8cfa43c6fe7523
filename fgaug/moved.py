"""Module paths from before the regrouping into layer folders (0.1), importable for one more
release with a :class:`DeprecationWarning` naming the new home.

``import fgaug.sample`` or ``from fgaug.config import load_preset`` still works: the old name is a
module whose attributes are looked up, in order, in the modules its contents moved to.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

MOVED: dict[str, tuple[str, ...]] = {
    "fgaug.allocate": ("fgaug.generate.allocate",),
    "fgaug.checkpoint": ("fgaug.training.checkpoint",),
    "fgaug.command": ("fgaug.cli.command",),
    "fgaug.config": ("fgaug.training.presets", "fgaug.flow.config"),
    "fgaug.console": ("fgaug.cli.console",),
    "fgaug.content": ("fgaug.generate.content",),
    "fgaug.docs": ("fgaug.cli.docs",),
    "fgaug.evaluate": ("fgaug.evaluation.quality", "fgaug.evaluation.reports", "fgaug.evaluation.augment.study"),
    "fgaug.ignore": ("fgaug.generate.ignore",),
    "fgaug.interpolate": ("fgaug.generate.interpolate",),
    "fgaug.metrics": ("fgaug.evaluation.metrics", "fgaug.segmentation.scores"),
    "fgaug.optionfile": ("fgaug.cli.optionfile",),
    "fgaug.plots": ("fgaug.data.plots",),
    "fgaug.preview": ("fgaug.data.preview",),
    "fgaug.protocol": ("fgaug.evaluation.augment.protocol",),
    "fgaug.runlog": ("fgaug.training.runlog",),
    "fgaug.sample": ("fgaug.generate.engine", "fgaug.generate.options", "fgaug.generate.draws"),
    "fgaug.segmenter": ("fgaug.segmentation.probe",),
    "fgaug.stats": ("fgaug.evaluation.stats",),
    "fgaug.strategies": ("fgaug.evaluation.augment.strategies", "fgaug.evaluation.augment.synthesis"),
    "fgaug.train": (
        "fgaug.training.train",
        "fgaug.training.options",
        "fgaug.training.batches",
        "fgaug.training.ema",
        "fgaug.training.dry_run",
        "fgaug.training.stopping",
    ),
}
"""Old module -> the modules its contents now live in."""


class MovedModule(ModuleType):
    """An old module path: each attribute comes from the first new module that defines it."""

    def __init__(self, name: str, homes: tuple[str, ...]) -> None:
        super().__init__(name, f"Moved to {', '.join(homes)}.")
        self._homes = homes

    def __getattr__(self, attribute: str) -> Any:
        for home in self._homes:
            module = importlib.import_module(home)
            if hasattr(module, attribute):
                return getattr(module, attribute)
        raise AttributeError(f"module {self.__name__!r} (moved to {', '.join(self._homes)}) has no {attribute!r}")


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of :data:`MOVED` and loads each as a :class:`MovedModule`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        homes = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {' and '.join(homes)}; the old path goes in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
        return MovedModule(spec.name, homes)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: attributes resolve on first use."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
