"""Training loop: warm-up, gradient clipping, EMA, mixed precision, checkpoints, exact resume.

A run lives in one folder (``runs/NAME``)::

    config.json          the resolved configuration: this file alone reproduces the run
    metrics.jsonl        one line per logged step (loss, bits/dim, lr, images/s) and per validation
    checkpoints/last.pt  model, EMA, optimiser and counters (what --resume needs)
    checkpoints/best.pt  the EMA weights with the lowest validation bits/dim so far
    samples/step_N.png   mask | real photo | samples at a few temperatures

Everything random is drawn from generators seeded by (seed, step) or (seed, epoch): the data
order, the dequantisation noise and the model's initialisation. So a resumed run continues with
exactly the losses of an uninterrupted one, without saving random-number-generator states.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fgaug.checkpoint import CheckpointError, read_checkpoint_payload, save_checkpoint
from fgaug.config import FullGlowConfig, load_preset
from fgaug.data.cache import CachedPairs, source_digest
from fgaug.data.cityscapes import CityscapesPairs, ReadOptions, find_groups, is_cityscapes_root
from fgaug.data.io import DataError, atomic_write_bytes
from fgaug.flow import FullGlow, network_precision
from fgaug.preview import save_grid, to_uint8_image
from fgaug.progress import Progress, SilentProgress
from fgaug.runtime import precision_name, resolve_device, resolve_precision

SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)


class TrainingStoppedError(RuntimeError):
    """Training ended early; a checkpoint was saved. ``reason`` says why."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclass
class TrainOptions:
    """Everything a training run depends on (``None`` means: the preset's value)."""

    data: str
    run_dir: str = "runs/fullglow"
    preset: str = "tiny"
    size: tuple[int, int] | None = None
    batch_size: int | None = None
    lr: float | None = None
    steps: int | None = None
    epochs: float | None = None
    source_weight: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    warmup_steps: int = 200
    grad_clip: float = 50.0
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    validate_every: int = 250
    sample_every: int = 500
    log_every: int = 10
    val_data: str | None = None
    val_limit: int = 16
    workers: int = 2
    boundary: bool = False
    train_split: str = "train"
    val_split: str = "val"
    mask_format: str = "auto"
    snap_colors: bool = False
    skip_bad: bool = False
    max_bad_steps: int = 20
    resume: bool = False
    exist_ok: bool = False

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["size"] = list(self.size) if self.size else None
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if values.get("size"):
            values["size"] = tuple(values["size"])
        return cls(**values)


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    last_checkpoint: Path
    best_checkpoint: Path | None
    first_val_bpd: float | None
    last_val_bpd: float | None
    skipped_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ data


@dataclass
class TrainingData:
    train: Dataset
    val: Dataset | None
    fingerprint: str
    description: str


def open_training_data(options: TrainOptions, model_config: FullGlowConfig) -> TrainingData:
    """The training set (a Cityscapes tree or an HDF5 cache) and a validation set when one exists."""
    read = ReadOptions(model_config.image_size, options.boundary, options.snap_colors)
    data = Path(options.data)

    def open_one(path: Path, split: str, limit: int | None) -> tuple[Dataset, str]:
        if path.suffix in (".h5", ".hdf5"):
            dataset = CachedPairs(path, size=model_config.image_size)
            if dataset.info.boundary != options.boundary:
                raise DataError(
                    f"{path}: prepared {'with' if dataset.info.boundary else 'without'} the boundary channel"
                )
            return dataset, dataset.info.source_digest
        discovery = find_groups(
            path, [split] if is_cityscapes_root(path) else None, True, options.mask_format, options.skip_bad
        )
        groups = discovery.groups[:limit] if limit else discovery.groups
        return CityscapesPairs(groups, read), source_digest(groups, path)

    train, fingerprint = open_one(data, options.train_split, None)
    val: Dataset | None = None
    if options.val_data:
        val, _ = open_one(Path(options.val_data), options.val_split, options.val_limit)
    elif data.is_dir() and is_cityscapes_root(data) and (data / "gtFine" / options.val_split).is_dir():
        val, _ = open_one(data, options.val_split, options.val_limit)
    batch = options.batch_size or 1
    if len(train) < batch:
        raise DataError(f"{data}: {len(train)} training pair(s), fewer than the batch size {batch}")
    description = f"{len(train)} training pairs" + (f", {len(val)} validation pairs" if val is not None else "")
    return TrainingData(train, val, fingerprint, description)


class OrderSampler(Sampler[int]):
    """Yields a fixed list of indices (one epoch's permutation from a given offset)."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def epoch_permutation(size: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 7919 + epoch)
    return torch.randperm(size, generator=generator).tolist()


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one step's dequantisation noise."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


# ------------------------------------------------------------------------------------------ helpers


class ExponentialMovingAverage:
    r"""A copy of the model whose parameters follow :math:`\bar\theta \leftarrow d_t\,\bar\theta + (1-d_t)\,\theta`
    (buffers copied), used for validation, samples and the saved weights.

    :math:`d_t = \min(d, (1 + t) / (10 + t))` after t updates, so the average tracks the model
    early in training instead of lagging behind its random start.
    """

    def __init__(self, model: FullGlow, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: FullGlow) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current.detach(), 1.0 - decay)
        for average, current in zip(self.model.buffers(), model.buffers(), strict=True):
            average.copy_(current)


@contextmanager
def stop_requests() -> Iterator[Callable[[], str | None]]:
    """While active, SIGINT/SIGTERM only request a stop (checked between steps); a second SIGINT
    interrupts at once."""
    requested: dict[str, str] = {}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def handler(signum: int, frame: object) -> None:
        if "signal" in requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested["signal"] = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: requested.get("signal")
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------------------ the run


def resolve_run(options: TrainOptions) -> tuple[TrainOptions, FullGlowConfig, str]:
    """Final options and model config: from the run's config.json on resume, else from the preset
    with the options' overrides."""
    run_dir = Path(options.run_dir)
    config_path = run_dir / "config.json"
    if options.resume:
        if not config_path.is_file():
            raise DataError(f"{run_dir}: nothing to resume (no config.json); start the run without --resume")
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        resumed = TrainOptions.from_dict(saved["train"])
        for name in ("steps", "epochs"):
            if getattr(options, name) is not None:
                setattr(resumed, name, getattr(options, name))
        resumed.device, resumed.workers, resumed.resume = options.device, options.workers, True
        return resumed, FullGlowConfig.from_dict(saved["model"], origin=str(config_path)), saved["preset"]
    if run_dir.exists() and any(run_dir.iterdir()) and not options.exist_ok:
        raise DataError(f"{run_dir}: run folder exists; use --resume to continue it or --exist-ok to overwrite")
    preset = load_preset(options.preset)
    settings = preset.model.to_dict()
    if options.size:
        settings["image_size"] = list(options.size)
    if options.source_weight is not None:
        settings["source_weight"] = options.source_weight
    if options.boundary:
        settings["mask_channels"] = 4
    resolved = copy.copy(options)
    resolved.batch_size = options.batch_size or preset.train.batch_size
    resolved.lr = options.lr or preset.train.lr
    return resolved, FullGlowConfig.from_dict(settings, origin=f"preset {preset.name}"), preset.name


def train(options: TrainOptions, progress: Progress | None = None) -> TrainResult:
    """Train (or resume) a Full-Glow run; see the module docstring for the run folder."""
    progress = progress or SilentProgress()
    options, config, preset_name = resolve_run(options)
    assert options.batch_size is not None and options.lr is not None
    device = resolve_device(options.device)
    network_dtype = resolve_precision(options.precision, device)
    run_dir = Path(options.run_dir)
    checkpoints, samples_dir = run_dir / "checkpoints", run_dir / "samples"
    data = open_training_data(options, config)

    steps_per_epoch = len(data.train) // options.batch_size
    total_steps = options.steps or math.ceil((options.epochs or 45) * steps_per_epoch)
    model = FullGlow(config, seed=options.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=network_dtype == torch.float16)
    ema: ExponentialMovingAverage | None = None
    step, skipped, consecutive_bad, best_val = 0, 0, 0, math.inf
    first_val: float | None = None
    last_val: float | None = None

    if options.resume:
        payload = read_checkpoint_payload(checkpoints / "last.pt")
        model.load_state_dict(payload["model"])
        training = payload["training"]
        if training is None:
            raise CheckpointError(f"{checkpoints / 'last.pt'}: holds no training state to resume from")
        optimizer.load_state_dict(training["optimizer"])
        scaler.load_state_dict(training["scaler"])
        if payload.get("ema") is not None:
            ema = ExponentialMovingAverage(model, options.ema_decay)
            ema.model.load_state_dict(payload["ema"])
            ema.updates = int(training["ema_updates"])
        step, skipped = int(training["step"]), int(training["skipped"])
        best_val = float(training["best_val"])
        first_val = training.get("first_val")
        last_val = training.get("last_val")
        progress.log(f"resuming {run_dir} at step {step}")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        resolved = {
            "preset": preset_name,
            "model": config.to_dict(),
            "train": options.to_dict(),
            "data_fingerprint": data.fingerprint,
        }
        atomic_write_bytes(run_dir / "config.json", json.dumps(resolved, indent=2, sort_keys=True).encode())

    meta = {"run": run_dir.name, "preset": preset_name, "data_fingerprint": data.fingerprint, "seed": options.seed}

    def save(path: Path) -> Path:
        training = {
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "skipped": skipped,
            "best_val": best_val,
            "first_val": first_val,
            "last_val": last_val,
            "ema_updates": ema.updates if ema else 0,
        }
        ema_state = ema.model.state_dict() if ema else None
        save_checkpoint(path, model, {**meta, "step": step}, ema_state, training)
        return path

    def evaluation_model() -> FullGlow:
        return ema.model if ema else model

    def validate() -> float | None:
        if data.val is None:
            return None
        evaluated = evaluation_model().eval()
        total, count = 0.0, 0
        loader = DataLoader(data.val, batch_size=options.batch_size, num_workers=0)
        with torch.no_grad(), network_precision(network_dtype):
            for index, batch in enumerate(loader):
                bpd = evaluated.conditional_bpd(
                    batch["mask"].to(device),
                    batch["photo"].to(device),
                    generator=step_generator(options.seed, -1 - index),
                )
                total += float(bpd.sum())
                count += bpd.numel()
        return total / count

    def write_samples() -> Path:
        source = data.val if data.val is not None else data.train
        items = [source[i] for i in range(min(4, len(source)))]
        masks = torch.stack([item["mask"] for item in items]).to(device)
        evaluated = evaluation_model().eval()
        rows = [[to_uint8_image(item["mask"]), to_uint8_image(item["photo"])] for item in items]
        with network_precision(network_dtype):
            for temperature in SAMPLE_TEMPERATURES:
                drawn = evaluated.sample(masks, 1, temperature, generator=torch.Generator().manual_seed(options.seed))
                for row, image in zip(rows, drawn.images[:, 0], strict=True):
                    row.append(to_uint8_image(image))
        titles = ["mask", "photo", *(f"T={t}" for t in SAMPLE_TEMPERATURES)]
        return save_grid(samples_dir / f"step_{step:07d}.png", rows, titles)

    def record_validation() -> None:
        nonlocal best_val, first_val, last_val
        value = validate()
        if value is None:
            return
        first_val = value if first_val is None else first_val
        last_val = value
        append_jsonl(run_dir / "metrics.jsonl", {"step": step, "val_bpd": value})
        progress.log(f"step {step}: validation {value:.4f} bits/dim")
        if value < best_val:
            best_val = value
            save(checkpoints / "best.pt")

    progress.log(
        f"training {preset_name} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters) "
        f"at {config.image_size[0]}x{config.image_size[1]} on {device} ({precision_name(network_dtype)}), "
        f"{data.description}, {total_steps} steps"
    )
    progress.start("training", total_steps)
    progress.advance(step)
    window_start, window_images = time.perf_counter(), 0
    history: list[dict[str, Any]] = []
    with stop_requests() as stop_requested:
        while step < total_steps:
            epoch, offset = divmod(step, steps_per_epoch)
            order = epoch_permutation(len(data.train), options.seed, epoch)[offset * options.batch_size :]
            loader = DataLoader(
                data.train,
                batch_size=options.batch_size,
                sampler=OrderSampler(order),
                drop_last=True,
                num_workers=options.workers,
                pin_memory=device.type == "cuda",
            )
            for batch in loader:
                mask, photo = batch["mask"].to(device, non_blocking=True), batch["photo"].to(device, non_blocking=True)
                learning_rate = options.lr * min(1.0, (step + 1) / max(options.warmup_steps, 1))
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
                model.train()
                with network_precision(network_dtype):
                    output = model(mask, photo, generator=step_generator(options.seed, step))
                optimizer.zero_grad(set_to_none=True)
                grad_norm = math.nan
                if torch.isfinite(output.loss):
                    scaler.scale(output.loss).backward()
                    scaler.unscale_(optimizer)
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip))
                if not math.isfinite(grad_norm) and not scaler.is_enabled():
                    skipped += 1
                    consecutive_bad += 1
                    if consecutive_bad >= options.max_bad_steps:
                        path = save(checkpoints / "last.pt")
                        raise TrainingStoppedError(
                            f"the loss or its gradient was not finite for {consecutive_bad} steps in a row "
                            f"(step {step}); lower --lr or check the data",
                            path,
                        )
                    continue
                consecutive_bad = 0
                scaler.step(optimizer)
                scaler.update()
                if ema is None:
                    ema = ExponentialMovingAverage(model, options.ema_decay)
                else:
                    ema.update(model)
                step += 1
                window_images += mask.shape[0]
                loss = float(output.loss.detach())
                if step % options.log_every == 0 or step == 1 or step == total_steps:
                    seconds = time.perf_counter() - window_start
                    record = {
                        "step": step,
                        "loss": loss,
                        "bpd": float(output.conditional_bpd.detach().mean()),
                        "source_bpd": float(output.source_bpd.detach().mean()),
                        "lr": learning_rate,
                        "grad_norm": grad_norm,
                        "images_per_s": window_images / max(seconds, 1e-9),
                    }
                    append_jsonl(run_dir / "metrics.jsonl", record)
                    history.append(record)
                    window_start, window_images = time.perf_counter(), 0
                progress.advance(1, loss=loss)
                if step == 1 or step % options.validate_every == 0 or step == total_steps:
                    record_validation()
                if step % options.sample_every == 0 or step == total_steps:
                    progress.log(f"samples: {write_samples()}")
                if step % options.checkpoint_every == 0 or step == total_steps:
                    save(checkpoints / "last.pt")
                reason = stop_requested()
                if reason:
                    path = save(checkpoints / "last.pt")
                    progress.stop()
                    raise TrainingStoppedError(f"stopped by {reason} at step {step}; resume with --resume", path)
                if step >= total_steps:
                    break
    progress.stop()
    last = save(checkpoints / "last.pt")
    best = checkpoints / "best.pt"
    return TrainResult(run_dir, step, last, best if best.is_file() else None, first_val, last_val, skipped, history)
