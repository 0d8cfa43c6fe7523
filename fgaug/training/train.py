"""Training loop: warm-up, gradient clipping, EMA, mixed precision, checkpoints, exact resume.

A run lives in one folder (``runs/NAME``)::

    config.json          the resolved configuration: this file alone reproduces the run; its
                         ``precision`` is the networks' precision ``auto`` resolved to; rewritten
                         on ``--resume`` with the steps and folder the run goes on with
    metrics.jsonl        one line per logged step (loss, bits/dim, lr, images/s, CPU threads) and per validation
    results.png          those figures against the step, redrawn at validations (at most every 30 s) and at the end
    tensorboard/         the same as TensorBoard events, with the sample grids (when installed)
    checkpoints/last.pt  model, EMA, optimiser and counters (what --resume needs)
    checkpoints/best.pt  the EMA weights with the lowest validation bits/dim so far
    samples/step_N.png   mask | real photo | samples at a few temperatures

Everything random is drawn from generators seeded by (seed, step) or (seed, epoch): the data
order, the dequantisation noise and the model's initialisation. So a resumed run continues with
exactly the losses of an uninterrupted one, without saving random-number-generator states.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fgaug import distributed
from fgaug.data.io import DataError, atomic_write_bytes, encode_png, first_line, read_json
from fgaug.data.preview import image_grid, to_uint8_image
from fgaug.data.record import hold_folder, release_folder
from fgaug.finite import to_json
from fgaug.flow import FullGlow, FullGlowOutput, compile_networks, network_precision
from fgaug.flow.config import FullGlowConfig, parse_noise
from fgaug.flow.graphs import GraphedTrainingPass
from fgaug.flow.precision import backward_precision
from fgaug.progress import Progress, SilentProgress
from fgaug.runtime import (
    RuntimeChoiceError,
    emulated_bf16_note,
    peak_memory,
    precision_name,
    reset_peak_memory,
    resolve_precision,
)
from fgaug.training.batches import StepOrderSampler, check_same_pairs, open_training_data, step_generator
from fgaug.training.checkpoint import CheckpointError, initialise_from, read_checkpoint_payload, save_checkpoint
from fgaug.training.ema import ExponentialMovingAverage
from fgaug.training.optimiser import adam, load_adam_state
from fgaug.training.options import TrainingStoppedError, TrainOptions, TrainResult
from fgaug.training.presets import load_preset
from fgaug.training.resume import resumed_run
from fgaug.training.runlog import RunLog, clear_run_folder, last_logged_step
from fgaug.training.state import TrainState
from fgaug.training.stopping import batches_of, leave_stop_signals_to_the_trainer, stop_requests
from fgaug.usage import UsageError

SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)


def resolve_run(options: TrainOptions) -> tuple[TrainOptions, FullGlowConfig, str]:
    """Final options and model config: from the run's config.json on resume, else from the preset
    with the options' overrides."""
    run_dir = Path(options.run_dir)
    config_path = run_dir / "config.json"
    if options.resume:
        return resumed_run(options, config_path)
    if run_dir.exists() and any(run_dir.iterdir()) and not options.exist_ok:
        if not config_path.is_file():
            raise DataError(f"{run_dir}: folder exists and holds no run (no config.json); --exist-ok starts one in it")
        raise DataError(f"{run_dir}: run folder exists; use --resume to continue it or --exist-ok to overwrite")
    preset = load_preset(options.preset)
    settings = preset.model.to_dict()
    if options.size:
        step = 2**preset.model.n_block
        if any(side % step for side in options.size):  # an option's value: a usage error, not the preset's
            height, width = options.size
            raise UsageError(f"--size {height}x{width} must be divisible by 2**n_block = {step} (preset {preset.name})")
        settings["image_size"] = list(options.size)
    if options.source_weight is not None:
        settings["source_weight"] = options.source_weight
    if options.conditioning is not None:
        settings["conditioning"] = options.conditioning
    if options.noise is not None:
        settings["gaussian_noise"] = parse_noise(options.noise)
    if options.condition_dropout is not None:
        settings["condition_dropout"] = options.condition_dropout
    if options.boundary:
        settings["mask_channels"] = 4
    resolved = copy.copy(options)
    resolved.batch_size = options.batch_size or preset.train.batch_size
    resolved.lr = options.lr or preset.train.lr
    return resolved, FullGlowConfig.from_dict(settings, origin=f"preset {preset.name}"), preset.name


class _Run:
    """One training run: its model, optimiser, counters and run folder (see :func:`train`)."""

    window_start: float
    """When the current logging window began (set as the loop starts, then at each logged step)."""
    window_images: int
    """Images trained on in the current logging window, over all processes."""

    def __init__(self, options: TrainOptions, progress: Progress) -> None:
        self.started = time.perf_counter()
        self.context, self.device = distributed.start(options.device)
        reset_peak_memory(self.device)
        self.progress = progress if self.context.is_main else SilentProgress()
        self.options, self.config, self.preset_name = resolve_run(options)
        if self.context.is_main and Path(self.options.run_dir).is_dir():  # before anything of it changes
            hold_folder(Path(self.options.run_dir))
        last = Path(self.options.run_dir) / "checkpoints" / "last.pt"
        if self.options.resume and not last.exists():
            first_save = min(step for step in (self.options.checkpoint_every, self.options.steps) if step)
            if last_logged_step(Path(self.options.run_dir)) >= first_save:  # best.pt comes at step 1: no sign
                raise CheckpointError(  # it had one: a finished run's artefacts are never cleared to start it again
                    f"{last}: not found, so the run cannot resume; --exist-ok starts it afresh, --init-from one of "
                    "its other checkpoints starts a new run from it"
                )
            # killed before its first checkpoint: started again as it first was (all drawn from its seed)
            self.progress.log(f"{self.options.run_dir}: no checkpoint yet; starting the run again at step 0")
            self.options.resume = False
        assert self.options.batch_size is not None and self.options.lr is not None
        self.batch_size, self.lr = self.options.batch_size, self.options.lr
        optimisation = build_optimisation(self.options, self.config, self.device, self.context.world_size)
        self.model, self.optimizer, self.scaler = optimisation.model, optimisation.optimizer, optimisation.scaler
        self.graphed, self.network_dtype = optimisation.graphed, optimisation.network_dtype
        self.graphs_note = optimisation.graphs_note
        self.init_from_sha256 = optimisation.init_from_sha256
        self.run_dir = Path(self.options.run_dir)
        self.checkpoints, self.samples_dir = self.run_dir / "checkpoints", self.run_dir / "samples"
        self.data = open_training_data(self.options, self.config)
        self.global_batch = self.batch_size * self.context.world_size
        self.steps_per_epoch = len(self.data.train) // self.global_batch
        if self.steps_per_epoch == 0:
            raise DataError(
                f"{self.options.data}: {len(self.data.train)} training pairs, fewer than one global batch "
                f"({self.batch_size} x {self.context.world_size} processes)"
            )
        self.total_steps = self.options.steps or math.ceil((self.options.epochs or 45) * self.steps_per_epoch)
        if self.context.is_main and not self.options.resume:  # afresh (--exist-ok), once the run can start
            clear_run_folder(self.run_dir)
        self.context.barrier()  # every process checked the run folder before the first writes to it
        self.ema: ExponentialMovingAverage | None = None
        self.state = TrainState()
        self.consecutive_bad, self.stopped_early = 0, False
        self.history: list[dict[str, Any]] = []
        self.meta = {
            "run": self.run_dir.name,
            "preset": self.preset_name,
            "data_fingerprint": self.data.fingerprint,
            "seed": self.options.seed,
        }
        if self.options.resume:
            recorded = read_json(self.run_dir / "config.json", "run configuration")
            check_same_pairs(recorded.get("data_pairs"), self.data, self.options.data, self.run_dir)
            self._restore()
            self.init_from_sha256 = recorded.get("init_from_sha256")
        if self.context.is_main:  # on resume too: the folder and steps the run now goes on with
            self._write_run_config()
            hold_folder(self.run_dir)  # a new run's, now made
        self.log = RunLog(self.run_dir, self.options.tensorboard, active=self.context.is_main)
        if self.options.resume:
            self.log.resume(self.state.step)
        else:
            self.log.start()

    # ---------------------------------------------------------------------------- state
    def _write_run_config(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {
            "preset": self.preset_name,
            "model": self.config.to_dict(),
            "train": self.options.to_dict(),
            "precision": precision_name(self.network_dtype),
            "data_fingerprint": self.data.fingerprint,
            "data_pairs": self.data.pairs_identity,
        }
        if self.init_from_sha256:
            resolved["init_from_sha256"] = self.init_from_sha256
        atomic_write_bytes(self.run_dir / "config.json", to_json(resolved, indent=2).encode())

    def _restore(self) -> None:
        path = self.checkpoints / "last.pt"
        payload = read_checkpoint_payload(path)
        training = payload["training"]
        if training is None:
            raise CheckpointError(f"{path}: holds no training state to resume from")
        try:
            self.model.load_state_dict(payload["model"])
        except RuntimeError as error:  # config.json edited since (a width, the size)
            raise CheckpointError(
                f"{path}: its weights do not fit the model of {self.run_dir / 'config.json'} ({first_line(error)})"
            ) from error
        load_adam_state(self.optimizer, training["optimizer"])
        self.scaler.load_state_dict(training["scaler"])
        if payload.get("ema") is not None:
            self.ema = ExponentialMovingAverage(self.model, self.options.ema_decay)
            self.ema.model.load_state_dict(payload["ema"])
            self.ema.updates = int(training["ema_updates"])
        self.state = TrainState.from_dict(training)
        self.state.refuse_fewer_steps(self.total_steps, self.run_dir)
        self.data.skipped += [failure for failure in self.state.stand_ins if failure not in self.data.skipped]
        previous, now = int(training.get("world_size", 1)), self.context.world_size
        note = f" (was {previous} processes, now {now})" if previous != now else ""
        self.progress.log(f"resuming {self.run_dir} at step {self.state.step}{note}")
        if self.options.patience and self.state.since_best >= self.options.patience:  # a CI job's rerun: no steps
            self.stopped_early = True
            self.progress.log("it had stopped early: no better validation for --patience validations (0 goes on)")

    def save(self, path: Path) -> Path:
        if self.context.is_main:
            training = {
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                **self.state.to_dict(),
                "ema_updates": self.ema.updates if self.ema else 0,
                "world_size": self.context.world_size,
            }
            ema_state = self.ema.model.state_dict() if self.ema else None
            save_checkpoint(path, self.model, {**self.meta, "step": self.state.step}, ema_state, training)
        return path

    def save_agreed(self, path: Path) -> Path:
        """:meth:`save` called by every process: the stand-ins of all of them go into the checkpoint."""
        self.state.stand_ins = self.context.union(self.state.stand_ins)
        return self.save(path)

    # ---------------------------------------------------------------------------- evaluation
    def evaluation_model(self) -> FullGlow:
        return (self.ema.model if self.ema else self.model).eval()

    def validate(self) -> float | None:
        if self.data.val is None:
            return None
        model = self.evaluation_model()
        total, count = 0.0, 0
        loader = DataLoader(self.data.val, batch_size=self.batch_size, num_workers=0)
        with torch.no_grad(), network_precision(self.network_dtype):
            for index, batch in enumerate(loader):
                self.log_stand_ins(batch)
                bpd = model.conditional_bpd(
                    batch["mask"].to(self.device),
                    batch["photo"].to(self.device),
                    generator=step_generator(self.options.seed, -1 - index),
                )
                total += float(bpd.sum())
                count += bpd.numel()
        return total / count

    def log_stand_ins(self, batch: dict[str, Any]) -> None:
        """Log and list (``skipped_groups``), once each, the pairs ``--skip-bad`` replaced in ``batch``."""
        for failure in batch.get("stands_in_for", ()):
            if failure and failure not in self.data.skipped:
                self.data.skipped.append(failure)
                self.state.stand_ins.append(failure)
                self.progress.log(f"skipped: {failure}; another pair stands in for it")

    def record_validation(self) -> None:
        if self.context.is_main:
            value = self.validate()
            if value is not None:
                self.log.validation(self.state.step, value)
                noisy = f" (noisy: {self.config.noise} noise)" if self.config.gaussian_noise else ""
                self.progress.log(f"step {self.state.step}: validation {value:.4f} bits/dim{noisy}")
                if self.state.record_validation(value):
                    self.save(self.checkpoints / "best.pt")

    def write_samples(self) -> None:
        if not self.context.is_main:
            return
        source = self.data.val if self.data.val is not None else self.data.train
        items = [source[i] for i in range(min(4, len(source)))]
        masks = torch.stack([item["mask"] for item in items]).to(self.device)
        model = self.evaluation_model()
        rows = [[to_uint8_image(item["mask"]), to_uint8_image(item["photo"])] for item in items]
        with network_precision(self.network_dtype):
            for temperature in SAMPLE_TEMPERATURES:
                generator = torch.Generator().manual_seed(self.options.seed)
                drawn = model.sample(masks, 1, temperature, generator=generator)
                for row, image in zip(rows, drawn.images[:, 0], strict=True):
                    row.append(to_uint8_image(image))
        titles = ["mask", "photo", *(f"T={t}" for t in SAMPLE_TEMPERATURES)]
        grid = image_grid(rows, titles)
        path = self.samples_dir / f"step_{self.state.step:07d}.png"
        atomic_write_bytes(path, encode_png(grid))
        self.log.image(self.state.step, "samples", grid)
        self.progress.log(f"samples: {path}")

    # ---------------------------------------------------------------------------- the loop
    def loader_from(self, step: int) -> DataLoader:
        """This process's batches from ``step`` to the end of training: one loader, so workers start
        once per run, not per epoch (a small dataset's epoch is a few steps). After a skipped step
        (non-finite loss) the loader ends before the last step; the run takes another from there."""
        sampler = StepOrderSampler(
            len(self.data.train),
            self.options.seed,
            step,
            self.total_steps,
            self.steps_per_epoch,
            self.batch_size,
            self.context.rank,
            self.context.world_size,
        )
        return DataLoader(
            self.data.train,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.options.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=leave_stop_signals_to_the_trainer,
        )

    def noise(self, step: int) -> torch.Generator:
        return step_generator(self.options.seed, step * self.context.world_size + self.context.rank)

    def trainable(self, first_batch: dict[str, Any]) -> torch.nn.Module:
        """The module that trains: the model itself, or under torchrun a DistributedDataParallel
        wrapper made after the data-dependent init, so rank 0's init reaches every process."""
        if not self.context.active:
            return self.model
        if not self.options.resume:
            with torch.no_grad():
                self.model(
                    first_batch["mask"].to(self.device), first_batch["photo"].to(self.device), generator=self.noise(0)
                )
        device_ids = [self.device] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    def forward_backward(self, trainable: torch.nn.Module, mask: torch.Tensor, photo: torch.Tensor) -> FullGlowOutput:
        """:func:`forward_backward` of this step. Where ``auto`` chose CUDA graphs and the first
        capture runs out of memory (the graph keeps its own memory pool), the run goes on eagerly,
        with a log line, from the same step and noise: never an out-of-memory crash that eager
        steps would not have had."""
        step = self.state.step
        try:
            return forward_backward(
                trainable, self.model, mask, photo, self.noise(step), self.graphed, self.scaler.scale
            )
        except torch.cuda.OutOfMemoryError:
            if self.graphed is None or self.graphed.captures or self.options.cuda_graphs:
                raise
        self.graphed = None
        self.model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        self.progress.log(
            f"step {step}: CUDA graphs off: the captured step's memory pool did not fit; training eagerly"
        )
        return forward_backward(trainable, self.model, mask, photo, self.noise(step), None, self.scaler.scale)

    def train_step(self, trainable: torch.nn.Module, batch: dict[str, Any]) -> None:
        """One optimiser step. It waits for the GPU once: to read the gradient norm, which decides
        whether the step is skipped (a non-finite loss gives a non-finite norm). Under DDP the
        gradients are all-reduced before that, so every process reads the same norm and takes the
        same decision. The loss is read only on logged steps."""
        mask = batch["mask"].to(self.device, non_blocking=True)
        photo = batch["photo"].to(self.device, non_blocking=True)
        learning_rate = self.lr * min(1.0, (self.state.step + 1) / max(self.options.warmup_steps, 1))
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.model.train()
        with network_precision(self.network_dtype):
            output = self.forward_backward(trainable, mask, photo)
        self.scaler.unscale_(self.optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.options.grad_clip))
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            self.state.skipped += 1
            self.consecutive_bad += 1
            if self.consecutive_bad >= self.options.max_bad_steps:
                path = self.save(self.checkpoints / "last.pt")
                raise TrainingStoppedError(
                    f"the loss or its gradient was not finite for {self.consecutive_bad} steps in a row "
                    f"(step {self.state.step}); lower --lr or check the data",
                    path,
                    reason="non-finite loss",
                )
            return
        self.consecutive_bad = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.context.is_main:
            if self.ema is None:
                self.ema = ExponentialMovingAverage(self.model, self.options.ema_decay)
            else:
                self.ema.update(self.model)
        self.state.step += 1
        step = self.state.step
        self.window_images += mask.shape[0] * self.context.world_size
        if not (step % self.options.log_every == 0 or step == 1 or step == self.total_steps):
            self.progress.advance(1)
            return
        loss = float(output.loss.detach())
        if self.context.is_main:
            seconds = time.perf_counter() - self.window_start
            record = {
                "step": step,
                "loss": loss,
                "bpd": float(output.conditional_bpd.detach().mean()),
                "source_bpd": float(output.source_bpd.detach().mean()),
                "lr": learning_rate,
                "grad_norm": grad_norm,
                "images_per_s": self.window_images / max(seconds, 1e-9),
                "cpu_threads": torch.get_num_threads(),  # fewer while other fgaug processes share the cores
            }
            self.log.step(record)
            self.history.append(record)
            self.window_start, self.window_images = time.perf_counter(), 0
        self.progress.advance(1, loss=loss)

    def run(self) -> TrainResult:
        self.progress.log(
            f"training {self.preset_name} ({sum(p.numel() for p in self.model.parameters()) / 1e6:.1f} M parameters) "
            f"at {self.config.image_size[0]}x{self.config.image_size[1]} on {self.device} "
            f"({precision_name(self.network_dtype)}, {self.context.world_size} process(es)), "
            f"{self.data.description}, {self.total_steps} steps"
        )
        for message in self.data.skipped:
            self.progress.log(f"skipped: {message}")
        for note in filter(None, (self.graphs_note, emulated_bf16_note(self.network_dtype, self.device))):
            self.progress.log(note)
        if self.state.step:  # a Progress of a user's own may predate `completed`: a new run passes none
            self.progress.start("training", self.total_steps, completed=self.state.step)
        else:
            self.progress.start("training", self.total_steps)
        first_step = self.state.step
        self.window_start, self.window_images = time.perf_counter(), 0
        trainable: torch.nn.Module | None = None
        try:
            with stop_requests() as stop_requested:
                while self.state.step < self.total_steps and not self.stopped_early:
                    for batch in batches_of(self.loader_from(self.state.step)):
                        self.log_stand_ins(batch)
                        trainable = trainable or self.trainable(batch)
                        before = self.state.step
                        self.train_step(trainable, batch)
                        self.after_step(stop_requested, advanced=self.state.step > before)
                        if self.state.step >= self.total_steps or self.stopped_early:
                            break
        except DataError as error:  # a bad pair read mid-run: the steps so far are kept
            if not self.state.step:
                raise
            self.save(self.checkpoints / "last.pt")
            past = "" if self.options.skip_bad else ", or --resume --skip-bad to train past it"
            saved = f"the run is saved at step {self.state.step}: fix the file and --resume{past}"
            raise DataError(f"{error} ({saved})") from error
        finally:
            self.log.close()
        self.progress.stop()
        skipped = self.context.union(self.data.skipped)  # --skip-bad's stand-ins of every process
        for failure in skipped[len(self.data.skipped) :] if self.context.is_main else ():
            self.progress.log(f"skipped on another process: {failure}; another pair stood in for it")
        last = self.save_agreed(self.checkpoints / "last.pt")
        best = self.checkpoints / "best.pt"
        memory, memory_kind = peak_memory(self.device)
        distributed.stop(self.context)
        return TrainResult(
            self.run_dir,
            self.state.step,
            last,
            best if best.is_file() else None,
            self.state.first_val,
            self.state.last_val,
            self.state.skipped,
            self.history,
            images=(self.state.step - first_step) * self.global_batch,
            seconds=time.perf_counter() - self.started,
            peak_memory_mib=memory,
            peak_memory_kind=memory_kind,
            stopped_early=self.stopped_early,
            precision=precision_name(self.network_dtype),
            cuda_graphs=self.graphed is not None,
            skipped_groups=skipped,
        )

    def after_step(self, stop_requested: Callable[[], str | None], advanced: bool) -> None:
        """Validation, samples and a checkpoint where the step calls for them (only after a step
        taken: a skipped one, whose loss was not finite, validated step 1 again each time), then
        the processes agree on a stop that a signal asked for."""
        step, options = self.state.step, self.options
        if advanced and (step == 1 or step % options.validate_every == 0 or step == self.total_steps):
            self.record_validation()
            if options.patience:  # every process stops with rank 0, which validates
                self.stopped_early = self.context.any_true(self.state.since_best >= options.patience, self.device)
                if self.stopped_early:
                    self.progress.log(f"step {step}: no better validation for {options.patience} validations; stopping")
        last = advanced and (step == self.total_steps or self.stopped_early)
        if last or (advanced and step % options.sample_every == 0):
            self.write_samples()
        if last or (advanced and step % options.checkpoint_every == 0):
            self.save_agreed(self.checkpoints / "last.pt")
        reason = stop_requested()
        if self.context.active and step % options.log_every and step != self.total_steps:
            return  # under torchrun the processes agree on a stop at logged steps only: no collective per step
        if self.context.any_true(reason is not None, self.device):
            path = self.save_agreed(self.checkpoints / "last.pt")
            self.progress.stop()
            distributed.stop(self.context)
            raise TrainingStoppedError(
                f"stopped by {reason or 'a signal'} at step {step}; resume with --resume", path, reason="signal"
            )


def forward_backward(
    trainable: torch.nn.Module,
    model: FullGlow,
    mask: torch.Tensor,
    photo: torch.Tensor,
    generator: torch.Generator,
    graphed: GraphedTrainingPass | None = None,
    scale: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> FullGlowOutput:
    """The objective on a batch with ``generator``'s dequantisation noise, and the gradients of its
    (``scale``d) loss written into ``model``'s parameters: eagerly through ``trainable`` (the model,
    or its DistributedDataParallel wrapper), or replayed from ``graphed``'s CUDA graph."""
    if graphed is not None:
        return graphed(mask, photo, model.dequantization_offsets(mask.shape[0], generator))
    output = trainable(mask, photo, generator=generator)
    model.zero_grad(set_to_none=True)
    with backward_precision():
        (output.loss if scale is None else scale(output.loss)).backward()
    return output


def cuda_graphs_blocker(device: torch.device, options: TrainOptions, world_size: int = 1) -> str | None:
    """Why a captured step would not be the eager one here (``None``: it would)."""
    if device.type != "cuda":
        return f"needs a CUDA device, not {device}"
    conflicts = {
        "--checkpointing": options.gradient_checkpointing,
        "--compile": options.compile,
        f"torchrun ({world_size} processes)": world_size > 1,
    }
    return next((f"cannot be combined with {name}" for name, conflict in conflicts.items() if conflict), None)


def resolve_cuda_graphs(device: torch.device, options: TrainOptions, world_size: int = 1) -> tuple[bool, str | None]:
    """Whether steps are replayed from a CUDA graph, and why not where ``auto`` (``None``) turned
    them off on a CUDA device; ``--cuda-graphs`` (``True``) where they cannot hold is an error."""
    if options.cuda_graphs is False:
        return False, None
    blocker = cuda_graphs_blocker(device, options, world_size)
    if blocker is None:
        return True, None
    if options.cuda_graphs:
        raise RuntimeChoiceError(f"--cuda-graphs {blocker}")
    return False, f"CUDA graphs off: {blocker}" if device.type == "cuda" else None


@dataclass
class Optimisation:
    """What takes a training step: the model, its optimiser and gradient scaler, the CUDA graph of
    its forward and backward passes (``--cuda-graphs``), and the coupling networks' precision."""

    model: FullGlow
    optimizer: torch.optim.Adam
    scaler: torch.amp.GradScaler
    graphed: GraphedTrainingPass | None
    network_dtype: torch.dtype | None
    graphs_note: str | None = None
    """Why ``auto`` left CUDA graphs off on a CUDA device, for the run's log."""
    init_from_sha256: str | None = None
    """The SHA-256 of the checkpoint a fine-tuning run started from (``options.init_from``)."""


def build_optimisation(
    options: TrainOptions, config: FullGlowConfig, device: torch.device, world_size: int = 1
) -> Optimisation:
    """The set-up a run and a dry run share: ``options``' precision and CUDA graphs checked on
    ``device`` first, then the model of ``config`` initialised from ``options.seed`` (or from
    ``options.init_from``'s weights), with its
    gradient checkpointing and compilation, and its optimiser (``options.lr`` resolved)."""
    assert options.lr is not None
    network_dtype = resolve_precision(options.precision, device)
    use_graphs, graphs_note = resolve_cuda_graphs(device, options, world_size)
    model = FullGlow(config, seed=options.seed).to(device)
    init_from_sha256 = None
    if options.init_from and not options.resume:
        init_from_sha256 = initialise_from(model, options.init_from)
    model.set_gradient_checkpointing(options.gradient_checkpointing)
    if options.compile:
        compile_networks(model)
    scaler = torch.amp.GradScaler(device.type, enabled=network_dtype == torch.float16)
    graphed = GraphedTrainingPass(model, scaler.scale) if use_graphs else None
    return Optimisation(model, adam(model, options.lr), scaler, graphed, network_dtype, graphs_note, init_from_sha256)


def train(options: TrainOptions, progress: Progress | None = None) -> TrainResult:
    """Train (or resume) a Full-Glow run; see the module docstring for the run folder. Under
    ``torchrun`` every process calls this; rank 0 writes the run folder, and holds it while the
    run lasts (:func:`~fgaug.data.record.hold_folder`: a second run on it is refused)."""
    try:
        return _Run(options, progress or SilentProgress()).run()
    finally:
        release_folder(Path(options.run_dir))
