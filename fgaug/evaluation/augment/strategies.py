"""How the augmentation protocol's synthetic data is made (``fgaug evaluate augment --strategy``).

* ``prior``: ``n`` prior samples of every real mask at T (plain ``fgaug generate``);
* ``content-paste-prior``: ``n`` new layouts per mask with :data:`PASTED_OBJECTS` objects pasted
  from the other masks (``fgaug layouts``), each written as its real photo wherever the layout did
  not change and the model's prior sample of the layout in the edited regions (``fgaug generate
  --content-from --content-fill prior``): the study's best strategy (RESULTS.md, issue 12);
* ``copy-paste-real``: the same layouts in real pixels, every pasted object cut from its own photo
  (``fgaug layouts --photos``): copy-paste augmentation, the baseline that needs no model.

Layout strategies work on disk under ``work_dir`` (one folder per real-set size), through the
same commands a user runs, so a report's synthetic data can be looked at and an interrupted
evaluation resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fgaug.data.cityscapes import Group, find_groups
from fgaug.data.io import DataError
from fgaug.data.layouts import LayoutOptions, write_layouts
from fgaug.evaluation.augment.protocol import PairArrays, read_pairs
from fgaug.flow.sampling import PLAIN_SAMPLING, SamplingOptions
from fgaug.generate.engine import generate
from fgaug.generate.options import GenerateOptions

STRATEGIES = ("prior", "content-paste-prior", "copy-paste-real")


LAYOUT_STRATEGIES = STRATEGIES[1:]


PASTED_OBJECTS = 3


Synthesiser = Callable[[Sequence[Group]], tuple[PairArrays, int]]
"""The N real masks' groups -> their synthetic pairs and how many draws diverged."""


def layout_synthesiser(
    strategy: str,
    root: Path,
    work_dir: Path,
    size: tuple[int, int],
    n: int,
    temperature: float,
    model: Path,
    device: str,
    precision: str,
    overwrite: bool = False,
    sampling: SamplingOptions = PLAIN_SAMPLING,
) -> Synthesiser:
    """A :data:`Synthesiser` for one of :data:`LAYOUT_STRATEGIES` over masks of the tree ``root``
    (pairs read at ``size``, the model's); ``overwrite`` replaces trees other settings made."""
    if strategy not in LAYOUT_STRATEGIES:
        raise ValueError(f"a layout strategy is one of {', '.join(LAYOUT_STRATEGIES)}, got {strategy!r}")

    def synthesise(groups: Sequence[Group]) -> tuple[PairArrays, int]:
        folder = Path(work_dir) / f"N{len(groups)}"
        layouts = folder / "layouts"
        options = LayoutOptions(
            n=n,
            flip_probability=0.0,
            jitter_probability=0.0,
            paste=PASTED_OBJECTS,
            photos=strategy == "copy-paste-real",
        )
        write_layouts(groups, root, layouts, options, overwrite=overwrite)
        tree, diverged = layouts, 0
        if strategy == "content-paste-prior":
            tree = folder / "generated"
            summary = generate(
                GenerateOptions(
                    masks=str(layouts),
                    out=str(tree),
                    model=str(model),
                    n=1,
                    temperature=temperature,
                    content_from=str(root),
                    content_fill="prior",
                    at_model_resolution=True,
                    device=device,
                    precision=precision,
                    allowed_failed=1.0,
                    guidance=sampling.guidance,
                    denoise_scale=sampling.denoise_scale,
                    overwrite=overwrite,
                )
            )
            diverged = summary.diverged_draws
        written = find_groups(tree, None, True).groups
        if not written:
            raise DataError(f"{tree}: no synthetic pair was written (every draw diverged: lower the temperature)")
        return read_pairs(written, size), diverged

    return synthesise
