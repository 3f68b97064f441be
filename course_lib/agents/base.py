"""What every agent's config shares: the run's environment, budget, seed and device."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, MutableMapping

from ..core import Config, ConfigError, option
from ..envs import BACKENDS, UnknownEnvironment, check_env

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class RunConfig(Config):
    """Fields every algorithm's config starts with; a subclass redeclares a field to change its default."""

    env: str = option("CartPole-v1", "environment id")
    env_backend: str = option("gymnasium", "gymnasium envs, or batched tensor envs stepped on the device",
                              choices=BACKENDS)
    total_steps: int = option(100_000, "environment steps to train for", low=1)
    seed: int = option(0, "random seed (environments i use seed + i)", low=0)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    deterministic: bool = option(False, "deterministic torch kernels: same seed, same numbers")

    def validate(self) -> None:
        try:
            check_env(self.env, self.env_backend)
        except UnknownEnvironment as exc:
            raise ConfigError(str(exc)) from None
        self.validate_device()

    def validate_device(self) -> None:
        if not _DEVICE_RE.match(self.device):
            raise ConfigError(f"{type(self).__name__}.device = {self.device!r} is not accepted; accepted: auto, cpu, "
                              "cuda, cuda:N, mps")


# Seeds of the periodic greedy evaluations: the k-th uses seed + EVAL_SEED_STRIDE * k.
EVAL_SEED_STRIDE = 7919


def evaluate_if_due(cfg: Any, counters: MutableMapping[str, Any],
                    evaluate: Callable[[int, int], list[float]]) -> float:
    """The periodic greedy evaluation every agent shares: when ``counters["step"]`` has crossed
    the next multiple of ``cfg.eval_every``, run ``evaluate(cfg.eval_episodes, seed)`` and update
    ``counters`` (``evals``, ``last_eval``, ``time_evaluating``). Returns the seconds it took
    (0.0 when none was due or ``eval_every`` is 0)."""
    if not cfg.eval_every or counters["step"] // cfg.eval_every <= counters["evals"]:
        return 0.0
    start = time.perf_counter()
    counters["evals"] = counters["step"] // cfg.eval_every
    returns = evaluate(cfg.eval_episodes, cfg.seed + EVAL_SEED_STRIDE * counters["evals"])
    counters["last_eval"] = sum(returns) / len(returns)
    seconds = time.perf_counter() - start
    counters["time_evaluating"] += seconds
    return seconds
