"""Saving and loading fgaug checkpoints.

A checkpoint is a ``torch.save`` file of plain containers and tensors only, so it loads with
``torch.load(weights_only=True)`` (a checkpoint is untrusted input)::

    {"format": "fgaug-checkpoint-1",
     "meta": "<JSON: model config, preset, label table, data fingerprint, versions, step, ...>",
     "model": state_dict, "ema": state_dict | None,
     "training": {...} | None}          # optimiser, step, counters: what --resume needs

Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

import fgaug
from fgaug.data.io import atomic_output, check_archive_checksums, file_digest, first_line
from fgaug.data.labels import LABEL_TABLE_VERSION
from fgaug.errors import FgaugError
from fgaug.finite import to_json
from fgaug.flow import FullGlow
from fgaug.flow.config import ConfigError, FullGlowConfig
from fgaug.resources import model_path

CHECKPOINT_FORMAT = "fgaug-checkpoint-1"


ZIP_MAGIC = b"PK\x03\x04"


PICKLE_PROTO = pickle.PROTO[0]


class CheckpointError(FgaugError, ValueError):
    """A checkpoint file is missing, corrupt, foreign or does not fit this version of fgaug."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (EMA weights when the file has them), its metadata and the
    training state (None for a weights-only file)."""

    model: FullGlow
    meta: dict[str, Any]
    training: dict[str, Any] | None
    path: Path
    raw_model_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor] | None

    @property
    def model_id(self) -> str:
        return f"{self.meta.get('run', self.path.stem)}@{self.meta.get('step', 0)}"

    @cached_property
    def sha256(self) -> str:
        """The SHA-256 of the checkpoint file: what identifies the model in outputs (computed once)."""
        return file_digest(self.path)


def describe_versions() -> dict[str, str]:
    return {"fgaug": fgaug.__version__, "torch": torch.__version__}


def save_checkpoint(
    path: str | Path,
    model: FullGlow,
    meta: dict[str, Any],
    ema_state: dict[str, torch.Tensor] | None = None,
    training: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically. ``meta`` is completed with the model config, label table
    version and code versions."""
    full_meta = {
        **meta,
        "model_config": model.config.to_dict(),
        "label_table": LABEL_TABLE_VERSION,
        "versions": describe_versions(),
    }
    payload = {
        "format": CHECKPOINT_FORMAT,
        "meta": to_json(full_meta),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "ema": None if ema_state is None else {k: v.detach().cpu() for k, v in ema_state.items()},
        "training": training,
    }
    _atomic_torch_save(payload, path)


def _atomic_torch_save(payload: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` through a Python file, whose write errors (a full disk) are ``OSError``s
    that :func:`atomic_output` names ``path`` in; given a path, torch's own writer raises a bare
    RuntimeError."""
    with atomic_output(path) as temporary, open(temporary, "wb") as stream:
        torch.save(payload, stream)


def read_checkpoint_payload(path: str | Path) -> dict[str, Any]:
    """The raw payload of a checkpoint file, checked for format; every failure names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: {'a folder, not a checkpoint file' if path.is_dir() else 'checkpoint not found'}"
        )
    if not _is_torch_file(path):
        raise CheckpointError(f"{path}: not a checkpoint (not a torch file)")
    check_archive_checksums(path, "checkpoint", CheckpointError)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing a foreign pickle
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except KeyError as error:  # torch's legacy loader: a pickle without torch's magic number
        raise CheckpointError(f"{path}: not a readable checkpoint (damaged, or not a torch file)") from error
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(error)})") from error
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: refused to load: holds more than weights ({_refusal(error)})") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        if str(found).startswith("fgaug-probe"):  # the other kind fgaug saves (fgaug.segmentation.probe)
            raise CheckpointError(
                f"{path}: a probe segmenter of `fgaug segmenter train`, no Full-Glow model; it is given as --segmenter"
            )
        raise CheckpointError(f"{path}: not an fgaug checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    try:
        payload["meta"] = json.loads(payload["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: checkpoint metadata is damaged ({first_line(error)})") from error
    if not isinstance(payload["meta"], dict) or not isinstance(payload.get("model"), dict):
        part = "metadata" if not isinstance(payload["meta"], dict) else "weights ('model')"
        raise CheckpointError(f"{path}: a damaged checkpoint: its {part} missing or not a mapping")
    return payload


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", prefer_ema: bool = True) -> Checkpoint:
    """Load a checkpoint into a fresh :class:`FullGlow`; EMA weights are used when present and
    ``prefer_ema``. Mismatches (label table, config, weights) are one-line :class:`CheckpointError`."""
    path = Path(path)
    payload = read_checkpoint_payload(path)
    meta = payload["meta"]
    if meta.get("label_table") != LABEL_TABLE_VERSION:
        raise CheckpointError(
            f"{path}: made with label table {meta.get('label_table')!r}, this fgaug uses {LABEL_TABLE_VERSION!r}"
        )
    try:
        config = FullGlowConfig.from_dict(meta["model_config"], origin=f"{path}: model_config")
    except (KeyError, TypeError, ConfigError) as error:
        raise CheckpointError(f"{path}: model configuration is invalid ({first_line(error)})") from error
    model = FullGlow(config)
    ema_state = payload.get("ema")
    state = ema_state if (prefer_ema and ema_state) else payload["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: weights do not fit the model configuration ({first_line(error)})") from error
    model.to(device).eval()
    return Checkpoint(model, meta, payload.get("training"), path, payload["model"], ema_state)


def _is_torch_file(path: Path) -> bool:
    """Whether the file starts as ``torch.save`` writes: a zip archive (torch >= 1.6) or a pickle
    (the legacy format). Random bytes, text and images are neither."""
    with open(path, "rb") as stream:
        head = stream.read(len(ZIP_MAGIC))
    return head == ZIP_MAGIC or (len(head) >= 2 and head[0] == PICKLE_PROTO and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL)


def _refusal(error: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused (e.g. a class), without its advice on bypassing it."""
    _, found, reason = str(error).partition("WeightsUnpickler error:")
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    return lines[0].split(". ")[0][:200] if found and lines else first_line(error)


def export_weights(source: str | Path, target: str | Path, half: bool = True) -> Path:
    """A weights-only copy of a training checkpoint (EMA weights when present), optionally with
    floating-point tensors stored as float16 (half the size; loaded back into float32)."""
    payload = read_checkpoint_payload(source)
    state = payload.get("ema") or payload["model"]
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    exported = {
        "format": CHECKPOINT_FORMAT,
        "meta": to_json(payload["meta"]),
        "model": state,
        "ema": None,
        "training": None,
    }
    _atomic_torch_save(exported, target)
    return Path(target)


LOSS_ONLY_KEYS = frozenset({"source_weight", "gaussian_noise", "condition_dropout"})
"""Model-config keys that change only the training objective, never the weights or what they
compute: a fine-tuning run may set them afresh (e.g. Gaussian noise or condition dropout on a
model trained without)."""


def initialise_from(model: FullGlow, named: str | Path) -> str:
    """Fine-tuning's start: ``model`` takes the weights of the checkpoint ``named`` (a path, or
    ``demo`` for the bundled model), its EMA weights where it has them. Its model config must be
    ``model``'s but for :data:`LOSS_ONLY_KEYS`; a difference is a one-line
    :class:`CheckpointError` naming each differing key. Returns the checkpoint's SHA-256."""
    path = model_path(named)
    checkpoint = load_checkpoint(path)
    theirs, ours = checkpoint.model.config.to_dict(), model.config.to_dict()
    differing = [
        key for key in sorted((theirs.keys() | ours.keys()) - LOSS_ONLY_KEYS) if theirs.get(key) != ours.get(key)
    ]
    if differing:
        listed = "; ".join(f"{key} {theirs.get(key)} there, {ours.get(key)} here" for key in differing)
        raise CheckpointError(
            f"{path}: its model is not this run's ({listed}); train with the preset and model options it was "
            "trained with"
        )
    model.load_state_dict(checkpoint.model.state_dict())
    return checkpoint.sha256
