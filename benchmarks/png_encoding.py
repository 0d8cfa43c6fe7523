"""PNG encoding: fgaug's encoder (``fgaug.data.io.encode_png``) against Pillow at level 4, its encoder before.

Part 1 encodes each kind of file fgaug writes, at Cityscapes' 1024x2048 unless named otherwise,
with both encoders interleaved round by round on one thread, checks that each file decodes to the
same pixels, and prints the median milliseconds and size of each, and Pillow's time over fgaug's
per round (median [quartiles]):

- a camera photo at its own resolution (matplotlib's bundled ``grace_hopper.jpg``, 512x600, the
  one real photo on an offline machine), and the same photo resized to 1024x2048;
- ``generate``'s photos: a 64x128 draw (the bundled demo model's size) and a 256x512 draw
  (``paper-256``'s) resized to their mask's 1024x2048 as the writer resizes them, the draws
  stood in for by toy-world photos;
- a toy-world photo rendered at 1024x2048 (grain in every pixel, the hardest case for zlib);
- the label files of a 1024x2048 toy-world frame: labelIds, labelTrainIds, 16-bit instanceIds, colour.

Part 2 (``--generate``) times ``fgaug generate`` with the demo model on a 1024x2048 toy tree,
each sample written with every label file on the default write threads, with Pillow's level 4
put back in the writer for the "before" runs, interleaved round by round; with ``--command
layouts``, ``fgaug layouts --photos --paste 3`` instead (each layout a photo and five label files).

    python benchmarks/png_encoding.py --rounds 15
    python benchmarks/png_encoding.py --rounds 0 --generate 7
    python benchmarks/png_encoding.py --rounds 0 --generate 5 --command layouts --samples 2
"""

from __future__ import annotations

import fgaug  # noqa: F401  # first: it bounds OpenMP spinning before torch is loaded

# isort: split

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import matplotlib
import numpy as np
from PIL import Image
from quartiles import quartiles
from write_threads import seconds_of

from fgaug.data import io as fgaug_io
from fgaug.data.background import write_threads
from fgaug.data.cityscapes import resize_photo
from fgaug.data.labels import ids_to_color, ids_to_train_ids
from fgaug.data.toyworld import make_scene, write_toy_cityscapes

CITYSCAPES = (1024, 2048)


def pillow_level_4(array: np.ndarray) -> bytes:
    """The encoder fgaug used before: Pillow, zlib level 4, Pillow's own filter choice."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()


def files() -> dict[str, np.ndarray]:
    """Each kind of file, named."""
    bundled = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    camera = np.asarray(Image.open(bundled).convert("RGB"))
    frame = make_scene(*CITYSCAPES, layout_seed=3)
    return {
        "camera photo, 512x600": np.ascontiguousarray(camera),
        "camera photo resized": resize_photo(camera, CITYSCAPES),
        "generate: 64x128 draw": resize_photo(make_scene(64, 128, layout_seed=5).photo, CITYSCAPES),
        "generate: 256x512 draw": resize_photo(make_scene(256, 512, layout_seed=5).photo, CITYSCAPES),
        "toy photo rendered at full size": frame.photo,
        "labelIds": frame.label_ids,
        "labelTrainIds": ids_to_train_ids(frame.label_ids),
        "instanceIds (16-bit)": frame.instance_ids.astype(np.uint16),
        "color": ids_to_color(frame.label_ids),
    }


def seconds_to_encode(encoder: Callable[[np.ndarray], bytes], pixels: np.ndarray) -> tuple[float, int]:
    started = time.perf_counter()
    encoded = encoder(pixels)
    elapsed = time.perf_counter() - started
    with Image.open(io.BytesIO(encoded)) as image:
        assert np.array_equal(np.asarray(image), pixels), "a file must decode to the pixels encoded"
    return elapsed, len(encoded)


def compare_files(rounds: int) -> None:
    encoders = {"Pillow 4": pillow_level_4, "fgaug": fgaug_io.encode_png}
    print(f"per file, one thread, median of {rounds} interleaved rounds; speed-up: Pillow's time / fgaug's, per round")
    print("| file | Pillow 4 ms | fgaug ms | speed-up [quartiles] | Pillow 4 MiB | fgaug MiB | size |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, pixels in files().items():
        seconds: dict[str, list[float]] = {encoder: [] for encoder in encoders}
        sizes: dict[str, int] = {}
        for round_index in range(rounds):
            for encoder in encoders if round_index % 2 == 0 else reversed(encoders):
                elapsed, sizes[encoder] = seconds_to_encode(encoders[encoder], pixels)
                seconds[encoder].append(elapsed)
        low, median, high = quartiles([a / b for a, b in zip(seconds["Pillow 4"], seconds["fgaug"], strict=True)])
        before, after = (statistics.median(seconds[encoder]) * 1e3 for encoder in encoders)
        mib = {encoder: size / 2**20 for encoder, size in sizes.items()}
        print(
            f"| {name} | {before:.1f} | {after:.1f} | {median:.2f}x [{low:.2f}, {high:.2f}] "
            f"| {mib['Pillow 4']:.3f} | {mib['fgaug']:.3f} | {sizes['fgaug'] / sizes['Pillow 4'] - 1:+.1%} |"
        )


WRITERS = {"generate": ("fgaug.data.writer",), "layouts": ("fgaug.data.layouts", "fgaug.data.cutouts")}
"""The modules whose ``encode_png`` each command writes its files with."""


def compare_generate(rounds: int, masks: int, samples: int, command: str) -> None:
    """``command`` at 1024x2048, its writers' encoder Pillow's (before) or fgaug's, interleaved."""
    with tempfile.TemporaryDirectory(prefix="fgaug-png-encoding-") as folder:
        root = Path(folder) / "toy"
        write_toy_cityscapes(root, {"train": masks}, size=CITYSCAPES, seed=7)
        source = root / "gtFine" / "train"
        threads = write_threads()
        seconds_of(command, source, Path(folder) / "warm", samples, threads)
        seconds: dict[str, list[float]] = {"Pillow 4": [], "fgaug": []}
        for round_index in range(rounds):
            for encoder in seconds if round_index % 2 == 0 else reversed(seconds):
                with ExitStack() as patches:
                    for module in WRITERS[command] if encoder == "Pillow 4" else ():
                        patches.enter_context(mock.patch(f"{module}.encode_png", pillow_level_4))
                    seconds[encoder].append(seconds_of(command, source, Path(folder) / "out", samples, threads))
    images = masks * samples
    low, median, high = quartiles([a / b for a, b in zip(seconds["Pillow 4"], seconds["fgaug"], strict=True)])
    what = "demo model, photos" if command == "generate" else "--photos --paste 3, layouts"
    print(f"{command}, {what}: {images} at 1024x2048 with their label files, {threads} write threads")
    print(f"(the default here); median of {rounds} interleaved rounds")
    for encoder, times in seconds.items():
        print(f"  {encoder}: {statistics.median(times):.2f} s, {images / statistics.median(times):.2f} images/s")
    print(f"  speed-up: {median:.2f}x [{low:.2f}, {high:.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="rounds of part 1 (0: skip it)")
    parser.add_argument("--generate", type=int, default=0, help="rounds of part 2, generate end to end (0: skip it)")
    parser.add_argument("--command", choices=tuple(WRITERS), default="generate", help="what part 2 runs")
    parser.add_argument("--masks", type=int, default=6)
    parser.add_argument("--samples", type=int, default=4, help="photos per mask in part 2")
    args = parser.parse_args()
    if args.rounds:
        compare_files(args.rounds)
    if args.generate:
        compare_generate(args.generate, args.masks, args.samples, args.command)


if __name__ == "__main__":
    main()
