"""Running under ``torchrun``: process group, device per process, collective helpers.

``torchrun --nproc_per_node N -m fgaug train ...`` (or ``generate``) starts N processes with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; each calls :func:`start`. CUDA processes use NCCL
and one GPU each (``cuda:LOCAL_RANK``); CPU processes use gloo. Under torchrun a process group is
made even for one process, so ``--nproc_per_node 1`` runs the same code as a larger job. Without
those variables everything runs as a single process and no process group is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from fgaug.runtime import resolve_device


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    active: bool = False
    """A process group exists (launched by torchrun): collectives and DDP are used."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_true(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` holds on every process (a collective: every process must call it)."""
        if not self.active:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item() > 0.5)

    def any_true(self, flag: bool, device: torch.device) -> bool:
        return not self.all_true(not flag, device)

    def union(self, values: list[str]) -> list[str]:
        """Every process's ``values``, rank by rank, each once (a collective of Python objects:
        every process must call it)."""
        if not self.active:
            return values
        gathered: list[list[str] | None] = [None] * self.world_size
        dist.all_gather_object(gathered, values)
        return list(dict.fromkeys(value for part in gathered for value in part or ()))

    def sum(self, values: list[int], device: torch.device) -> list[int]:
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return [int(v) for v in tensor.tolist()]


def start(device_spec: str = "auto") -> tuple[Distributed, torch.device]:
    """The process's place in the job and its device; creates the process group under torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Distributed(), resolve_device(device_spec)
    context = Distributed(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")), active=True
    )
    use_cuda = device_spec != "cpu" and torch.cuda.is_available()
    if use_cuda:
        device = resolve_device(f"cuda:{context.local_rank}")
        torch.cuda.set_device(device)
    else:
        device = resolve_device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return context, device


def stop(context: Distributed) -> None:
    if context.active and dist.is_initialized():
        dist.destroy_process_group()
