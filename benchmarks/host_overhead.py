"""Host time per operation: the operators fgaug and the paper's code dispatch per flow step, and
the time the host spends outside the convolution and matrix-product kernels, on the CPU.

One eager fp32 training step (forward, backward, Adam) and one sampling call (temperature 0.8) of
each code at batch 1, the structure of ``paper_code_speed.py``. For each:

* **ops**: aten operators dispatched from Python or the autograd engine (top-level calls, not the
  ones an operator calls inside itself), and all aten calls, counted by ``torch.profiler``;
* **cpu** and **wall**: median CPU seconds of the calling thread (all of torch's work with one
  thread; time lost to other processes is not counted) and wall seconds per call, timed with the
  codes interleaved (A, B, B, A, ...) in this one process, and their ratio to the last code's;
* **kernels**: the CPU time spent inside convolutions and matrix products (:data:`KERNEL_OPS`,
  timed one by one under a dispatch mode), the arithmetic both codes must do; median of
  ``--profiles`` calls;
* **host**: CPU time minus kernels, per flow step (``2 * n_block * n_flow`` steps, both Glows):
  the Python, dispatch, allocation and small element-wise work around the kernels;

then the top operators by self time. ``--baseline REV`` adds fgaug's ``fgaug/flow`` at a git
revision of this repository, imported beside today's under another name, with the same weights:
its rows measure a change side by side, and the script reports whether both give bitwise the same
loss and samples. ``--width 8 --size 8x16`` leaves fgaug's kernels next to nothing: its time is then
host time, and a change of host time shows undiluted.

    python benchmarks/host_overhead.py --glow2 /path/to/glow2 --n-block 2 --n-flow 4 --size 32x64
    python benchmarks/host_overhead.py --glow2 /path/to/glow2 --n-block 3 --n-flow 4 --size 64x128 --baseline HEAD~3
    python benchmarks/host_overhead.py --n-block 2 --n-flow 4 --size 8x16 --width 8 --baseline HEAD~1
    python benchmarks/host_overhead.py --glow2 /path/to/glow2 --baseline db91067 --baseline-plain-adam
    python benchmarks/host_overhead.py --baseline HEAD --baseline-contiguous-weights --rounds 30
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import atexit
import importlib
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from core_speed import parse_size
from paper_code_speed import fgaug_config, paper_calls
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from fgaug.flow import FullGlow
from fgaug.flow.config import FullGlowConfig
from fgaug.runtime import cpu_description
from fgaug.training.optimiser import adam

KERNEL_OPS = frozenset({"convolution", "mkldnn_convolution", "convolution_backward", "mm", "addmm", "bmm", "baddbmm"})
"""The operators (as a dispatch mode sees them) that do the arithmetic of convolutions and matrix products."""

REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass
class Code:
    """One model under test: a training step and a sampling call, and their measurements."""

    name: str
    train: Callable[[], None]
    sample: Callable[[], None]
    wall: dict[str, list[float]] = field(default_factory=lambda: {"train": [], "sample": []})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"train": [], "sample": []})
    profiles: dict[str, list[OperatorProfile]] = field(default_factory=lambda: {"train": [], "sample": []})

    def time(self, what: str) -> None:
        function = getattr(self, what)
        wall, cpu = time.perf_counter(), time.thread_time()
        function()
        self.cpu[what].append(time.thread_time() - cpu)
        self.wall[what].append(time.perf_counter() - wall)

    kernels: dict[str, list[float]] = field(default_factory=lambda: {"train": [], "sample": []})


@dataclass
class OperatorProfile:
    dispatched: int
    all_calls: int
    self_seconds: Counter[str]
    calls: Counter[str]


class KernelTimer(TorchDispatchMode):
    """Sums the calling thread's CPU time inside the :data:`KERNEL_OPS` (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func.overloadpacket.__name__ not in KERNEL_OPS:
            return func(*args, **(kwargs or {}))
        start = time.thread_time()
        output = func(*args, **(kwargs or {}))
        self.seconds += time.thread_time() - start
        return output


def kernel_seconds(function: Callable[[], None]) -> float:
    with KernelTimer() as timer:
        function()
    return timer.seconds


def operator_profile(function: Callable[[], None]) -> OperatorProfile:
    """Count the aten calls of one ``function()`` and their self times."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        function()
    dispatched, all_calls = 0, 0
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        all_calls += 1
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        dispatched += parent is None
    self_seconds: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for average in prof.key_averages():
        self_seconds[average.key] = average.self_cpu_time_total / 1e6
        calls[average.key] = average.count
    return OperatorProfile(dispatched, all_calls, self_seconds, calls)


def load_flow_at(revision: str) -> ModuleType:
    """``fgaug/flow`` of a git revision of this repository, importable beside today's (it imports
    nothing outside itself): extracted to a temporary folder under the name ``fgaug_flow_<rev>``."""
    name = "fgaug_flow_" + re.sub(r"\W", "_", revision)
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", revision, "fgaug/flow"], capture_output=True, check=True
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="host_overhead_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                path = folder / name / Path(member.name).name
                path.parent.mkdir(exist_ok=True)
                path.write_text(text.replace("fgaug.flow", name))
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def fgaug_code(
    name: str, model: torch.nn.Module, segment: torch.Tensor, photo: torch.Tensor, plain_adam: bool = False
) -> Code:
    """``model``'s training step with the trainer's optimiser, or with torch's per-tensor Adam
    (``plain_adam``: the trainer's before it took the fused Adam on the CPU)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4) if plain_adam else adam(model, 1e-4)

    def train() -> None:
        loss = model(segment, photo).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return Code(name, train, lambda: model.sample(segment, n=1, temperature=0.8))


def paper_code(args: argparse.Namespace, segment: torch.Tensor, photo: torch.Tensor) -> Code:
    _, train, sample = paper_calls(
        args.glow2, torch.device("cpu"), args.n_block, args.n_flow, args.size, segment, photo
    )
    return Code("paper", train, sample)


def same_results(model: torch.nn.Module, baseline: torch.nn.Module, segment: torch.Tensor, photo: torch.Tensor) -> dict:
    """Loss and samples of today's flow and the baseline's, from the same weights and draws: the
    initial weights moved by a little noise (zero-initialised output layers would hide the networks),
    then both put back to the initial ones."""
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    baseline.load_state_dict(model.state_dict())

    def run(flow: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        loss = flow(segment, photo, generator=torch.Generator().manual_seed(1)).loss
        samples = flow.sample(segment, n=2, temperature=0.8, generator=torch.Generator().manual_seed(2))
        latents = torch.cat([z.flatten() for z in flow.encode(segment, photo)])
        return loss.detach(), samples.images, samples.log_likelihood, latents

    ours, theirs = run(model), run(baseline)
    model.load_state_dict(initial)
    baseline.load_state_dict(initial)
    return {
        "loss_difference": (ours[0] - theirs[0]).abs().item(),
        "samples_bitwise_equal": torch.equal(ours[1], theirs[1]),
        "samples_max_difference_in_8bit_levels": round((ours[1] - theirs[1]).abs().max().item() * 255),
        "log_likelihood_difference": (ours[2] - theirs[2]).abs().max().item(),
        "latents_max_difference": (ours[3] - theirs[3]).abs().max().item(),
    }


def codes_under_test(args: argparse.Namespace, segment: torch.Tensor, photo: torch.Tensor) -> tuple[list[Code], dict]:
    config = fgaug_config(args.n_block, args.n_flow, args.size)
    if args.width:
        config = FullGlowConfig.from_dict(
            {**config.to_dict(), "coupling_hidden": args.width, "condition_embed_hidden": args.width}, origin="--width"
        )
    model = FullGlow(config)
    codes = [fgaug_code("fgaug", model, segment, photo)]
    checks: dict[str, Any] = {}
    if args.baseline:
        flow = load_flow_at(args.baseline)
        baseline = flow.FullGlow(flow.config.FullGlowConfig.from_dict(config.to_dict(), origin="host_overhead"))
        if args.baseline_contiguous_weights:
            contiguous_weights(baseline)
        checks = same_results(model, baseline, segment, photo)
        name = f"fgaug@{args.baseline}" + ("+plain-adam" if args.baseline_plain_adam else "")
        name += "+contiguous-weights" if args.baseline_contiguous_weights else ""
        codes.append(fgaug_code(name, baseline, segment, photo, args.baseline_plain_adam))
    if args.glow2:
        codes.append(paper_code(args, segment, photo))
    return codes, checks


def contiguous_weights(model: torch.nn.Module) -> None:
    """Store every convolution weight of ``model`` in the default (contiguous) layout, as before
    ``channels_last_weights``: whether the channels-last weights pay where torch's im2col path,
    not oneDNN, runs the convolutions (CPUs below AVX-512)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.data = module.weight.data.contiguous()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    segment, photo = torch.rand(1, 3, *args.size), torch.rand(1, 3, *args.size)
    codes, checks = codes_under_test(args, segment, photo)
    for code in codes:  # warm-up; the first training step also runs the data-dependent initialisation
        for function in (code.train, code.train, code.sample, code.sample):
            function()
    for _ in range(args.profiles):
        for what in ("train", "sample"):
            for code in codes:
                code.profiles[what].append(operator_profile(getattr(code, what)))
                code.kernels[what].append(kernel_seconds(getattr(code, what)))
    for index in range(args.rounds):
        for what in ("train", "sample"):
            for code in codes if index % 2 else reversed(codes):  # each code first as often as last
                code.time(what)
    return report(args, codes, checks)


def report(args: argparse.Namespace, codes: list[Code], checks: dict) -> dict[str, Any]:
    flow_steps = 2 * args.n_block * args.n_flow
    rows = []
    for what in ("train", "sample"):
        reference = codes[-1]
        for code in codes:
            cpu, wall, kernels = (
                statistics.median(code.cpu[what]),
                statistics.median(code.wall[what]),
                statistics.median(code.kernels[what]),
            )
            counts = code.profiles[what][-1]
            rows.append(
                {
                    "code": code.name,
                    "what": what,
                    "ops_per_flow_step": round(counts.dispatched / flow_steps, 1),
                    "aten_calls_per_flow_step": round(counts.all_calls / flow_steps, 1),
                    "cpu_ms": round(cpu * 1e3, 2),
                    "wall_ms": round(wall * 1e3, 2),
                    "kernel_ms": round(kernels * 1e3, 2),
                    "host_us_per_flow_step": round((cpu - kernels) / flow_steps * 1e6, 1),
                    f"cpu_speed_vs_{reference.name}": paired_speed(reference.cpu[what], code.cpu[what]),
                    f"wall_speed_vs_{reference.name}": paired_speed(reference.wall[what], code.wall[what]),
                }
            )
    top = {
        what: [
            {"op": name, **{code.name: _op_cell(code.profiles[what], name, flow_steps) for code in codes}}
            for name, _ in codes[0].profiles[what][-1].self_seconds.most_common(args.top)
        ]
        for what in ("train", "sample")
    }
    return {
        "cpu": cpu_description(),
        "threads": torch.get_num_threads(),
        "structure": f"{args.n_block}x{args.n_flow} @ {args.size[0]}x{args.size[1]}, batch 1, fp32",
        "flow_steps": flow_steps,
        "rounds": args.rounds,
        "rows": rows,
        "top_ops_by_self_time": top,
        **({"baseline_check": checks} if checks else {}),
    }


def paired_speed(reference: list[float], ours: list[float]) -> str:
    """Median and quartiles of the per-round ratios reference / ours (each round times both)."""
    q1, median, q3 = statistics.quantiles([r / o for r, o in zip(reference, ours, strict=True)], n=4)
    return f"{median:.3f} [{q1:.3f}, {q3:.3f}]"


def _op_cell(profiles: list[OperatorProfile], name: str, flow_steps: int) -> str:
    """Calls per call and median self time per flow step of one operator."""
    seconds = statistics.median(profile.self_seconds[name] for profile in profiles)
    return f"{profiles[-1].calls[name]} calls, {seconds * 1e6 / flow_steps:.0f} us/step"


def print_tables(result: dict[str, Any]) -> None:
    print(f"{result['cpu']}, {result['threads']} thread(s); {result['structure']}; {result['rounds']} rounds")
    rows = result["rows"]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[column]) for column in columns) + " |")
    for what, ops in result["top_ops_by_self_time"].items():
        if not ops:
            continue
        print(f"\ntop operators by self time, {what} (calls per call, self time per flow step)")
        columns = list(ops[0])
        print("| " + " | ".join(columns) + " |")
        print("|" + " --- |" * len(columns))
        for op in ops:
            print("| " + " | ".join(str(op[column]) for column in columns) + " |")
    if "baseline_check" in result:
        print("\nagainst the baseline:", result["baseline_check"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--glow2", type=Path, help="a local copy of MoeinSorkhei/glow2 (its root); without it, fgaug only"
    )
    parser.add_argument("--baseline", help="also time fgaug/flow at this git revision, with the same weights")
    parser.add_argument(
        "--baseline-plain-adam",
        action="store_true",
        help="the baseline trains with torch's per-tensor Adam (the trainer's before 2026-12-07) "
        "instead of today's trainer's optimiser",
    )
    parser.add_argument(
        "--baseline-contiguous-weights",
        action="store_true",
        help="the baseline's convolution weights in the contiguous layout, not channels-last (with --baseline HEAD: "
        "the layouts of one flow compared)",
    )
    parser.add_argument("--n-block", type=int, default=2)
    parser.add_argument("--n-flow", type=int, default=4)
    parser.add_argument("--size", type=parse_size, default=(32, 64))
    parser.add_argument(
        "--width",
        type=int,
        help="fgaug's coupling and embedding widths (512 and 128 otherwise); a small width at a small size "
        "leaves host time alone (fgaug only: the paper's code has 512 built in)",
    )
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timed calls of each code")
    parser.add_argument(
        "--profiles", type=int, default=3, help="profiled calls of each code, and calls timing its kernels"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=12, help="operators listed by self time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.width and args.glow2:
        parser.error("--width applies to fgaug only: the paper's code is compared at its own width")
    if (args.baseline_plain_adam or args.baseline_contiguous_weights) and not args.baseline:
        parser.error(
            "--baseline-plain-adam and --baseline-contiguous-weights need --baseline REV (HEAD for today's flow)"
        )
    result = measure(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_tables(result)


if __name__ == "__main__":
    main()
