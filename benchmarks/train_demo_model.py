"""Retrain the bundled demo model (``models/demo-toy-64x128.pt``) on the toy street world.

    python benchmarks/train_demo_model.py                  # about an hour on one core of this Xeon
    python benchmarks/train_demo_model.py --steps 200 --out /tmp/demo.pt   # a quick check
    timeout -s TERM 480 python benchmarks/train_demo_model.py --init-from demo --steps 18000 --device cuda \
        --work /tmp/demo --out "$OUT/demo-longer.pt"       # the bundled model trained on, on a lent GPU

Writes the toy data under --work, trains the ``tiny`` preset (64x128) with Gaussian noise
augmentation (``--noise gaussian:0.16``, the sample-quality study's best recipe, issue 21) and the
coupling networks in bf16 where the machine computes bf16 natively (else fp32), and exports the
EMA weights as float16 (a few MB). These are the settings of the study's ``gauss-0.16-x4``
generator, which became the bundled model. ``--init-from`` starts from a trained model's weights
(``train --init-from``; ``demo``: the bundled one) with a fresh optimiser and warm-up: the way to
give the best recipe more steps on a machine that is lent for minutes. Stopped by SIGTERM or
SIGINT (a ``timeout``), the run saves its checkpoint and the script still exports it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.resources import bundled_dir
from fgaug.runtime import native_precision
from fgaug.training.checkpoint import export_weights
from fgaug.training.options import TrainingStoppedError, TrainOptions
from fgaug.training.train import train


class PrintProgress:
    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        self.total, self.done = total, completed

    def advance(self, amount: int = 1, **fields: float) -> None:
        self.done += amount
        if self.done % 100 == 0:
            print(f"step {self.done}/{self.total} loss {fields.get('loss', float('nan')):.4f}", flush=True)

    def log(self, message: str) -> None:
        print(message, flush=True)

    def stop(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/demo-data"), help="toy data and run folder")
    parser.add_argument("--train-scenes", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--noise", default="gaussian:0.16", help="training noise (uniform: the paper's)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precision", help="default: bf16 where the device computes it natively, else fp32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--init-from", help="start from this checkpoint's weights (demo: the bundled model)")
    parser.add_argument("--out", type=Path, default=bundled_dir() / "demo-toy-64x128.pt")
    args = parser.parse_args()

    data = args.work / "toy"
    write_toy_cityscapes(data, {"train": args.train_scenes, "val": 32}, size=(128, 256), seed=2024)
    run = args.work / "run"
    options = TrainOptions(
        data=str(data),
        run_dir=str(run),
        preset="tiny",
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        noise=args.noise,
        precision=args.precision or native_precision(args.device),
        device=args.device,
        init_from=args.init_from,
        validate_every=500,
        sample_every=500,
        checkpoint_every=500,
        exist_ok=True,
    )
    try:
        result = train(options, PrintProgress())
    except TrainingStoppedError as stopped:
        export_weights(run / "checkpoints" / "last.pt", args.out)
        print(f"stopped ({stopped}); exported its last checkpoint to {args.out}")
        return None
    export_weights(result.last_checkpoint, args.out)
    print(f"validation bits/dim {result.first_val_bpd:.3f} -> {result.last_val_bpd:.3f}; exported {args.out}")
    return None


if __name__ == "__main__":
    sys.exit(main())
