"""The augmentation arms: how each one makes synthetic data from the N real masks of a real set.

One registry, :data:`STRATEGIES`, serves ``fgaug evaluate augment --strategy`` and the study of
issue 12 (``benchmarks/augmentation_study.py``, whose results name these arms). An arm is a
:class:`Strategy`, a recipe of fgaug's own commands:

* prior samples of every real mask (``fgaug generate``), with the ways ``generate`` has to spend
  them (``--best-of``, ``--reject``, ``--allocate``, ``--ignore-map``);
* new layouts of every mask (``fgaug layouts``: flips, jitter, pasted objects), rendered from the
  prior, or given their real photo's look by content transfer (``generate --content-from``), or
  in real pixels with no model at all (``layouts --photos``: copy-paste);
* controls: the N real pairs in place of synthetic ones, and pools of two arms.

What an arm needs beyond its recipe (a generator of some kind, a filter probe, class weights) is
listed by :func:`needs` and supplied by whoever runs it (:mod:`fgaug.evaluation.augment.synthesis`).
``docs/augmentation.md`` has the table of the arms and what they measured on the toy world.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fgaug.data.options import LayoutOptions
from fgaug.evaluation.augment.protocol import MIXINGS
from fgaug.generate.allocate import ALLOCATIONS
from fgaug.generate.options import CONTENT_FILLS

GENERATOR_KINDS = {
    "fair": "a generator trained on the N real pairs only (its last weights)",
    "early": "the best-validation weights of the fair generator's run",
    "demo": "a second generator trained on more data (the bundled demo model in the toy-world study)",
    "none": "no generator: layouts in real pixels",
    "real": "no synthetic data: the N real pairs stand in for it (a control)",
}
"""What an arm's :attr:`Strategy.generator` names."""


MODEL_KINDS = ("fair", "early", "demo")
"""The generator kinds that are a checkpoint an arm samples from."""


GENERATOR_NEED = " generator"
"""A need for a checkpoint of generator kind K is named ``K generator``."""


FILTER_PROBE = "filter probe"
"""A need: a probe trained on the N real pairs, judging synthetic pixels for ignore maps."""


CLASS_WEIGHTS = "class weights"
"""A need: ``1 - IoU`` per class of the real-only probes at N, for ``--allocate weights``."""


@dataclass(frozen=True)
class Strategy:
    """How one arm's synthetic data is made from the N real masks.

    Without ``layouts``: ``per_mask`` prior samples of every mask at ``temperature`` (``best_of``,
    ``reject``, ``allocate`` and ``ignore`` as ``fgaug generate``'s ``--best-of``, ``--reject``,
    ``--allocate`` and ``--ignore-map``). With ``layouts``: ``layouts.n`` new layouts of every mask,
    one image each, rendered from the prior, or with ``content`` from their real photo
    (``content_fill`` and ``keep_unchanged`` as ``generate``'s), or in real pixels when
    ``generator`` is ``none``. ``mixing`` is how the probe mixes them with the real pairs; an arm
    that ``combines`` others pools their synthetic data and makes none of its own."""

    description: str
    per_mask: int = 4
    temperature: float = 0.8
    best_of: int = 1
    reject: float = 0.0
    allocate: str = "uniform"
    layouts: LayoutOptions | None = None
    content: bool = False
    keep_unchanged: bool = True
    content_fill: str = "transfer"
    ignore: bool = False
    mixing: str = "concat"
    generator: str = "fair"
    """One of :data:`GENERATOR_KINDS`."""
    combines: tuple[str, ...] = ()
    """Other arms whose synthetic data this one pools."""

    def __post_init__(self) -> None:
        checks = {
            "generator": (self.generator, tuple(GENERATOR_KINDS)),
            "mixing": (self.mixing, MIXINGS),
            "allocate": (self.allocate, ALLOCATIONS),
            "content_fill": (self.content_fill, CONTENT_FILLS),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.generator == "none" and (self.layouts is None or not self.layouts.photos):
            raise ValueError("an arm without a generator needs layouts written with their photos")
        if self.content and self.layouts is None:
            raise ValueError("content transfer renders new layouts: an arm with content needs layouts")

    def with_draws(self, per_mask: int | None = None, temperature: float | None = None) -> Strategy:
        """This arm with ``per_mask`` images per real mask (prior samples or layouts) at
        ``temperature``; None keeps the arm's own."""
        per_mask = self.per_mask if per_mask is None else per_mask
        layouts = None if self.layouts is None else replace(self.layouts, n=per_mask)
        temperature = self.temperature if temperature is None else temperature
        return replace(self, per_mask=per_mask, temperature=temperature, layouts=layouts)


PASTED_OBJECTS = 3


ONLY_FLIP = LayoutOptions(n=4, flip_probability=1.0, jitter_probability=0.0, paste=0)
ONLY_JITTER = LayoutOptions(n=4, flip_probability=0.0, jitter_probability=1.0, paste=0)
PASTE = LayoutOptions(n=4, flip_probability=0.0, jitter_probability=0.0, paste=PASTED_OBJECTS)
PASTE_RARE = replace(PASTE, rare_boost=1.0)
PASTE_PHOTOS = replace(PASTE, photos=True)
ALL_EDITS = LayoutOptions(n=4, flip_probability=0.5, jitter_probability=0.5, paste=PASTED_OBJECTS, rare_boost=1.0)


STRATEGIES: dict[str, Strategy] = {
    "prior": Strategy("prior samples of the same masks"),
    "prior-early-generator": Strategy("prior samples from the best-validation generator (step 200)", generator="early"),
    "prior-ratio": Strategy("prior samples, half of every batch real", mixing="ratio"),
    "prior-pretrain": Strategy("prior samples, pre-train on them then fine-tune on real", mixing="pretrain"),
    "real-pretrain-control": Strategy(
        "control for prior-pretrain: the same two schedules, with the N real pairs in place of the samples",
        mixing="pretrain",
        generator="real",
    ),
    "prior-more-data": Strategy(
        "prior samples from the demo model (more data: 1500 other toy scenes)", generator="demo"
    ),
    "layouts-flip": Strategy("new layouts: flipped masks, rendered from the prior", layouts=ONLY_FLIP),
    "layouts-jitter": Strategy("new layouts: scale-and-crop jitter, rendered from the prior", layouts=ONLY_JITTER),
    "layouts-paste": Strategy("new layouts: 3 objects pasted per mask, rendered from the prior", layouts=PASTE),
    "layouts-paste-rare": Strategy("new layouts: pasted objects, rare classes boosted, prior", layouts=PASTE_RARE),
    "layouts-all": Strategy("new layouts: flip, jitter, pasted rare-boosted objects, prior", layouts=ALL_EDITS),
    "content-paste": Strategy(
        "real appearance: content transfer onto pasted-object layouts, real photo kept outside the edits",
        layouts=PASTE,
        content=True,
    ),
    "content-paste-raw": Strategy(
        "real appearance: the paper's whole-image content transfer onto pasted-object layouts",
        layouts=PASTE,
        content=True,
        keep_unchanged=False,
    ),
    "content-paste-prior": Strategy(
        "real photo kept outside the edits, pasted objects drawn from the prior of the layout at T",
        layouts=PASTE,
        content=True,
        content_fill="prior",
    ),
    "content-all": Strategy(
        "real appearance: content transfer onto all-edits layouts, real photo kept outside the edits",
        layouts=ALL_EDITS,
        content=True,
    ),
    "copy-paste-real": Strategy(
        "no generator: pasted-object layouts with real pixels (the source photo, each object cut from its own)",
        layouts=PASTE_PHOTOS,
        generator="none",
    ),
    "copy-paste-real+content-paste-prior": Strategy(
        "both pools: real-pixel copy-paste layouts and content-paste-prior renderings",
        combines=("copy-paste-real", "content-paste-prior"),
    ),
    "copy-paste-real+prior": Strategy(
        "both pools: real-pixel copy-paste layouts and prior samples of every real mask",
        combines=("copy-paste-real", "prior"),
    ),
    "targeted-rare": Strategy("prior samples allocated to masks holding rare classes", allocate="rare"),
    "targeted-hard": Strategy("prior samples allocated by 1 - val IoU of the real-only probe", allocate="weights"),
    "filter-best-of-4": Strategy("prior samples, each the most likely of 4 draws", best_of=4),
    "filter-reject-half": Strategy("prior samples, the most likely half of 8 draws per mask", reject=0.5),
    "filter-ignore-map": Strategy("prior samples, pixels a real-trained probe rejects ignored", ignore=True),
}
"""Every arm by name, in the order of the study's tables."""


def parts(name: str) -> tuple[str, ...]:
    """The arms whose synthetic data arm ``name`` is made of: the arms it combines, else itself."""
    return STRATEGIES[name].combines or (name,)


def needs(name: str) -> tuple[str, ...]:
    """What arm ``name`` needs beyond its recipe: ``K generator`` for each generator kind K of
    :data:`MODEL_KINDS` it samples from, :data:`FILTER_PROBE`, :data:`CLASS_WEIGHTS`."""
    found: list[str] = []
    for part in parts(name):
        strategy = STRATEGIES[part]
        if strategy.generator in MODEL_KINDS:
            found.append(strategy.generator + GENERATOR_NEED)
        if strategy.ignore:
            found.append(FILTER_PROBE)
        if strategy.allocate == "weights":
            found.append(CLASS_WEIGHTS)
    return tuple(dict.fromkeys(found))


def describe_need(need: str) -> str:
    """A need of :func:`needs` in words: ``the early generator (the best-validation weights ...)``."""
    kind = need.removesuffix(GENERATOR_NEED)
    return f"the {need} ({GENERATOR_KINDS[kind]})" if kind in GENERATOR_KINDS else f"the {need}"
