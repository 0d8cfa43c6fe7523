"""Presets: loading by name and path, the paper's structure, clear errors for bad presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fgaug.flow.conditional import ConditionalActNorm, ConditionalAffineCoupling, ConditionalInvConv1x1
from fgaug.flow.config import ConfigError, FullGlowConfig
from fgaug.flow.glow import build_source_glow, build_target_glow
from fgaug.training.presets import available_presets, load_preset
from fgaug.usage import UsageError


def test_shipped_presets_load_by_name() -> None:
    assert {"paper-256", "hd-512x1024", "fast", "tiny", "test"} <= set(available_presets())
    for name in available_presets():
        preset = load_preset(name)
        assert preset.name == name and preset.description


def test_paper_preset_is_the_papers_configuration() -> None:
    preset = load_preset("paper-256")
    config = preset.model
    assert config.image_size == (256, 256)
    assert config.n_block == 4 and config.n_flow == (16, 16, 16, 16)
    assert config.source_weight == 1e-4 and preset.train.lr == 1e-4 and preset.train.batch_size == 1
    assert config.coupling_hidden == 512


def test_paper_structure_every_target_operation_is_conditioned() -> None:
    config = load_preset("paper-256").model
    reduced = FullGlowConfig.from_dict({**config.to_dict(), "coupling_hidden": 8, "condition_embed_hidden": 4})
    target = build_target_glow(reduced)
    source = build_source_glow(reduced)
    assert len(target.levels) == 4 and [len(level) for level in target.levels] == [16, 16, 16, 16]
    assert [len(level) for level in source.levels] == [16, 16, 16, 16]
    for level in target.levels:
        for step in level:
            assert isinstance(step.actnorm, ConditionalActNorm)
            assert isinstance(step.invconv, ConditionalInvConv1x1)
            assert isinstance(step.coupling, ConditionalAffineCoupling)


def test_preset_loads_from_a_path(tmp_path: Path) -> None:
    raw = load_preset("test").to_dict()
    raw["model"]["n_flow"] = 3
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(raw))
    preset = load_preset(path)
    assert preset.model.n_flow == (3, 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_blocks": 3}, r"unknown key\(s\) \['n_blocks'\]"),
        ({"image_size": [90, 128]}, "divisible by 2\\*\\*n_block"),
        ({"n_flow": [2, 2, 2]}, "n_flow has 3 entries"),
        ({"coupling_hidden": "wide"}, "coupling_hidden must be a int"),
        ({"coupling_scale_floor": 0}, "coupling_scale_floor must lie in"),
        ({"conditioning": "dual"}, "unknown conditioning mode 'dual'; known: full, coupling, raw"),
    ],
)
def test_bad_preset_values_name_the_file_and_key(tmp_path: Path, change: dict, message: str) -> None:
    raw = load_preset("test").to_dict()
    raw["model"].update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=message) as error:
        load_preset(path)
    assert str(error.value).startswith(f"{path}: model: ")


def test_unknown_preset_and_broken_json(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown preset 'nope'; known presets: .*paper-256"):
        load_preset("nope")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken\.json: not a readable JSON preset"):
        load_preset(broken)
