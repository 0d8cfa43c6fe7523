"""Walks between looks on one layout (issue 25): from one style's draw to another's, or from one
real photo's appearance to another's through content transfer.

Both walk in latent space and decode every frame under the same mask:

* **styles**: the noise of style A (what ``fgaug generate --style-seed A`` draws) towards style
  B's, decoded at temperature T, so the endpoints are those two draws;
* **photos**: the latents of photo A (encoded under its own mask) towards photo B's, decoded
  under the layout, so the endpoints are the two content transfers onto it.

The path is spherical (:func:`slerp`), not straight. Standard-normal noise in D dimensions lies
near the sphere of radius sqrt(D); the straight line between two independent draws dips to about
sqrt(D / 2) at its middle, where the prior puts no mass, and its images look like a draw at a much
lower temperature (flat, washed out). The great circle keeps the norm of two endpoints of equal
norm all the way; for two independent draws (nearly orthogonal, their norms a few parts in
sqrt(D) apart) its middle has the root mean square of their norms, and the line's 1/sqrt(2) of it.
Every frame is decoded alone (batch of one), so an endpoint is bitwise the plain draw of a batch
of one (``generate --batch-size 1``).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fgaug.data.cityscapes import ReadOptions, file_group, load_mask, load_pair, resize_photo, to_tensor
from fgaug.data.io import DataError, atomic_write_bytes, check_file_to_write, encode_png, read_json
from fgaug.data.preview import image_grid, to_uint8_image
from fgaug.data.writer import check_outside_tree_data
from fgaug.finite import require_finite
from fgaug.flow import FullGlow, network_precision
from fgaug.flow.sampling import PLAIN_SAMPLING, SamplingOptions
from fgaug.generate.draws import draw_noise, style_seed
from fgaug.generate.options import ModelUsed, load_named_model
from fgaug.generate.transfer import find_content_mask
from fgaug.runtime import resolve_device, resolve_precision
from fgaug.usage import UsageError, require_at_least, whole_number


def slerp(start: Tensor, end: Tensor, fraction: float) -> Tensor:
    r"""Spherical interpolation of each row of ``start`` towards ``end`` (rows flattened):

    .. math:: \mathrm{slerp}(a, b, t) = \frac{\sin((1 - t)\theta)}{\sin\theta} a
              + \frac{\sin(t \theta)}{\sin\theta} b, \qquad \cos\theta = \frac{a \cdot b}{|a|\,|b|}

    ``fraction`` 0 and 1 return the endpoints themselves; nearly parallel rows (where
    :math:`\sin\theta` vanishes) are interpolated linearly."""
    if fraction == 0:
        return start
    if fraction == 1:
        return end
    a, b = start.flatten(1).double(), end.flatten(1).double()
    cosine = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
    angle = torch.arccos(cosine.clamp(-1.0, 1.0))[:, None]
    sine = torch.sin(angle)
    straight = sine < 1e-6
    safe = torch.where(straight, torch.ones_like(sine), sine)
    weight_a = torch.where(straight, 1 - fraction * torch.ones_like(sine), torch.sin((1 - fraction) * angle) / safe)
    weight_b = torch.where(straight, fraction * torch.ones_like(sine), torch.sin(fraction * angle) / safe)
    return (weight_a * a + weight_b * b).to(start.dtype).view_as(start)


def slerp_levels(start: Sequence[Tensor], end: Sequence[Tensor], fraction: float) -> list[Tensor]:
    """:func:`slerp` of per-level latents, all levels of a row taken as one vector."""
    sizes = [level[0].numel() for level in start]
    joined = slerp(_join(start), _join(end), fraction)
    pieces = torch.split(joined, sizes, dim=1)
    return [piece.reshape(level.shape) for piece, level in zip(pieces, start, strict=True)]


def _join(levels: Sequence[Tensor]) -> Tensor:
    return torch.cat([level.flatten(1) for level in levels], dim=1)


WALK_RECORD = "walk.json"
"""The file in a walk's folder naming the frames the walk wrote: a later walk into the same folder
replaces those, and refuses to touch a ``frame_NNN.png`` or ``strip.png`` it does not name."""


WALK_FILE = re.compile(r"frame_[0-9]{3,}\.png|strip\.png")


def fractions(steps: int) -> list[float]:
    """``steps`` evenly spaced points from 0 to 1, both included."""
    if steps < 2:
        raise UsageError(f"--steps must be at least 2 (the two endpoints), got {steps}")
    return [index / (steps - 1) for index in range(steps)]


@dataclass
class Walk:
    """What an interpolation wrote: the frames in order, the strip of them side by side, and the
    model that decoded them."""

    frames: list[Path]
    strip: Path
    model: ModelUsed
    fractions: list[float]

    def to_dict(self) -> dict[str, object]:
        return {
            "frames": [str(path) for path in self.frames],
            "strip": str(self.strip),
            **self.model.to_dict(),
            "fractions": self.fractions,
        }


@dataclass(frozen=True)
class WalkOptions:
    """Where and how a walk runs: the model (found as for ``generate``), device, precision, how
    masks are read, and for style walks the temperature and sampling options."""

    model: str | Path | None = None
    temperature: float = 0.8
    sampling: SamplingOptions = PLAIN_SAMPLING
    device: str = "auto"
    precision: str = "auto"
    mask_format: str = "auto"
    snap_colors: bool = False

    def __post_init__(self) -> None:
        require_finite(temperature=self.temperature)


@dataclass(frozen=True)
class InterpolateOptions:
    """One ``fgaug interpolate`` walk on the layout ``mask``: between the style seeds
    ``start_style`` and ``end_style`` (``--from``, ``--to``), or between the looks of the real
    photos ``start_photo`` and ``end_photo`` (``--from-photo``, ``--to-photo``; each with its mask in
    its tree's gtFine folder or beside it), in ``steps`` frames, both ends included, written under
    ``out``, which then holds this walk's frames only."""

    mask: str | Path
    out: str | Path = "interpolation"
    start_style: int | None = None
    end_style: int | None = None
    start_photo: str | Path | None = None
    end_photo: str | Path | None = None
    steps: int = 8
    walk: WalkOptions = field(default_factory=WalkOptions)

    def __post_init__(self) -> None:
        styles, photos = (self.start_style, self.end_style), (self.start_photo, self.end_photo)
        if any(v is not None for v in styles) == any(v is not None for v in photos):
            raise UsageError("give --from and --to (style seeds), or --from-photo and --to-photo")
        if None in styles and None in photos:
            raise UsageError("a walk needs both ends: --from with --to, or --from-photo with --to-photo")
        for name, option in (("start_style", "--from"), ("end_style", "--to")):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, whole_number(option, getattr(self, name)))
        require_at_least("--steps", self.steps, 2)
        require_at_least("--from", self.start_style, 0)  # as generate's --style-seed: a walk's ends are styles
        require_at_least("--to", self.end_style, 0)


def interpolate(options: InterpolateOptions) -> Walk:
    """The walk ``options`` asks for: :func:`interpolate_styles` or :func:`interpolate_photos`."""
    if options.start_style is not None and options.end_style is not None:
        ends = (options.start_style, options.end_style)
        return interpolate_styles(options.mask, options.out, *ends, options.steps, options.walk)
    photos = [Path(photo) for photo in (options.start_photo, options.end_photo) if photo is not None]
    remedy = "put the photo's labelIds file there"
    start, end = ((photo, find_content_mask(photo, remedy)) for photo in photos)
    return interpolate_photos(options.mask, options.out, start, end, options.steps, options.walk)


def interpolate_styles(
    mask: str | Path, out: str | Path, start_style: int, end_style: int, steps: int, options: WalkOptions
) -> Walk:
    """Frames from style ``start_style``'s draw to ``end_style``'s on ``mask``, written under ``out``."""
    points = fractions(steps)
    earlier = walk_output(Path(out), [(Path(mask), Path(mask))])
    model, model_used, read, device, dtype = _open(options)
    mask_ids, condition = _read_mask(Path(mask), read, options.mask_format)
    start, end = (draw_noise(model, [style_seed(style)]) for style in (start_style, end_style))
    sampler = options.sampling.bind(model)
    images = []
    for fraction in points:
        noise = slerp_levels(start, end, fraction)
        with network_precision(dtype):
            drawn = sampler.sample(condition.to(device), 1, options.temperature, noise=noise)
        if bool(drawn.diverged[0, 0]):
            raise DataError(f"{mask}: the frame at {fraction:.3f} diverged at T={options.temperature}; lower --temp")
        images.append(to_uint8_image(drawn.images[0, 0]))
    return _write(Path(out), earlier, images, mask_ids.shape, points, model_used)


def interpolate_photos(
    mask: str | Path,
    out: str | Path,
    start_photo: tuple[str | Path, str | Path],
    end_photo: tuple[str | Path, str | Path],
    steps: int,
    options: WalkOptions,
) -> Walk:
    """Frames from photo A's look to photo B's on ``mask``: each photo (given with its own mask,
    ``(photo, photo_mask)``) is encoded under its mask, and the latents are walked and decoded
    under ``mask``."""
    points = fractions(steps)
    labelled = [(Path(mask), Path(mask)), *((Path(p), Path(m)) for p, m in (start_photo, end_photo))]
    earlier = walk_output(Path(out), labelled)
    model, model_used, read, device, dtype = _open(options)
    mask_ids, condition = _read_mask(Path(mask), read, options.mask_format)
    with network_precision(dtype):
        start, end = (
            _latents(model, Path(p), Path(m), read, options.mask_format, device) for p, m in (start_photo, end_photo)
        )
        images = [to_uint8_image(model.decode(condition.to(device), slerp_levels(start, end, t))[0]) for t in points]
    return _write(Path(out), earlier, images, mask_ids.shape, points, model_used)


def walk_output(out: Path, inputs: Sequence[tuple[Path, Path]]) -> set[str]:
    """The file names an earlier walk into ``out`` wrote (:func:`earlier_walk`), after refusing,
    before any work, an ``out`` that is a file or cannot be written, one inside the Cityscapes data
    of an input (each of ``inputs`` a file and the label file it comes with: a mask, itself), and
    one holding an input (under a name the walk writes, a mask saved as ``strip.png``, or any)."""
    if out.is_file():
        raise DataError(f"--out {out}: a file; a walk is written into a folder")
    for named, labels in inputs:
        check_outside_tree_data(out, "--out", named, labels)
    check_file_to_write(out / "strip.png", "--out", "walk/")
    written = {(out / name).resolve() for name in (WALK_RECORD, "strip.png")}
    for path in dict.fromkeys(path for pair in inputs for path in pair):
        if path.resolve() in written or (path.parent.resolve() == out.resolve() and WALK_FILE.fullmatch(path.name)):
            raise DataError(f"--out {out}: it holds the input {path}, which the walk would write over")
        if path.parent.resolve() == out.resolve():
            raise DataError(
                f"--out {out}: the folder of the input {path}; the frames would lie among the inputs, where a later "
                "run over that folder would read them: name another folder"
            )
    return earlier_walk(out)


def earlier_walk(out: Path) -> set[str]:
    """The file names an earlier walk into ``out`` wrote (its :data:`WALK_RECORD`), which this walk
    may replace. A ``frame_NNN.png`` or ``strip.png`` there that no record names is someone else's:
    a :class:`DataError` names it, before any work. A folder with no record but a ``strip.png``
    holds a walk from before the record was written: its frames are replaced."""
    record = out / WALK_RECORD
    found = sorted(path.name for path in out.glob("*.png") if WALK_FILE.fullmatch(path.name))
    if not record.is_file() and "strip.png" in found:
        return set(found)
    document = read_json(record, "walk record") if record.is_file() else {"files": []}
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list) or not all(isinstance(name, str) and WALK_FILE.fullmatch(name) for name in files):
        raise DataError(f"{record}: not a walk record (a list of frame_NNN.png and strip.png under 'files')")
    for name in found:
        if name not in files:
            raise DataError(
                f"{out / name}: no {WALK_RECORD} of an fgaug walk names it; give --out an empty folder or an earlier "
                "walk's"
            )
    return set(files)


def _write(
    out: Path, earlier: set[str], images: list[np.ndarray], size: tuple[int, int], points: list[float], model: ModelUsed
) -> Walk:
    """Every frame at the mask's native size (as ``generate`` writes photos) and the strip, then
    the record; the earlier walk's frames that this one has not are removed. Until the new record
    is in place the old one names both walks' files, so an interrupted walk can be run again."""
    out.mkdir(parents=True, exist_ok=True)
    frames = [out / f"frame_{index:03d}.png" for index in range(len(images))]
    strip = out / "strip.png"
    files = [path.name for path in [*frames, strip]]
    _record(out, sorted(earlier | set(files)))
    for frame, image in zip(frames, images, strict=True):
        atomic_write_bytes(frame, encode_png(resize_photo(image, size)))
    atomic_write_bytes(strip, encode_png(image_grid([images], [f"{t:.2f}" for t in points])))
    for stale in sorted(earlier - set(files)):
        (out / stale).unlink(missing_ok=True)
    _record(out, files)
    return Walk(frames, strip, model, points)


def _record(out: Path, files: list[str]) -> None:
    atomic_write_bytes(out / WALK_RECORD, (json.dumps({"files": files}, indent=1) + "\n").encode())


def _open(options: WalkOptions) -> tuple[FullGlow, ModelUsed, ReadOptions, torch.device, torch.dtype | None]:
    device = resolve_device(options.device)
    checkpoint, model_used = load_named_model(options.model, device)
    model = checkpoint.model
    read = ReadOptions(
        model.config.image_size, boundary=model.config.mask_channels == 4, snap_colors=options.snap_colors
    )
    return model, model_used, read, device, resolve_precision(options.precision, device)


def _read_mask(path: Path, read: ReadOptions, mask_format: str) -> tuple[np.ndarray, Tensor]:
    if not path.is_file():
        raise DataError(f"{path}: {'a folder; MASK is one mask file' if path.is_dir() else 'mask not found'}")
    label_ids, condition = load_mask(file_group(path, mask_format), read)
    return label_ids, to_tensor(condition)[None]


@torch.no_grad()
def _latents(
    model: FullGlow, photo: Path, mask: Path, read: ReadOptions, mask_format: str, device: torch.device
) -> list[Tensor]:
    for path, what in ((mask, "mask"), (photo, "photo")):
        if not path.is_file():
            raise DataError(f"{path}: {what} not found")
    condition, pixels = load_pair(file_group(mask, mask_format, photo), read)
    return model.encode(to_tensor(condition)[None].to(device), to_tensor(pixels)[None].to(device))


def step_changes(frames: Sequence[np.ndarray]) -> list[float]:
    """Mean absolute change per pixel (in [0, 1] units) between consecutive frames."""
    pairs = itertools.pairwise(frames)
    return [float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / 255) for a, b in pairs]


def largest_jump_ratio(frames: Sequence[np.ndarray]) -> float:
    """The largest step change over the median one (1 for an even walk; NaN for fewer than 2 steps)."""
    changes = step_changes(frames)
    median = float(np.median(changes)) if changes else math.nan
    return max(changes) / median if changes and median > 0 else math.nan
