"""fit: the shared supervised minibatch loop (AlphaGo's networks; later ViT, GPT, DPO, world-model decoders)."""
import pytest
import torch
from torch import nn

from course_lib.core.fit import fit


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    return x, y


def test_fit_learns_a_linear_map_and_returns_its_curve():
    torch.manual_seed(0)
    x, y = _problem()
    net = nn.Linear(3, 1)
    seen = []
    curve = fit(net, lambda idx: (net(x[idx]).squeeze(-1) - y[idx]).square().mean(), n=256, steps=300,
                batch_size=32, learning_rate=0.05, progress=False, log_every=100, callback=seen.append,
                evaluate=lambda: {"mse": (net(x).squeeze(-1) - y).square().mean().item()}, eval_every=150)
    assert [r["step"] for r in curve] == [100, 150, 200, 300] and seen == curve
    assert "mse" in curve[1] and "mse" in curve[-1] and "mse" not in curve[0]
    assert curve[-1]["mse"] < 1e-3 and not net.training  # left in eval mode
    torch.testing.assert_close(net.weight.detach()[0], torch.tensor([1.0, -2.0, 0.5]), atol=0.02, rtol=0)


def test_fit_minibatches_depend_on_the_seed_only():
    def run(seed):
        torch.manual_seed(0)
        net = nn.Linear(3, 1)
        x, y = _problem()
        fit(net, lambda idx: (net(x[idx]).squeeze(-1) - y[idx]).square().mean(), 256, 20, 8, seed=seed,
            progress=False)
        return net.weight.detach().clone()

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_fit_rejects_empty_data():
    with pytest.raises(ValueError, match="n >= 1"):
        fit(nn.Linear(1, 1), lambda idx: torch.zeros(()), n=0, steps=1, batch_size=1, progress=False)
