"""Two fgaug processes at once on a small CPU machine: how much does each slow down?

Runs a fixed workload (sampling with the bundled demo model at ``tiny``, a ``paper-256``
sampling call, or 15 fp32 training steps of a ``tiny`` model at batch 8, ``tiny-train``) in a
fresh process alone, then two copies side by side, for each OpenMP setting
given, and prints each setting's time alone and the slow-down of two at once. The workload's own
clock starts after its imports, so only the work is timed. Run it on an otherwise idle machine.

    python benchmarks/concurrency.py --workload tiny --settings libgomp-default,passive,spin-10000
    python benchmarks/concurrency.py --workload paper-256 --repeats 1
    python benchmarks/concurrency.py --workload tiny-train --settings fgaug,passive,threads-1

Settings: ``fgaug`` (what fgaug sets when nothing else is set), ``libgomp-default`` (no spin
setting, libgomp's own choice), ``passive`` (``OMP_WAIT_POLICY=PASSIVE``), ``spin-N``
(``GOMP_SPINCOUNT=N``), ``threads-N`` (``OMP_NUM_THREADS=N``: torch's threads per process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOAD = r"""
import json, sys, time
import torch
from fgaug.training.checkpoint import load_checkpoint
from fgaug.training.presets import load_preset
from fgaug.flow import FullGlow
from fgaug.resources import bundled_dir
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
work(-1)
start = time.perf_counter()
for call in range(calls):
    work(call)
print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
"""


def environment(setting: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "FGAUG_OMP")}
    if setting == "libgomp-default":
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


def run(workload: str, setting: str, copies: int) -> list[float]:
    """Seconds of work of ``copies`` processes started together."""
    command = [sys.executable, "-c", "import fgaug\n" + WORKLOAD, workload]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment(setting)) for _ in range(copies)
    ]
    return [json.loads(process.communicate()[0].strip().splitlines()[-1])["seconds"] for process in processes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=["tiny", "paper-256", "tiny-train"], default="tiny")
    parser.add_argument("--settings", default="fgaug,libgomp-default,passive")
    parser.add_argument("--repeats", type=int, default=3, help="alone and side-by-side runs per setting (median)")
    args = parser.parse_args()
    print(f"{'setting':18s} {'alone s':>9s} {'two at once s':>14s} {'slow-down':>10s}")
    for setting in args.settings.split(","):
        alone = statistics.median(run(args.workload, setting, 1)[0] for _ in range(args.repeats))
        together = statistics.median(max(run(args.workload, setting, 2)) for _ in range(args.repeats))
        print(f"{setting:18s} {alone:9.2f} {together:14.2f} {together / alone:9.1f}x", flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
