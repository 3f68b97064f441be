"""Pendulum as a batched tensor environment: N copies stepped by one call, on any device.

The dynamics, cost, start distribution and 200-step time limit are those of gymnasium's
``Pendulum-v1`` (a torque-limited swing-up with semi-implicit Euler integration), so the
same state and action give the same next observation and reward (tests check it
against gymnasium). As with :class:`~course_lib.envs.cartpole.TensorCartPole`, the gain
is speed: 4,096 pendulums are a handful of tensor operations per step.
"""
from __future__ import annotations

import math

import torch

from .base import SpaceInfo, StepResult, TensorEnv


def angle_normalize(theta: torch.Tensor) -> torch.Tensor:
    """``theta`` wrapped into ``[-pi, pi)``, as gymnasium's ``angle_normalize`` (0 is upright)."""
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


class TensorPendulum(TensorEnv):
    """``num_envs`` Pendulum-v1 copies as ``[N, 2]`` states ``(θ, θ̇)``, auto-resetting in the same step.

    Observation ``[N, 3]``: :math:`(\\cos\\theta, \\sin\\theta, \\dot\\theta)`, with θ = 0
    upright. Action ``[N, 1]`` (or ``[N]``): the torque u, clipped to ``[-2, 2]``. With θ
    and θ̇ the state *before* the step, the reward is

    .. math:: r = -\\left(\\mathrm{normalize}(\\theta)^2 + 0.1\\,\\dot\\theta^2 + 0.001\\,u^2\\right)

    and the state moves by

    .. math::
        \\dot\\theta' = \\mathrm{clip}\\Big(\\dot\\theta + \\big(\\tfrac{3g}{2l}\\sin\\theta
        + \\tfrac{3}{ml^2}u\\big)\\,dt,\\ \\pm 8\\Big), \\qquad \\theta' = \\theta + \\dot\\theta'\\,dt.

    Episodes start from θ ~ U(-π, π), θ̇ ~ U(-1, 1), never terminate, and are truncated
    after 200 steps. θ itself is not wrapped (as in gymnasium); only the cost wraps it.

    ``dtype=torch.float64`` gives gymnasium's arithmetic exactly (it computes in float64);
    the default float32 is what policies consume and is faster. Observations and rewards
    are float32 either way.
    """

    max_speed = 8.0
    max_torque = 2.0
    dt = 0.05  # seconds between state updates
    g = 10.0   # Pendulum-v1's default gravity
    m = 1.0
    l = 1.0    # pole length (gymnasium's name)
    max_episode_steps = 200
    start_high = (math.pi, 1.0)  # initial (θ, θ̇) drawn uniformly from [-high, high]

    state_dim = 2
    spaces = SpaceInfo(obs_shape=(3,), discrete=False, action_dim=1, action_low=(-2.0,), action_high=(2.0,))

    def __init__(self, num_envs: int, device: torch.device | str = "cpu", seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__(num_envs, device, seed, dtype)
        self._start_high = torch.tensor(self.start_high, device=self.device, dtype=dtype)

    def _initial_states(self, n: int) -> torch.Tensor:
        u = torch.rand(n, 2, generator=self.generator, device=self.device, dtype=self.dtype)
        return (2 * u - 1) * self._start_high

    def reset(self) -> torch.Tensor:
        self.state = self._initial_states(self.num_envs)
        self.steps.zero_()
        return self.observation(self.state)

    @staticmethod
    def observation(state: torch.Tensor) -> torch.Tensor:
        """Float32 observation ``[N, 3]`` = (cos θ, sin θ, θ̇) of ``state [N, 2]``."""
        theta, theta_dot = state.unbind(-1)
        return torch.stack((torch.cos(theta), torch.sin(theta), theta_dot), dim=-1).float()

    def cost(self, state: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        """Cost ``[N]`` (the negative reward) of applying ``torque [N]`` in ``state [N, 2]``."""
        theta, theta_dot = state.unbind(-1)
        u = torque.clamp(-self.max_torque, self.max_torque)
        return angle_normalize(theta).square() + 0.1 * theta_dot.square() + 0.001 * u.square()

    def dynamics(self, state: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        """Next state ``[N, 2]`` from ``state [N, 2]`` and ``torque [N]`` (clipped; no resets, no time limit)."""
        theta, theta_dot = state.unbind(-1)
        u = torque.clamp(-self.max_torque, self.max_torque)
        # Same grouping of constants as gymnasium, so float64 results agree to the last bit.
        new_theta_dot = theta_dot + (3 * self.g / (2 * self.l) * torch.sin(theta)
                                     + 3.0 / (self.m * self.l ** 2) * u) * self.dt
        new_theta_dot = new_theta_dot.clamp(-self.max_speed, self.max_speed)
        # Semi-implicit Euler: the angle moves with the *new* velocity.
        return torch.stack((theta + new_theta_dot * self.dt, new_theta_dot), dim=-1)

    def _torque(self, action: torch.Tensor) -> torch.Tensor:
        if action.shape not in ((self.num_envs,), (self.num_envs, 1)):
            raise ValueError(
                f"TensorPendulum.step expects actions of shape [{self.num_envs}, 1] or [{self.num_envs}]; "
                f"got {list(action.shape)}"
            )
        return action.reshape(self.num_envs).to(self.device, self.dtype)

    def step(self, action: torch.Tensor) -> StepResult:
        torque = self._torque(action)
        reward = -self.cost(self.state, torque).float()
        nxt = self.dynamics(self.state, torque)
        self.steps = self.steps + 1  # not in place: a state_dict taken earlier must not change
        truncated = self.steps >= self.max_episode_steps  # the pendulum never terminates: only TimeLimit ends it
        terminated = torch.zeros_like(truncated)
        # Draw fresh starts for every env each step and keep them only where an episode
        # ended: no data-dependent branch, so no GPU->CPU sync in the hot loop.
        self.state = torch.where(truncated.unsqueeze(-1), self._initial_states(self.num_envs), nxt)
        self.steps = torch.where(truncated, 0, self.steps)
        return StepResult(self.observation(self.state), reward, terminated, truncated, self.observation(nxt))
