"""The probe segmenter: a small semantic-segmentation network for label-consistency checks.

The paper scores synthetic images with a PSPNet trained on real Cityscapes. fgaug accepts any
segmenter saved as TorchScript or as a ``torch.export`` program (``.pt2``) with this interface::

    logits = segmenter(photos)   # photos (B, 3, H, W) float in [0, 1]; logits (B, 19, h, w) over trainIds

(logits at another size are resized bilinearly to the mask's), so a pretrained PSPNet or
DeepLab reproduces the paper's table. Without one, ``fgaug segmenter train`` trains this probe
on the real training split: a four-level encoder-decoder (conv-BN-ReLU blocks, skip connections).
"""

from __future__ import annotations

import math
import pickle
import time
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from fgaug.data.cityscapes import Group, read_label_ids, resize_labels, resize_photo, to_tensor
from fgaug.data.io import DataError, atomic_output, check_archive_checksums, first_line, not_a_file, read_rgb
from fgaug.data.labels import IGNORE_TRAIN_ID, N_TRAIN_IDS, ids_to_train_ids
from fgaug.finite import require_finite
from fgaug.progress import Progress, SilentProgress
from fgaug.runtime import fused_adam_available
from fgaug.segmentation.options import SegmenterTrainOptions
from fgaug.segmentation.scores import confusion_matrix, segmentation_scores

MEAN = (0.485, 0.456, 0.406)


STD = (0.229, 0.224, 0.225)


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ProbeSegmenter(nn.Module):
    """photos in [0, 1] -> logits over the 19 train ids, same size (input sides divisible by 8)."""

    mean: Tensor
    """ImageNet's channel means, (1, 3, 1, 1) (a buffer)."""
    std: Tensor
    """ImageNet's channel standard deviations, (1, 3, 1, 1) (a buffer)."""

    def __init__(self, width: int = 32, classes: int = N_TRAIN_IDS) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        widths = [width, width * 2, width * 4, width * 8]
        self.down = nn.ModuleList([_block(3 if i == 0 else widths[i - 1], widths[i]) for i in range(len(widths))])
        self.up = nn.ModuleList(
            [_block(widths[i] + widths[i - 1], widths[i - 1]) for i in range(len(widths) - 1, 0, -1)]
        )
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, photos: Tensor) -> Tensor:
        h = (photos - self.mean) / self.std
        skips = []
        for index, block in enumerate(self.down):
            h = block(h if index == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return self.head(h)


class SegmentationPairs(Dataset):
    """(photo, trainIds) pairs of groups at ``size``; photos may be replaced by synthetic ones
    (``photos`` maps a group index to a (H, W, 3) uint8 array at ``size``)."""

    def __init__(self, groups: Sequence[Group], size: tuple[int, int], flip: bool = False) -> None:
        self.groups = list(groups)
        self.size = size
        self.flip = flip

    def __len__(self) -> int:
        return len(self.groups) * (2 if self.flip else 1)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        group = self.groups[index % len(self.groups)]
        if group.photo is None:
            raise DataError(f"{group.mask}: no photo to train the segmenter on")
        photo = resize_photo(read_rgb(group.photo), self.size)
        labels = ids_to_train_ids(resize_labels(read_label_ids(group.mask, group.mask_format), self.size))
        if index >= len(self.groups):
            photo, labels = photo[:, ::-1], labels[:, ::-1]
        return to_tensor(np.ascontiguousarray(photo)), torch.from_numpy(np.ascontiguousarray(labels)).long()


@dataclass(frozen=True)
class SegmenterTrainReport:
    """The probe saved at ``path``: its steps, last loss and training time, and (where the caller
    counted them, as ``fgaug segmenter train`` does) the real ``photos`` it learnt from."""

    path: Path
    steps: int
    final_loss: float
    seconds: float
    photos: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "steps": self.steps,
            "final_loss": self.final_loss,
            "seconds": round(self.seconds, 1),
            "photos": self.photos,
        }


Batch = tuple[Tensor, Tensor]
"""Photos (B, 3, H, W) float in [0, 1] and train ids (B, H, W) long, 255 ignored."""


ProbeDataset = SegmentationPairs | TensorDataset
"""(photo, train ids) pairs a probe trains on: of groups, or in memory."""


@dataclass
class ProbeFit:
    """A fitted probe: ``model`` holds the weights of the best validation step (the last step
    without validation); ``history`` the validations ``{"step", "val_miou"}``."""

    model: ProbeSegmenter
    steps: int
    best_step: int
    best_val_miou: float | None
    final_loss: float
    seconds: float
    history: list[dict[str, float]]


def new_probe(width: int, seed: int, device: torch.device | str = "cpu") -> ProbeSegmenter:
    """A probe whose initial weights depend on ``seed`` only, channels-last (25-35% faster)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return in_memory_format(ProbeSegmenter(width).to(device), torch.channels_last)


def in_memory_format(model: ProbeSegmenter, memory_format: torch.memory_format) -> ProbeSegmenter:
    """``model`` (moved in place) with its 4-D weights in ``memory_format``."""
    return model.to(memory_format=memory_format)  # type: ignore[call-overload]  # torch's Module.to overloads lack memory_format


def warm_up_fraction(steps: int) -> float:
    """The one-cycle schedule's rising share of ``steps``: 10%, and at least two steps from 3 steps
    on. torch's ``OneCycleLR`` divides by ``pct_start * steps - 1``, which is 0 at 10 steps
    (``--steps 10`` and ``--max-steps 10`` stopped with a ZeroDivisionError)."""
    return max(0.1, 2 / steps) if steps > 2 else 0.1


def fit_probe(
    model: ProbeSegmenter,
    batches: Iterator[Batch],
    steps: int,
    lr: float = 2e-3,
    val: Batch | None = None,
    evaluate_every: int = 100,
    patience: int | None = None,
    network_dtype: torch.dtype | None = None,
    progress: Progress | None = None,
) -> ProbeFit:
    """Train ``model`` with cross-entropy (train id 255 ignored), AdamW and a one-cycle schedule over
    ``steps``. With ``val``, the mIoU on it is measured every ``evaluate_every`` steps and the best
    weights are kept; training stops early after ``patience`` validations without improvement.
    ``network_dtype`` (bf16) runs the forward pass under autocast."""
    progress = progress or SilentProgress()
    start = time.perf_counter()
    device = next(model.parameters()).device
    fused = fused_adam_available(device) or None  # one kernel for all tensors: 1.65x a step at 16x32, width 4
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, fused=fused)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=warm_up_fraction(steps)
    )
    history: list[dict[str, float]] = []
    best_state, best_step, best_val, waited = None, 0, -math.inf, 0
    step, loss_value = 0, float("nan")
    progress.start("segmenter", steps)
    for photos, labels in batches:
        model.train()
        with torch.autocast(device.type, dtype=network_dtype or torch.bfloat16, enabled=network_dtype is not None):
            logits = model(photos.to(device).contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits.float(), labels.to(device), ignore_index=IGNORE_TRAIN_ID)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        progress.advance(1)
        if val is not None and (step % evaluate_every == 0 or step == steps):
            value = probe_miou(model, val, network_dtype)
            history.append({"step": step, "val_miou": value})
            if value > best_val:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best_step, best_val, waited = step, value, 0
            else:
                waited += 1
        if step >= steps or (patience is not None and waited >= patience):
            loss_value = float(loss.detach())
            break
    progress.stop()
    if best_state is not None:
        model.load_state_dict(best_state)
    return ProbeFit(
        model.eval(),
        step,
        best_step if best_state is not None else step,
        best_val if best_state is not None else None,
        loss_value,
        time.perf_counter() - start,
        history,
    )


def probe_miou(model: torch.nn.Module, pairs: Batch, network_dtype: torch.dtype | None = None) -> float:
    """Mean IoU of ``model`` over (photos, train ids)."""
    return segmentation_scores(probe_confusion(model, pairs, network_dtype)).mean_iou


@torch.no_grad()
def probe_confusion(
    model: torch.nn.Module, pairs: Batch, network_dtype: torch.dtype | None = None, chunk: int = 32
) -> np.ndarray:
    """The accumulated confusion matrix of ``model`` over (photos, train ids)."""
    model.eval()
    device = next(model.parameters()).device
    photos, labels = pairs
    matrix = np.zeros((N_TRAIN_IDS, N_TRAIN_IDS + 1), dtype=np.int64)
    for first in range(0, len(photos), chunk):
        batch = photos[first : first + chunk].to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=network_dtype or torch.bfloat16, enabled=network_dtype is not None):
            predicted = model(batch).argmax(dim=1)
        matrix += confusion_matrix(predicted.cpu().numpy(), labels[first : first + chunk].numpy())
    return matrix


def loader_batches(dataset: ProbeDataset, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
    """Endless shuffled batches of a dataset; one smaller than a batch gives one short batch per
    epoch instead of looping forever."""
    while True:
        yield from DataLoader(
            dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) > batch_size, generator=generator
        )


def train_probe(
    dataset: ProbeDataset,
    out: str | Path,
    steps: int = SegmenterTrainOptions.steps,
    batch_size: int = SegmenterTrainOptions.batch_size,
    lr: float = SegmenterTrainOptions.lr,
    width: int = SegmenterTrainOptions.width,
    seed: int = SegmenterTrainOptions.seed,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> SegmenterTrainReport:
    """Train the probe with cross-entropy (trainId 255 ignored) and save it."""
    require_finite(lr=lr)
    model = new_probe(width, seed, device)
    batches = loader_batches(dataset, batch_size, torch.Generator().manual_seed(seed))
    fit = fit_probe(model, batches, steps, lr, progress=progress)
    height, width = dataset[0][1].shape[-2:]  # the labels' (H, W): the size the probe trained at
    save_segmenter(in_memory_format(model.cpu(), torch.contiguous_format), out, (int(height), int(width)))
    return SegmenterTrainReport(Path(out), fit.steps, fit.final_loss, fit.seconds)


PROBE_FORMAT = "fgaug-probe-1"


def save_segmenter(model: ProbeSegmenter, path: str | Path, size: tuple[int, int]) -> Path:
    """Save the probe as plain weights (loaded with ``weights_only=True``), with the (height,
    width) of the images it was trained on, which :func:`load_segmenter` checks."""
    payload = {"format": PROBE_FORMAT, "width": model.head.in_channels, "size": list(size), "state": model.state_dict()}
    with atomic_output(path) as temporary, open(temporary, "wb") as stream:
        torch.save(payload, stream)  # a Python file: a full disk is an OSError naming the file
    return Path(path)


def check_probe_output(path: str | Path) -> None:
    """Refuse, before any training, an output that exists and is not fgaug's probe (a Full-Glow
    checkpoint, a photo): ``segmenter train`` replaces an earlier probe only."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        payload = torch.load(path, weights_only=True) if zipfile.is_zipfile(path) and _is_probe(path) else None
    except (RuntimeError, ValueError, OSError, pickle.UnpicklingError):
        payload = None
    if not (isinstance(payload, dict) and payload.get("format") == PROBE_FORMAT):
        raise DataError(f"--out {path}: exists and is not a probe of fgaug, which training would replace; name another")


def load_segmenter(
    path: str | Path, device: torch.device | str = "cpu", size: tuple[int, int] | None = None
) -> torch.nn.Module:
    """fgaug's probe, a ``torch.export`` program (``.pt2``) or a TorchScript model, in eval mode.
    A probe trained at another (height, width) than ``size``, the images it will score, is a
    :class:`DataError`: it runs there, but scores wrongly (probes saved before the size was
    recorded, and users' own networks, are not checked)."""
    path = Path(path)
    if not path.is_file():
        raise not_a_file(path, "segmenter")
    check_archive_checksums(path, "segmenter")
    if path.suffix != ".pt2" and zipfile.is_zipfile(path) and _is_probe(path):
        try:
            payload = torch.load(path, map_location=device, weights_only=True)
        except (RuntimeError, ValueError, OSError, pickle.UnpicklingError) as error:
            raise DataError(f"{path}: not a usable segmenter ({first_line(error)})") from error
        if not isinstance(payload, dict) or payload.get("format") != PROBE_FORMAT:
            kind = "a Full-Glow checkpoint (give it as --model)" if _is_flow_checkpoint(payload) else "no fgaug probe"
            raise DataError(f"{path}: not a segmenter: {kind}; a segmenter is fgaug's probe, TorchScript or .pt2")
        trained_at = tuple(payload.get("size") or ())
        if size is not None and trained_at and trained_at != tuple(size):
            raise DataError(
                f"{path}: a probe trained at {'x'.join(map(str, trained_at))}, not at the model's "
                f"{size[0]}x{size[1]}, which it would score wrongly; train one with segmenter train --size "
                f"{size[0]}x{size[1]}"
            )
        try:
            model = ProbeSegmenter(int(payload["width"]))
            model.load_state_dict(payload["state"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise DataError(f"{path}: not a usable segmenter ({first_line(error)})") from error
        return UserNetwork(model.to(device).eval(), path, "segmenter")
    return load_user_module(path, "segmenter", device)


def load_user_module(path: str | Path, what: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A user's network from a local file: a ``torch.export`` program (``.pt2``) or TorchScript.
    Nothing is downloaded; ``what`` names it in errors, with the file (see :class:`UserNetwork`)."""
    path = Path(path)
    if not path.is_file():
        raise not_a_file(path, what)
    check_archive_checksums(path, what)
    try:
        if path.suffix == ".pt2":
            module = torch.export.load(str(path)).module().to(device)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError, KeyError, OSError, pickle.UnpicklingError) as error:
        raise DataError(f"{path}: not a usable {what} ({first_line(error)})") from error
    return UserNetwork(module, path, what)


class UserNetwork(nn.Module):
    """A network loaded from ``path``: an exception inside it, or an output that is not a tensor,
    is a one-line :class:`DataError` naming the file, and so is a wrong output shape found by its
    caller (:func:`network_error`)."""

    def __init__(self, module: nn.Module, path: Path, what: str) -> None:
        super().__init__()
        self.module = module
        self.path = path
        self.what = what

    def forward(self, *inputs: Tensor) -> Tensor:
        try:
            output = self.module(*inputs)
        except Exception as error:  # a user's code may raise anything
            shapes = " and ".join(str(tuple(tensor.shape)) for tensor in inputs)
            raise self.error(f"fails on input of shape {shapes} ({first_line(error)})") from error
        if not isinstance(output, Tensor):
            raise self.error(f"returns {type(output).__name__}, not a tensor")
        return output

    def error(self, problem: str) -> DataError:
        return DataError(f"{self.path}: the {self.what} {problem}")


def network_error(network: nn.Module, what: str, problem: str) -> DataError:
    """A one-line error about ``network``, naming its file when it was loaded from one."""
    return network.error(problem) if isinstance(network, UserNetwork) else DataError(f"the {what} {problem}")


def _is_flow_checkpoint(payload: object) -> bool:
    """Whether a loaded file is one of fgaug's Full-Glow checkpoints or weight exports."""
    return isinstance(payload, dict) and "meta" in payload


def _is_probe(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return not any(name.endswith("code/__torch__.py") or "/code/" in name for name in archive.namelist())


@torch.no_grad()
def predict_train_ids(segmenter: torch.nn.Module, photos: Tensor, size: tuple[int, int]) -> np.ndarray:
    """(B, H, W) uint8 trainIds predicted for photos (B, 3, h, w) in [0, 1], at ``size``."""
    logits = segmenter(photos)
    if logits.ndim != 4 or logits.shape[:2] != (len(photos), N_TRAIN_IDS):
        raise network_error(
            segmenter,
            "segmenter",
            f"outputs {tuple(logits.shape)} for photos {tuple(photos.shape)}; "
            f"(B, {N_TRAIN_IDS}, h, w) train-id logits are needed",
        )
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
