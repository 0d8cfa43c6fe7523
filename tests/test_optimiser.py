"""The trainer's optimiser: Adam, fused where torch has the kernel, with the plain Adam's state."""

from __future__ import annotations

import copy

import pytest
import torch
from devices import TEST_DEVICE
from torch.torch_version import TorchVersion

from fgaug.training.optimiser import adam, fused_adam_available


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


def test_the_trainers_adam_is_fused_on_this_torch() -> None:
    network = small_network()
    assert torch.__version__ >= "2.4", "the test expects a torch with the CPU's fused Adam"
    assert adam(network, 1e-3).defaults["fused"] is True


def test_a_torch_without_the_cpus_fused_adam_gets_the_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "__version__", TorchVersion("2.3.1"))
    assert not fused_adam_available(torch.device("cpu"))
    assert fused_adam_available(torch.device("cuda"))
    assert not fused_adam_available(torch.device("mps"))
    if TEST_DEVICE.type == "cpu":
        assert not adam(small_network(), 1e-3).defaults["fused"]


def test_fused_and_plain_adam_take_the_same_steps_and_share_their_state() -> None:
    """The same algorithm, float32 rounding apart; either optimiser's state resumes in the other
    (a checkpoint written by an older fgaug, or on a device without the fused kernel, resumes)."""
    network = small_network()
    plain_network = copy.deepcopy(network)
    fused = adam(network, 1e-2)
    plain = torch.optim.Adam(plain_network.parameters(), lr=1e-2)
    take_steps(network, fused, 5)
    take_steps(plain_network, plain, 5)
    for parameter, plain_parameter in zip(network.parameters(), plain_network.parameters(), strict=True):
        torch.testing.assert_close(parameter, plain_parameter, rtol=1e-5, atol=1e-6)
    resumed = adam(plain_network, 1e-2)
    resumed.load_state_dict(plain.state_dict())
    take_steps(network, fused, 3)
    take_steps(plain_network, resumed, 3)
    for parameter, plain_parameter in zip(network.parameters(), plain_network.parameters(), strict=True):
        torch.testing.assert_close(parameter, plain_parameter, rtol=1e-5, atol=1e-6)
    continued = copy.deepcopy(network)
    moved = torch.optim.Adam(continued.parameters(), lr=1e-2)
    moved.load_state_dict(copy.deepcopy(fused.state_dict()))  # load_state_dict shares the tensors
    take_steps(network, fused, 3)
    take_steps(continued, moved, 3)
    for parameter, moved_parameter in zip(network.parameters(), continued.parameters(), strict=True):
        torch.testing.assert_close(parameter, moved_parameter, rtol=1e-5, atol=1e-6)
