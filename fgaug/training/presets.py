"""Model and training configuration, and the presets shipped in ``models/presets``.

A preset is a JSON file ``{"name", "description", "model": {...}, "train": {...}}``. Every key is
checked: an unknown key or a value of the wrong kind is an error that names the file and the key,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgaug.flow.config import ConfigError, FullGlowConfig, config_from_values, plain_values
from fgaug.resources import presets_dir
from fgaug.usage import UsageError


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (Adam); the paper trains with lr 1e-4 at batch size 1."""

    lr: float = 1e-4
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "config") -> TrainConfig:
        return config_from_values(cls, values, origin)

    def to_dict(self) -> dict[str, Any]:
        return plain_values(dataclasses.asdict(self))


@dataclass(frozen=True)
class Preset:
    """A named model configuration with its training settings."""

    name: str
    description: str
    model: FullGlowConfig
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
        }


def available_presets() -> list[str]:
    """Names of the presets shipped with fgaug."""
    return sorted(path.stem for path in presets_dir().glob("*.json"))


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a preset by name (``"paper-256"``) or from a JSON file path; an unknown name is a
    :class:`~fgaug.usage.UsageError` (``--preset``'s value), a file that is missing or wrong a
    :class:`~fgaug.flow.config.ConfigError`."""
    candidate = Path(name_or_path)
    builtin = presets_dir() / f"{name_or_path}.json"
    if candidate.suffix == ".json" or (candidate.is_file() and not builtin.is_file()):  # a folder "tiny" is none
        path = candidate
    else:
        path = builtin
        if not path.is_file():
            known = ", ".join(available_presets())
            raise UsageError(f"unknown preset {name_or_path!r}; known presets: {known}")
    if not path.is_file():
        raise ConfigError(f"{path}: preset file not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a readable JSON preset ({error})") from error
    return preset_from_dict(raw, origin=str(path))


def preset_from_dict(raw: Any, origin: str = "preset") -> Preset:
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a preset must be a JSON object")
    unknown = set(raw) - {"name", "description", "model", "train"}
    if unknown:
        raise ConfigError(f"{origin}: unknown preset key(s) {sorted(unknown)}")
    if not isinstance(raw.get("model"), dict):
        raise ConfigError(f"{origin}: 'model' must be an object of model settings")
    return Preset(
        name=str(raw.get("name", Path(origin).stem)),
        description=str(raw.get("description", "")),
        model=FullGlowConfig.from_dict(raw["model"], origin=f"{origin}: model"),
        train=TrainConfig.from_dict(raw.get("train", {}), origin=f"{origin}: train"),
    )
