"""The module paths from before the regrouping still import, for one release, with a warning."""

from __future__ import annotations

import importlib
import sys

import pytest

from fgaug.moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_warns_and_finds_its_contents_in_the_new_homes(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=MOVED[old][0]):
        module = importlib.import_module(old)
    homes = [importlib.import_module(home) for home in MOVED[old]]
    for home in homes:
        public = [name for name in vars(home) if not name.startswith("_") and getattr(home, name) is not None]
        name = public[-1]
        assert getattr(module, name) is getattr(homes[0], name, getattr(home, name))
    with pytest.raises(AttributeError, match="moved to"):
        module.no_such_name  # noqa: B018


def test_the_public_names_of_the_old_api_still_resolve() -> None:
    from fgaug.flow.config import FullGlowConfig
    from fgaug.training.presets import load_preset

    sys.modules.pop("fgaug.config", None)
    with pytest.warns(DeprecationWarning, match="fgaug.config moved"):
        from fgaug.config import FullGlowConfig as OldConfig
        from fgaug.config import load_preset as old_load_preset
    assert old_load_preset is load_preset
    assert OldConfig is FullGlowConfig
    assert isinstance(old_load_preset("tiny").model, OldConfig)
