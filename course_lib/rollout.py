r"""Collecting experience: a rollout of T steps from vector envs, and one recorded episode.

:func:`collect_rollout` is the acting half of every on-policy loop: PPO's learner calls it
on its own environments, and each IMPALA actor on its own. It plays ``T`` steps of the
policy in ``B`` environments and returns them time-major (``[T, B, ...]``), with the
log-probability of every action under the policy that chose it and, where an episode
ended, the observation the action led to (``final_obs``), so that truncated episodes can
bootstrap from :math:`V(x_{t+1})` (the course's env step convention, :mod:`course_lib.envs.base`).

:func:`record_episode` plays one whole episode and keeps its frames, for notebooks.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import torch

__all__ = ["Rollout", "RolloutStorage", "collect_rollout", "Episode", "record_episode"]


class Rollout(NamedTuple):
    """``T`` steps in ``B`` environments, time-major."""

    obs: torch.Tensor          # [T, B, *obs_shape] x_t
    actions: torch.Tensor      # [T, B] (discrete) or [T, B, d] a_t ~ pi(.|x_t)
    log_probs: torch.Tensor    # [T, B] log pi(a_t|x_t) under the acting policy
    values: torch.Tensor | None  # [T, B] V(x_t), when asked for
    rewards: torch.Tensor      # [T, B] r_t (after reward_fn, if any)
    terminated: torch.Tensor   # [T, B] bool: x_{t+1} is terminal
    truncated: torch.Tensor    # [T, B] bool: the episode was cut after a_t
    final_obs: torch.Tensor    # [T, B, *obs_shape] x_{t+1} before any reset


class RolloutStorage:
    """Preallocated ``[T, B, ...]`` tensors on one device, refilled by every :func:`collect_rollout`
    (a learner that collects every iteration allocates once)."""

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 discrete: bool, device: torch.device | str = "cpu", values: bool = True):
        T, B = num_steps, num_envs
        self.obs = torch.zeros((T, B, *obs_shape), device=device)
        self.final_obs = torch.zeros_like(self.obs)
        self.actions = torch.zeros((T, B, *action_shape), device=device,
                                   dtype=torch.long if discrete else torch.float32)
        self.log_probs = torch.zeros((T, B), device=device)
        self.values = torch.zeros((T, B), device=device) if values else None
        self.rewards = torch.zeros((T, B), device=device)
        self.terminated = torch.zeros((T, B), device=device, dtype=torch.bool)
        self.truncated = torch.zeros((T, B), device=device, dtype=torch.bool)

    @classmethod
    def for_env(cls, envs: Any, num_steps: int, device: torch.device | str = "cpu", values: bool = True):
        spaces = envs.spaces
        action_shape = () if spaces.discrete else (spaces.action_dim,)
        return cls(num_steps, envs.num_envs, spaces.obs_shape, action_shape, spaces.discrete, device, values)

    def rollout(self) -> Rollout:
        return Rollout(self.obs, self.actions, self.log_probs, self.values, self.rewards, self.terminated,
                       self.truncated, self.final_obs)


@torch.no_grad()
def collect_rollout(envs: Any, policy: Any, obs: torch.Tensor, num_steps: int, *,
                    storage: RolloutStorage | None = None, values: bool = True, episodes: Any = None,
                    reward_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    ) -> tuple[Rollout, torch.Tensor]:
    r"""Play ``num_steps`` steps of ``policy`` in ``envs`` from observations ``obs``.

    Args:
      envs: a vector env (:mod:`course_lib.envs`), ``B`` environments.
      policy: has ``dist(obs)`` (a distribution with ``sample``/``log_prob``),
        ``env_action(action)`` (what the env receives) and, for ``values=True``, ``value(obs)``
        (e.g. :class:`~course_lib.nets.ActorCritic`).
      obs: ``[B, *obs_shape]`` the current observations.
      num_steps: T.
      storage: tensors to fill (default: new ones on ``obs``' device).
      values: also record :math:`V(x_t)`.
      episodes: an :class:`~course_lib.core.metrics.EpisodeTracker` told about every reward
        (unscaled) and episode end.
      reward_fn: ``reward_fn(reward, done)`` gives the stored reward (e.g. a
        :class:`~course_lib.normalization.RewardScaler`); episode returns stay unscaled.

    Returns:
      ``(rollout, next_obs)``: the ``[T, B]`` rollout and the observations to continue from.
    """
    if storage is None:
        storage = RolloutStorage.for_env(envs, num_steps, obs.device, values)
    if storage.obs.shape[0] != num_steps:
        raise ValueError(f"storage holds {storage.obs.shape[0]} steps, not num_steps = {num_steps}")
    if values and storage.values is None:
        raise ValueError("values=True needs a storage with values")
    for t in range(num_steps):
        storage.obs[t] = obs
        dist = policy.dist(obs)
        action = dist.sample()
        if values:
            storage.values[t] = policy.value(obs)
        storage.actions[t] = action
        storage.log_probs[t] = dist.log_prob(action)
        step = envs.step(policy.env_action(action))
        done = step.terminated | step.truncated
        storage.rewards[t] = step.reward if reward_fn is None else reward_fn(step.reward, done)
        storage.terminated[t] = step.terminated
        storage.truncated[t] = step.truncated
        storage.final_obs[t] = step.final_obs
        if episodes is not None:
            episodes.step(step.reward, done)
        obs = step.obs
    rollout = storage.rollout()
    return (rollout if values else rollout._replace(values=None)), obs


class Episode(NamedTuple):
    """One played episode (``T`` steps)."""

    observations: torch.Tensor   # [T + 1, *obs_shape] x_0 .. x_T
    actions: torch.Tensor        # [T] or [T, d]
    rewards: torch.Tensor        # [T]
    frames: list                 # T + 1 RGB arrays [H, W, 3] (empty when not rendered)
    terminated: bool             # ended in a terminal state (else cut by the time limit or max_steps)

    @property
    def total_return(self) -> float:
        return float(self.rewards.sum())


@torch.no_grad()
def record_episode(env_id: str, act: Callable[[torch.Tensor], torch.Tensor], *, seed: int = 0,
                   max_steps: int = 10_000, render: bool = True, device: torch.device | str = "cpu") -> Episode:
    """Play one episode of ``env_id`` (gymnasium) with ``act`` and keep what it saw.

    Args:
      env_id: a gymnasium id (see :func:`course_lib.envs.env_ids`).
      act: ``act(obs [1, *obs_shape]) -> action [1]`` (or ``[1, d]``), e.g. an agent's ``greedy``.
      seed: the episode's seed.
      max_steps: stop after this many steps even if the episode goes on.
      render: keep an RGB frame of every state (``render_mode="rgb_array"``).
      device: where observations are given to ``act``.
    """
    import gymnasium as gym

    from .envs import check_env

    check_env(env_id, "gymnasium")
    env = gym.make(env_id, render_mode="rgb_array" if render else None)
    try:
        obs, _ = env.reset(seed=seed)
        observations, actions, rewards, frames = [obs], [], [], []
        if render:
            try:
                frames.append(env.render())
            except gym.error.DependencyNotInstalled as exc:
                raise RuntimeError(f"drawing {env_id} needs pygame ({exc}); pip install \"gymnasium[classic-control]\" "
                                   "or pass render=False") from None
        terminated = False
        for _ in range(max_steps):
            action = act(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0].cpu()
            obs, reward, terminated, truncated, _ = env.step(action.numpy() if action.dim() else action.item())
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            if render:
                frames.append(env.render())
            if terminated or truncated:
                break
        return Episode(torch.as_tensor(np.stack(observations), dtype=torch.float32), torch.stack(actions),
                       torch.tensor(rewards), frames, bool(terminated))
    finally:
        env.close()
