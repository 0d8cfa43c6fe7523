"""Options dataclasses for every API entry point (issue 24, item 3): one source of defaults, a
usage error naming the option for a value that cannot work, and ``to_dict()`` for every result.

The CLI reads its defaults from the options dataclasses whose modules import no torch; where the
dataclass lives beside torch code (``generate``, ``transfer``, ``interpolate``) the CLI writes the
default again, so that ``fgaug --help`` stays fast. Either way, every command-line default is
pinned here to its field: a default changed in one place only fails this test.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from fgaug.api import (
    AugmentOptions,
    DemoResult,
    GenerateOptions,
    GenerateSummary,
    InterpolateOptions,
    LayoutOptions,
    LayoutRunOptions,
    PrepareReport,
    QualityOptions,
    SegmenterTrainOptions,
    SegmenterTrainReport,
    TrainOptions,
    TrainResult,
    TransferOptions,
    ValidateOptions,
    ValidationReport,
    WalkOptions,
    prepare,
)
from fgaug.cli.app import app
from fgaug.generate.options import ModelUsed
from fgaug.usage import UsageError


def denoising(flag: bool) -> str | None:
    """``--denoise`` off is a ``denoise_scale`` of None; on, the scale is ``--denoise-scale``'s."""
    return "--denoise-scale" if flag else None


Field = str | tuple[str, Callable[[Any], Any]]
"""A field's dotted path (``layout.n``), or the path and how the CLI's default becomes its value."""


COMMANDS: dict[str, tuple[type, dict[str, Field], set[str]]] = {
    "train": (
        TrainOptions,
        {
            "val": "val_data",
            "lambda_": "source_weight",
            "checkpointing": "gradient_checkpointing",
            "compile_networks": "compile",
        },
        {"config", "dry_run", "project", "name"},
    ),
    "generate": (
        GenerateOptions,
        {
            "split": "splits",
            "samples": "n",
            "temp": "temperature",
            "style_seed": "style_seeds",
            "denoise": ("denoise_scale", denoising),
            "reject": "reject_fraction",
            "ignore_map": "ignore_segmenter",
            "allow_failed": "allowed_failed",
            "compile_networks": "compile",
        },
        {"styles", "denoise_scale"},
    ),
    "layouts": (
        LayoutRunOptions,
        {
            "split": "splits",
            "snap_colors": "layout.snap_colors",
            "per_mask": "layout.n",
            "paste": "layout.paste",
            "flip_probability": "layout.flip_probability",
            "jitter_probability": "layout.jitter_probability",
            "max_scale": ("layout.scale_range", lambda high: (1.0, high)),
            "rare_boost": "layout.rare_boost",
            "seed": "layout.seed",
            "photos": "layout.photos",
        },
        set(),
    ),
    "transfer": (TransferOptions, {}, set()),
    "interpolate": (
        InterpolateOptions,
        {
            "model": "walk.model",
            "temp": "walk.temperature",
            "guidance": "walk.sampling.guidance",
            "denoise": ("walk.sampling.denoise_scale", denoising),
            "device": "walk.device",
            "precision": "walk.precision",
            "mask_format": "walk.mask_format",
            "snap_colors": "walk.snap_colors",
        },
        {"denoise_scale"},
    ),
    "validate": (ValidateOptions, {}, set()),
    "segmenter train": (SegmenterTrainOptions, {}, set()),
    "evaluate augment": (
        AugmentOptions,
        {
            "samples": "n",
            "temp": "temperature",
            "denoise": ("denoise_scale", denoising),
            "sizes": ("sizes", lambda text: tuple(int(v) for v in text.split(","))),
            "seeds": ("seeds", lambda text: tuple(int(v) for v in text.split(","))),
        },
        {"denoise_scale"},
    ),
    "evaluate quality": (
        QualityOptions,
        {
            "temps": ("temperatures", lambda text: tuple(float(t) for t in text.split(","))),
            "samples": "n",
            "denoise": ("denoise_scale", denoising),
        },
        {"denoise_scale"},
    ),
}
"""Command -> its options dataclass, the options whose field is named otherwise, and the options
that are the command line's own (what one invocation asks for, or a spelling of another option)."""


def command(path: str) -> Any:
    found = get_command(app)
    for name in path.split():
        found = found.commands[name]
    return found


def field_default(options: type, path: str) -> Any:
    """The default of the field at dotted ``path`` (``walk.sampling.guidance``)."""
    first, *rest = path.split(".")
    (found,) = [f for f in fields(options) if f.name == first]
    value = found.default if found.default_factory is MISSING else found.default_factory()
    assert value is not MISSING, f"{options.__name__}.{first} has no default"
    for name in rest:
        value = getattr(value, name)
    return value


def comparable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [comparable(item) for item in value]
    return value


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_line_default_is_its_options_field_default(path: str) -> None:
    options, renamed, own = COMMANDS[path]
    compared = 0
    for param in command(path).params:
        if param.param_type_name != "option" or param.required or param.name in own | {"as_json", "help"}:
            continue
        target = renamed.get(param.name, param.name)
        field_path, to_field = target if isinstance(target, tuple) else (target, lambda value: value)
        expected, got = field_default(options, field_path), to_field(param.default)
        assert comparable(got) == comparable(expected), f"{path} {param.opts[0]}: {got!r} != {expected!r}"
        compared += 1
    assert compared, path


def test_train_writes_its_run_folder_where_train_options_default_it() -> None:
    defaults = {param.name: param.default for param in command("train").params}
    assert defaults["project"] / defaults["name"] == Path(TrainOptions.run_dir)


def test_the_command_line_imports_neither_torch_nor_numpy_before_a_command_runs() -> None:
    """It reads defaults from the options dataclasses: their modules must stay as light."""
    code = "import sys, fgaug.cli; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: QualityOptions("d", n=0), "--samples must be at least 1, got 0"),
        (lambda: GenerateOptions("m", n=0), "--samples must be at least 1, got 0"),
        (lambda: GenerateOptions("m", n=2.0), "--samples takes whole numbers, got 2.0"),
        (lambda: prepare("d", "c.h5", (0, 32)), "--size takes (height, width) in pixels"),
        (lambda: prepare("d", "c.h5", (16, 32.5)), "--size takes (height, width) in pixels"),
        (lambda: GenerateOptions("m", limit=0), "--limit must be at least 1, got 0"),
        (lambda: GenerateOptions("m", best_of=0), "--best-of must be at least 1, got 0"),
        (lambda: GenerateOptions("m", seed=-1), "--seed must be at least 0, got -1"),
        (lambda: GenerateOptions("m", temperature=-0.5), "--temp must be at least 0, got -0.5"),
        (lambda: GenerateOptions("m", reject_fraction=1), "--reject must lie in [0, 1), got 1"),
        (lambda: GenerateOptions("m", allowed_failed=1.5), "--allow-failed must lie in [0, 1], got 1.5"),
        (lambda: GenerateOptions("m", denoise_scale=0), "--denoise --denoise-scale must be above 0, got 0"),
        (lambda: AugmentOptions("d", sizes=(0, 10)), "--sizes must be at least 1, got 0"),
        (lambda: AugmentOptions("d", schedules=0), "--schedules must be at least 1, got 0"),
        (lambda: AugmentOptions("d", val_split="test"), "the validation and test splits must differ"),
        (lambda: AugmentOptions("d", test_split="train"), "--val-split and --test-split may not be train"),
        (lambda: QualityOptions("d", rounds=0), "--rounds must be at least 1, got 0"),
        (lambda: QualityOptions("d", limit=0), "--limit must be at least 1, got 0"),
        (lambda: QualityOptions("d", seed=-1), "--seed must be at least 0, got -1"),
        (lambda: QualityOptions("d", temperatures=()), "--temps must be one or more numbers of at least 0"),
        (lambda: QualityOptions("d", temperatures=(0.5, -1)), "--temps must be one or more numbers of at least 0"),
        (lambda: QualityOptions("d", guidance=-0.5), "--guidance must be at least 0, got -0.5"),
        (lambda: QualityOptions("d", denoise_scale=0), "--denoise-scale must be above 0, got 0"),
        (lambda: SegmenterTrainOptions("d", (16, 32), steps=0), "--steps must be at least 1, got 0"),
        (lambda: SegmenterTrainOptions("d", (16, 32), batch_size=0), "--batch-size must be at least 1, got 0"),
        (lambda: SegmenterTrainOptions("d", (16, 32), lr=0), "--lr must be above 0, got 0"),
        (lambda: SegmenterTrainOptions("d", (16, 32), width=0), "--width must be at least 1, got 0"),
        (lambda: SegmenterTrainOptions("d", (16, 32), seed=-1), "--seed must be at least 0, got -1"),
        (lambda: SegmenterTrainOptions("d", (0, 32)), "--size takes (height, width) in pixels"),
        (lambda: LayoutRunOptions("m", limit=0), "--limit must be at least 1, got 0"),
        (lambda: LayoutOptions(seed=-1), "--seed must be at least 0, got -1"),
        (lambda: InterpolateOptions("m"), "give --from and --to (style seeds), or --from-photo and --to-photo"),
        (lambda: InterpolateOptions("m", start_style=1), "a walk needs both ends: --from with --to"),
        (lambda: InterpolateOptions("m", start_style=1, end_style=2, end_photo="b.png"), "give --from and --to"),
        (lambda: InterpolateOptions("m", start_style=1, end_style=2, steps=1), "--steps must be at least 2, got 1"),
    ],
)
def test_options_that_cannot_work_are_one_line_usage_errors_naming_the_option(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(UsageError) as raised:
        make()
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_non_finite_numbers_are_refused_by_the_new_options() -> None:
    for make in (
        lambda: QualityOptions("d", guidance=math.nan),
        lambda: SegmenterTrainOptions("d", (16, 32), lr=math.inf),
        lambda: WalkOptions(temperature=math.nan),
    ):
        with pytest.raises(UsageError, match="must be a finite number"):
            make()


MODEL = ModelUsed(Path("m.pt"), "--model", "run@8", "0" * 64)


@pytest.mark.parametrize(
    ("result", "keys"),
    [
        (
            TrainResult(Path("r"), 8, Path("r/last.pt"), None, 3.5, 3.0, seconds=2.0),
            "run_dir steps last_checkpoint best_checkpoint first_val_bpd last_val_bpd skipped_steps images seconds "
            "images_per_s peak_memory_mib peak_memory_kind stopped_early precision cuda_graphs skipped_groups",
        ),
        (PrepareReport(Path("c.h5"), 4), "path written skipped skipped_groups seconds"),
        (ValidationReport(4, []), "samples problems"),
        (SegmenterTrainReport(Path("p.pt"), 10, 0.5, 1.25, photos=4), "path steps final_loss seconds photos"),
        (
            DemoResult(Path("t"), Path("a"), None, GenerateSummary(Path("a"), MODEL, 2, 4, 0), 1.0, {"train": 12}),
            "data augmented preview preview_masks images seconds model model_source model_id model_sha256",
        ),
    ],
    ids=lambda value: type(value).__name__ if is_dataclass(value) else "keys",
)
def test_results_give_the_json_keys_the_commands_printed(result: Any, keys: str) -> None:
    assert sorted(result.to_dict()) == sorted(keys.split())


REQUIRED: dict[str, dict[str, Any]] = {
    "train": {"data": "d"},
    "generate": {"masks": "m"},
    "layouts": {"masks": "m"},
    "interpolate": {"mask": "m", "start_style": 0, "end_style": 1},
    "segmenter train": {"data": "d", "size": (16, 32)},
    "evaluate augment": {"data": "d", "out": "o"},
    "evaluate quality": {"data": "d"},
}
"""Each command's options with a value for every field that has no default (and a walk's two ends)."""


def with_field(options: type, path: str, value: Any, given: dict[str, Any]) -> Any:
    """``options`` made from ``given`` with the field at dotted ``path`` set to ``value`` (a nested
    field set in a copy of its parent's default)."""
    first, *rest = path.split(".")
    if rest:
        parent = field_default(options, first)
        value = with_field(
            type(parent), ".".join(rest), value, {f.name: getattr(parent, f.name) for f in fields(parent) if f.init}
        )
    return options(**{**given, first: value})


BOUNDED = [
    (path, param)
    for path in sorted(COMMANDS)
    for param in command(path).params
    if getattr(param.type_descriptor.parameter_info, "min", None) is not None and param.name not in COMMANDS[path][2]
]


@pytest.mark.parametrize(("path", "param"), BOUNDED, ids=[f"{path} {param.opts[0]}" for path, param in BOUNDED])
def test_the_api_refuses_what_the_command_line_bounds_refuse(path: str, param: Any) -> None:
    """A command-line bound (typer's ``min``) is checked by the options dataclass too, with the
    same option named, so that the API takes no value the command line refuses."""
    options, renamed, _ = COMMANDS[path]
    target = renamed.get(param.name, param.name)
    field_path = target[0] if isinstance(target, tuple) else target
    below = param.type_descriptor.parameter_info.min - 1
    value = [below] if param.multiple else below
    with pytest.raises(UsageError) as raised:
        with_field(options, field_path, value, REQUIRED[path])
    assert param.opts[0] in str(raised.value)
