"""Generation engine: N samples per mask, written as an augmented Cityscapes tree.

Every draw has its own seed, derived from the global seed, the mask's key (its path relative to
the input root) and the sample and candidate index. The same command therefore draws the same
noise whatever the batch size, the number of processes, the order of the masks, or an
interruption and resumption; the images agree up to float rounding (one 8-bit level at most),
since batched convolutions round differently with the batch's composition.

With ``best_of = K`` each requested sample is the most likely of K draws under the model,
``log p(photo | mask)`` (CAFLOW's selection by conditional likelihood).

A draw whose reverse pass diverged (a patch blown up to noise or black, more frequent at high
temperature) is never written: when all K draws of a sample diverged, K more are drawn with the
next candidate indices, up to ``MAX_REDRAWS`` times, so the output stays reproducible.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fgaug import distributed
from fgaug.allocate import allocate
from fgaug.checkpoint import Checkpoint, load_checkpoint
from fgaug.content import ContentSource, EditFill, transfer_onto_layouts
from fgaug.data.cityscapes import Group, ReadOptions, find_groups, load_mask, read_label_ids, to_tensor
from fgaug.data.io import DataError, read_rgb
from fgaug.data.labels import ids_to_color
from fgaug.data.record import RunRecord, check_output, file_identity, masks_used, take_output
from fgaug.data.writer import OWN_OUTPUTS, DatasetWriter, WriterOptions, check_output_root, merge_manifests
from fgaug.finite import require_finite
from fgaug.flow import Samples, compile_networks, network_precision
from fgaug.flow.fullglow import bits_per_dim
from fgaug.flow.graphs import GraphedSampler
from fgaug.flow.sampling import Sampler, SamplingOptions
from fgaug.ignore import IgnoreRule
from fgaug.preview import save_grid, to_uint8_image
from fgaug.progress import Progress, SilentProgress
from fgaug.resources import bundled_dir
from fgaug.runtime import RuntimeChoiceError, resolve_precision
from fgaug.usage import UsageError

DEMO_MODEL_NAME = "demo-toy-64x128.pt"
DEMO_MODEL = "demo"
"""``--model demo`` (or ``FGAUG_MODEL=demo``) names the bundled toy-world demo model."""
MODEL_ENVIRONMENT_VARIABLE = "FGAUG_MODEL"
MAX_REDRAWS = 8
PREVIEW_MASKS = 6
"""Masks a ``--preview`` grid shows at most (the first ones with samples)."""
CONTENT_FILLS = ("transfer", "prior")


@dataclass
class GenerateOptions:
    masks: str | Path
    out: str | Path = "augmented"
    model: str | Path | None = None
    n: int = 5
    temperature: float = 0.8
    seed: int = 0
    batch_size: int = 8
    best_of: int = 1
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    cuda_graphs: bool = False
    allocate: str = "uniform"
    class_weights: str | None = None
    reject_fraction: float = 0.0
    content_from: str | None = None
    keep_unchanged: bool = True
    content_fill: str = "transfer"
    ignore_segmenter: str | None = None
    ignore_below: float = 0.05
    splits: Sequence[str] | None = None
    mask_format: str = "auto"
    snap_colors: bool = False
    skip_bad: bool = False
    at_model_resolution: bool = False
    preview: str | Path | None = None
    limit: int | None = None
    allowed_failed: float = 0.0
    """The fraction of requested samples that may go unwritten (diverged on every redraw, or of
    a mask skipped with ``skip_bad``) for the run to count as :attr:`GenerateSummary.accepted`."""
    guidance: float = 0.0
    """Classifier-free guidance weight (a model trained with condition dropout; 0: none)."""
    denoise_scale: float | None = None
    """One score step of this many times the noise variance after each draw (a model trained with
    Gaussian noise; None: no denoising)."""

    style_seeds: Sequence[int] | None = None
    """Style seeds: sample ``i`` of every mask is drawn with style ``style_seeds[i]``'s noise, the
    same for every mask (one look across all masks); ``n`` must equal their number."""
    overwrite: bool = False
    """Replace an output tree made with other settings (see :mod:`fgaug.data.record`); without it
    such a tree is refused."""

    @property
    def sampling(self) -> SamplingOptions:
        return SamplingOptions(self.guidance, self.denoise_scale)

    @property
    def draw_seeds(self) -> DrawSeeds:
        return DrawSeeds(self.seed, tuple(self.style_seeds) if self.style_seeds is not None else None)


NOT_SHAPING = (
    "out",
    "batch_size",
    "device",
    "precision",
    "compile",
    "cuda_graphs",
    "preview",
    "allowed_failed",
    "overwrite",
)
""":class:`GenerateOptions` fields that do not shape the samples a tree holds: where it is, how
fast and on what the same draws are computed (which changes a pixel by float rounding at most:
see the module docstring), a side preview, the exit status, what to do with an existing tree.
Every other field, a new one included, is recorded in ``fgaug-run.json`` and must be equal for
a rerun to resume."""
MASK_SELECTION = ("splits", "limit", "skip_bad")
"""Fields choosing which masks are used. A mask's samples depend on them only through a
non-uniform ``allocate`` (N x masks samples spread over the masks used), so they are not
recorded; the masks used are, with such an allocation."""
FILE_FIELDS = ("model", "class_weights", "ignore_segmenter")
"""Fields naming a file whose content shapes the output: recorded by its SHA-256."""
FOLDER_FIELDS = ("masks", "content_from")
"""Fields naming a folder: recorded as its absolute path."""
OPTION_NAMES = {"temperature": "--temp", "reject_fraction": "--reject", "ignore_segmenter": "--ignore-map"}
"""Command-line names of fields whose name is not ``--field-name``."""


@dataclass(frozen=True)
class ModelUsed:
    """The checkpoint a run sampled with: its path, how it was named, its id (``run@step``) and the
    SHA-256 of its file, which identifies it wherever the run's output is recorded."""

    path: Path
    source: str
    id: str
    sha256: str

    @classmethod
    def of(cls, checkpoint: Checkpoint, source: str) -> ModelUsed:
        return cls(checkpoint.path, source, checkpoint.model_id, checkpoint.sha256)

    def __str__(self) -> str:
        return f"{self.path} ({self.source}), {self.id}"

    def to_dict(self) -> dict[str, str]:
        return {"model": str(self.path), "model_source": self.source, "model_id": self.id, "model_sha256": self.sha256}


@dataclass
class GenerateSummary:
    """What a run did. ``skipped``: samples already written by an earlier run; ``failed``: one
    message per failure; ``failed_samples``: the requested samples not written, of ``requested``
    (``n`` for every mask found, skipped bad masks included)."""

    out: Path
    model: ModelUsed
    masks: int
    written: int
    skipped: int
    failed: list[str] = field(default_factory=list)
    diverged_draws: int = 0
    seconds: float = 0.0
    preview: Path | None = None
    preview_masks: int = 0
    """Masks shown in the preview (the first :data:`PREVIEW_MASKS` with samples)."""
    requested: int = 0
    failed_samples: int = 0
    allowed_failed: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Every requested sample is written (now or by an earlier run)."""
        return self.failed_samples == 0

    @property
    def accepted(self) -> bool:
        """Complete, or the samples not written are at most the ``allowed_failed`` fraction."""
        return self.complete or self.failed_samples / self.requested <= self.allowed_failed

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            **self.model.to_dict(),
            "masks": self.masks,
            "written": self.written,
            "skipped": self.skipped,
            "requested": self.requested,
            "failed": self.failed_samples,
            "failures": self.failed,
            "complete": self.complete,
            "allowed_failed_fraction": self.allowed_failed,
            "accepted": self.accepted,
            "diverged_draws": self.diverged_draws,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_second, 3),
            "preview": str(self.preview) if self.preview else None,
            "preview_masks": self.preview_masks,
        }


def find_model(named: str | Path | None) -> tuple[Path, str]:
    """The checkpoint a command samples with, and how it was named: ``--model``, else
    ``$FGAUG_MODEL``; :data:`DEMO_MODEL` in either names the bundled toy-world demo model. fgaug
    never picks a model nobody named: naming none is a :class:`UsageError`."""
    if named:
        given, source = str(named), "--model"
    elif os.environ.get(MODEL_ENVIRONMENT_VARIABLE):
        given, source = os.environ[MODEL_ENVIRONMENT_VARIABLE], f"${MODEL_ENVIRONMENT_VARIABLE}"
    else:
        raise UsageError(
            f"no model named: pass --model CHECKPOINT (--model {DEMO_MODEL} for the bundled toy-world model) "
            f"or set ${MODEL_ENVIRONMENT_VARIABLE}"
        )
    if given == DEMO_MODEL:
        return bundled_dir() / DEMO_MODEL_NAME, f"{source} {DEMO_MODEL}: the bundled toy-world model"
    return Path(given), source


def load_named_model(named: str | Path | None, device: torch.device | str = "cpu") -> tuple[Checkpoint, ModelUsed]:
    """The checkpoint :func:`find_model` finds, loaded on ``device``, and what identifies it."""
    path, source = find_model(named)
    checkpoint = load_checkpoint(path, device)
    return checkpoint, ModelUsed.of(checkpoint, source)


def run_record(options: GenerateOptions, model: ModelUsed, groups: Sequence[Group]) -> RunRecord:
    """What shapes the samples of ``options`` (every field but :data:`NOT_SHAPING` and
    :data:`MASK_SELECTION`), for ``fgaug-run.json``."""
    settings, files = {}, {}
    for option in fields(options):
        name, value = option.name, getattr(options, option.name)
        if name in NOT_SHAPING or name in MASK_SELECTION:
            continue
        if name == "model":
            value, files[name] = model.sha256, str(model.path.resolve())
        elif name in FILE_FIELDS and value is not None:
            value, files[name] = file_identity(value), str(Path(value).resolve())
        elif name in FOLDER_FIELDS and value is not None:
            value = str(Path(value).resolve())
        settings[name] = value
    if options.allocate != "uniform":
        settings["masks_used"] = masks_used(groups)
    defaults = {option.name: option.default for option in fields(GenerateOptions) if option.default is not MISSING}
    return RunRecord("generate", settings, files, defaults, {**OPTION_NAMES, "masks_used": "the masks used"})


def draw_seed(seed: int, key: str, sample: int, candidate: int = 0) -> int:
    """The seed of one draw: a hash of the global seed, the mask key and the indices."""
    digest = hashlib.sha256(f"{seed}\0{key}\0{sample}\0{candidate}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


STYLE_KEY = "\0style"
"""The key of a style's draws in :func:`draw_seed`: no mask's key (a relative path) can equal it."""


def style_seed(style: int, candidate: int = 0) -> int:
    """The seed of style ``style``'s ``candidate``-th draw: the same for every mask, whatever the
    global seed (the style number is the seed)."""
    return draw_seed(style, STYLE_KEY, 0, candidate)


@dataclass(frozen=True)
class DrawSeeds:
    """Which seed each draw gets: by default from the global ``seed``, the mask's key and the
    sample and candidate index (:func:`draw_seed`), so every mask has its own looks; with
    ``styles``, sample ``i`` of every mask is style ``styles[i]`` (:func:`style_seed`), so all
    masks share each look."""

    seed: int
    styles: tuple[int, ...] | None = None

    def of(self, key: str, sample: int, candidate: int) -> int:
        if self.styles is None:
            return draw_seed(self.seed, key, sample, candidate)
        return style_seed(self.styles[sample], candidate)


def draw_noise(model: Sampler, seeds: Sequence[int], pin: bool = False) -> list[torch.Tensor]:
    """Per-level noise for a batch of draws, each row from its own seed, drawn on the CPU (so a seed
    gives the same image on every device); ``pin`` for a CUDA model, whose copy of pinned noise
    to the device does not wait for the host."""
    per_draw = [model.sample_noise(1, torch.Generator().manual_seed(seed)) for seed in seeds]
    noise = [torch.cat(levels, dim=0) for levels in zip(*per_draw, strict=True)]
    return [eps.pin_memory() for eps in noise] if pin else noise


@dataclass
class Draw:
    """One delivered sample: ``image`` (C, H, W) in [0, 1], its ``log_likelihood`` under the model,
    the ``candidate`` index of its seed, and how many draws ``diverged`` before it was found."""

    image: torch.Tensor
    log_likelihood: float
    candidate: int
    diverged: int


@dataclass
class DrawFailure:
    """Every draw of a sample diverged; ``diverged`` counts them."""

    diverged: int


def draw_best(
    model: Sampler,
    masks: torch.Tensor,
    keys: Sequence[str],
    samples: Sequence[Sequence[int]],
    temperature: float,
    seed: int | DrawSeeds,
    best_of: int = 1,
) -> list[list[Draw | DrawFailure]]:
    """For mask ``m`` (key ``keys[m]``) and each index in ``samples[m]`` (the same count for every
    mask), the most likely of ``best_of`` draws that did not diverge. Where all of them diverged,
    ``best_of`` more are drawn with the next candidate indices, up to :data:`MAX_REDRAWS` times.
    ``seed``: the global seed, or the :class:`DrawSeeds` rule.

    The draws of one call come back to the host in one copy; choosing among them reads no GPU value."""
    require_finite(temperature=temperature)
    seed = seed if isinstance(seed, DrawSeeds) else DrawSeeds(seed)
    per_mask = len(samples[0])
    drawn = _draw(model, masks, keys, samples, range(best_of), temperature, seed)
    shape = (len(keys), per_mask, best_of)
    images = drawn.images.view(*shape, *drawn.images.shape[2:])
    likelihoods, diverged = drawn.log_likelihood.view(*shape), drawn.diverged.view(*shape)
    results: list[list[Draw | DrawFailure]] = []
    for m, key in enumerate(keys):
        row: list[Draw | DrawFailure] = []
        for s, sample in enumerate(samples[m]):
            draw = _most_likely(images[m, s], likelihoods[m, s], diverged[m, s], range(best_of), 0)
            row.append(draw or _redraw(model, masks[m : m + 1], key, sample, temperature, seed, best_of))
        results.append(row)
    return results


def _most_likely(
    images: torch.Tensor, likelihoods: torch.Tensor, diverged: torch.Tensor, candidates: range, earlier_diverged: int
) -> Draw | None:
    """The most likely of one sample's candidate draws, or None when that one diverged (then all
    did: a diverged draw has log-likelihood -inf)."""
    best = int(likelihoods.argmax())
    if diverged[best]:
        return None
    return Draw(images[best], float(likelihoods[best]), candidates[best], earlier_diverged + int(diverged.sum()))


def _draw(
    model: Sampler,
    masks: torch.Tensor,
    keys: Sequence[str],
    samples: Sequence[Sequence[int]],
    candidates: range,
    temperature: float,
    seed: DrawSeeds,
) -> Samples:
    seeds = [
        seed.of(key, sample, c)
        for key, indices in zip(keys, samples, strict=True)
        for sample in indices
        for c in candidates
    ]
    noise = draw_noise(model, seeds, pin=masks.is_cuda)
    drawn = model.sample(masks, len(samples[0]) * len(candidates), temperature, noise=noise)
    return Samples(*to_host(drawn.images, drawn.log_likelihood, drawn.diverged))


def to_host(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Copy tensors to the CPU with one wait for the device (not one per tensor)."""
    copies = [tensor.to("cpu", non_blocking=True) for tensor in tensors]
    if any(tensor.is_cuda for tensor in tensors):
        torch.cuda.current_stream(tensors[0].device).synchronize()
    return copies


def _redraw(
    model: Sampler, mask: torch.Tensor, key: str, sample: int, temperature: float, seed: DrawSeeds, best_of: int
) -> Draw | DrawFailure:
    for attempt in range(1, MAX_REDRAWS + 1):
        candidates = range(attempt * best_of, (attempt + 1) * best_of)
        drawn = _draw(model, mask, [key], [[sample]], candidates, temperature, seed)
        draw = _most_likely(drawn.images[0], drawn.log_likelihood[0], drawn.diverged[0], candidates, attempt * best_of)
        if draw is not None:
            return draw
    return DrawFailure((MAX_REDRAWS + 1) * best_of)


@dataclass
class _Work:
    group: Group
    samples: list[int]
    count: int = 0
    """Samples this mask gets in all (its allocation); ``samples`` are those still to write."""


def _batches(work: Sequence[_Work], best_of: int, batch_size: int) -> Iterator[list[_Work]]:
    """Batches of masks sharing one pending-sample count (``FullGlow.sample`` draws the same
    number per mask); a mask with more draws than fit in a batch is split over several."""
    per_batch = max(1, batch_size // best_of)
    pending: list[_Work] = []
    for item in work:
        if len(item.samples) * best_of >= batch_size:
            for start in range(0, len(item.samples), per_batch):
                yield [_Work(item.group, item.samples[start : start + per_batch], item.count)]
            continue
        if pending and (
            len(pending[0].samples) != len(item.samples)
            or (len(pending) + 1) * len(item.samples) * best_of > batch_size
        ):
            yield pending
            pending = []
        pending.append(item)
    if pending:
        yield pending


def generate(options: GenerateOptions, progress: Progress | None = None) -> GenerateSummary:
    """Write ``options.n`` samples per mask under ``options.out`` (see the module docstring).

    Under ``torchrun`` each process takes every ``world_size``-th mask and writes its own
    manifest part; rank 0 merges them into one ``manifest.jsonl``. The images are a single-process
    run's up to float rounding, since every draw's seed depends on the mask, not on the process.
    The process group is torn down however the run ends.
    """
    if options.n < 1 or options.best_of < 1 or options.batch_size < 1:
        raise UsageError("--samples, --best-of and --batch-size must be at least 1")
    require_finite(temperature=options.temperature, allowed_failed=options.allowed_failed)
    if options.temperature < 0:
        raise UsageError(f"--temp must be >= 0, got {options.temperature}")
    if not 0 <= options.allowed_failed <= 1:
        raise UsageError(f"--allow-failed must lie in [0, 1], got {options.allowed_failed}")
    check_modes(options)
    find_model(options.model)  # naming no model is a usage error, found before any input is read
    start = time.perf_counter()
    context, device = distributed.start(options.device)
    try:
        summary = _generate_in_process(options, context, device, progress)
    finally:
        distributed.stop(context)
    summary.seconds = time.perf_counter() - start
    return summary


def _generate_in_process(
    options: GenerateOptions, context: distributed.Distributed, device: torch.device, progress: Progress | None
) -> GenerateSummary:
    """This process's share of :func:`generate`, with the totals of every process."""
    progress = (progress or SilentProgress()) if context.is_main else SilentProgress()
    network_dtype = resolve_precision(options.precision, device)
    if options.cuda_graphs and device.type != "cuda":
        raise RuntimeChoiceError(f"--cuda-graphs needs a CUDA device, not {device}")
    masks_root = Path(options.masks)
    discovery = find_groups(masks_root, options.splits, False, options.mask_format, options.skip_bad)  # type: ignore[arg-type]
    groups = discovery.groups[: options.limit] if options.limit else discovery.groups
    out = Path(options.out)
    check_output_root(out, masks_root)
    checkpoint, model_used = load_named_model(options.model, device)
    counts = allocate(groups, options.n, options.allocate, _path(options.class_weights), options.snap_colors)
    record = run_record(options, model_used, groups)
    clear = check_output(out, record, OWN_OUTPUTS, options.overwrite)
    if context.is_main:
        take_output(out, masks_root, record, OWN_OUTPUTS, clear)
    context.barrier()
    part = f"rank{context.rank}" if context.active else None
    writer_options = WriterOptions(options.at_model_resolution, snap_colors=options.snap_colors)
    writer = DatasetWriter(out, masks_root, writer_options, part)
    if options.compile:
        compile_networks(checkpoint.model)
    config = checkpoint.model.config
    shard = list(range(len(groups)))[context.rank :: context.world_size]
    work = [
        _Work(groups[g], [i for i in range(counts[g]) if not writer.is_finished(groups[g], i)], counts[g])
        for g in shard
    ]
    work = [item for item in work if item.samples]
    pending = sum(len(item.samples) for item in work)
    requested = sum(counts[g] for g in shard)
    progress.log(f"model: {model_used}")
    progress.start("generating", pending)
    if options.content_from:
        source = ContentSource.open(masks_root, Path(options.content_from), options.snap_colors)
        tally = _transfer_work(work, options, checkpoint, source, device, writer, progress)
    else:
        tally = _generate_work(work, options, checkpoint, network_dtype, device, writer, progress)
    progress.stop()
    if context.is_main:  # masks refused when the tree was read (--skip-bad): none of their samples is written
        tally.failures = [*discovery.skipped, *tally.failures]
        tally.failed_samples += len(discovery.skipped) * options.n
    totals = context.sum(
        [tally.written, requested - pending, len(tally.failures), tally.diverged, tally.failed_samples], device
    )
    context.barrier()
    summary = GenerateSummary(
        Path(options.out),
        model_used,
        len(groups),
        totals[0],
        totals[1],
        tally.failures,
        diverged_draws=totals[3],
        requested=(len(groups) + len(discovery.skipped)) * options.n,
        failed_samples=totals[4],
        allowed_failed=options.allowed_failed,
    )
    if totals[2] > len(tally.failures):
        summary.failed.append(f"{totals[2] - len(tally.failures)} more failure(s) reported by other processes")
    if context.is_main:
        merge_manifests(Path(options.out), [group.key for group in groups])
        shown = (
            write_preview(Path(options.preview), writer, groups, options.n, config.image_size)
            if options.preview
            else None
        )
        if shown:
            summary.preview, summary.preview_masks = shown
    context.barrier()
    return summary


@dataclass
class _Tally:
    """What one process's work came to: samples written, failure messages, samples not written
    (a message may stand for several) and diverged draws passed over."""

    written: int = 0
    failures: list[str] = field(default_factory=list)
    failed_samples: int = 0
    diverged: int = 0


def _generate_work(
    work: Sequence[_Work],
    options: GenerateOptions,
    checkpoint: Checkpoint,
    network_dtype: torch.dtype | None,
    device: torch.device,
    writer: DatasetWriter,
    progress: Progress,
) -> _Tally:
    """Draw, select and write every pending sample."""
    model = checkpoint.model
    sampler = options.sampling.bind(GraphedSampler(model) if options.cuda_graphs else model)
    read = ReadOptions(
        model.config.image_size, boundary=model.config.mask_channels == 4, snap_colors=options.snap_colors
    )
    ignore = (
        IgnoreRule.load(Path(options.ignore_segmenter), options.ignore_below, device)
        if options.ignore_segmenter
        else None
    )
    tally = _Tally()
    for batch in _batches(work, options.best_of, options.batch_size):
        conditions, usable, label_maps = [], [], []
        for item in batch:
            try:
                label_ids, condition = load_mask(item.group, read)
                conditions.append(to_tensor(condition))
                label_maps.append(label_ids)
                usable.append(item)
            except DataError as error:
                if not options.skip_bad:
                    raise
                tally.failures.append(str(error))
                tally.failed_samples += len(item.samples)
                progress.advance(len(item.samples))
        if not usable:
            continue
        with network_precision(network_dtype):
            rows = _draw_rows(sampler, torch.stack(conditions).to(device), usable, options)
        for item, row, label_ids in zip(usable, rows, label_maps, strict=True):
            for sample, drawn_index, draw in row:
                progress.advance(1)
                tally.diverged += draw.diverged
                if isinstance(draw, DrawFailure):
                    tally.failures.append(
                        f"{item.group.mask}: sample {sample} diverged on all {draw.diverged} draws at "
                        f"T={options.temperature}; a lower --temp avoids this"
                    )
                    tally.failed_samples += 1
                    continue
                extra, notes = ignore.files(draw.image, label_ids) if ignore else ({}, {})
                writer.write(
                    item.group,
                    sample,
                    to_uint8_image(draw.image),
                    {
                        "seed": options.draw_seeds.of(item.group.key, drawn_index, draw.candidate),
                        "global_seed": options.seed,
                        **({"style": options.style_seeds[drawn_index]} if options.style_seeds is not None else {}),
                        "temperature": options.temperature,
                        "best_of": options.best_of,
                        "draw": drawn_index,
                        "candidate": draw.candidate,
                        "diverged_draws": draw.diverged,
                        "log_likelihood": draw.log_likelihood,
                        "bits_per_dim": float(bits_per_dim(torch.tensor(draw.log_likelihood), model.target_dims)),
                        **_sampling_notes(options.sampling),
                        "model": checkpoint.model_id,
                        "model_file": checkpoint.path.name,
                        "model_sha256": checkpoint.sha256,
                        **notes,
                    },
                    extra,
                )
                tally.written += 1
    return tally


def _sampling_notes(sampling: SamplingOptions) -> dict[str, object]:
    """What a manifest line says of guidance and denoising, where they were used: the weight, the
    scale, and which image the recorded likelihood belongs to."""
    notes: dict[str, object] = {}
    if sampling.guidance:
        notes["guidance"] = sampling.guidance
    if sampling.denoise_scale is not None:
        notes["denoise_scale"] = sampling.denoise_scale
        notes["likelihood_of"] = "the draw before its denoising step"
    return notes


def _draw_rows(
    sampler: Sampler, conditions: torch.Tensor, items: Sequence[_Work], options: GenerateOptions
) -> list[list[tuple[int, int, Draw | DrawFailure]]]:
    """Per item, ``(sample, draw index, draw)`` for its pending samples: the best of ``best_of``
    draws of index ``sample`` each; or, with ``reject_fraction`` q, the ``count`` most likely of
    ``ceil(count / (1 - q))`` draws of the mask, sample ``k`` being the kept draw of the ``k``-th
    smallest index."""
    keys = [item.group.key for item in items]
    temperature, seed, best_of = options.temperature, options.draw_seeds, options.best_of
    if not options.reject_fraction:
        rows = draw_best(sampler, conditions, keys, [item.samples for item in items], temperature, seed, best_of)
        return [
            [(s, s, d) for s, d in zip(item.samples, row, strict=True)] for item, row in zip(items, rows, strict=True)
        ]
    kept_rows = []
    for index, item in enumerate(items):
        drawn_count = math.ceil(item.count / (1 - options.reject_fraction))
        mask = conditions[index : index + 1]
        row = draw_best(sampler, mask, [item.group.key], [list(range(drawn_count))], temperature, seed, best_of)[0]
        likelihoods = [d.log_likelihood if isinstance(d, Draw) else -math.inf for d in row]
        kept = sorted(sorted(range(drawn_count), key=lambda d: -likelihoods[d])[: item.count])
        kept_rows.append([(sample, kept[sample], row[kept[sample]]) for sample in item.samples])
    return kept_rows


def _transfer_work(
    work: Sequence[_Work],
    options: GenerateOptions,
    checkpoint: Checkpoint,
    source: ContentSource,
    device: torch.device,
    writer: DatasetWriter,
    progress: Progress,
) -> _Tally:
    """Content transfer onto every pending layout (one sample each)."""
    model = checkpoint.model
    read = ReadOptions(
        model.config.image_size, boundary=model.config.mask_channels == 4, snap_colors=options.snap_colors
    )
    tally = _Tally()
    for batch in _batches(work, 1, options.batch_size):
        try:
            groups = [item.group for item in batch]
            fill = (
                _prior_fill(options.sampling.bind(model), [g.key for g in groups], options, tally)
                if options.content_fill == "prior"
                else None
            )
            images = transfer_onto_layouts(model, source, groups, read, device, options.keep_unchanged, fill)
        except DataError as error:
            if not options.skip_bad:
                raise
            tally.failures.append(str(error))
            tally.failed_samples += len(batch)
            progress.advance(len(batch))
            continue
        for item, (image, notes) in zip(batch, images, strict=True):
            progress.advance(1)
            if image is None:
                tally.failures.append(
                    f"{item.group.mask}: every prior draw of its edited region diverged at T={options.temperature}; "
                    "a lower --temp avoids this"
                )
                tally.failed_samples += 1
                continue
            metadata = {
                "mode": "content transfer",
                "model": checkpoint.model_id,
                "model_file": checkpoint.path.name,
                "model_sha256": checkpoint.sha256,
            }
            writer.write(item.group, 0, to_uint8_image(image), {**metadata, **notes})
            tally.written += 1
    return tally


def _prior_fill(model: Sampler, keys: Sequence[str], options: GenerateOptions, tally: _Tally) -> EditFill:
    """The edited regions drawn from the prior: each layout's sample 0 as plain ``generate`` draws
    it (same seed, redrawn where it diverges, the diverged draws counted); None for a layout whose
    every draw diverged."""

    def fill(layouts: torch.Tensor) -> list[torch.Tensor | None]:
        draws = [
            row[0] for row in draw_best(model, layouts, keys, [[0]] * len(keys), options.temperature, options.seed)
        ]
        tally.diverged += sum(draw.diverged for draw in draws)
        return [draw.image if isinstance(draw, Draw) else None for draw in draws]

    return fill


def check_modes(options: GenerateOptions) -> None:
    """Refuse option combinations that mean nothing, in one line each."""
    if not 0 <= options.reject_fraction < 1:
        raise UsageError(f"--reject must lie in [0, 1), got {options.reject_fraction}")
    if not 0 < options.ignore_below < 1:
        raise UsageError(f"--ignore-below must lie in (0, 1), got {options.ignore_below}")
    plain = options.n == 1 and options.best_of == 1 and not options.reject_fraction and options.allocate == "uniform"
    if options.content_from and not plain:
        raise UsageError(
            "--content-from writes one content-transferred photo per layout: use it with --samples 1 alone"
        )
    if options.content_fill not in CONTENT_FILLS:
        raise UsageError(f"--content-fill must be one of {', '.join(CONTENT_FILLS)}, got {options.content_fill!r}")
    if options.content_fill != "transfer" and not (options.content_from and options.keep_unchanged):
        raise UsageError("--content-fill prior draws the edited regions of --content-from with the rest kept real")
    if not options.keep_unchanged and not options.content_from:
        raise UsageError("--no-keep-unchanged is an option of --content-from: name the tree the layouts came from")
    if options.style_seeds is not None:
        check_styles(options)


def check_styles(options: GenerateOptions) -> None:
    """Style seeds give every mask one sample per style: refuse what would break that."""
    styles = list(options.style_seeds or [])
    if not styles:
        raise UsageError("give at least one style seed")
    if len(set(styles)) != len(styles):
        raise UsageError(f"the style seeds {styles} repeat a style")
    if options.n != len(styles):
        raise UsageError(f"--samples {options.n} differs from the {len(styles)} style seeds: each style is one sample")
    for name, used in {
        "--allocate": options.allocate != "uniform",
        "--reject": bool(options.reject_fraction),
        "--content-from": bool(options.content_from),
    }.items():
        if used:
            raise UsageError(f"{name} cannot be combined with style seeds: every mask gets one sample per style")


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


def write_preview(
    path: str | Path,
    writer: DatasetWriter,
    groups: Sequence[Group],
    n: int,
    size: tuple[int, int],
    rows: int = PREVIEW_MASKS,
) -> tuple[Path, int] | None:
    """A grid of the first ``rows`` masks with samples and their samples, read back from the output
    tree (so it also shows the samples of an earlier, resumed run); its path and its mask count."""
    outputs: dict[tuple[str, int], str] = {}
    for record in writer.records():
        outputs[(record["key"], int(record["sample"]))] = record["outputs"]["photo"]
    height, width = size
    grid = []
    for group in groups[:rows]:
        mask = ids_to_color(read_label_ids(group.mask, group.mask_format, snap_colors=True))
        row = [_fit(mask, height, width)]
        for index in range(n):
            photo_path = outputs.get((group.key, index))
            if photo_path:
                row.append(_fit(read_rgb(writer.out_root / photo_path), height, width))
        if len(row) > 1:
            grid.append(row)
    if not grid:
        return None
    return save_grid(path, grid, ["mask", *(f"sample {i}" for i in range(n))]), len(grid)


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
