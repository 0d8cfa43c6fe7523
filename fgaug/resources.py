"""Where the files shipped with fgaug live: presets and the bundled demo model (``models/``).

The repository's ``models/`` folder is installed as the package ``fgaug.bundled``, so the same
files are found from a source checkout, an editable install and a wheel.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_dir() -> Path:
    """The folder holding the presets and the bundled demo model."""
    try:
        found = Path(str(resources.files("fgaug.bundled")))
    except ModuleNotFoundError:
        found = Path(__file__).resolve().parent.parent / "models"
    return found


def presets_dir() -> Path:
    return bundled_dir() / "presets"
