"""Two fgaug processes at once on a small CPU machine: how much does each slow down?

Runs a fixed workload (sampling with the bundled demo model at ``tiny``, a ``paper-256``
sampling call, 15 fp32 training steps of a ``tiny`` model at batch 8, ``tiny-train``, or
``fgaug train`` itself for 60 steps on the toy tree ``fgaug demo`` makes, ``cli-train``) in a
fresh process alone, then two copies side by side, for each OpenMP setting given, and prints each
setting's time alone, the slow-down of two at once, and the pair's time against running the two
one after the other. The workload's own clock starts after its imports, so only the work is timed.
Run it on an otherwise idle machine.

    python benchmarks/concurrency.py --workload tiny --settings libgomp-default,passive,spin-10000
    python benchmarks/concurrency.py --workload paper-256 --repeats 1
    python benchmarks/concurrency.py --workload tiny-train --settings fgaug,passive,threads-1
    python benchmarks/concurrency.py --workload cli-train --settings fgaug,unshared

Settings: ``fgaug`` (what fgaug does when nothing else is set: the spin bound, and the processes
share the cores, :mod:`fgaug.cores`), ``unshared`` (the spin bound alone, ``FGAUG_SHARE_CORES=no``:
fgaug before it shared the cores), ``libgomp-default`` (no spin setting, libgomp's own choice, no
sharing), ``passive`` (``OMP_WAIT_POLICY=PASSIVE``), ``spin-N`` (``GOMP_SPINCOUNT=N``),
``threads-N`` (``OMP_NUM_THREADS=N``: torch's threads per process, no sharing). Each run has a
registry of its own, so only its own copies share.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = r"""
import json, sys, time
import torch
from fgaug.training.checkpoint import load_checkpoint
from fgaug.training.presets import load_preset
from fgaug.flow import FullGlow
from fgaug.resources import bundled_dir
from fgaug.cores import shared_cores, take_share
name = sys.argv[1]
if name == "tiny-train":
    model = FullGlow(load_preset("tiny").model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    masks, photos = torch.rand(2, 8, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    def work(call):
        optimizer.zero_grad()
        model(masks, photos).loss.backward()
        optimizer.step()
    calls = 15
else:
    if name == "tiny":
        model = load_checkpoint(bundled_dir() / "demo-toy-64x128.pt").model
        masks, per_mask, calls = torch.rand(6, 3, 64, 128, generator=torch.Generator().manual_seed(0)), 24, 4
    else:
        model = FullGlow(load_preset("paper-256").model).eval()
        masks, per_mask, calls = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)), 2, 1
        with torch.no_grad():
            model(masks, torch.rand(1, 3, 256, 256))
    def work(call):
        model.sample(masks, n=per_mask, temperature=0.8, generator=torch.Generator().manual_seed(call))
with shared_cores():  # as every fgaug command that computes: its share, between two calls
    work(-1)
    take_share()
    start = time.perf_counter()
    for call in range(calls):
        work(call)
        take_share()
    print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
"""


def environment(setting: str, work: Path) -> dict[str, str]:
    """The processes' environment for ``setting``, with a registry of their own under ``work``."""
    unset = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "FGAUG_OMP", "FGAUG_SHARE_CORES")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["FGAUG_PROCESS_DIR"] = tempfile.mkdtemp(prefix="processes-", dir=work)
    if setting == "unshared":
        env["FGAUG_SHARE_CORES"] = "no"
    elif setting == "libgomp-default":
        env["FGAUG_OMP"] = "leave"
    elif setting == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif setting.startswith("spin-"):
        env["GOMP_SPINCOUNT"] = setting.removeprefix("spin-")
    elif setting.startswith("threads-"):
        env["OMP_NUM_THREADS"] = setting.removeprefix("threads-")
    elif setting != "fgaug":
        raise SystemExit(f"unknown setting {setting!r}")
    return env


def commands(workload: str, copies: int, work: Path) -> list[list[str]]:
    """The command of each copy: the workload script, or ``fgaug train`` itself (``cli-train``), each
    copy training in a run folder of its own under ``work``."""
    if workload != "cli-train":
        return [[sys.executable, "-c", "import fgaug\n" + WORKLOAD, workload]] * copies
    project = tempfile.mkdtemp(prefix="runs-", dir=work)
    train = [sys.executable, "-m", "fgaug", "train", str(toy_tree(work)), "--project", project]
    train += ["--steps", "60", "--json"]
    return [[*train, "--name", f"copy-{copy}"] for copy in range(copies)]


@functools.cache
def toy_tree(work: Path) -> Path:
    """The tree ``fgaug demo`` trains on next, written once under ``work``: 24 toy scenes at 128x256."""
    from fgaug.data.toyworld import write_toy_cityscapes

    root = work / "toy-cityscapes"
    write_toy_cityscapes(root, {"train": 24, "val": 6}, size=(128, 256), seed=7)
    return root


def run(workload: str, setting: str, copies: int, work: Path) -> list[float]:
    """Seconds of work of ``copies`` processes started together (``cli-train``: the ``seconds`` of
    ``fgaug train --json``, from the trainer's start)."""
    env = environment(setting, work)
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for command in commands(workload, copies, work)
    ]
    seconds = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"a {workload} copy failed (exit {process.returncode}):\n{err}")
        seconds.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=["tiny", "paper-256", "tiny-train", "cli-train"], default="tiny")
    parser.add_argument("--settings", default="fgaug,libgomp-default,passive")
    parser.add_argument("--repeats", type=int, default=3, help="alone and side-by-side runs per setting (median)")
    args = parser.parse_args()
    print(f"{'setting':18s} {'alone s':>9s} {'two at once s':>14s} {'slow-down':>10s} {'pair / one after other':>23s}")
    with tempfile.TemporaryDirectory(prefix="fgaug-concurrency-") as folder:  # registries, data, runs
        work = Path(folder)
        for setting in args.settings.split(","):
            alone = statistics.median(run(args.workload, setting, 1, work)[0] for _ in range(args.repeats))
            together = statistics.median(max(run(args.workload, setting, 2, work)) for _ in range(args.repeats))
            serial = together / (2 * alone)
            print(f"{setting:18s} {alone:9.2f} {together:14.2f} {together / alone:9.1f}x {serial:22.2f}x", flush=True)
            time.sleep(1)


if __name__ == "__main__":
    main()
