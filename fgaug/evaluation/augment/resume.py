"""What lets ``fgaug evaluate augment`` continue where it stopped, and refuse a rerun with other
settings before it trains anything.

A study trains ``2 x sizes x seeds`` probes, hours on real data. Each finished probe's result is
appended to ``probes.jsonl`` under the output folder (one :class:`ArmResult` per line, written
once the probe is scored); a rerun of the same command takes those results and trains only the
rest, so an interrupted study (Ctrl-C, SIGTERM, a lost machine) loses at most the probes under
way. A probe's result depends on its arm, real-set size and seed and on the settings
``fgaug-run.json`` records (:func:`study_record`): the data, the model (by SHA-256), the arm and
its sampling, the splits and the probe recipe. A rerun with other such settings stops at once
with one line naming them, unless ``--overwrite``; ``--sizes`` and ``--seeds`` are not recorded,
so a rerun with more seeds trains only the new ones, except for an arm whose synthetic data is
made from every seed's real-only probe (``targeted-hard``'s class weights): its seeds are recorded.
Device and precision are not recorded either: they move a probe's figures by float rounding only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path

from fgaug.data.io import atomic_write_bytes
from fgaug.data.record import OwnOutputs, RunRecord
from fgaug.evaluation.augment.protocol import ArmResult
from fgaug.evaluation.augment.strategies import CLASS_WEIGHTS, needs
from fgaug.evaluation.options import AugmentOptions
from fgaug.finite import to_json
from fgaug.generate.options import ModelUsed

PROBES_NAME = "probes.jsonl"
STUDY_OUTPUTS = OwnOutputs(
    ("augment.json", "augment.md", "learning_curve.png", "class_difference.png", PROBES_NAME), r"(?!)"
)
"""What ``evaluate augment`` writes at its output root (its synthetic trees keep their own records)."""
NOT_RECORDED = ("out", "sizes", "seeds", "overwrite", "device", "precision")
OPTION_NAMES = {
    "data": "DATA",
    "n": "--samples",
    "temperature": "--temp",
    "val_split": "--val-split",
    "test_split": "--test-split",
}


def study_record(options: AugmentOptions, model: ModelUsed, data_root: Path) -> RunRecord:
    """What shapes the probes of ``options`` (every field but :data:`NOT_RECORDED`)."""
    settings = {field.name: getattr(options, field.name) for field in fields(options) if field.name not in NOT_RECORDED}
    settings["data"], settings["model"] = str(data_root.resolve()), model.sha256
    if CLASS_WEIGHTS in needs(options.strategy):  # its synthetic data weighs classes by every seed's real-only probe
        settings["seeds"] = list(options.seeds)
    defaults = {field.name: field.default for field in fields(AugmentOptions) if field.default is not MISSING}
    return RunRecord("evaluate augment", settings, {"model": str(model.path.resolve())}, defaults, OPTION_NAMES)


class FinishedProbes:
    """The probes of a study scored so far, read from and appended to ``out/probes.jsonl``."""

    def __init__(self, out: Path) -> None:
        self.path = out / PROBES_NAME
        self.results = {_key(result): result for result in _read(self.path)}
        if self.path.is_file():  # drop a line torn by an interrupted run before appending
            atomic_write_bytes(self.path, "".join(to_json(r.to_dict()) + "\n" for r in self.results.values()).encode())

    def get(self, arm: str, real: int, seed: int) -> ArmResult | None:
        return self.results.get((arm, real, seed))

    def add(self, result: ArmResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(to_json(result.to_dict()) + "\n")
        self.results[_key(result)] = result

    def count(self, sizes: Sequence[int], seeds: Sequence[int]) -> int:
        """How many of the probes of ``sizes`` x ``seeds`` (both arms) are finished."""
        return sum(1 for (_, real, seed) in self.results if real in sizes and seed in seeds)


def _key(result: ArmResult) -> tuple[str, int, int]:
    return result.arm, result.real, result.seed


def _read(path: Path) -> list[ArmResult]:
    results = []
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in lines:
        try:
            results.append(ArmResult.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return results
