"""CUDA graphs by default: a capture that runs out of memory (a graph keeps its own memory pool)
falls back to eager sampling under ``auto``, and is an error under an explicit ``--cuda-graphs``.
The capture is stood in for on the CPU; tests/test_cuda.py checks the real graphs on a GPU."""

from __future__ import annotations

import sys

import pytest
import torch
from test_fullglow import SMALL, trained_looking_model

from fgaug.flow.graphs import GraphedSampler
from fgaug.generate.engine import generation_sampler
from fgaug.generate.options import GenerateOptions


def out_of_memory(*args: object) -> None:
    raise torch.cuda.OutOfMemoryError("CUDA out of memory (the graph's pool)")


EMPTIED: list[object] = []
"""The exception being handled (None: none) at each ``torch.cuda.empty_cache`` call."""


@pytest.fixture
def cpu_sampler(monkeypatch: pytest.MonkeyPatch) -> type[GraphedSampler]:
    monkeypatch.setattr("fgaug.flow.graphs._require_cuda", lambda model: None)
    monkeypatch.setattr(GraphedSampler, "_capture", out_of_memory)
    EMPTIED.clear()
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: EMPTIED.append(sys.exc_info()[0]))
    return GraphedSampler


def test_auto_graphs_sample_eagerly_the_same_images_once_a_capture_runs_out_of_memory(
    cpu_sampler: type[GraphedSampler],
) -> None:
    model = trained_looking_model(SMALL).eval()
    mask = torch.rand(2, SMALL.mask_channels, *SMALL.image_size, generator=torch.Generator().manual_seed(0))
    noise = model.sample_noise(4, torch.Generator().manual_seed(1))
    sampler = cpu_sampler(model, eager_when_out_of_memory=True)
    drawn = sampler.sample(mask, 2, 0.7, noise=noise)
    assert sampler.eager and sampler.captured == 0
    eager = model.sample(mask, 2, 0.7, noise=noise)
    assert torch.equal(drawn.images, eager.images)
    assert torch.equal(drawn.log_likelihood, eager.log_likelihood)
    again = sampler.sample(mask, 2, 0.7, noise=noise)  # no second capture is tried
    assert torch.equal(again.images, eager.images)
    assert EMPTIED == [None]  # once, after the except: its traceback would keep the failed pool alive


def test_explicit_graphs_refuse_to_fall_back(cpu_sampler: type[GraphedSampler]) -> None:
    model = trained_looking_model(SMALL).eval()
    mask = torch.rand(1, SMALL.mask_channels, *SMALL.image_size, generator=torch.Generator().manual_seed(0))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        cpu_sampler(model).sample(mask, 1, 0.7, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("changes", "graphed"),
    [
        ({}, True),
        ({"compile": True}, False),
        ({"cuda_graphs": False}, False),
        ({"compile": True, "cuda_graphs": True}, True),
    ],
)
def test_generate_graphs_by_default_on_cuda_unless_compiled(
    cpu_sampler: type[GraphedSampler], changes: dict[str, bool], graphed: bool
) -> None:
    """Like ``train``'s default: compiled networks are not captured unless ``--cuda-graphs`` insists."""
    model = trained_looking_model(SMALL).eval()
    options = GenerateOptions(masks="masks", out="out", **changes)
    assert isinstance(generation_sampler(model, options, torch.device("cuda")), GraphedSampler) == graphed
    assert not isinstance(
        generation_sampler(model, GenerateOptions(masks="masks", out="out"), torch.device("cpu")), GraphedSampler
    )
