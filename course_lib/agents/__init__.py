"""The course's agents, by name. Each module has a ``Config``-derived class, ``train``
and ``BENCHMARKS``; :data:`ALGORITHMS` maps the command-line name to them."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Algorithm:
    name: str
    module: str
    config: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def config_class(self):
        return getattr(self.load(), self.config)


ALGORITHMS = {
    "ppo": Algorithm("ppo", "course_lib.agents.ppo", "PPOConfig"),
    "sac": Algorithm("sac", "course_lib.agents.sac", "SACConfig"),
    "impala": Algorithm("impala", "course_lib.agents.impala", "IMPALAConfig"),
    "alphazero": Algorithm("alphazero", "course_lib.agents.alphazero", "AlphaZeroConfig"),
    "muzero": Algorithm("muzero", "course_lib.agents.muzero", "MuZeroConfig"),
}
