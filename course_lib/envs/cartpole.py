"""CartPole as a batched tensor environment: N copies stepped by one call, on any device.

The physics, thresholds, rewards and 500-step time limit are those of gymnasium's
``CartPole-v1`` (Barto, Sutton & Anderson, 1983, with Euler integration), so the same
state and action give the same next state (tests check it against gymnasium). The
difference is speed: stepping 4,096 cart-poles is a handful of tensor operations, with
no Python loop over environments and no copy between NumPy and torch.
"""
from __future__ import annotations

import math

import torch

from .base import SpaceInfo, StepResult, TensorEnv


class TensorCartPole(TensorEnv):
    """``num_envs`` CartPole-v1 copies as ``[N, 4]`` state tensors, auto-resetting in the same step.

    Observation: cart position x, cart velocity, pole angle θ (radians), pole angular
    velocity. Actions: 0 pushes left, 1 pushes right. Reward +1 every step, including
    the one on which the pole falls. The episode terminates when :math:`|x| > 2.4` or
    :math:`|\\theta| > 12°`, and is truncated after 500 steps.

    ``dtype=torch.float64`` gives gymnasium's arithmetic exactly (it computes in float64);
    the default float32 is what policies consume and is faster.
    """

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02  # seconds between state updates
    theta_threshold = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    max_episode_steps = 500

    state_dim = 4
    spaces = SpaceInfo(obs_shape=(4,), discrete=True, num_actions=2)

    def _initial_states(self, n: int) -> torch.Tensor:
        u = torch.rand(n, 4, generator=self.generator, device=self.device, dtype=self.dtype)
        return u * 0.1 - 0.05  # uniform in [-0.05, 0.05), as gymnasium

    def reset(self) -> torch.Tensor:
        self.state = self._initial_states(self.num_envs)
        self.steps.zero_()
        return self.state.float()

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Next state ``[N, 4]`` from ``state [N, 4]`` and ``action [N]`` (no resets, no limits)."""
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = torch.where(action.to(torch.bool), self.force_mag, -self.force_mag).to(state.dtype)
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        return torch.stack((
            x + self.tau * x_dot,
            x_dot + self.tau * xacc,
            theta + self.tau * theta_dot,
            theta_dot + self.tau * thetaacc,
        ), dim=-1)

    def step(self, action: torch.Tensor) -> StepResult:
        nxt = self.dynamics(self.state, action)
        x, theta = nxt[:, 0], nxt[:, 2]
        terminated = (x.abs() > self.x_threshold) | (theta.abs() > self.theta_threshold)
        self.steps = self.steps + 1  # a new tensor: a state_dict taken earlier must not change
        truncated = self.steps >= self.max_episode_steps  # as gymnasium's TimeLimit: may coincide with termination
        done = terminated | truncated
        reward = torch.ones(self.num_envs, device=self.device)
        # Draw fresh starts for every env each step and keep them only where an episode
        # ended: no data-dependent branch, so no GPU->CPU sync in the hot loop.
        self.state = torch.where(done.unsqueeze(-1), self._initial_states(self.num_envs), nxt)
        self.steps = torch.where(done, 0, self.steps)
        return StepResult(self.state.float(), reward, terminated, truncated, nxt.float())
