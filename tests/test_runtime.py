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
    with pytest.raises(RuntimeChoiceError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))


def test_bad_device_names_fail_clearly() -> None:
    with pytest.raises(RuntimeChoiceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


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
