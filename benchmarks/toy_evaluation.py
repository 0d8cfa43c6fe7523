"""Issue-5 figures on the toy world: probe segmenter, temperature sweep, colour match,
augmentation value and the conditioning ablation (the ordering of the paper's Table 1).

    python benchmarks/toy_evaluation.py                     # about 40 minutes on 2 CPU cores
    python benchmarks/toy_evaluation.py --ablation-steps 0  # skip the three ablation trainings

Uses the toy data of ``benchmarks/train_demo_model.py`` (written again if absent) and the bundled
demo model; prints every figure and writes ``summary.json`` under --work.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fgaug.api import AugmentOptions, QualityOptions, evaluate_augment, evaluate_quality
from fgaug.data.cityscapes import find_groups
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.evaluation.quality import evaluate_bpd
from fgaug.resources import bundled_dir
from fgaug.runtime import native_precision
from fgaug.segmentation.probe import SegmentationPairs, train_probe
from fgaug.training.checkpoint import load_checkpoint
from fgaug.training.options import TrainOptions
from fgaug.training.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/toy-evaluation"))
    parser.add_argument("--data", type=Path, default=Path("runs/demo-data/toy"), help="toy tree (written if absent)")
    parser.add_argument("--model", type=Path, default=bundled_dir() / "demo-toy-64x128.pt")
    parser.add_argument("--probe-steps", type=int, default=800)
    parser.add_argument("--augment-steps", type=int, default=600)
    parser.add_argument("--augment-masks", type=int, default=300, help="real training masks (40: the scarce regime)")
    parser.add_argument("--augment-per-mask", type=int, default=2, help="synthetic images per mask")
    parser.add_argument("--ablation-steps", type=int, default=1000)
    parser.add_argument(
        "--precision",
        default=native_precision(),
        help="precision of the ablation trainings (default: bf16 where this machine computes it natively, else fp32)",
    )
    args = parser.parse_args()

    if not (args.data / "gtFine").is_dir():
        write_toy_cityscapes(args.data, {"train": 1500, "val": 32}, size=(128, 256), seed=2024)
    args.work.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    size = load_checkpoint(args.model).model.config.image_size

    train_groups = find_groups(args.data, ["train"]).groups
    probe = train_probe(
        SegmentationPairs(train_groups[:500], size, flip=True), args.work / "probe.pt", args.probe_steps, 8, 3e-3, 16
    )
    print(f"probe segmenter: {probe.steps} steps, final loss {probe.final_loss:.3f}, {probe.seconds:.0f} s", flush=True)

    quality = QualityOptions(
        args.data,
        args.work / "quality",
        str(args.model),
        temperatures=(0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        n=3,
        segmenter=probe.path,
        rounds=3,
    )
    report = evaluate_quality(quality).to_dict()
    summary["bpd"] = report["bpd"]
    summary["real_photos"] = report["samples"].get("real_photos", {})
    summary["sweep"] = [
        {
            "temperature": row["temperature"],
            "pixel_accuracy": row["consistency"]["pixel_accuracy"],
            "mean_class_accuracy": row["consistency"]["mean_class_accuracy"],
            "mean_iou": row["consistency"]["mean_iou"],
            "pairwise_l1": row["pairwise_l1"],
            "pairwise_1_minus_ssim": row["pairwise_1_minus_ssim"],
            "colour_w1_mean": row["colour_w1_mean"],
            "diverged_fraction": row["diverged_fraction"],
        }
        for row in report["samples"]["temperatures"]
    ]
    print(json.dumps({"bpd": summary["bpd"], "real_miou": summary["real_photos"].get("mean_iou")}), flush=True)
    for row in summary["sweep"]:
        print(json.dumps(row), flush=True)

    augment = evaluate_augment(
        AugmentOptions(
            args.data,
            args.work / "augment",
            str(args.model),
            n=args.augment_per_mask,
            sizes=(args.augment_masks,),
            seeds=(0, 1, 2),
            max_steps=args.augment_steps,
        )
    )
    augment_report = augment.to_dict()
    summary["augment"] = {k: augment_report[k] for k in ("strategies", "synthetic_images", "diverged_draws")}
    print(json.dumps(summary["augment"]), flush=True)

    if args.ablation_steps:
        val_groups = find_groups(args.data, ["val"]).groups
        summary["ablation"] = {}
        for mode in ("full", "coupling", "raw"):
            result = train(
                TrainOptions(
                    data=str(args.data),
                    run_dir=str(args.work / f"ablation-{mode}"),
                    preset="tiny",
                    steps=args.ablation_steps,
                    batch_size=8,
                    lr=1e-3,
                    precision=args.precision,
                    conditioning=mode,
                    validate_every=args.ablation_steps,
                    sample_every=args.ablation_steps,
                    exist_ok=True,
                )
            )
            checkpoint = load_checkpoint(result.last_checkpoint)
            bpd = evaluate_bpd(checkpoint, val_groups, rounds=3)
            summary["ablation"][mode] = bpd.conditional_bpd
            print(json.dumps({"conditioning": mode, "val_bpd": bpd.conditional_bpd}), flush=True)
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2))
    return None


if __name__ == "__main__":
    sys.exit(main())
