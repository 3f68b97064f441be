"""Evaluating a policy: whole episodes in parallel, one per fresh seed."""
from __future__ import annotations

from typing import Callable

import torch

from .envs import make_vector_env

# Evaluation seeds are drawn far from training seeds, so an evaluation never replays
# the starts the agent trained on.
EVAL_SEED_OFFSET = 1_000_003


def evaluate_policy(
    act: Callable[[torch.Tensor], torch.Tensor],
    env_id: str,
    *,
    episodes: int = 20,
    seed: int = 0,
    device: torch.device | str = "cpu",
    backend: str = "gymnasium",
    max_steps: int = 100_000,
) -> list[float]:
    """Return of the first episode of each of ``episodes`` environments, run side by side.

    ``act`` maps an observation batch ``[N, *obs_shape]`` to actions ``[N]`` (or ``[N, d]``);
    pass a greedy policy for the course's ``eval_return``. Environment ``i`` is seeded
    with ``seed + EVAL_SEED_OFFSET + i``.
    """
    env = make_vector_env(env_id, episodes, seed=seed + EVAL_SEED_OFFSET, device=device, backend=backend)
    try:
        obs = env.reset()
        returns = torch.zeros(episodes, device=env.device)
        running = torch.ones(episodes, dtype=torch.bool, device=env.device)
        for _ in range(max_steps):
            with torch.no_grad():
                action = act(obs)
            result = env.step(action)
            returns += result.reward * running
            running &= ~(result.terminated | result.truncated)
            obs = result.obs
            if not running.any():
                break
        else:
            raise RuntimeError(f"evaluation on {env_id} did not finish within {max_steps} steps")
        return returns.tolist()
    finally:
        env.close()
