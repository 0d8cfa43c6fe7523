"""The Full-Glow core: invertible layers, multi-scale Glow and the Full-Glow model (pure torch, no I/O)."""

from fgaug.flow.compile import compile_networks, fuse_arithmetic
from fgaug.flow.fullglow import FullGlow, FullGlowOutput, Samples, SamplingError
from fgaug.flow.precision import network_precision

__all__ = [
    "FullGlow",
    "FullGlowOutput",
    "Samples",
    "SamplingError",
    "compile_networks",
    "fuse_arithmetic",
    "network_precision",
]
