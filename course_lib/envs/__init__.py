"""Environments: one registry, two kinds (gymnasium vector envs and batched tensor envs).

``make_vector_env("CartPole-v1", num_envs=8, seed=0, device=dev, backend="tensor")``
returns an object with the interface of :mod:`course_lib.envs.base`, whichever kind.
"""
from __future__ import annotations

import gymnasium as gym
import torch

from .base import SpaceInfo, StepResult, VectorEnv
from .cartpole import TensorCartPole
from .gym_vector import GymVectorEnv
from .pendulum import TensorPendulum

__all__ = [
    "BACKENDS", "GYM_ENV_IDS", "MUJOCO_ENV_IDS", "TENSOR_ENVS", "SpaceInfo", "StepResult", "VectorEnv",
    "GymVectorEnv", "TensorCartPole", "TensorPendulum", "UnknownEnvironment",
    "env_ids", "check_env", "is_discrete", "continuous_env_ids", "env_spaces", "make_vector_env",
]

BACKENDS = ("gymnasium", "tensor")
# Gymnasium environments the course's agents are set up for (Box observations,
# Discrete or 1-D Box actions, no extra downloads).
GYM_ENV_IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MountainCarContinuous-v0")
# MuJoCo tasks (continuous actions, for SAC): need the `mujoco` extra (pip install
# "course-lib[mujoco]"), which brings the physics engine as a wheel.
MUJOCO_ENV_IDS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5",
                  "InvertedPendulum-v5", "Reacher-v5", "Swimmer-v5")
TENSOR_ENVS = {"CartPole-v1": TensorCartPole, "Pendulum-v1": TensorPendulum}
# Which of them have discrete actions: a table, so that checking a config builds nothing.
DISCRETE_ENV_IDS = frozenset({"CartPole-v1", "Acrobot-v1", "MountainCar-v0"})


class UnknownEnvironment(ValueError):
    """An environment id (or backend) that is not available; the message lists those that are."""


def env_ids(backend: str | None = None) -> list[str]:
    """Environment ids available with ``backend`` (any backend when None)."""
    if backend == "tensor":
        return list(TENSOR_ENVS)
    if backend == "gymnasium":
        return [*GYM_ENV_IDS, *MUJOCO_ENV_IDS]
    return list(dict.fromkeys([*GYM_ENV_IDS, *MUJOCO_ENV_IDS, *TENSOR_ENVS]))


def check_env(env_id: str, backend: str = "gymnasium") -> None:
    """Raise :class:`UnknownEnvironment` unless ``env_id`` exists for ``backend``."""
    if backend not in BACKENDS:
        raise UnknownEnvironment(f"unknown env backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    if env_id not in env_ids(backend):
        raise UnknownEnvironment(
            f"unknown environment {env_id!r} for backend {backend!r}; accepted: {', '.join(env_ids(backend))}"
        )
    if env_id in MUJOCO_ENV_IDS:
        try:
            import mujoco  # noqa: F401
        except ImportError:
            raise UnknownEnvironment(
                f"{env_id} needs MuJoCo, which is not installed: pip install \"course-lib[mujoco]\""
            ) from None


def is_discrete(env_id: str) -> bool:
    """Whether ``env_id`` (one of :func:`env_ids`) has discrete actions."""
    return env_id in DISCRETE_ENV_IDS


def continuous_env_ids(backend: str | None = None) -> list[str]:
    """The environments with continuous actions available with ``backend``."""
    return [e for e in env_ids(backend) if not is_discrete(e)]


def env_spaces(env_id: str, backend: str = "gymnasium") -> SpaceInfo:
    """The observation and action spaces of ``env_id`` (read off a throwaway copy)."""
    env = make_vector_env(env_id, 1, seed=0, backend=backend)
    try:
        return env.spaces
    finally:
        env.close()


def make_vector_env(env_id: str, num_envs: int, seed: int, device: torch.device | str = "cpu",
                    backend: str = "gymnasium") -> VectorEnv:
    """``num_envs`` copies of ``env_id`` as one vector env on ``device``.

    ``backend="gymnasium"`` steps gymnasium's own environments (a Python loop over copies,
    results copied to ``device``); ``backend="tensor"`` steps a batched tensor
    re-implementation on ``device`` itself.
    """
    check_env(env_id, backend)
    if backend == "tensor":
        return TENSOR_ENVS[env_id](num_envs, device=device, seed=seed)
    env = gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    return GymVectorEnv(env, seed=seed, device=device)
