"""Device and precision choices: names resolve both ways, impossible choices fail clearly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from fgaug import runtime
from fgaug.runtime import (
    NETWORK_DTYPES,
    PRECISIONS,
    RuntimeChoiceError,
    cpu_description,
    cpu_has_native_bf16,
    cpuinfo_field,
    native_precision,
    precision_name,
    resolve_device,
    resolve_precision,
)
from fgaug.usage import UsageError


@pytest.mark.parametrize("name", ["fp32", "bf16"])
def test_cpu_precisions_resolve_and_name_back(name: str) -> None:
    assert precision_name(resolve_precision(name, torch.device("cpu"))) == name


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_full_precision_on_the_cpu_with_or_without_native_bf16(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert native_precision("cpu") == ("bf16" if native else "fp32")


@pytest.fixture
def fresh_detection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """:func:`cpu_has_native_bf16` asked afresh, and this machine's answer cached again after; torch's
    and oneDNN's vector sets uncapped (an AVX-512 dispatch) unless a test says otherwise."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    cpu_has_native_bf16.cache_clear()
    yield
    cpu_has_native_bf16.cache_clear()


@pytest.mark.parametrize(
    ("capabilities", "native"),
    [
        ({"architecture": "x86_64", "avx2": True, "avx512_f": True, "avx512_bw": True}, False),
        ({"architecture": "x86_64", "avx2": True, "avx512_bf16": True}, True),
        ({"architecture": "x86_64", "amx_bf16": True, "amx_tile": True}, True),
        ({"architecture": "aarch64", "neon": True, "sve_max_length": 256}, False),
        ({"architecture": "aarch64", "neon": True, "bf16": True}, True),
    ],
)
def test_native_bf16_is_read_from_the_cpus_bf16_instructions(
    capabilities: dict[str, object], native: bool, monkeypatch: pytest.MonkeyPatch, fresh_detection: None
) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    assert cpu_has_native_bf16() is native


@pytest.mark.parametrize(
    ("capability", "environment", "native"),
    [
        ("AVX512", {}, True),
        ("AVX2", {}, False),
        ("DEFAULT", {}, False),
        ("AVX512", {"ONEDNN_MAX_CPU_ISA": "avx2"}, False),
        ("AVX512", {"DNNL_MAX_CPU_ISA": "AVX512_CORE"}, False),
        ("AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, True),
    ],
)
def test_an_x86_cpu_whose_bf16_instructions_torch_or_onednn_may_not_use_has_no_native_bf16(
    capability: str,
    environment: dict[str, str],
    native: bool,
    monkeypatch: pytest.MonkeyPatch,
    fresh_detection: None,
) -> None:
    """ATEN_CPU_CAPABILITY=avx2 (seen as get_cpu_capability) or a capped oneDNN emulates bf16."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True}, raising=False)
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert cpu_has_native_bf16() is native
    capped = "; torch's or oneDNN's vector sets are capped below it)"
    assert cpu_description().endswith("native bf16" if native else capped)


def test_an_avx2_only_cpu_is_described_without_a_capped_note(
    monkeypatch: pytest.MonkeyPatch, fresh_detection: None
) -> None:
    """An AVX2-only CPU (no bf16 instructions) is not one whose vector sets are capped."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True}, raising=False)
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert cpu_description().endswith("no native bf16")


def test_arm_bf16_does_not_depend_on_x86_vector_sets(monkeypatch: pytest.MonkeyPatch, fresh_detection: None) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"bf16": True}, raising=False)
    monkeypatch.setattr(runtime.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    assert cpu_has_native_bf16()


@pytest.mark.parametrize(("flags", "native"), [("fpu avx2 fma", False), ("fp asimd bf16 i8mm", True), ("", False)])
def test_without_torchs_capabilities_native_bf16_is_read_from_proc_cpuinfo(
    flags: str, native: bool, monkeypatch: pytest.MonkeyPatch, fresh_detection: None
) -> None:
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(runtime, "cpuinfo_field", lambda *names: flags if "flags" in names else "")
    assert cpu_has_native_bf16() is native


def test_cpuinfo_fields_are_read_by_key(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n\nprocessor\t: 1\nFeatures\t: fp\n")
    assert cpuinfo_field("flags", "Features", path=cpuinfo) == "fp asimd bf16"
    assert cpuinfo_field("model name", path=cpuinfo) == ""
    assert cpuinfo_field("flags", path=tmp_path / "absent") == ""


@pytest.mark.parametrize("name", ["fp16", "tf32"])
def test_cuda_only_precisions_are_refused_on_the_cpu(name: str) -> None:
    with pytest.raises(RuntimeChoiceError, match=f"{name} needs a CUDA device"):
        resolve_precision(name, torch.device("cpu"))


@pytest.mark.parametrize("native", [False, True])
def test_bf16_asked_for_on_a_cpu_without_bf16_hardware_is_said_to_be_slow(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the AVX2-only EPYC ``--precision bf16`` ran 9.4x slower than fp32 without a word, and the
    tf32 and fp16 refusals pointed at bf16."""
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    note = runtime.emulated_bf16_note(resolve_precision("bf16", cpu), cpu)
    assert (note is None) == native
    assert runtime.emulated_bf16_note(resolve_precision("fp32", cpu), cpu) is None
    remedy = "bf16 is native on this one" if native else "bf16 only where it is native"
    with pytest.raises(RuntimeChoiceError, match=f"use fp32 on the CPU \\({remedy}"):
        resolve_precision("tf32", cpu)


def test_every_network_dtype_names_back_to_its_precision() -> None:
    for name in PRECISIONS[1:]:
        assert precision_name(NETWORK_DTYPES[name]) == name
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))


def test_bad_device_names_fail_clearly() -> None:
    for name in ("gpu0", "0,1", "cuda:x"):
        with pytest.raises(UsageError, match=f"unknown device '{name}'"):
            resolve_device(name)
    with pytest.raises(UsageError, match="unsupported device 'meta'"):
        resolve_device("meta")


def test_a_device_number_is_that_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--device 0`` as ultralytics writes it: cuda:0, and a clear refusal on a machine without CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeChoiceError, match=r"device '1' \(cuda:1\) asked for, but CUDA is not available"):
        resolve_device("1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr("fgaug.runtime.keep_float32_exact", lambda: None)
    assert resolve_device("1") == torch.device("cuda:1")
    with pytest.raises(RuntimeChoiceError, match="only 2 CUDA device"):
        resolve_device("2")


def test_auto_on_a_cuda_machine_keeps_float32_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` must switch TF32 off as ``cuda`` does, or the 1x1 convolution runs in TF32 by default."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        device = resolve_device("auto")
        flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert device.type == "cuda"
    assert flags == (False, False)
