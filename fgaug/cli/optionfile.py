"""Option values for ``fgaug train --config FILE``.

Two kinds of file are read:

- a run's own ``config.json``: its ``train`` section, turned back into the options that made it,
  so that ``fgaug train --config runs/a/config.json --name b`` trains run ``a`` again as ``b``;
- a mapping of option names to values, as ``fgaug train --help`` spells them (``batch-size`` or
  ``batch_size``), in JSON, or in YAML when PyYAML is installed (``pip install "fgaug[yaml]"``).

JSON needs nothing beyond Python, and the file that reproduces a run is JSON; YAML is what users of
ultralytics or mmsegmentation keep their settings in, so it is read when its parser is there
rather than making every install carry it.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from fgaug.flow.config import ConfigError
from fgaug.training.options import CLI_NAMES, TrainOptions

RUN_CONFIG_KEYS = frozenset({"preset", "model", "train"})
"""Keys every run's ``config.json`` holds (see :mod:`fgaug.training.train`)."""


API_ONLY = ("val_limit", "train_split", "val_split", "max_bad_steps")
"""``TrainOptions`` fields only the Python API sets; a run config must hold their defaults."""


NOT_RECORDED = ("run_dir", "size", "resume", "exist_ok")
"""Fields a run config gives back otherwise (``run_dir``, ``size``) or not at all (what the
invocation asked for: resuming, reusing the folder)."""


def read_option_file(path: Path) -> dict[str, Any]:
    """Option name (``batch_size``, dashes as underscores) -> value, from ``path``; a
    :class:`~fgaug.flow.config.ConfigError` naming the file for anything unreadable."""
    raw = parse(path)
    if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    if set(raw) >= RUN_CONFIG_KEYS and isinstance(raw["train"], dict):
        return run_options(raw["train"], path)
    return {key.replace("-", "_"): value for key, value in raw.items()}


def parse(path: Path) -> Any:
    """The JSON or YAML (by suffix) content of ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file ({error})") from None
    if path.suffix.lower() not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON ({error}); YAML files end in .yaml or .yml") from None
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f'{path}: reading YAML needs PyYAML (pip install "fgaug[yaml]"), or write the file as JSON'
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None


def run_options(train: dict[str, Any], path: Path) -> dict[str, Any]:
    """The options that made a run, from its ``config.json`` ``train`` section."""
    unknown = sorted(set(train) - {field.name for field in fields(TrainOptions)})
    if unknown:
        raise ConfigError(f"{path}: unknown key 'train.{unknown[0]}' (a config.json of another fgaug version?)")
    defaults = TrainOptions(data="")
    for key in API_ONLY:
        if key in train and train[key] != getattr(defaults, key):
            raise ConfigError(f"{path}: train.{key} = {train[key]!r} has no `fgaug train` option; use fgaug.api.train")
    options = {CLI_NAMES.get(k, k): v for k, v in train.items() if k not in (*NOT_RECORDED, *API_ONLY)}
    run_dir = Path(str(train.get("run_dir", defaults.run_dir)))
    options["project"], options["name"] = str(run_dir.parent), run_dir.name
    if train.get("size"):
        options["size"] = "{}x{}".format(*train["size"])
    return options
