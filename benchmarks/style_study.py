"""Issue 25: is a style's look really shared across layouts, and is a walk between looks smooth?

    python benchmarks/style_study.py                 # demo model, 24 toy masks, 6 styles: ~5 minutes on 2 cores
    python benchmarks/style_study.py --denoise-scale 1.0 --work runs/style-study-denoised

Shared look: for every class and every pair of different masks, the per-channel colour W1 (0-255
units) between that class's pixels in the two masks' samples, for samples that share a style
(``generate --style-seed S``) minus the same for samples drawn independently (plain
``generate``), averaged over the styles, the pairs and then the classes. A shared look makes it
negative. The interval is a 95% bootstrap interval with the masks resampled (the masks are the
independent units; pairs of masks are not).

Smoothness: ``fgaug interpolate`` walks between pairs of styles on each mask; the per-step mean
absolute pixel change, and the largest step over the median step (issue 25 asks for at most 3).

Writes ``styles.png`` (4 masks x 4 styles), ``walk.png`` (one walk's strip) and ``summary.json``
under --work, and prints every figure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fgaug.data.cityscapes import ReadOptions, find_groups, load_mask, resize_labels, to_tensor
from fgaug.data.io import atomic_write_bytes
from fgaug.data.labels import LABEL_BY_ID, ids_to_color
from fgaug.data.preview import save_grid, to_uint8_image
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.evaluation.metrics import wasserstein_1d
from fgaug.flow.sampling import SamplingOptions
from fgaug.generate.draws import Draw, DrawSeeds, draw_best
from fgaug.generate.interpolate import WalkOptions, interpolate_styles, largest_jump_ratio, step_changes
from fgaug.resources import DEMO_MODEL_NAME, bundled_dir
from fgaug.training.checkpoint import load_checkpoint

STYLES = (0, 1, 2, 3, 4, 5)
MIN_PIXELS = 64
"""A class enters a mask pair's distance only where both masks hold this many of its pixels."""


def class_pixels(photo: np.ndarray, label_ids: np.ndarray) -> dict[int, np.ndarray]:
    return {int(c): photo[label_ids == c].astype(np.float64) for c in np.unique(label_ids)}


def colour_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Mean over RGB of the 1-D Wasserstein distance between two sets of pixel colours."""
    return float(np.mean([wasserstein_1d(first[:, c], second[:, c]) for c in range(3)]))


def bootstrap_over_masks(
    pairs: dict[str, dict[tuple[int, int], list[float]]], masks: int, rounds: int = 2000
) -> tuple[float, float]:
    """95% percentile interval of the mean over classes of the mean pair difference, the masks
    resampled with replacement (a pair enters once per time both its masks are drawn)."""
    rng = np.random.default_rng(0)
    statistics = []
    for _ in range(rounds):
        counts = np.bincount(rng.integers(0, masks, masks), minlength=masks)
        class_means = []
        for found in pairs.values():
            weights = np.array([counts[i] * counts[j] for i, j in found])
            if weights.sum():
                class_means.append(float(np.average([np.mean(v) for v in found.values()], weights=weights)))
        statistics.append(np.mean(class_means))
    return float(np.percentile(statistics, 2.5)), float(np.percentile(statistics, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/style-study"))
    parser.add_argument("--model", type=Path, default=bundled_dir() / DEMO_MODEL_NAME)
    parser.add_argument("--masks", type=int, default=24)
    parser.add_argument("--temp", type=float, default=0.8)
    parser.add_argument("--steps", type=int, default=8, help="frames per walk")
    parser.add_argument(
        "--denoise-scale",
        type=float,
        default=None,
        help="denoise every draw and frame (generate --denoise); the bundled demo model's own: 1.0",
    )
    args = parser.parse_args()

    root = args.work / "toy"
    if not (root / "gtFine").is_dir():
        write_toy_cityscapes(root, {"val": args.masks}, size=(128, 256), seed=25)
    groups = find_groups(root, ["val"], True).groups[: args.masks]
    model = load_checkpoint(args.model).model
    sampling = SamplingOptions(denoise_scale=args.denoise_scale)
    sampler = sampling.bind(model)
    read = ReadOptions(model.config.image_size)
    loaded = [load_mask(group, read) for group in groups]
    labels = [np.asarray(ids) for ids, _ in loaded]
    size = model.config.image_size
    small_labels = [resize_labels(ids, size) for ids in labels]
    conditions = [to_tensor(condition)[None] for _, condition in loaded]

    def samples(seeds: DrawSeeds) -> list[list[np.ndarray]]:
        rows = []
        for group, condition in zip(groups, conditions, strict=True):
            row = draw_best(sampler, condition, [group.key], [list(range(len(STYLES)))], args.temp, seeds)[0]
            rows.append([to_uint8_image(d.image) if isinstance(d, Draw) else None for d in row])
        return rows

    shared = samples(DrawSeeds(0, STYLES))
    independent = samples(DrawSeeds(0))
    # per class, per mask pair: shared minus independent distance, one value per style
    pairs: dict[str, dict[tuple[int, int], list[float]]] = {}
    for i, j in itertools.combinations(range(len(groups)), 2):
        for s in range(len(STYLES)):
            by_kind = []
            for drawn in (shared, independent):
                if drawn[i][s] is None or drawn[j][s] is None:
                    break
                by_kind.append((class_pixels(drawn[i][s], small_labels[i]), class_pixels(drawn[j][s], small_labels[j])))
            if len(by_kind) < 2:
                continue
            (shared_i, shared_j), (independent_i, independent_j) = by_kind
            for label in set(shared_i) & set(shared_j):
                if min(len(shared_i[label]), len(shared_j[label])) < MIN_PIXELS:
                    continue
                difference = colour_distance(shared_i[label], shared_j[label]) - colour_distance(
                    independent_i[label], independent_j[label]
                )
                pairs.setdefault(LABEL_BY_ID[label].name, {}).setdefault((i, j), []).append(difference)
    per_class = {name: float(np.mean([np.mean(v) for v in found.values()])) for name, found in sorted(pairs.items())}
    low, high = bootstrap_over_masks(pairs, len(groups))
    overall = float(np.mean(list(per_class.values())))
    print("class            shared - independent colour W1 between masks (0-255; negative: closer when shared)")
    for name, value in per_class.items():
        print(f"{name:16s} {value:+8.2f}")
    print(
        f"mean over {len(per_class)} classes: {overall:+.2f}, "
        f"95% bootstrap interval over masks [{low:+.2f}, {high:+.2f}]"
    )
    interval = {"mean": overall, "low": low, "high": high, "classes": len(per_class)}

    jumps, changes = [], []
    for index, group in enumerate(groups[:4]):
        walk = interpolate_styles(
            group.mask,
            args.work / "walks" / f"mask{index}",
            STYLES[index % len(STYLES)],
            STYLES[(index + 1) % len(STYLES)],
            args.steps,
            WalkOptions(model=args.model, temperature=args.temp, sampling=sampling, device="cpu"),
        )
        frames = [np.asarray(Image.open(path)) for path in walk.frames]
        jumps.append(largest_jump_ratio(frames))
        changes.append(step_changes(frames))
        if index == 0:
            atomic_write_bytes(args.work / "walk.png", walk.strip.read_bytes())
    print(f"walks of {args.steps} frames: largest step / median step = {', '.join(f'{j:.2f}' for j in jumps)}")

    colours = [ids_to_color(ids) for ids in small_labels[:4]]
    grid = [
        [colour, *[image for image in row if image is not None]] for colour, row in zip(colours, shared, strict=False)
    ]
    save_grid(args.work / "styles.png", grid, ["mask", *[f"style {s}" for s in STYLES]])
    summary = {
        "model": str(args.model),
        "masks": len(groups),
        "styles": list(STYLES),
        "temperature": args.temp,
        "denoise_scale": args.denoise_scale,
        "shared_minus_independent_per_class": per_class,
        "shared_minus_independent": interval,
        "walk_largest_jump_over_median": jumps,
        "walk_step_changes": changes,
    }
    atomic_write_bytes(args.work / "summary.json", json.dumps(summary, indent=2).encode())
    print(f"pictures: {args.work / 'styles.png'}, {args.work / 'walk.png'}; figures: {args.work / 'summary.json'}")


if __name__ == "__main__":
    sys.exit(main())
