r"""Running statistics for normalising observations and rewards, on the device.

:class:`RunningMeanStd` merges batch statistics with Chan et al.'s parallel update, so
it works for any batch size and never stores the data. :class:`RewardScaler` divides
rewards by the running standard deviation of the discounted return

.. math:: G_t = \gamma\,G_{t-1}\,(1 - \text{done}_{t-1}) + r_t ,

without subtracting a mean (that would change which behaviour is optimal). With
rewards of 1 per step and :math:`\gamma = 0.99`, values grow to ~100; scaled, they stay
of order 1, which keeps the critic's loss and gradients in the range the optimiser and
gradient clipping are tuned for (Engstrom et al., 2020, "Implementation Matters").
"""
from __future__ import annotations

import torch


class RunningMeanStd:
    """Mean and variance of a stream of ``[N, *shape]`` batches."""

    def __init__(self, shape: tuple[int, ...] = (), device: torch.device | str = "cpu", dtype=torch.float64):
        self.mean = torch.zeros(shape, device=device, dtype=dtype)
        self.var = torch.ones(shape, device=device, dtype=dtype)
        self.count = torch.tensor(1e-4, device=device, dtype=dtype)  # a tiny prior avoids dividing by zero

    def update(self, batch: torch.Tensor) -> None:
        batch = batch.to(self.mean.dtype)
        b_mean, b_var, b_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        self.var = (self.var * self.count + b_var * b_count + delta.square() * self.count * b_count / total) / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": self.mean.cpu(), "var": self.var.cpu(), "count": self.count.cpu()}

    def load_state_dict(self, state: dict) -> None:
        device = self.mean.device
        self.mean, self.var, self.count = (state[k].to(device) for k in ("mean", "var", "count"))


class RewardScaler:
    """Scales each step's rewards ``[N]`` by the running std of the discounted return."""

    def __init__(self, num_envs: int, gamma: float, device: torch.device | str = "cpu", eps: float = 1e-8):
        self.gamma, self.eps = gamma, eps
        self.returns = torch.zeros(num_envs, device=device, dtype=torch.float64)
        self.stats = RunningMeanStd((), device=device)

    def __call__(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Scaled rewards for one step; ``done`` marks episodes that ended at this step."""
        self.returns = self.returns * self.gamma + reward
        self.stats.update(self.returns)
        self.returns = self.returns * (~done)
        return (reward / torch.sqrt(self.stats.var + self.eps)).to(reward.dtype)

    def state_dict(self) -> dict:
        return {"returns": self.returns.cpu(), "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.returns = state["returns"].to(self.returns.device)
        self.stats.load_state_dict(state["stats"])
