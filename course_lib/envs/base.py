"""The one vector-environment interface every agent in the course talks to.

Both kinds of environment, gymnasium vector envs and batched tensor envs, present it:

* ``reset() -> obs``: ``[N, *obs_shape]`` float tensor on ``device``;
* ``step(action) -> StepResult``: all fields are tensors on ``device``.

Episode ends are reported in the *same* step (gymnasium's ``SAME_STEP`` autoreset):
``obs`` already holds the first observation of the next episode wherever an episode
ended, and ``final_obs`` holds the last observation of the episode that ended (equal to
``obs`` elsewhere). So every transition an agent sees, ``(obs_t, a_t, r_t, final_obs_t)``,
is a real one; there is no "reset step" to skip, and a truncated episode can be
bootstrapped from the value of its true final observation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch


class StepResult(NamedTuple):
    obs: torch.Tensor         # [N, *obs_shape] next observation (reset where an episode ended)
    reward: torch.Tensor      # [N] float
    terminated: torch.Tensor  # [N] bool: the episode reached a terminal state
    truncated: torch.Tensor   # [N] bool: the episode was cut by a time limit
    final_obs: torch.Tensor   # [N, *obs_shape] the observation a_t led to (pre-reset)


@dataclass(frozen=True)
class SpaceInfo:
    """What a policy needs to know about observations and actions."""

    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int = 0                       # discrete: number of actions
    action_dim: int = 0                        # continuous: size of the action vector
    action_low: tuple[float, ...] = ()         # continuous: bounds of each action component
    action_high: tuple[float, ...] = ()


class VectorEnv(Protocol):
    num_envs: int
    device: torch.device
    spaces: SpaceInfo

    def reset(self) -> torch.Tensor: ...

    def step(self, action: torch.Tensor) -> StepResult: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def close(self) -> None: ...


class TensorEnv:
    """What the batched tensor envs share: ``state [N, state_dim]``, a step counter per
    environment, and a ``torch.Generator`` of their own for fresh starts, all on ``device``.

    Subclasses set ``spaces`` and ``state_dim`` and implement ``reset`` and ``step``.
    ``dtype=torch.float64`` reproduces gymnasium's float64 arithmetic exactly; the default
    float32 is what policies consume and is faster.
    """

    spaces: SpaceInfo
    state_dim: int

    def __init__(self, num_envs: int, device: torch.device | str = "cpu", seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1; got {num_envs}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        self.state = torch.zeros(num_envs, self.state_dim, device=self.device, dtype=dtype)
        self.steps = torch.zeros(num_envs, dtype=torch.int32, device=self.device)

    def state_dict(self) -> dict:
        # Copies: on the CPU, .cpu() returns the very same tensors, which later steps replace.
        return {"state": self.state.cpu().clone(), "steps": self.steps.cpu().clone(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"].to(self.device, self.dtype, copy=True)
        self.steps = state["steps"].to(self.device, torch.int32, copy=True)
        self.generator.set_state(state["generator"])

    def close(self) -> None:
        pass
