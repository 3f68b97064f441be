"""What every agent's config shares: the run's environment, budget, seed and device."""
from __future__ import annotations

import re
from dataclasses import dataclass

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
        if not _DEVICE_RE.match(self.device):
            raise ConfigError(f"{type(self).__name__}.device = {self.device!r} is not accepted; accepted: auto, cpu, "
                              "cuda, cuda:N, mps")
