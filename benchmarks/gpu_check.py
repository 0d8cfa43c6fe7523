"""The CUDA path, checked and measured in one command (issue 13).

    bash benchmarks/gpu_check.sh OUT [GLOW2_COPY]          # installs fgaug (no downloads), then this
    python benchmarks/gpu_check.py OUT [--glow2 DIR] [--budget 450] [--only tests,speed]

Sections, in order of importance; each runs in its own process with a time limit, so a crash,
an out-of-memory error or a slow compile costs that section only, and the whole check stops
starting new sections when its budget (seconds) is spent:

    tests        the flow, model, training and CUDA tests with FGAUG_TEST_DEVICE=cuda
    smoke        paper-256, bf16, batch 8, 30 steps on the toy world: finite, falling, none skipped
    dryrun       hd-512x1024 at batch 1, with and without --checkpointing: peak allocated memory
    speed        matmul peaks; paper-256 sampling (fp32, tf32, bf16; 8 per mask; batch sweep; eager
                 and CUDA graphs) and training (largest batch that fits) with MFU; host syncs
    paper_code   the paper's code (a local glow2 copy) beside fgaug at 4x16, 256x256, batch 1
    torchrun     torchrun --nproc_per_node 1 (NCCL) train and generate against the plain commands
    cpu_vs_cuda  the same generate command on the CPU and on CUDA: pixel differences
    compile      --compile, and the fused arithmetic alone, against eager (paper-256 sampling and training)

Writes OUT/gpu_check.json (every figure), OUT/gpu_check.md (the summary, with the issue's
targets) and OUT/gpu_check.log (every section's output). Work files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
SECTIONS = ("tests", "smoke", "dryrun", "speed", "paper_code", "torchrun", "cpu_vs_cuda", "compile", "writes")
TIME_LIMITS = {
    "tests": 180,
    "smoke": 120,
    "dryrun": 100,
    "speed": 150,
    "paper_code": 100,
    "torchrun": 120,
    "cpu_vs_cuda": 60,
    "compile": 210,
    "writes": 60,
}
CUDA_TEST_FILES = [
    "tests/test_layers.py",
    "tests/test_fullglow.py",
    "tests/test_compile.py",
    "tests/test_fused_arithmetic.py",
    "tests/test_train.py",
    "tests/test_cuda.py",
    "tests/test_runtime.py",
]
TARGET_SAMPLES_PER_S = 650.0
TEST_WORKERS = 4
"""pytest-xdist workers for the tests section, where installed: the training tests each spend
seconds starting CUDA and a run folder, which one process alone did not fit in the section's time."""
TARGET_HD_MIB = 12 * 1024


@dataclass
class Settings:
    """What the sections run on. ``--rehearse`` swaps in the CPU and small presets, to check the
    script itself on a machine without a GPU (its figures then mean nothing)."""

    device: str = "cuda"
    big_preset: str = "paper-256"
    big_size: tuple[int, int] = (256, 512)
    hd_preset: str = "hd-512x1024"
    sampling_masks: tuple[int, ...] = (1, 4, 16)
    training_batches: tuple[int, ...] = (8, 16, 32, 48)
    paper_structure: tuple[str, ...] = ("--n-block", "4", "--n-flow", "16", "--size", "256x256")
    matmul_size: int = 8192
    test_files: tuple[str, ...] = tuple(CUDA_TEST_FILES)
    time_scale: float = 1.0
    """Multiplies every section's time limit and the default budget: a 2-core CPU rehearsing the
    sections is slower than the GPU machine's 16 cores starting the same commands."""

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


REHEARSAL = Settings(
    device="cpu",
    big_preset="test",
    big_size=(32, 64),
    hd_preset="test",
    sampling_masks=(1, 2),
    training_batches=(2, 4),
    paper_structure=("--n-block", "3", "--n-flow", "2", "--size", "64x128"),
    matmul_size=1024,
    time_scale=3.0,
)
SETTINGS = Settings()


# ------------------------------------------------------------------------------------ helpers


def fgaug_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "fgaug", *arguments]


def run_command(command: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> int:
    """Run ``command`` from the repository root, appending its output to ``log``; its exit code
    (124 when it ran past ``timeout``)."""
    with open(log, "a", encoding="utf-8") as stream:
        stream.write(f"\n$ {' '.join(command)}\n")
        stream.flush()
        try:
            return subprocess.run(
                command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT, timeout=timeout, env=env, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            stream.write(f"\n[timed out after {timeout:.0f} s]\n")
            return 124


def json_command(
    command: list[str], cwd: Path, log: Path, timeout: float, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any] | None]:
    """Run a command that prints one JSON object last; its exit code and that object (None when it
    failed). Its output goes to ``log`` as well."""
    try:
        finished = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
        code, stdout, stderr = finished.returncode, finished.stdout, finished.stderr
    except subprocess.TimeoutExpired as expired:
        code, stdout, stderr = 124, str(expired.stdout or ""), f"[timed out after {timeout:.0f} s]"
    with open(log, "a", encoding="utf-8") as stream:
        stream.write(f"\n$ {' '.join(command)}\n{stdout}{stderr}\n")
    lines = stdout.strip().splitlines()
    if code != 0 or not lines:
        return code, None
    try:
        return code, json.loads(lines[-1])
    except json.JSONDecodeError:
        return code, None


def synchronize() -> None:
    import torch

    if SETTINGS.cuda:
        torch.cuda.synchronize()


def timed(function: Callable[[], object], calls: int, warmups: int = 1) -> float:
    """Mean seconds of ``calls`` calls after ``warmups`` untimed ones, device work included."""
    for _ in range(warmups):
        function()
    synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    synchronize()
    return (time.perf_counter() - start) / calls


def write_toy(root: Path, size: tuple[int, int], train: int, val: int, seed: int = 5) -> Path:
    from fgaug.data.toyworld import write_toy_cityscapes

    if not root.is_dir():
        write_toy_cityscapes(root, {"train": train, "val": val}, size=size, seed=seed)
    return root


def read_metrics(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def compare_trees(first: Path, second: Path) -> dict[str, Any]:
    """Pixel differences between the photos two generate runs wrote (matched by path)."""
    import numpy as np
    from PIL import Image

    photos = sorted(p.relative_to(first) for p in first.rglob("*_leftImg8bit.png"))
    largest, equal, differing_pixels, pixels = 0, 0, 0, 0
    for relative in photos:
        a = np.asarray(Image.open(first / relative), dtype=np.int16)
        b = np.asarray(Image.open(second / relative), dtype=np.int16)
        difference = np.abs(a - b)
        largest = max(largest, int(difference.max()))
        equal += int(not difference.any())
        differing_pixels += int((difference > 0).any(axis=-1).sum())
        pixels += difference.shape[0] * difference.shape[1]
    return {
        "photos": len(photos),
        "bitwise_equal_photos": equal,
        "max_pixel_difference": largest,
        "differing_pixel_fraction": round(differing_pixels / max(pixels, 1), 6),
    }


# ------------------------------------------------------------------------------------ sections


def section_tests(work: Path, log: Path, limit: float) -> dict[str, Any]:
    report = work / "pytest.xml"
    env = {**os.environ, "FGAUG_TEST_DEVICE": SETTINGS.device}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=8", f"--junitxml={report}"]
    if importlib.util.find_spec("xdist") is not None:  # the CUDA image has pytest-xdist: 4 workers share the GPU
        command += ["-n", str(TEST_WORKERS)]
    code = run_command([*command, *SETTINGS.test_files], log, limit, env)
    result: dict[str, Any] = {"exit_code": code}
    if report.is_file():
        import xml.etree.ElementTree as ElementTree

        suite = ElementTree.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
        for key in ("tests", "failures", "errors", "skipped"):
            result[key] = int(suite.get(key, 0))
        result["seconds"] = float(suite.get("time", 0))
        result["failed"] = [
            f"{case.get('classname')}::{case.get('name')}"
            for case in suite.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None
        ]
    result["passed"] = code == 0
    return result


def section_smoke(work: Path, log: Path, limit: float) -> dict[str, Any]:
    data = write_toy(work / "toy256", SETTINGS.big_size, train=48, val=2)
    run = work / "runs" / "smoke"
    command = fgaug_command(
        "train", str(data), "--preset", SETTINGS.big_preset, "--precision", "bf16", "--batch-size", "8",
        "--steps", "30", "--log-every", "1", "--validate-every", "1000", "--sample-every", "1000",
        "--checkpoint-every", "1000", "--workers", "4", "--device", SETTINGS.device, "--project", str(run.parent),
        "--name", run.name, "--exist-ok", "--json",
    )  # fmt: skip
    started = time.perf_counter()
    code = run_command(command, log, limit)
    losses = [line["loss"] for line in read_metrics(run) if "loss" in line]
    rates = [line["images_per_s"] for line in read_metrics(run) if "images_per_s" in line]
    finite = all(value == value and abs(value) != float("inf") for value in losses)
    falling = len(losses) >= 10 and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    return {
        "exit_code": code,
        "steps_logged": len(losses),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "finite": finite,
        "falling": falling,
        "skipped_steps": 30 - len(losses),
        "images_per_s_last_steps": round(sum(rates[-10:]) / max(len(rates[-10:]), 1), 2) if rates else None,
        "seconds": round(time.perf_counter() - started, 1),
        "passed": code == 0 and len(losses) == 30 and finite and falling,
    }


def section_dryrun(work: Path, log: Path, limit: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for label, extra in (("checkpointing", ["--checkpointing"]), ("plain", [])):
        command = fgaug_command(
            "train",
            "--dry-run",
            "--preset",
            SETTINGS.hd_preset,
            "--batch-size",
            "1",
            "--device",
            SETTINGS.device,
            *extra,
            "--json",
        )
        code, report = json_command(command, REPO, log, limit / 2)
        result[label] = report or {"exit_code": code}
    peak = result.get("checkpointing", {}).get("peak_memory_mib")
    result["passed"] = peak is not None and peak <= TARGET_HD_MIB
    return result


def _sampling_speed(model: Any, masks: Any, per_mask: int, network_dtype: Any, graphs: bool) -> float:
    import torch

    from fgaug.flow import network_precision
    from fgaug.flow.graphs import GraphedSampler

    sampler = GraphedSampler(model) if graphs else model
    noise = model.sample_noise(masks.shape[0] * per_mask, torch.Generator().manual_seed(0))
    noise = [eps.pin_memory() for eps in noise] if SETTINGS.cuda else noise

    def call() -> None:
        with network_precision(network_dtype):
            sampler.sample(masks, n=per_mask, temperature=0.8, noise=noise)

    seconds = timed(call, calls=3, warmups=1)
    return masks.shape[0] * per_mask / seconds


def section_speed(work: Path, log: Path, limit: float) -> dict[str, Any]:
    import torch

    from fgaug.flow import FullGlow
    from fgaug.runtime import resolve_device, resolve_precision
    from fgaug.training.presets import load_preset

    sys.path.insert(0, str(BENCHMARKS))
    from core_speed import count_flops

    deadline = time.perf_counter() + limit - 10
    device = resolve_device(SETTINGS.device)
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if SETTINGS.cuda else "cpu"}

    def matmul_peak(dtype: torch.dtype, tf32: bool = False) -> float:
        n = SETTINGS.matmul_size
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            seconds = timed(lambda: a @ b, calls=10, warmups=3)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = False
        return 2 * n**3 / seconds / 1e12

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    if SETTINGS.cuda:
        peaks["tf32"] = matmul_peak(torch.float32, tf32=True)
    result["matmul_peak_tflops"] = {k: round(v, 1) for k, v in peaks.items()}

    config = load_preset(SETTINGS.big_preset).model
    model = FullGlow(config).to(device).eval()
    generator = torch.Generator().manual_seed(0)
    size = config.image_size
    masks16 = torch.rand(16, 3, *size, generator=generator).to(device)
    photos16 = torch.rand(16, 3, *size, generator=generator).to(device)
    with torch.no_grad():
        model(masks16[:4], photos16[:4])  # data-dependent init
    train_flops, sample_flops = count_flops(model, masks16[:1], photos16[:1], 8, None)
    result["gflop_per_image"] = {"train": round(train_flops / 1e9, 1), "sample": round(sample_flops / 8 / 1e9, 1)}
    flop_per_sample = sample_flops / 8

    sampling: list[dict[str, Any]] = []
    result["sampling"] = sampling
    for precision in [p for p in ("bf16", "tf32", "fp32") if p in peaks]:
        dtype = resolve_precision(precision, device)
        for masks in SETTINGS.sampling_masks:
            for graphs in (False, True) if SETTINGS.cuda else (False,):
                if time.perf_counter() > deadline - 40:
                    result["sampling_cut_short"] = True
                    break
                try:
                    rate = _sampling_speed(model, masks16[:masks], 8, dtype, graphs)
                except torch.cuda.OutOfMemoryError:
                    sampling.append({"precision": precision, "masks": masks, "graphs": graphs, "oom": True})
                    torch.cuda.empty_cache()
                    continue
                sampling.append(
                    {
                        "precision": precision,
                        "masks": masks,
                        "per_mask": 8,
                        "graphs": graphs,
                        "images_per_s": round(rate, 1),
                        "mfu": round(rate * flop_per_sample / 1e12 / peaks[precision], 4),
                    }
                )
                torch.cuda.empty_cache()
    best = max((row for row in sampling if "images_per_s" in row), key=lambda row: row["images_per_s"], default=None)
    result["best_sampling"] = best

    result.update(count_host_syncs(model, masks16, photos16))
    torch.cuda.empty_cache()
    training: list[dict[str, Any]] = []
    result["training"] = training
    runs = [("bf16", SETTINGS.training_batches, False), ("fp32", SETTINGS.training_batches[:1], False)]
    if "tf32" in peaks:  # its backward pass in TF32 too since 2026-12-07
        runs.append(("tf32", SETTINGS.training_batches[:1], False))
    if SETTINGS.cuda:
        runs.append(("bf16", (1, *SETTINGS.training_batches[:3]), True))  # batch 32 graphed: issue 23
    for precision, batches, graphs in runs:
        for batch in batches:
            if time.perf_counter() > deadline - 15:
                result["training_cut_short"] = True
                break
            row = time_training(model, batch, precision, train_flops, peaks[precision], graphs)
            training.append(row)
            torch.cuda.empty_cache()
            if row.get("oom"):
                break
    result["passed"] = best is not None
    return result


def count_host_syncs(model: Any, masks: Any, photos: Any) -> dict[str, Any]:
    """Host syncs in one flow training step and one sampling call (bf16 networks), and in one call
    of the product's ``draw_best``."""
    import torch

    from fgaug.flow import network_precision
    from fgaug.generate.draws import draw_best
    from fgaug.runtime import counted_host_syncs
    from fgaug.training.optimiser import adam

    optimizer = adam(model, 1e-5)
    model.train()

    def train_step() -> None:
        with network_precision(torch.bfloat16):
            loss = model(masks[:2], photos[:2], generator=torch.Generator().manual_seed(1)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train_step()
    result: dict[str, Any] = {}
    with counted_host_syncs() as syncs:
        train_step()
    result["syncs_per_flow_training_step"] = len(syncs)
    messages = list(syncs)
    model.zero_grad(set_to_none=True)
    model.eval()
    noise = [
        eps.pin_memory() if SETTINGS.cuda else eps for eps in model.sample_noise(16, torch.Generator().manual_seed(2))
    ]
    with counted_host_syncs() as syncs, network_precision(torch.bfloat16):
        model.sample(masks[:2], n=8, temperature=0.8, noise=noise)
    result["syncs_per_sampling_call"] = len(syncs)
    messages += syncs
    with counted_host_syncs() as syncs, network_precision(torch.bfloat16):
        draw_best(model, masks[:2], ["a", "b"], [list(range(8))] * 2, 0.8, seed=0)
    result["syncs_per_draw_best_call"] = len(syncs)
    result["sync_messages"] = sorted(set(messages + syncs))[:5]
    return result


def time_training(
    model: Any, batch: int, precision: str, flops_per_image: float, peak: float, graphs: bool = False
) -> dict[str, Any]:
    """Images/s, memory and MFU of training steps at one batch size (``oom`` when it does not fit),
    eager or with the forward and backward passes replayed from a CUDA graph (``train --cuda-graphs``)."""
    import torch

    from fgaug.flow import network_precision
    from fgaug.flow.graphs import GraphedTrainingPass
    from fgaug.runtime import resolve_precision
    from fgaug.training.optimiser import adam
    from fgaug.training.train import forward_backward

    device = next(model.parameters()).device
    dtype = resolve_precision(precision, device)
    optimizer = adam(model, 1e-5)
    model.train()
    size = model.config.image_size
    masks, photos = torch.rand(batch, 3, *size, device=device), torch.rand(batch, 3, *size, device=device)

    graphed = GraphedTrainingPass(model) if graphs else None
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        with network_precision(dtype):
            forward_backward(model, model, masks, photos, generator, graphed)
        optimizer.step()

    if SETTINGS.cuda:
        torch.cuda.reset_peak_memory_stats(device)
    try:
        seconds = timed(step, calls=5 if batch == 1 else 2, warmups=1)
    except torch.cuda.OutOfMemoryError:
        return {"precision": precision, "batch": batch, "graphs": graphs, "oom": True}
    finally:
        model.zero_grad(set_to_none=True)
    peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if SETTINGS.cuda else float("nan")
    return {
        "precision": precision,
        "batch": batch,
        "graphs": graphs,
        "images_per_s": round(batch / seconds, 2),
        "seconds_per_step": round(seconds, 4),
        "peak_memory_gib": round(peak_gib, 2),
        "mfu": round(batch * flops_per_image / seconds / 1e12 / peak, 4),
    }


def section_paper_code(work: Path, log: Path, limit: float, glow2: Path | None) -> dict[str, Any]:
    if glow2 is None:
        return {"skipped": "no --glow2 copy given", "passed": None}
    command = [
        sys.executable, str(BENCHMARKS / "paper_code_speed.py"), "--glow2", str(glow2), *SETTINGS.paper_structure,
        "--steps", "3", "--samples", "3", "--device", SETTINGS.device, "--precisions", "fp32", "bf16", "--json",
    ]  # fmt: skip
    code, result = json_command(command, BENCHMARKS, log, limit)
    if result is None:
        return {"exit_code": code, "passed": False}
    best = {
        what: max(result.get(f"fgaug_bf16{mode}_{what}_speedup") or 0.0 for mode in ("", "_graphs"))
        for what in ("train", "sample")
    }
    result["passed"] = min(best.values()) >= 2.0
    return result


def section_torchrun(work: Path, log: Path, limit: float) -> dict[str, Any]:
    data = write_toy(work / "toy64", (64, 128), train=32, val=4)
    started = time.perf_counter()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--log-dir", str(work / "torchrun")]
    torchrun += ["--nproc_per_node", "1", "-m", "fgaug"]
    train_args = [
        "train", str(data), "--preset", "tiny", "--steps", "20", "--batch-size", "8", "--log-every", "1",
        "--validate-every", "1000", "--sample-every", "1000", "--workers", "0", "--device", SETTINGS.device,
        "--project", str(work / "runs"), "--exist-ok",
    ]  # fmt: skip
    codes = {
        "train_plain": run_command(fgaug_command(*train_args, "--name", "plain"), log, limit / 4),
        "train_torchrun": run_command([*torchrun, *train_args, "--name", "ddp"], log, limit / 4),
    }
    plain = [line["loss"] for line in read_metrics(work / "runs" / "plain") if "loss" in line]
    ddp = [line["loss"] for line in read_metrics(work / "runs" / "ddp") if "loss" in line]
    result: dict[str, Any] = {
        "train_steps": [len(plain), len(ddp)],
        "train_max_loss_difference": max((abs(a - b) for a, b in zip(plain, ddp, strict=False)), default=None),
    }
    checkpoint = work / "runs" / "plain" / "checkpoints" / "last.pt"
    generate_args = [
        "generate", str(data / "gtFine" / "val"), "--model", str(checkpoint), "--samples", "3",
        "--device", SETTINGS.device, "--json",
    ]  # fmt: skip
    plain_command = fgaug_command(*generate_args, "--out", str(work / "gen-plain"))
    codes["generate_plain"] = run_command(plain_command, log, limit / 4)
    ddp_command = [*torchrun, *generate_args, "--out", str(work / "gen-ddp")]
    codes["generate_torchrun"] = run_command(ddp_command, log, limit / 4)
    result["exit_codes"] = codes
    if codes["generate_plain"] == 0 and codes["generate_torchrun"] == 0:
        result["generate"] = compare_trees(work / "gen-plain", work / "gen-ddp")
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["passed"] = (
        all(code == 0 for code in codes.values())
        and len(plain) == len(ddp) == 20
        and result.get("generate", {}).get("max_pixel_difference", 99) <= 1
    )
    return result


def section_cpu_vs_cuda(work: Path, log: Path, limit: float) -> dict[str, Any]:
    data = write_toy(work / "toy64", (64, 128), train=32, val=4)
    masks = str(data / "gtFine" / "val")
    runs = {
        "cpu-fp32": ["--device", "cpu", "--precision", "fp32"],
        "cuda-fp32": ["--device", SETTINGS.device, "--precision", "fp32", "--no-cuda-graphs"],
        "cuda-bf16": ["--device", SETTINGS.device, "--precision", "bf16", "--no-cuda-graphs"],
    }  # eager: generate replays CUDA graphs by default, and cuda-bf16-graphs is compared with cuda-bf16
    if SETTINGS.cuda:
        runs["cuda-bf16-graphs"] = ["--device", "cuda", "--precision", "bf16", "--cuda-graphs"]
    codes = {}
    for name, extra in runs.items():
        command = fgaug_command(
            "generate", masks, "--model", "demo", "--samples", "4", "--out", str(work / name), *extra, "--json"
        )
        codes[name] = run_command(command, log, limit / len(runs))
    result: dict[str, Any] = {"model": "bundled demo model (tiny, 64x128)", "exit_codes": codes}
    if codes["cpu-fp32"] == 0 and codes["cuda-fp32"] == 0:
        result["cpu_fp32_vs_cuda_fp32"] = compare_trees(work / "cpu-fp32", work / "cuda-fp32")
    if codes["cpu-fp32"] == 0 and codes["cuda-bf16"] == 0:
        result["cpu_fp32_vs_cuda_bf16"] = compare_trees(work / "cpu-fp32", work / "cuda-bf16")
    if codes.get("cuda-bf16") == 0 and codes.get("cuda-bf16-graphs") == 0:
        result["cuda_bf16_vs_cuda_graphs"] = compare_trees(work / "cuda-bf16", work / "cuda-bf16-graphs")
    result["passed"] = all(code == 0 for code in codes.values())
    return result


def section_writes(work: Path, log: Path, limit: float) -> dict[str, Any]:
    """``generate`` end to end at Cityscapes' 1024x2048, the bundled model drawing on the device: its
    images per second with the files written in the loop (``--write-threads 0``) and on the
    default background threads (``fgaug/data/background.py``), and whether the trees are the same."""
    data = write_toy(work / "toy1024", (1024, 2048), train=8, val=1)
    masks = str(data / "gtFine" / "train")
    result: dict[str, Any] = {"model": "bundled demo model (tiny, 64x128)", "masks": "8 at 1024x2048, 4 samples each"}
    # the thread count rounds the draws (docs/output.md): both runs keep torch's, whatever else runs
    unshared = {**os.environ, "FGAUG_SHARE_CORES": "no"}
    for name, extra in (("in_loop", ["--write-threads", "0"]), ("background", [])):
        command = fgaug_command(
            "generate",
            masks,
            "--model",
            "demo",
            "--samples",
            "4",
            "--device",
            SETTINGS.device,
            "--out",
            str(work / f"writes-{name}"),
            *extra,
            "--json",
        )
        code, report = json_command(command, REPO, log, limit / 2, unshared)
        result[f"{name}_images_per_s"] = report["images_per_s"] if report else None
        result[f"{name}_exit_code"] = code
    if result["in_loop_exit_code"] == 0 and result["background_exit_code"] == 0:
        result["trees"] = compare_trees(work / "writes-in_loop", work / "writes-background")
        if result["in_loop_images_per_s"]:
            result["speed_up"] = round(result["background_images_per_s"] / result["in_loop_images_per_s"], 2)
    result["passed"] = result.get("trees", {}).get("bitwise_equal_photos") == 32
    return result


def section_compile(work: Path, log: Path, limit: float) -> dict[str, Any]:
    import torch

    from fgaug.flow import FullGlow, compile_networks, fuse_arithmetic, network_precision
    from fgaug.runtime import resolve_device
    from fgaug.training.optimiser import adam
    from fgaug.training.presets import load_preset

    device = resolve_device(SETTINGS.device)
    config = load_preset(SETTINGS.big_preset).model
    masks = torch.rand(8, 3, *config.image_size, device=device)
    photos = torch.rand(8, 3, *config.image_size, device=device)
    result: dict[str, Any] = {}
    # eager; only the element-wise arithmetic fused; and --compile (the networks compiled, and on
    # CUDA the arithmetic fused too)
    for label in ("eager", "arithmetic", "compiled"):
        torch._dynamo.reset()
        model = FullGlow(config).to(device)
        with torch.no_grad():
            model(masks[:4], photos[:4])
        if label == "arithmetic":
            fuse_arithmetic(model)
        elif label == "compiled":
            compile_networks(model)
        model.eval()
        started = time.perf_counter()
        rate = _sampling_speed(model, masks, 8, torch.bfloat16, graphs=False)
        result[f"{label}_sampling_images_per_s"] = round(rate, 1)
        result[f"{label}_sampling_first_seconds"] = round(time.perf_counter() - started, 1)
        optimizer = adam(model, 1e-5)
        model.train()

        def step(model: FullGlow = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            with network_precision(torch.bfloat16):
                loss = model(masks, photos).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        started = time.perf_counter()
        seconds = timed(step, calls=2, warmups=2)
        result[f"{label}_train_images_per_s"] = round(8 / seconds, 2)
        result[f"{label}_train_first_seconds"] = round(time.perf_counter() - started, 1)
        del model, optimizer
        torch.cuda.empty_cache()
    for what in ("sampling", "train"):
        speedup = result[f"compiled_{what}_images_per_s"] / result[f"eager_{what}_images_per_s"]
        result[f"{what}_speedup"] = round(speedup, 3)
        fused = result[f"arithmetic_{what}_images_per_s"] / result[f"eager_{what}_images_per_s"]
        result[f"{what}_fused_arithmetic_speedup"] = round(fused, 3)
    result["passed"] = True
    return result


IN_PROCESS = {"speed": section_speed, "compile": section_compile}


# ------------------------------------------------------------------------------------ the check


def run_section(name: str, args: argparse.Namespace, work: Path, log: Path, limit: float) -> dict[str, Any]:
    """One section in a child process (``--section``), so it can be timed out and cannot take the
    others down; its result comes back as a JSON file."""
    if name not in IN_PROCESS:
        try:
            if name == "paper_code":
                return section_paper_code(work, log, limit, args.glow2)
            return globals()[f"section_{name}"](work, log, limit)
        except Exception:
            with open(log, "a", encoding="utf-8") as stream:
                stream.write(traceback.format_exc())
            return {"error": traceback.format_exc().splitlines()[-1], "passed": False}
    output = work / f"{name}.json"
    output.unlink(missing_ok=True)
    command = [sys.executable, __file__, str(args.out), "--section", name, "--work", str(work), "--limit", str(limit)]
    command += ["--rehearse"] if args.rehearse else []
    code = run_command(command, log, limit + 15)
    if output.is_file():
        return json.loads(output.read_text())
    return {"exit_code": code, "timed_out": code == 124, "passed": False}


def child(args: argparse.Namespace) -> None:
    work, log = Path(args.work), Path(args.out) / "gpu_check.log"
    try:
        result = IN_PROCESS[args.section](work, log, args.limit)
    except Exception:
        traceback.print_exc()
        result = {"error": traceback.format_exc().splitlines()[-1], "passed": False}
    (work / f"{args.section}.json").write_text(json.dumps(result, indent=1))


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(
            device=properties.name,
            memory_gib=round(properties.total_memory / 2**30, 1),
            capability=f"{properties.major}.{properties.minor}",
            multiprocessors=properties.multi_processor_count,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def summary_markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        "# fgaug GPU check",
        "",
        f"Device: {env.get('device', 'no CUDA device')} ({env.get('memory_gib', '?')} GiB), torch {env['torch']}, "
        f"CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}. Wall time {results['seconds']:.0f} s.",
        "",
        "| section | passed | figures |",
        "| --- | --- | --- |",
    ]
    for name in SECTIONS:
        if name not in results["sections"]:
            lines.append(f"| {name} | not run | out of time or not asked for |")
            continue
        section = results["sections"][name]
        figures = {k: v for k, v in section.items() if k not in ("passed", "sampling", "training", "sync_messages")}
        lines.append(f"| {name} | {section.get('passed')} | `{json.dumps(figures)[:600]}` |")
    speed = results["sections"].get("speed", {})
    if speed.get("sampling"):
        lines += ["", f"## Sampling, {SETTINGS.big_preset}, 8 samples per mask", ""]
        lines.append("| precision | masks | CUDA graphs | images/s | MFU |")
        lines.append("| --- | --- | --- | --- | --- |")
        for row in speed["sampling"]:
            lines.append(
                f"| {row['precision']} | {row['masks']} | {row['graphs']} | {row.get('images_per_s', 'OOM')} | "
                f"{row.get('mfu', '')} |"
            )
    if speed.get("training"):
        lines += ["", f"## Training, {SETTINGS.big_preset}", ""]
        lines.append("| precision | batch | CUDA graphs | images/s | s/step | peak GiB | MFU |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for row in speed["training"]:
            lines.append(
                f"| {row['precision']} | {row['batch']} | {row.get('graphs', False)} | "
                f"{row.get('images_per_s', 'OOM')} | {row.get('seconds_per_step', '')} | "
                f"{row.get('peak_memory_gib', '')} | {row.get('mfu', '')} |"
            )
    lines += ["", "## Targets (issue 13)", ""]
    lines += [f"- {line}" for line in targets(results)]
    return "\n".join(lines) + "\n"


def targets(results: dict[str, Any]) -> list[str]:
    sections = results["sections"]
    best = (sections.get("speed") or {}).get("best_sampling") or {}
    paper = sections.get("paper_code") or {}
    hd = ((sections.get("dryrun") or {}).get("checkpointing") or {}).get("peak_memory_mib")
    syncs = (sections.get("speed") or {}).get("syncs_per_flow_training_step")
    sample_syncs = (sections.get("speed") or {}).get("syncs_per_sampling_call")
    rate = best.get("images_per_s")
    return [
        f"paper-256 sampling >= {TARGET_SAMPLES_PER_S:.0f} images/s: best {rate} "
        f"({best.get('precision')}, {best.get('masks')} masks, graphs {best.get('graphs')})"
        + (" MET" if rate and rate >= TARGET_SAMPLES_PER_S else " not met"),
        f"2x the paper's code at batch 1 (bf16, eager / CUDA graphs): training "
        f"{paper.get('fgaug_bf16_train_speedup')}x / {paper.get('fgaug_bf16_graphs_train_speedup')}x, sampling "
        f"{paper.get('fgaug_bf16_sample_speedup')}x / {paper.get('fgaug_bf16_graphs_sample_speedup')}x"
        + (" MET" if paper.get("passed") else " not met"),
        f"hd-512x1024 at batch 1 with checkpointing <= 12 GiB: {hd} MiB"
        + (" MET" if hd is not None and hd <= TARGET_HD_MIB else " not met"),
        f"zero host syncs per flow step: {syncs} in a whole flow training step, {sample_syncs} in a sampling call"
        + (" MET" if syncs == 0 and sample_syncs == 0 else " not met"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for gpu_check.json, gpu_check.md and gpu_check.log")
    parser.add_argument("--glow2", type=Path, help="a local copy of MoeinSorkhei/glow2 for the paper_code section")
    parser.add_argument(
        "--budget", type=float, help="seconds; no section starts after it is spent (default 420, 3x with --rehearse)"
    )
    parser.add_argument("--only", help="comma-separated sections to run, in that order (default: all)")
    parser.add_argument("--tests", help="comma-separated test files for the tests section (default: every CUDA one)")
    parser.add_argument(
        "--rehearse", action="store_true", help="every section on the CPU with small presets: checks the script only"
    )
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rehearse:
        SETTINGS.__dict__.update(asdict(REHEARSAL))
    if args.tests:
        SETTINGS.test_files = tuple(args.tests.split(","))
    if args.budget is None:
        args.budget = 420 * SETTINGS.time_scale
    if args.glow2:
        args.glow2 = args.glow2.resolve()
    if args.section:
        child(args)
        return

    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "gpu_check.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="fgaug-gpu-check-") as folder:  # the sections' runs and data
        work = Path(folder)
        chosen = args.only.split(",") if args.only else list(SECTIONS)
        results: dict[str, Any] = {"environment": environment(), "sections": {}, "budget_seconds": args.budget}
        results["rehearsal"] = args.rehearse
        unknown = sorted(set(chosen) - set(SECTIONS))
        if unknown:
            parser.error(f"--only: unknown sections {', '.join(unknown)} (choose from {', '.join(SECTIONS)})")
        for name in chosen:
            remaining = args.budget - (time.perf_counter() - started)
            if remaining < 30:
                break
            section_start = time.perf_counter()
            limit = min(TIME_LIMITS[name] * SETTINGS.time_scale, remaining)
            print(f"[gpu_check] {name} (limit {limit:.0f} s)", flush=True)
            result = run_section(name, args, work, log, limit)
            result["section_seconds"] = round(time.perf_counter() - section_start, 1)
            results["sections"][name] = result
            results["seconds"] = time.perf_counter() - started
            (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1))
            print(f"[gpu_check] {name}: passed={result.get('passed')} in {result['section_seconds']} s", flush=True)
    results["seconds"] = time.perf_counter() - started
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    markdown = summary_markdown(results)
    (args.out / "gpu_check.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
