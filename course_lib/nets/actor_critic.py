"""The actor-critic of the on-policy agents (PPO, IMPALA): separate policy and value MLPs."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..envs.base import SpaceInfo
from .distributions import Categorical, DiagGaussian
from .mlp import mlp

__all__ = ["ActorCritic"]


class ActorCritic(nn.Module):
    """Separate policy and value MLPs over flat observations.

    Discrete actions get a categorical policy over logits; continuous actions a diagonal
    Gaussian with a learned, state-independent log standard deviation.
    """

    def __init__(self, spaces: SpaceInfo, hidden_size: int = 64, hidden_layers: int = 2, activation: str = "tanh"):
        super().__init__()
        self.spaces = spaces
        obs_dim = math.prod(spaces.obs_shape)
        hidden = [hidden_size] * hidden_layers
        self.critic = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)
        if spaces.discrete:
            self.actor = mlp(obs_dim, hidden, spaces.num_actions, activation, out_gain=0.01)
        else:
            self.actor = mlp(obs_dim, hidden, spaces.action_dim, activation, out_gain=0.01)
            self.log_std = nn.Parameter(torch.zeros(spaces.action_dim))
            self.register_buffer("action_low", torch.tensor(spaces.action_low, dtype=torch.float32))
            self.register_buffer("action_high", torch.tensor(spaces.action_high, dtype=torch.float32))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """:math:`V(s)`, shape ``[N]``."""
        return self.critic(obs.flatten(1)).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> Categorical | DiagGaussian:
        """:math:`\\pi(\\cdot \\mid s)` for a batch of observations."""
        out = self.actor(obs.flatten(1))
        if self.spaces.discrete:
            return Categorical(out)
        return DiagGaussian(out, self.log_std)

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """The action the environment receives: Gaussian samples are clipped to its bounds."""
        if self.spaces.discrete:
            return action
        return torch.maximum(torch.minimum(action, self.action_high), self.action_low)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action (evaluation)."""
        return self.env_action(self.dist(obs).mode())
