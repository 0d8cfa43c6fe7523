"""An eighth walkthrough's defects on the training and evaluation side (the run-folder ones are in
test_train.py): a folder named like a preset, preset widths of 0, and reports written into the
dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from fgaug.data.io import DataError
from fgaug.flow.config import ConfigError, FullGlowConfig
from fgaug.training.presets import load_preset


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mkdir tiny`` broke every ``train`` without ``--preset``: "tiny: preset file not found"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "test").write_text("not a preset")
    assert load_preset("tiny").name == "tiny" and load_preset("test").name == "test"


@pytest.mark.parametrize(
    "widths", [{"coupling_hidden": 0}, {"condition_embed_hidden": -4}, {"param_net_hidden": (0, 8, 8)}]
)
def test_network_widths_below_one_are_refused(widths: dict) -> None:
    """A preset with ``coupling_hidden: 0`` gave a RuntimeError traceback, ``param_net_hidden`` with
    a 0 trained without a word."""
    with pytest.raises(ConfigError, match="must be at least 1 \\(a network's width\\)"):
        FullGlowConfig(**widths)


def test_an_evaluation_never_writes_into_its_dataset(small_tree: Path, test_checkpoint: Path) -> None:
    """``evaluate quality DATA --out DATA`` wrote its report into the dataset; ``evaluate augment``
    trained a probe before it refused the same."""
    from fgaug.api import AugmentOptions, QualityOptions, evaluate_augment, evaluate_quality

    inside = small_tree / "gtFine" / "evaluation"
    with pytest.raises(DataError, match="the output must not be inside the input"):
        evaluate_quality(QualityOptions(str(small_tree), model=str(test_checkpoint), out=str(inside)))
    with pytest.raises(DataError, match="the output must not be inside the input"):
        evaluate_augment(AugmentOptions(str(small_tree), model=str(test_checkpoint), out=str(inside)))
    assert not inside.exists()


def test_a_second_run_on_a_run_folder_in_use_is_refused(small_tree: Path, tmp_path: Path) -> None:
    """A ``--resume`` (or ``--exist-ok``) while the run trained went on beside it: the metrics held
    each step twice, and ``--exist-ok`` emptied the folder under the first run."""
    import fcntl
    import os

    from fgaug.data.record import OutputConflictError
    from fgaug.training.options import TrainOptions
    from fgaug.training.train import train

    run = tmp_path / "run"
    options = TrainOptions(data=str(small_tree), run_dir=str(run), preset="test", steps=2, workers=0, device="cpu")
    train(options)
    other_run = os.open(run, os.O_RDONLY)  # what the first run's process holds while it trains
    fcntl.flock(other_run, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        for changes in ({"resume": True, "steps": 4}, {"exist_ok": True}):
            with pytest.raises(OutputConflictError, match="another fgaug run is writing into it now"):
                train(TrainOptions(**{**options.__dict__, **changes}))
        assert (run / "checkpoints" / "last.pt").is_file()
    finally:
        os.close(other_run)
    assert train(TrainOptions(**{**options.__dict__, "resume": True, "steps": 4})).steps == 4


def test_a_hand_edited_run_configuration_is_one_line_on_resume(small_tree: Path, tmp_path: Path) -> None:
    """Resuming after editing ``config.json`` gave tracebacks: KeyError for a deleted ``model``,
    ZeroDivisionError for a batch of 0, TypeError for steps of "x", a size mismatch for a width."""
    import json

    from fgaug.errors import FgaugError
    from fgaug.training.options import TrainOptions
    from fgaug.training.train import train

    run = tmp_path / "run"
    options = TrainOptions(data=str(small_tree), run_dir=str(run), preset="test", steps=2, workers=0, device="cpu")
    train(options)
    config = run / "config.json"
    original = json.loads(config.read_text())
    edits = {
        "no model": (lambda c: c.pop("model"), "not a run configuration as fgaug writes it"),
        "batch 0": (lambda c: c["train"].update(batch_size=0), r"\(--batch-size must be at least 1, got 0\)"),
        "steps x": (lambda c: c["train"].update(steps="x"), r"\(--steps takes whole numbers, got 'x'\)"),
        "width": (lambda c: c["model"].update(coupling_hidden=8), "its weights do not fit the model of"),
    }
    for edit, expected in edits.values():
        edited = json.loads(json.dumps(original))
        edit(edited)
        config.write_text(json.dumps(edited))
        with pytest.raises(FgaugError, match=expected):
            train(TrainOptions(**{**options.__dict__, "resume": True, "steps": 4}))
