"""Gymnasium vector environments behind the course's tensor interface.

Gymnasium 1.x vector envs reset an episode that ended on the *next* call to ``step``
by default (``AutoresetMode.NEXT_STEP``): that call ignores the action and returns the
first observation of the new episode with reward 0. Learning from that "transition"
would teach the agent that any action taken at the end of an episode leads to a reset.
We build vector envs in ``SAME_STEP`` mode instead: the reset happens inside the step
that ended the episode and the true final observation comes back in
``info["final_obs"]``, so there is no fake transition to skip and truncated episodes can
bootstrap from their final observation.
"""
from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import torch

from .base import SpaceInfo, StepResult


def space_info(env: gym.vector.VectorEnv) -> SpaceInfo:
    obs_space = env.single_observation_space
    act_space = env.single_action_space
    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(f"only Box observation spaces are supported; got {obs_space}")
    if isinstance(act_space, gym.spaces.Discrete):
        return SpaceInfo(obs_shape=tuple(obs_space.shape), discrete=True, num_actions=int(act_space.n))
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        return SpaceInfo(
            obs_shape=tuple(obs_space.shape), discrete=False, action_dim=int(act_space.shape[0]),
            action_low=tuple(float(v) for v in act_space.low), action_high=tuple(float(v) for v in act_space.high),
        )
    raise ValueError(f"only Discrete and 1-D Box action spaces are supported; got {act_space}")


class GymVectorEnv:
    """A gymnasium ``SAME_STEP`` vector env returning torch tensors on ``device``.

    Args:
      env: a gymnasium vector env created with ``autoreset_mode=SAME_STEP``.
      seed: seeds sub-environment ``i`` with ``seed + i`` on the first reset.
      device: where observations, rewards and flags are put.
    """

    def __init__(self, env: gym.vector.VectorEnv, seed: int, device: torch.device | str = "cpu"):
        mode = env.metadata.get("autoreset_mode")
        if mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(
                f"GymVectorEnv needs a vector env with autoreset_mode=SAME_STEP (got {mode}); with NEXT_STEP "
                "the step after an episode ends is a fake transition that must not be learned from. "
                "Create it with gym.make_vec(..., vector_kwargs={'autoreset_mode': gym.vector.AutoresetMode.SAME_STEP})."
            )
        self.env = env
        self.num_envs = env.num_envs
        self.device = torch.device(device)
        self.spaces = space_info(env)
        self._seed = int(seed)
        self._seeded = False

    def _tensor(self, array, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=dtype).to(self.device)

    def reset(self) -> torch.Tensor:
        if not self._seeded:
            obs, _ = self.env.reset(seed=[self._seed + i for i in range(self.num_envs)])
            self._seeded = True
        else:
            obs, _ = self.env.reset()
        return self._tensor(obs)

    def step(self, action: torch.Tensor) -> StepResult:
        act = action.detach().cpu().numpy()
        if self.spaces.discrete:
            act = act.astype(np.int64)
        obs, reward, terminated, truncated, info = self.env.step(act)
        final_obs = obs
        if "_final_obs" in info and info["_final_obs"].any():
            final_obs = obs.copy()
            for i in np.flatnonzero(info["_final_obs"]):
                final_obs[i] = info["final_obs"][i]
        return StepResult(
            self._tensor(obs), self._tensor(reward), self._tensor(terminated, torch.bool),
            self._tensor(truncated, torch.bool), self._tensor(final_obs),
        )

    def state_dict(self) -> dict:
        # A SAME_STEP sync vector env keeps no state of its own between steps; its
        # sub-environments (plain Python objects for classic control) hold the physics,
        # time-limit counters and RNGs, so pickling them captures everything.
        envs = getattr(self.env, "envs", None)
        if envs is None:
            raise TypeError(f"cannot checkpoint {type(self.env).__name__}; use a SyncVectorEnv")
        return {"pickled_envs": pickle.dumps(envs), "seeded": self._seeded}

    def load_state_dict(self, state: dict) -> None:
        for env in self.env.envs:
            env.close()
        self.env.envs = pickle.loads(state["pickled_envs"])
        self._seeded = state["seeded"]

    def close(self) -> None:
        self.env.close()
