"""``fgaug train --dry-run``: two training steps on random data at a preset, size and batch,
set up as a run's, to measure peak memory (the CUDA graph's pool included where ``auto`` would use
one) and time per step before committing to a long run."""

from __future__ import annotations

import time
from typing import Any

import torch

from fgaug.flow import network_precision
from fgaug.runtime import peak_memory, precision_name, reset_peak_memory, resolve_device
from fgaug.training.batches import step_generator
from fgaug.training.options import TrainOptions
from fgaug.training.train import build_optimisation, forward_backward, resolve_run


def dry_run(
    preset: str = "tiny",
    size: tuple[int, int] | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    gradient_checkpointing: bool = False,
    steps: int = 2,
    compile: bool = False,
    cuda_graphs: bool | None = None,
) -> dict[str, Any]:
    """Two training steps on random data at the given preset, size and batch: peak memory and
    seconds per step, before committing to a long run (no data needed). The model and optimiser are
    set up as a run's (:func:`build_optimisation`), at a small learning rate: a dry run measures,
    it does not learn."""
    options, config, preset_name = resolve_run(
        TrainOptions(
            data="",
            run_dir="",
            exist_ok=True,
            preset=preset,
            size=size,
            batch_size=batch_size,
            lr=1e-4,
            precision=precision,
            gradient_checkpointing=gradient_checkpointing,
            compile=compile,
            cuda_graphs=cuda_graphs,
        )
    )
    torch_device = resolve_device(device)
    optimisation = build_optimisation(options, config, torch_device)
    model, network_dtype, batch = optimisation.model, optimisation.network_dtype, options.batch_size
    assert batch is not None  # resolve_run takes the preset's where none was given
    generator = torch.Generator().manual_seed(0)
    height, width = config.image_size
    mask = torch.rand(batch, config.mask_channels, height, width, generator=generator).to(torch_device)
    photo = torch.rand(batch, config.image_channels, height, width, generator=generator).to(torch_device)
    reset_peak_memory(torch_device)
    seconds = []
    for step in range(steps + 1):
        start = time.perf_counter()
        with network_precision(network_dtype):
            loss = forward_backward(
                model, model, mask, photo, step_generator(0, step), optimisation.graphed, optimisation.scaler.scale
            ).loss
        optimisation.scaler.step(optimisation.optimizer)
        optimisation.scaler.update()
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)
        seconds.append(time.perf_counter() - start)
    peak, peak_kind = peak_memory(torch_device)
    return {
        "preset": preset_name,
        "image_size": [height, width],
        "batch_size": batch,
        "device": str(torch_device),
        "precision": precision_name(network_dtype),
        "gradient_checkpointing": gradient_checkpointing,
        "compiled": compile,
        "cuda_graphs": optimisation.graphed is not None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "peak_memory_mib": round(peak, 1),
        "peak_memory_kind": peak_kind,
        "seconds_per_step": round(sum(seconds[1:]) / max(len(seconds) - 1, 1), 4),
        "first_step_seconds": round(seconds[0], 2),
        "finite_loss": bool(torch.isfinite(loss)),
    }
