"""One look across many layouts, and a walk between two looks, from Python (issue 25).

    python examples/styles_and_walks.py      # a few seconds on 2 CPU cores, bundled demo model

Renders four toy masks in two shared styles (every mask drawn with the same noise per style),
then walks from style 3's look to style 7's on one mask and from one real photo's look to
another's. The same calls take a checkpoint of yours in place of ``"demo"``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fgaug import api
from fgaug.data.cityscapes import find_groups
from fgaug.data.toyworld import write_toy_cityscapes
from fgaug.generate.interpolate import WalkOptions, interpolate_photos, interpolate_styles


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="fgaug-styles-"))
    data = work / "toy"
    write_toy_cityscapes(data, {"train": 4}, size=(128, 256), seed=0)

    summary = api.generate(
        api.GenerateOptions(
            masks=str(data), out=str(work / "styled"), model="demo", n=2, style_seeds=[3, 7], device="cpu"
        )
    )
    records = [json.loads(line) for line in (work / "styled" / "manifest.jsonl").read_text().splitlines()]
    print(f"{summary.written} images; styles per mask: {sorted({(r['key'], r['style']) for r in records})}")

    groups = find_groups(data, ["train"], True).groups
    options = WalkOptions(model="demo", device="cpu")
    styles = interpolate_styles(groups[0].mask, work / "walk-styles", 3, 7, 6, options)
    photos = interpolate_photos(
        groups[0].mask,
        work / "walk-photos",
        (groups[1].photo, groups[1].mask),
        (groups[2].photo, groups[2].mask),
        6,
        options,
    )
    print(f"walks: {styles.strip} and {photos.strip} ({len(styles.frames)} frames each)")


if __name__ == "__main__":
    main()
