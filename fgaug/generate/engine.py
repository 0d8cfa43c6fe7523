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

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fgaug import distributed
from fgaug.data.background import BackgroundWrites, write_threads
from fgaug.data.cityscapes import Group, ReadOptions, find_groups, load_mask, read_label_ids, to_tensor
from fgaug.data.headers import InstanceValueChecks, check_headers
from fgaug.data.io import DataError, check_file_to_write, read_rgb
from fgaug.data.labels import ids_to_color
from fgaug.data.preview import save_grid, to_uint8_image
from fgaug.data.record import (
    OutputConflictError,
    RunOutcome,
    RunRecord,
    check_output,
    file_identity,
    finish_output,
    forgotten_if_unwritten,
    masks_used,
    other_sources,
    take_output,
)
from fgaug.data.writer import (
    TREE_OUTPUTS,
    DatasetWriter,
    WriterOptions,
    check_output_root,
    check_outside_input,
    merge_manifests,
    tree_records,
)
from fgaug.flow import FullGlow, compile_networks, network_precision
from fgaug.flow.fullglow import bits_per_dim
from fgaug.flow.graphs import GraphedSampler
from fgaug.flow.sampling import Sampler, SamplingOptions
from fgaug.generate.allocate import allocate
from fgaug.generate.content import ContentSource, EditFill, transfer_onto_layouts
from fgaug.generate.draws import Draw, DrawFailure, draw_best
from fgaug.generate.ignore import IgnoreRule
from fgaug.generate.options import (
    FILE_FIELDS,
    MASK_SELECTION,
    NOT_SHAPING,
    OPTION_NAMES,
    GenerateOptions,
    GenerateSummary,
    ModelUsed,
    check_modes,
    find_model,
    idle_fields,
    load_named_model,
)
from fgaug.progress import Progress, SilentProgress
from fgaug.runtime import RuntimeChoiceError, emulated_bf16_note, resolve_precision
from fgaug.training.checkpoint import Checkpoint
from fgaug.usage import UsageError

PREVIEW_MASKS = 6
"""Masks a ``--preview`` grid shows at most (the first ones with samples)."""


def run_record(options: GenerateOptions, model: ModelUsed, groups: Sequence[Group]) -> RunRecord:
    """What shapes the samples of ``options`` (every field but :data:`NOT_SHAPING`,
    :data:`MASK_SELECTION` and the :func:`idle_fields`), for ``fgaug-run.json``. A file that
    shapes them is recorded by its SHA-256; ``--content-from``'s tree only as given (its path for
    the reader): each sample's line records the SHA-256 of its content, as of its mask
    (:meth:`~fgaug.generate.content.ContentSource.content_digest`), so the same files elsewhere
    resume, a larger ``--limit`` extends the tree, and files changed in place are refused."""
    settings, files = {}, {}
    idle = idle_fields(options)
    for option in fields(options):
        name, value = option.name, getattr(options, option.name)
        if name in NOT_SHAPING or name in MASK_SELECTION or name in idle:
            continue
        if name == "model":
            value, files[name] = model.sha256, str(model.path.resolve())
        elif name in FILE_FIELDS and value is not None:
            value, files[name] = file_identity(value), str(Path(value).resolve())
        elif name == "content_from" and value is not None:
            files[name] = str(Path(value).resolve())
            value = True
        settings[name] = value
    if options.allocate != "uniform":
        settings["masks_used"] = masks_used(groups)
    defaults = {option.name: option.default for option in fields(GenerateOptions) if option.default is not MISSING}
    names = {**OPTION_NAMES, "masks_used": "the masks used"}
    unset = {"denoise_scale": "no --denoise", "content_from": "no --content-from"}
    return RunRecord("generate", settings, files, defaults, names, unset=unset)


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
    options.check_ranges()
    check_modes(options)
    if options.preview:  # found now, not after the samples
        check_file_to_write(options.preview, "--preview", "preview.png")
        if Path(options.preview).suffix.lower() != ".png":
            raise UsageError(f"--preview {options.preview}: the preview is a PNG; name a .png file")
    find_model(options.model)  # naming no model is a usage error, found before any input is read
    start = time.perf_counter()
    context, device = distributed.start(options.device)
    try:
        with forgotten_if_unwritten(options.out, TREE_OUTPUTS, active=context.world_size == 1):
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
    discovery = find_groups(masks_root, options.splits, False, options.mask_format, options.skip_bad)
    groups = discovery.groups[: options.limit] if options.limit else discovery.groups
    out = Path(options.out)
    content = (
        ContentSource.open(masks_root, Path(options.content_from), options.snap_colors)
        if options.content_from
        else None
    )
    for input_root in (masks_root, *([content.root] if content else [])):  # the output goes in neither
        check_output_root(out, input_root)
        if options.preview:
            check_outside_input(options.preview, input_root)
    checkpoint, model_used = load_named_model(options.model, device)
    ignore = (  # loaded, and its size checked, before an earlier tree is replaced
        IgnoreRule.load(
            Path(options.ignore_segmenter), options.ignore_below, device, checkpoint.model.config.image_size
        )
        if options.ignore_segmenter
        else None
    )
    boundary = checkpoint.model.config.mask_channels == 4
    checked = check_headers(groups, boundary, options.skip_bad, photos=False, label_files=True)
    kept = {group.key for group in checked.groups}
    refused = [group.key for group in groups if group.key not in kept]  # --skip-bad, by their headers
    groups, skipped = checked.groups, [*discovery.skipped, *checked.skipped]
    n = options.samples_per_mask
    counts = allocate(groups, n, options.allocate, _path(options.class_weights), options.snap_colors)
    record = run_record(options, model_used, groups)
    source_digests: dict[Path, str] = {}
    records = tree_records(out)
    sources_changed = other_sources(out, records, groups, source_digests, content.content_digest if content else None)
    unlisted = {record["key"] for record in records} - {group.key for group in discovery.groups}
    if sources_changed and not options.overwrite:
        raise OutputConflictError(f"{sources_changed}; use --overwrite to replace it")
    clear = check_output(out, record, TREE_OUTPUTS, options.overwrite) or sources_changed is not None
    if context.is_main:
        take_output(out, masks_root, record, TREE_OUTPUTS, clear)
    context.barrier()
    part = f"rank{context.rank}" if context.active else None
    writer_options = WriterOptions(options.at_model_resolution, snap_colors=options.snap_colors)
    writer = DatasetWriter(out, masks_root, writer_options, part, source_digests)
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
    if unlisted and not clear:
        progress.log(
            f"{len(unlisted)} mask(s) with samples in {out} are not among {masks_root} as read now (removed or "
            "renamed since, skipped, or in a split not chosen): their samples stay; validate --source refuses them, "
            "--overwrite writes the tree afresh"
        )
    if note := emulated_bf16_note(network_dtype, device):
        progress.log(note)
    damaged = _damaged_requested(writer, groups, counts)
    if damaged:
        progress.log(
            f"{damaged} sample(s) of an earlier run damaged or missing (a file gone, or its photo cut short): "
            "writing them again"
        )
    progress.start("generating", pending)
    threads = write_threads() if options.write_threads is None else options.write_threads
    copied_instances = [] if boundary else [item.group for item in work]  # a boundary model reads its own
    with BackgroundWrites(threads) as writes, InstanceValueChecks(copied_instances) as checks:
        if content is not None:
            tally = _transfer_work(
                work, options, checkpoint, content, network_dtype, device, writes, writer, checks, progress
            )
        else:
            tally = _generate_work(
                work, options, checkpoint, network_dtype, device, writes, writer, checks, progress, ignore
            )
    progress.stop()
    if context.is_main:  # masks refused when the tree was read (--skip-bad): none of their samples is written
        tally.failures = [*skipped, *tally.failures]
        in_tree = sum(1 for key in refused for index in range(n) if (key, index) in writer.finished)
        tally.failed_samples += len(skipped) * n - in_tree  # an earlier run's samples of them stay
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
        requested=(len(groups) + len(skipped)) * n,
        failed_samples=totals[4],
        allowed_failed=options.allowed_failed,
    )
    if totals[2] > len(tally.failures):
        summary.failed.append(f"{totals[2] - len(tally.failures)} more failure(s) reported by other processes")
    if context.is_main:
        in_tree = merge_manifests(Path(options.out), [group.key for group in groups], writer.manifest_path)
        finish_output(out, record, RunOutcome(summary.requested, in_tree, summary.accepted))
        shown = write_preview(Path(options.preview), writer, groups, n, config.image_size) if options.preview else None
        if shown:
            summary.preview, summary.preview_masks = shown
    context.barrier()
    return summary


def _damaged_requested(writer: DatasetWriter, groups: Sequence[Group], counts: Sequence[int]) -> int:
    """Samples of this run, in every process's share, that an earlier run's manifest lists but
    that are not whole in the tree (:attr:`DatasetWriter.damaged`): this run writes them again."""
    count_by_key = {group.key: count for group, count in zip(groups, counts, strict=True)}
    return sum(1 for key, index in writer.damaged if index < count_by_key.get(key, 0))


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
    writes: BackgroundWrites,
    writer: DatasetWriter,
    checks: InstanceValueChecks,
    progress: Progress,
    ignore: IgnoreRule | None,
) -> _Tally:
    """Draw, select and write every pending sample, each mask once ``checks`` has checked the
    instanceIds file its samples get a copy of, and ``ignore`` its samples' ignore maps."""
    model = checkpoint.model
    sampler = generation_sampler(model, options, device)
    read = ReadOptions(
        model.config.image_size, boundary=model.config.mask_channels == 4, snap_colors=options.snap_colors
    )
    tally = _Tally()
    for batch in _batches(work, options.best_of, options.batch_size):
        conditions, usable, label_maps = [], [], []
        for item in batch:
            try:
                label_ids, condition = load_mask(item.group, read)
                checks.wait(item.group)
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
                writes.submit(
                    writer.write,
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


def generation_sampler(model: FullGlow, options: GenerateOptions, device: torch.device) -> Sampler:
    """The model's sampler with ``options.sampling``'s denoising and guidance: CUDA-graphed where
    ``--cuda-graphs`` asks for it or, by default, on CUDA without ``--denoise`` or ``--compile``
    (as ``train``'s default: compiled code is not captured; falling back to eager steps where the
    graphs' memory pool would not fit)."""
    auto_graphs = (
        options.cuda_graphs is None
        and device.type == "cuda"
        and options.sampling.denoise_scale is None
        and not options.compile
    )
    use_graphs = auto_graphs or bool(options.cuda_graphs)
    return options.sampling.bind(GraphedSampler(model, auto_graphs) if use_graphs else model)


def _transfer_work(
    work: Sequence[_Work],
    options: GenerateOptions,
    checkpoint: Checkpoint,
    source: ContentSource,
    network_dtype: torch.dtype | None,
    device: torch.device,
    writes: BackgroundWrites,
    writer: DatasetWriter,
    checks: InstanceValueChecks,
    progress: Progress,
) -> _Tally:
    """Content transfer onto every pending layout (one sample each), its networks in
    ``network_dtype``; a prior fill of the edited regions samples as :func:`_generate_work` does
    (CUDA graphs included), the transfer's encode and decode passes run eagerly."""
    model = checkpoint.model
    if options.cuda_graphs and options.content_fill != "prior":
        progress.log("--cuda-graphs: content transfer's encode and decode passes run without CUDA graphs")
    sampler = generation_sampler(model, options, device) if options.content_fill == "prior" else None
    read = ReadOptions(
        model.config.image_size, boundary=model.config.mask_channels == 4, snap_colors=options.snap_colors
    )
    tally = _Tally()
    batches = list(_batches(work, 1, options.batch_size))
    while batches:
        batch = batches.pop(0)
        try:
            groups = [item.group for item in batch]
            for group in groups:
                checks.wait(group)
            fill = _prior_fill(sampler, [g.key for g in groups], options, tally) if sampler else None
            with network_precision(network_dtype):
                images = transfer_onto_layouts(model, source, groups, read, device, options.keep_unchanged, fill)
        except DataError as error:
            if not options.skip_bad:
                raise
            if len(batch) > 1:  # a layout whose content cannot be read: the batch's others go on one by one
                batches[:0] = [[item] for item in batch]
                continue
            tally.failures.append(str(error))
            tally.failed_samples += 1
            progress.advance(1)
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
            writes.submit(writer.write, item.group, 0, to_uint8_image(image), {**metadata, **notes})
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
