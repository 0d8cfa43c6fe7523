"""Full-Glow's shape and hyper-parameters (:class:`FullGlowConfig`), checked key by key.

Every key is checked: an unknown key or a value of the wrong kind is an error that names its origin
(the file and the key), so a typo never silently falls back to a default. The training settings and
the shipped presets build on these helpers in :mod:`fgaug.training.presets`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Literal

from fgaug.errors import FgaugError

ConditioningMode = Literal["full", "coupling", "raw"]


CONDITIONING_MODES = ("full", "coupling", "raw")


class ConfigError(FgaugError, ValueError):
    """A preset or configuration value is missing, unknown or out of range."""


@dataclass(frozen=True)
class FullGlowConfig:
    """Shape and hyper-parameters of a Full-Glow model.

    Attributes:
        image_size: (height, width) the model is trained at; both must be divisible by
            ``2 ** n_block``. The conditioning networks end in fully connected layers, so a model
            is tied to this size.
        image_channels: channels of the photo (3).
        mask_channels: channels of the condition image: 3 for the colour-rendered mask, 4 with the
            instance-boundary channel.
        n_block: number of multi-scale levels (squeeze, flow steps, split).
        n_flow: flow steps per level (one number for all levels, or one per level).
        coupling_hidden: width of the coupling networks (512 in the paper's code).
        condition_embed_hidden: width of the two-conv network that embeds the source coupling
            output before it enters the target coupling network (128 in the paper's code).
        param_net_channels: output channels of the three conv layers of the conditioning network
            that predicts conditional actnorm and 1x1-conv parameters (1x1, 3x3, 3x3 kernels).
        param_net_hidden: widths of the first three of its four fully connected layers; the
            fourth outputs the parameters.
        source_weight: lambda, the weight of the source (mask) NLL in the joint objective.
        coupling_scale_floor: lower bound of the coupling scale,
            ``s = floor + (1 - floor) * sigmoid(o1 + 2)``, so the reverse pass divides by at least
            ``floor`` and cannot overflow.
        conditioning: how the target side is conditioned, for ablations (paper Table 1):
            ``full`` (Full-Glow): every actnorm, 1x1 conv and coupling on the same operation's
            source-Glow output; ``coupling`` (Dual-Glow/C-Flow style): only the couplings, the
            other operations unconditional; ``raw`` (C-Glow style): every operation on the raw
            mask, squeezed to the level's size, with no source Glow.
        gaussian_noise: the training noise. 0 (the paper's): uniform dequantisation,
            ``y = (k + u) / 256 - 0.5``, so bits/dim are the paper's discrete figures. ``sigma > 0``
            (TarFlow's noise augmentation): ``y = (k + 1/2) / 256 - 0.5 + sigma * eps`` with
            standard-normal ``eps``, sigma on the [0, 1] scale of the photo; the model then learns
            the density of the noisy photos, its bits/dim are "noisy" figures, and its samples can be
            denoised by one score step (:meth:`~fgaug.flow.FullGlow.sample`).
        condition_dropout: the fraction of a training batch whose mask is replaced by the null
            condition (the all-zero mask, every pixel unlabelled and black), so that the model also
            learns p(photo) and classifier-free guidance can extrapolate away from it.
    """

    image_size: tuple[int, int] = (64, 128)
    image_channels: int = 3
    mask_channels: int = 3
    n_block: int = 3
    n_flow: tuple[int, ...] = (8, 8, 8)
    coupling_hidden: int = 128
    condition_embed_hidden: int = 64
    param_net_channels: tuple[int, int, int] = (8, 4, 2)
    param_net_hidden: tuple[int, int, int] = (32, 64, 48)
    source_weight: float = 1e-4
    coupling_scale_floor: float = 1e-3
    conditioning: ConditioningMode = "full"
    gaussian_noise: float = 0.0
    condition_dropout: float = 0.0

    def __post_init__(self) -> None:
        height, width = self.image_size
        step = 2**self.n_block
        if self.n_block < 1:
            raise ConfigError(f"n_block must be at least 1, got {self.n_block}")
        if height % step or width % step:
            raise ConfigError(f"image_size {height}x{width} must be divisible by 2**n_block = {step}")
        if len(self.n_flow) != self.n_block:
            raise ConfigError(f"n_flow has {len(self.n_flow)} entries for n_block={self.n_block} levels")
        if any(k < 1 for k in self.n_flow):
            raise ConfigError(f"every level needs at least one flow step, got n_flow={list(self.n_flow)}")
        widths = {"coupling_hidden": [self.coupling_hidden], "condition_embed_hidden": [self.condition_embed_hidden]}
        for key, values in {**widths, "param_net_hidden": list(self.param_net_hidden)}.items():
            if any(value < 1 for value in values):
                raise ConfigError(f"{key} must be at least 1 (a network's width), got {values}")
        if not 0.0 < self.coupling_scale_floor < 1.0:
            raise ConfigError(f"coupling_scale_floor must lie in (0, 1), got {self.coupling_scale_floor}")
        if self.source_weight < 0:
            raise ConfigError(f"source_weight (lambda) must be >= 0, got {self.source_weight}")
        if not 0.0 <= self.gaussian_noise < 1.0:
            raise ConfigError(f"gaussian_noise must lie in [0, 1), got {self.gaussian_noise}")
        if not 0.0 <= self.condition_dropout < 1.0:
            raise ConfigError(f"condition_dropout must lie in [0, 1), got {self.condition_dropout}")
        if self.conditioning not in CONDITIONING_MODES:
            raise ConfigError(
                f"unknown conditioning mode {self.conditioning!r}; known: {', '.join(CONDITIONING_MODES)}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "config") -> FullGlowConfig:
        values = dict(values)
        if isinstance(values.get("n_flow"), int):
            values["n_flow"] = [values["n_flow"]] * int(values.get("n_block", cls.n_block))
        return config_from_values(cls, values, origin)

    def to_dict(self) -> dict[str, Any]:
        return plain_values(dataclasses.asdict(self))

    @property
    def noise(self) -> str:
        """The training noise as ``--noise`` spells it: ``uniform`` or ``gaussian:SIGMA``."""
        return format_noise(self.gaussian_noise)


def parse_noise(text: str) -> float:
    """``uniform`` -> 0.0, ``gaussian:SIGMA`` -> SIGMA (on the [0, 1] photo scale, in (0, 1))."""
    if text == "uniform":
        return 0.0
    kind, _, value = text.partition(":")
    try:
        sigma = float(value)
    except ValueError:
        sigma = float("nan")
    if kind != "gaussian" or not 0.0 < sigma < 1.0:
        raise ConfigError(f"noise must be 'uniform' or 'gaussian:SIGMA' with 0 < SIGMA < 1, got {text!r}")
    return sigma


def format_noise(sigma: float) -> str:
    return "uniform" if sigma == 0 else f"gaussian:{sigma:g}"


def config_from_values(cls: type, values: dict[str, Any], origin: str) -> Any:
    """Build a config dataclass from JSON values; every error names ``origin``."""
    try:
        return cls(**_coerce(cls, values, origin))
    except ConfigError as error:
        message = str(error)
        raise ConfigError(message if message.startswith(origin) else f"{origin}: {message}") from None


def _coerce(cls: type, values: dict[str, Any], origin: str) -> dict[str, Any]:
    """Check keys against the dataclass fields and turn JSON lists into tuples."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    coerced: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(cls, key, None)
        if isinstance(default, tuple):
            if not isinstance(value, list | tuple) or not all(isinstance(v, int | float) for v in value):
                raise ConfigError(f"{origin}: {key} must be a list of numbers, got {value!r}")
            value = tuple(value)
        elif isinstance(default, bool) != isinstance(value, bool) or (
            isinstance(default, int | float) and not isinstance(value, int | float)
        ):
            raise ConfigError(f"{origin}: {key} must be a {type(default).__name__}, got {value!r}")
        coerced[key] = value
    return coerced


def plain_values(values: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}
