"""torch.compile of the networks: same numbers as eager, exact round trip, no state-dict change."""

from __future__ import annotations

import torch
from devices import ON_CUDA
from test_fullglow import SMALL, images, trained_looking_model

from fgaug.flow import compile_networks
from fgaug.flow.compile import compiled_networks


def test_compiled_networks_give_the_eager_loss_gradients_and_samples() -> None:
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager, compiled = trained_looking_model(), trained_looking_model()
    keys = list(compiled.state_dict())
    # inductor on CUDA (the product's backend there); on the CPU aot_eager, which traces the same
    # graphs without the C++ build that would make this test slow
    count = compile_networks(compiled, backend="inductor" if ON_CUDA else "aot_eager")
    # per flow step: the source coupling network; the target coupling network, its condition
    # embedding, and the parameter networks of the conditional actnorm and 1x1 conv
    assert count == len(compiled_networks(eager)) == sum(SMALL.n_flow) * 5
    assert list(compiled.state_dict()) == keys

    mask, photo = images(2), images(2, seed=1)
    losses = []
    for model in (eager, compiled):
        loss = model(mask, photo, generator=torch.Generator().manual_seed(3)).loss
        loss.backward()
        losses.append(loss.detach())
    # inductor's fused kernels sum in another order than eager's: float32 rounding, not a bug
    tolerance = {"atol": 1e-4, "rtol": 1e-3} if ON_CUDA else {}
    torch.testing.assert_close(losses[1], losses[0], **tolerance)
    for (name, a), (_, b) in zip(eager.named_parameters(), compiled.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=name, **tolerance)

    noise = eager.sample_noise(4, torch.Generator().manual_seed(5))
    drawn = [model.sample(mask, n=2, temperature=0.8, noise=noise) for model in (eager, compiled)]
    torch.testing.assert_close(drawn[1].images, drawn[0].images, atol=1 / 255, rtol=0)

    with torch.no_grad():
        latents = compiled.encode(mask, photo)
        torch.testing.assert_close(compiled.decode(mask, latents), photo, atol=0, rtol=0)
    assert not torch._dynamo.utils.counters["graph_break"], dict(torch._dynamo.utils.counters["graph_break"])
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
