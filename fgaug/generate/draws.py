"""Seeded draws: every sample's noise comes from a seed derived from (run seed, mask key,
sample index, candidate), so a sample is the same whatever the batch, the process count or a
resume; best-of-N keeps the most likely candidate, and diverged draws are redrawn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fgaug.finite import require_finite
from fgaug.flow import Samples
from fgaug.flow.sampling import Sampler

MAX_REDRAWS = 8


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
