"""The trainer's optimiser: Adam, fused where torch has the kernel, resuming the plain Adam's state."""

from __future__ import annotations

import copy

import pytest
import torch
from devices import TEST_DEVICE
from torch.torch_version import TorchVersion

from fgaug.runtime import fused_adam_available
from fgaug.training.optimiser import adam, load_adam_state

FUSED_HERE = fused_adam_available(TEST_DEVICE)


def small_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1)).to(TEST_DEVICE)


def take_steps(network: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 3, 8, 8, generator=generator).to(TEST_DEVICE)
        loss = network(x).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def assert_same_parameters(network: torch.nn.Module, other: torch.nn.Module) -> None:
    """Equal within float32 rounding: the fused kernel and the loop sum in other orders."""
    for parameter, other_parameter in zip(network.parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(parameter, other_parameter, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not FUSED_HERE, reason="this torch has no fused Adam for the test device (CPU: torch < 2.4)")
def test_the_trainers_adam_is_fused_where_torch_has_the_kernel() -> None:
    optimizer = adam(small_network(), 1e-3)
    assert optimizer.defaults["fused"] is True and optimizer.param_groups[0]["fused"] is True


def test_a_torch_without_the_cpus_fused_adam_gets_the_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "__version__", TorchVersion("2.3.1"))
    assert not fused_adam_available(torch.device("cpu"))
    assert fused_adam_available(torch.device("cuda"))
    assert not fused_adam_available(torch.device("meta"))
    monkeypatch.setattr(torch, "__version__", TorchVersion("2.13.0"))
    assert fused_adam_available(torch.device("cpu"))
    if TEST_DEVICE.type == "cpu":
        monkeypatch.setattr(torch, "__version__", TorchVersion("2.3.1"))
        assert not adam(small_network(), 1e-3).defaults["fused"]


@pytest.mark.skipif(not FUSED_HERE, reason="this torch has no fused Adam for the test device (CPU: torch < 2.4)")
def test_a_plain_adams_state_resumes_fused_with_the_same_steps() -> None:
    """A checkpoint of the per-tensor Adam (fgaug before it fused Adam on the CPU) resumes with the
    fused kernel, not with the ``fused`` setting saved in its parameter groups."""
    network = small_network()
    plain = torch.optim.Adam(network.parameters(), lr=1e-2)
    take_steps(network, plain, 5)
    resumed_network = copy.deepcopy(network)
    resumed = adam(resumed_network, 1e-2)
    load_adam_state(resumed, copy.deepcopy(plain.state_dict()))
    assert resumed.param_groups[0]["fused"] is True
    take_steps(network, plain, 3)
    take_steps(resumed_network, resumed, 3)
    assert_same_parameters(network, resumed_network)


@pytest.mark.skipif(not FUSED_HERE, reason="this torch has no fused Adam for the test device (CPU: torch < 2.4)")
def test_a_fused_adams_state_resumes_where_there_is_no_fused_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fused Adam's checkpoint, resumed by a torch without the CPU's fused kernel (mocked here),
    runs the per-tensor Adam, with the same steps."""
    network = small_network()
    fused = adam(network, 1e-2)
    take_steps(network, fused, 5)
    resumed_network = copy.deepcopy(network)
    if TEST_DEVICE.type == "cpu":
        monkeypatch.setattr(torch, "__version__", TorchVersion("2.3.1"))
        resumed = adam(resumed_network, 1e-2)
    else:
        resumed = torch.optim.Adam(resumed_network.parameters(), lr=1e-2)
    load_adam_state(resumed, copy.deepcopy(fused.state_dict()))
    assert not resumed.param_groups[0]["fused"]
    take_steps(network, fused, 3)
    take_steps(resumed_network, resumed, 3)
    assert_same_parameters(network, resumed_network)
