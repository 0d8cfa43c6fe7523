"""Device and precision choices: names resolve both ways, impossible choices fail clearly."""

from __future__ import annotations

import pytest
import torch

from fgaug.runtime import (
    NETWORK_DTYPES,
    PRECISIONS,
    RuntimeChoiceError,
    precision_name,
    resolve_device,
    resolve_precision,
)
from fgaug.usage import UsageError


@pytest.mark.parametrize("name", ["fp32", "bf16"])
def test_cpu_precisions_resolve_and_name_back(name: str) -> None:
    assert precision_name(resolve_precision(name, torch.device("cpu"))) == name


def test_auto_is_full_precision_on_the_cpu() -> None:
    assert resolve_precision("auto", torch.device("cpu")) is None


@pytest.mark.parametrize("name", ["fp16", "tf32"])
def test_cuda_only_precisions_are_refused_on_the_cpu(name: str) -> None:
    with pytest.raises(RuntimeChoiceError, match=f"{name} needs a CUDA device"):
        resolve_precision(name, torch.device("cpu"))


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
