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


DEMO_MODEL_NAME = "demo-toy-64x128.pt"


DEMO_MODEL = "demo"
"""``--model demo``, ``--init-from demo`` (or ``FGAUG_MODEL=demo``) name the bundled toy-world
demo model."""


def model_path(named: str | Path) -> Path:
    """The checkpoint file a model name means: :data:`DEMO_MODEL` is the bundled demo model, any
    other name a path."""
    return bundled_dir() / DEMO_MODEL_NAME if str(named) == DEMO_MODEL else Path(named)
