"""How far classifier-free guidance can push a Full-Glow model before its reverse pass diverges.

    python benchmarks/guidance_divergence.py MODEL MASKS     # a model trained with --condition-dropout

For guidance weights w and three choices of what is guided (every conditioning network: actnorm,
1x1 convolution and coupling, as ``--guidance`` does; the couplings only, as TarFlow guides its
affine parameters; actnorm and couplings), the fraction of draws whose output leaves [-50, 50]
(``fgaug.flow.fullglow.DIVERGED_MAGNITUDE``) and the largest finite magnitude, on the first 6
masks with 2 draws each at T = 0.8.
"""

from __future__ import annotations

import argparse
import sys

from fgaug.data.cityscapes import ReadOptions, find_groups, load_mask, to_tensor
from fgaug.flow.conditional import GuidedCondition
from fgaug.flow.fullglow import DIVERGED_MAGNITUDE
from fgaug.flow.glow import StepFeatures
from fgaug.training.checkpoint import load_checkpoint

GUIDED = {
    "every network": ("actnorm", "invconv", "coupling"),
    "couplings only": ("coupling",),
    "actnorm + couplings": ("actnorm", "coupling"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("masks", help="a Cityscapes root (its val split) or a folder of masks")
    parser.add_argument("--weights", default="0.05,0.1,0.25,0.5,1,2")
    args = parser.parse_args()
    import torch  # after fgaug, which bounds OpenMP's spinning

    model = load_checkpoint(args.model).model
    groups = find_groups(args.masks, ["val"], True).groups[:6]
    read = ReadOptions(model.config.image_size)
    masks = torch.stack([to_tensor(load_mask(group, read)[1]) for group in groups])
    noise = model.sample_noise(len(groups) * 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = model.condition_features(masks)
        null = model.condition_features(model.null_condition())
        for name, guided in GUIDED.items():
            for weight in (float(w) for w in args.weights.split(",")):
                conditions = [
                    [
                        StepFeatures(
                            *(
                                GuidedCondition(getattr(real, part), getattr(empty, part), weight)
                                if part in guided
                                else getattr(real, part)
                                for part in ("actnorm", "invconv", "coupling")
                            )
                        )
                        for real, empty in zip(level, null_level, strict=True)
                    ]
                    for level, null_level in zip(features, null, strict=True)
                ]
                y, _ = model.target.sample(noise, 0.8, conditions)
                magnitude = y.flatten(1).abs().amax(1)
                finite = torch.isfinite(magnitude)
                diverged = float((~finite | (magnitude > DIVERGED_MAGNITUDE)).float().mean())
                largest = f"{float(magnitude[finite].max()):.3g}" if finite.any() else "none finite"
                print(f"{name:20s} w={weight:<5g} diverged {diverged:4.0%}  largest |x| {largest}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
