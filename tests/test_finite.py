"""Non-finite floats: refused by the API up front (issue 14, item 3), written as null in JSON (item 10c)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from strict import strict_json

from fgaug import api
from fgaug.finite import require_finite, to_json
from fgaug.generate.draws import draw_best
from fgaug.generate.options import GenerateOptions
from fgaug.segmentation.probe import train_probe
from fgaug.training.options import TrainOptions


def test_require_finite_names_the_value() -> None:
    require_finite(temperature=0.8, lr=None, temperatures=[0.5, 1.0], scale=np.float32(0.5))  # NumPy scalars too
    with pytest.raises(ValueError, match="scale must be a finite number, got inf"):
        require_finite(scale=np.float32("inf"))
    with pytest.raises(ValueError, match="temperatures must be a finite number, got nan"):
        require_finite(temperature=0.8, temperatures=[0.5, math.nan])
    with pytest.raises(ValueError, match="lr must be a finite number, got -inf"):
        require_finite(lr=-math.inf)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("--temp", lambda v: api.generate(GenerateOptions(masks="nowhere", temperature=v))),
        ("--temp", lambda v: api.demo("nowhere", temperature=v)),
        ("temperature", lambda v: draw_best(None, torch.zeros(1, 3, 2, 2), ["k"], [[0]], v, seed=0)),
        ("temperatures", lambda v: api.evaluate_quality(api.QualityOptions("nowhere", temperatures=(0.8, v)))),
        ("temperature", lambda v: api.evaluate_augment(api.AugmentOptions("nowhere", "out", temperature=v))),
        ("lr", lambda v: TrainOptions(data="nowhere", lr=v)),
        ("epochs", lambda v: TrainOptions(data="nowhere", epochs=v)),
        ("source_weight", lambda v: TrainOptions(data="nowhere", source_weight=v)),
        ("grad_clip", lambda v: TrainOptions(data="nowhere", grad_clip=v)),
        ("ema_decay", lambda v: TrainOptions(data="nowhere", ema_decay=v)),
        ("lr", lambda v: train_probe([], "probe.pt", lr=v)),
    ],
)
def test_the_api_refuses_non_finite_numbers_before_any_work(
    name: str, call: Callable[[float], object], value: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # were a value let through, its work would land here
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        call(value)


def test_to_json_writes_non_finite_floats_as_null() -> None:
    value = {"b": [math.inf, 1.5, (np.float64("nan"), -math.inf)], "a": {"w1": math.nan, "n": 3, "name": "road"}}
    text = to_json(value)
    assert text == '{"a": {"n": 3, "name": "road", "w1": null}, "b": [null, 1.5, [null, null]]}'
    assert strict_json(text) == strict_json(to_json(strict_json(text)))
    assert to_json({"b": 1, "a": 2}, sort_keys=False) == '{"b": 1, "a": 2}'
