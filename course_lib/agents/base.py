"""What every agent's config shares: the environment part of a run.

:class:`~course_lib.core.config.TrainConfig` holds what any run has (seed, device,
determinism); :class:`EnvConfig` adds the environment, the step budget, evaluation and
checkpoints; :class:`ReturnConfig` adds the return target of single-agent tasks. The same
quantity has the same name in every agent (``gamma``, ``num_envs``, ``replay_size``,
``eval_episodes``, ...); a subclass redeclares a field only to change its default or help.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..core import ConfigError, option
from ..core.config import TrainConfig
from ..envs import BACKENDS, UnknownEnvironment, check_env

__all__ = ["TrainConfig", "EnvConfig", "ReturnConfig"]


@dataclass
class EnvConfig(TrainConfig):
    """A run in an environment: which one, for how long, how it is evaluated and checkpointed."""

    env: str = option("CartPole-v1", "environment id")
    env_backend: str = option("gymnasium", "gymnasium envs, or batched tensor envs stepped on the device",
                              choices=BACKENDS)
    total_steps: int = option(100_000, "environment steps to train for (rounded down to whole loop iterations)",
                              low=1)
    eval_episodes: int = option(20, "greedy evaluation episodes at the end", low=1)
    eval_every: int = option(0, "also evaluate greedily every this many steps, for the curves (0: only at the end)",
                             low=0)
    checkpoint_every: int = option(50_000, "checkpoint every this many steps (and at the end)", low=1)

    def validate(self) -> None:
        super().validate()
        self.check_env()

    def check_env(self) -> None:
        """The environment exists for the backend (a table lookup: nothing is built)."""
        try:
            check_env(self.env, self.env_backend)
        except UnknownEnvironment as exc:
            raise ConfigError(str(exc)) from None


@dataclass
class ReturnConfig(EnvConfig):
    """A single-agent task with a return to reach (see :mod:`course_lib.core.loop` for the
    one meaning of ``target_return``, ``time_to_target`` and ``stop_at_target``)."""

    target_return: float | None = option(None, "return that counts as solved: judged on the periodic greedy "
                                               "evaluations when eval_every > 0, else on the moving average of "
                                               "the last 20 training episodes (the time and steps to reach it are "
                                               "reported)")
    stop_at_target: bool = option(False, "stop once target_return is reached (a target reached by training "
                                         "returns is first confirmed by 100 greedy episodes)")

    # Whether stop_at_target without a target_return is a mistake (an agent whose default is to
    # stop at its default target sets False: clearing the target then just means "never stop").
    stop_needs_target: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        if self.stop_at_target and self.target_return is None and self.stop_needs_target:
            raise ConfigError(f"{type(self).__name__}.stop_at_target needs a target_return")
