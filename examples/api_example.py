"""fgaug from Python: toy data, a short training run, generation, transfer.

    python examples/api_example.py      # about a minute on 2 CPU cores

The same calls scale to real Cityscapes: point ``data`` at your tree, choose ``preset="paper-256"``
and train on a GPU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from fgaug import api
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.flow import FullGlow
from fgaug.training.presets import load_preset


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="fgaug-example-"))
    data = work / "toy"
    write_toy_cityscapes(data, {"train": 32, "val": 4}, size=(64, 128), seed=0)

    result = api.train(
        api.TrainOptions(
            data=str(data),
            run_dir=str(work / "run"),
            preset="test",
            steps=40,
            batch_size=8,
            lr=2e-3,
            warmup_steps=10,
            workers=0,
        )
    )
    print(f"validation bits/dim {result.first_val_bpd:.3f} -> {result.last_val_bpd:.3f}")

    summary = api.generate(
        api.GenerateOptions(
            masks=str(data / "gtFine" / "train"),  # the train split only: never augment what you validate on
            out=str(work / "augmented"),
            model=str(result.last_checkpoint),
            n=3,
            limit=4,
            temperature=0.8,
            preview=str(work / "preview.png"),
        )
    )
    print(f"{summary.written} images in {summary.out}; preview {summary.preview}")

    photo = next((data / "leftImg8bit" / "val").rglob("*.png"))
    layout = next((data / "gtFine" / "train").rglob("*_labelIds.png"))
    moved = api.transfer(api.TransferOptions(photo, layout, work / "transfer.png", model=str(result.last_checkpoint)))
    print(f"content transfer: {moved.transfers[0].output} (model sha256 {moved.model.sha256[:12]})")

    # The model itself is a plain torch module.
    model = FullGlow(load_preset("test").model)
    masks = torch.rand(2, 3, 16, 32)
    samples = model.sample(masks, n=4, temperature=0.7, generator=torch.Generator().manual_seed(0))
    print(f"samples tensor {tuple(samples.images.shape)}")


if __name__ == "__main__":
    main()
