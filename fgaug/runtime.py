"""Choosing the device and the precision of a run, with clear errors for impossible choices;
measuring the memory a run took.

The rule for bf16: a default or ``auto`` picks bf16 only where the device computes it natively
(:func:`native_bf16`). A CPU without bf16 instructions emulates bf16 convolutions and matrix
products by converting to fp32 and back, several times slower than fp32 itself (7.5x on an AVX2
AMD EPYC); only an explicit ``bf16`` runs it there.
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from fgaug.errors import FgaugError
from fgaug.flow.precision import TF32
from fgaug.usage import UsageError

PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")
NETWORK_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "tf32": TF32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


BF16_CPU_FEATURES = frozenset({"avx512_bf16", "amx_bf16", "bf16", "sve_bf16", "svebf16"})
"""CPU features that compute bf16 products in hardware, as ``torch.cpu.get_capabilities()`` or
``/proc/cpuinfo`` name them: x86 AVX512_BF16 and AMX-BF16, Arm BF16 (BFDOT, BFMMLA) and SVE BF16."""


CAPPED_ONEDNN_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"})
"""Values of ``ONEDNN_MAX_CPU_ISA`` (``DNNL_MAX_CPU_ISA`` before oneDNN 2) below the first x86 set
with bf16 products: oneDNN capped there emulates bf16 whatever the CPU has."""


class RuntimeChoiceError(FgaugError, ValueError):
    """A device, precision or optional package that this machine cannot provide."""


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``N`` (``cuda:N``, as
    ultralytics writes it). A name that is no device is a :class:`UsageError`; a CUDA device this
    machine lacks is a :class:`RuntimeChoiceError`."""
    name = f"cuda:{spec}" if spec.isdigit() else spec
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(
            f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or N (several GPUs: torchrun)"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported device {spec!r}; use auto, cpu, cuda, cuda:N or N")
    asked = repr(spec) if name == spec else f"{spec!r} ({name})"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeChoiceError(f"device {asked} asked for, but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeChoiceError(f"device {asked} asked for, but only {torch.cuda.device_count()} CUDA device(s)")
        keep_float32_exact()
    return device


def keep_float32_exact() -> None:
    """Turn TF32 off for float32 convolutions and matrix products on CUDA. cuDNN uses TF32 for
    float32 convolutions by default, which would round the invertible 1x1 convolution (and with
    it the inverse) to 10-bit mantissas; the heavy networks get their speed from
    ``network_precision`` (bf16 autocast, or TF32 within the network calls only) instead."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def resolve_precision(spec: str, device: torch.device) -> torch.dtype | None:
    """The dtype of the coupling networks (None: full precision; :data:`TF32`: float32 on TF32
    tensor cores). ``auto`` is bf16 on a CUDA device that supports it and fp32 elsewhere, on every
    CPU (bf16 there only when asked for); the flow arithmetic is fp32 in every case."""
    if spec not in PRECISIONS:
        raise UsageError(f"unknown precision {spec!r}; choose from {', '.join(PRECISIONS)}")
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" and native_bf16(device) else None
    if spec in ("fp16", "tf32") and device.type != "cuda":
        native = "bf16 is native on this one" if cpu_has_native_bf16() else "bf16 only where it is native: fgaug env"
        raise RuntimeChoiceError(f"{spec} needs a CUDA device; use fp32 on the CPU ({native})")
    return NETWORK_DTYPES[spec]


def emulated_bf16_note(dtype: torch.dtype | None, device: torch.device) -> str | None:
    """A line for a user who asked for bf16 networks on a CPU without bf16 hardware, where torch
    emulates it: 3 to 10 times slower than fp32 on an AVX2-only EPYC (``benchmarks/RESULTS.md``)."""
    if dtype != torch.bfloat16 or device.type != "cpu" or cpu_has_native_bf16():
        return None
    return "bf16 on a CPU without bf16 hardware is emulated, 3-10x slower than fp32 here: --precision fp32 is faster"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 products in hardware (see :data:`BF16_CPU_FEATURES`).

    Read from the instruction-set features torch's cpuinfo reports (``torch.cpu.get_capabilities``,
    recent torch), else from ``/proc/cpuinfo``; False where neither tells. Not from
    ``torch.backends.cpu.get_cpu_capability()`` alone, which names the widest vector set only
    ("AVX512" on a Skylake without bf16 and on a Sapphire Rapids with AMX alike; it serves below
    to tell a capped dispatch), nor
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``, which asks whether oneDNN can run bf16 at
    all: it is true on any AVX512BW/VL/DQ CPU, where oneDNN emulates bf16 in fp32.

    On x86, a CPU with bf16 instructions that torch or oneDNN is told not to use counts as
    without: torch's kernels capped below AVX-512 (``ATEN_CPU_CAPABILITY=avx2``, which
    ``get_cpu_capability()`` then reports) or oneDNN's below AVX512_CORE_BF16
    (:data:`CAPPED_ONEDNN_ISAS`), as some CI images set to match other runners. torch's cap alone
    leaves oneDNN's convolutions free to use bf16 instructions; counting it as "no native bf16"
    is the cautious reading (measured only with both capped, ``benchmarks/RESULTS.md``)."""
    return cpu_has_bf16_instructions() and not x86_vector_sets_capped()


def cpu_has_bf16_instructions() -> bool:
    """Whether the CPU has any of :data:`BF16_CPU_FEATURES`, whether or not torch may use them."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        features = {name for name, value in get_capabilities().items() if value is True}
    else:
        features = set(cpuinfo_field("flags", "Features").split())
    return bool(features & BF16_CPU_FEATURES)


def x86_vector_sets_capped() -> bool:
    """Whether, on an x86 CPU, torch's kernels run below AVX-512 or oneDNN is capped below its
    bf16 instruction sets by ``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA``."""
    if platform.machine().lower() not in {"x86_64", "amd64", "i686", "i386"}:
        return False
    capped_onednn = {os.environ.get(name, "").upper() for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    return torch.backends.cpu.get_cpu_capability() != "AVX512" or bool(capped_onednn & CAPPED_ONEDNN_ISAS)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA device that supports bf16 (as ``auto``
    asks torch), or a CPU by :func:`cpu_has_native_bf16`."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def native_precision(device: str = "auto") -> str:
    """``bf16`` where the device :func:`resolve_device` makes of ``device`` computes bf16
    natively, else ``fp32``: the default of runs that would pick bf16 wherever it is fast."""
    return "bf16" if native_bf16(resolve_device(device)) else "fp32"


def cpuinfo_field(*names: str, path: Path = Path("/proc/cpuinfo")) -> str:
    """The value of the first line of ``path`` whose key is one of ``names`` (Linux's CPU
    description; x86 says ``flags`` and ``model name``, Arm ``Features``); "" where none is."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in names:
            return value.strip()
    return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what :mod:`platform` knows)."""
    return cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_description() -> str:
    """The CPU's model name and whether it computes bf16 natively, for reports and benchmarks."""
    if cpu_has_native_bf16():
        return f"{cpu_model()}, native bf16"
    capped = cpu_has_bf16_instructions() and x86_vector_sets_capped()
    capped_note = " (the CPU has it; torch's or oneDNN's vector sets are capped below it)" if capped else ""
    return f"{cpu_model()}, no native bf16{capped_note}"


def fused_adam_available(device: torch.device) -> bool:
    """Whether torch has a fused Adam (and AdamW) kernel for ``device`` that fgaug uses: CUDA, and the CPU since
    torch 2.4 (``torch.__version__`` is a :class:`~torch.torch_version.TorchVersion`, compared as a
    version; a pre-release of 2.4 counts as older)."""
    return device.type == "cuda" or (device.type == "cpu" and torch.__version__ >= "2.4")


def reset_peak_memory(device: torch.device) -> None:
    """Start :func:`peak_memory`'s count afresh on a CUDA device (the CPU's is the process's)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[float, str]:
    """The peak memory in MiB and what it counts: on CUDA the memory allocated by tensors since
    :func:`reset_peak_memory`, on the CPU the process's maximum resident set since it started."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process resident set"


def precision_name(dtype: torch.dtype | None) -> str:
    return next(name for name, network_dtype in NETWORK_DTYPES.items() if network_dtype == dtype)


@contextmanager
def counted_host_syncs() -> Iterator[list[str]]:
    """Collect the host-device synchronisations made inside the block, as torch's CUDA sync debug
    mode reports them (one message each); nothing is collected on a machine without CUDA."""
    found: list[str] = []
    if not torch.cuda.is_available():
        yield found
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found.extend(str(w.message) for w in caught if "called a synchronizing CUDA operation" in str(w.message))
