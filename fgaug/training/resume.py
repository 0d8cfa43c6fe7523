"""What a resumed run takes from its command line, and what it refuses there.

A run goes on with the settings its ``config.json`` records. Its command line says where the run
and its data are now and what it runs on (:data:`TAKEN_ALWAYS`), and may lengthen it or change its
validation and precision (:data:`TAKEN_WHEN_GIVEN`). Any other option given with a value other
than the run's is refused: ``--resume --lr 0.5`` would train on at the run's learning rate and
say nothing.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from fgaug.data.io import DataError, first_line, read_json
from fgaug.flow.config import FullGlowConfig
from fgaug.training.options import CLI_NAMES, TrainOptions
from fgaug.usage import UsageError

TAKEN_ALWAYS = (
    "run_dir",
    "data",
    "device",
    "workers",
    "gradient_checkpointing",
    "compile",
    "cuda_graphs",
    "tensorboard",
)
"""Options a resumed run takes from its command line: where its folder and data are now (a moved
run or dataset resumes) and what it runs on."""
TAKEN_WHEN_GIVEN = ("steps", "epochs", "patience", "val_data", "precision", "skip_bad")
"""Options a resumed run takes from its command line where they are given (named in
:attr:`~fgaug.training.options.TrainOptions.given`, or set to other than their default): how long
it goes on, its validation data, its precision, and ``--skip-bad`` (the remedy for a run stopped
by a bad mask). Every other option is the run's, and one given otherwise is refused
(:func:`refuse_changed_settings`); ``init_from`` has its own check."""
NOT_COMPARED = frozenset({*TAKEN_ALWAYS, *TAKEN_WHEN_GIVEN, "resume", "exist_ok", "init_from", "given"})


def is_given(options: TrainOptions, name: str) -> bool:
    """Whether option ``name`` was given: named in ``options.given``, or set to other than its default."""
    default = next(option.default for option in fields(TrainOptions) if option.name == name)
    return name in options.given or getattr(options, name) != default


def refuse_changed_settings(given: TrainOptions, resumed: TrainOptions, run_dir: Path) -> None:
    """A :class:`UsageError` naming every option ``given`` sets (:func:`is_given`) to other than
    the resumed run's value: ``--resume --preset tiny`` on a run of another preset too, though
    ``tiny`` is the default."""
    changed = []
    for option in fields(TrainOptions):
        name = option.name
        value, saved = getattr(given, name), getattr(resumed, name)
        if name in NOT_COMPARED or value == saved or not is_given(given, name):
            continue
        option_name = f"--{CLI_NAMES.get(name, name).replace('_', '-')}"
        changed.append(f"{option_name} {_shown(value)} (the run has {_shown(saved)})")
    if changed:
        raise UsageError(
            f"{run_dir}: --resume goes on with the run's own settings, not {', '.join(changed)}; "
            "start a new run to change them (--init-from its checkpoint fine-tunes from it)"
        )


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple | list):
        return "x".join(map(str, value))
    return "default" if value is None else str(value)


def resumed_run(options: TrainOptions, config_path: Path) -> tuple[TrainOptions, FullGlowConfig, str]:
    """The options, model configuration and preset name of the run whose ``config.json`` is
    ``config_path``, with what ``options`` may change (see the module docstring)."""
    run_dir = config_path.parent
    if not config_path.is_file():
        raise DataError(f"{run_dir}: nothing to resume (no config.json); start the run without --resume")
    saved = read_json(config_path, "run configuration")
    try:
        resumed, model, preset = TrainOptions.from_dict(saved["train"]), saved["model"], str(saved["preset"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{config_path}: not a run configuration as fgaug writes it ({first_line(error)})") from None
    if options.init_from is not None and str(options.init_from) != resumed.init_from:
        started = resumed.init_from or "a random initialisation"
        raise UsageError(f"--init-from applies to a new run; {run_dir} started from {started}")
    refuse_changed_settings(options, resumed, run_dir)
    for name in TAKEN_ALWAYS:
        setattr(resumed, name, getattr(options, name))
    for name in TAKEN_WHEN_GIVEN:
        if is_given(options, name):
            setattr(resumed, name, getattr(options, name))
    if options.epochs is not None and options.steps is None:  # --epochs anew: not the recorded --steps
        resumed.steps = None
    resumed.resume = True
    return resumed, FullGlowConfig.from_dict(model, origin=str(config_path)), preset
