"""The course's agents, by name. Each module has a ``Config``-derived class, ``build_networks``,
``train`` and ``BENCHMARKS``; :data:`ALGORITHMS` maps the command-line name to them, and
:func:`load_agent` rebuilds any trained agent from its run directory in one call."""
from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn


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
    "alphago": Algorithm("alphago", "course_lib.agents.alphago", "AlphaGoConfig"),
    "alphazero": Algorithm("alphazero", "course_lib.agents.alphazero", "AlphaZeroConfig"),
    "muzero": Algorithm("muzero", "course_lib.agents.muzero", "MuZeroConfig"),
    "vit": Algorithm("vit", "course_lib.agents.vit", "ViTConfig"),
    "reasoner": Algorithm("reasoner", "course_lib.agents.reasoner", "ReasonerConfig"),
}


@dataclass
class LoadedAgent:
    """A trained agent: its algorithm, config and networks (in eval mode), from :func:`load_agent`.

    ``agent.nets["actor"]`` or ``agent.actor`` is one network; ``steps`` is how far it trained.
    """

    algo: str
    config: Any
    nets: dict[str, nn.Module]
    steps: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> nn.Module:
        nets = self.__dict__.get("nets", {})
        if name in nets:
            return nets[name]
        raise AttributeError(f"{self.algo} agent has no network {name!r}; it has: {', '.join(nets)}")


def load_agent(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedAgent:
    """Config and networks of a trained agent in one call.

    ``path`` is a run directory (its ``checkpoint.pt`` is read), a checkpoint file, or a
    network exported for sharing (e.g. the pretrained files in :mod:`course_lib.pretrained`).
    The networks are built by the algorithm's ``build_networks`` and get the stored weights.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no trained agent at {path}: give a run directory, a checkpoint.pt or an "
                                "exported network file")
    state = torch.load(path, map_location=device, weights_only=False)
    algo = state.get("algo")
    if algo not in ALGORITHMS:
        raise ValueError(f"{path} holds no known agent (algo {algo!r}); accepted: {', '.join(ALGORITHMS)}")
    spec = ALGORITHMS[algo]
    module = spec.load()
    cfg = spec.config_class.from_stored(state["config"])
    nets = module.build_networks(cfg)
    if algo == "alphago":  # one object holds the pipeline's networks, each None until its stage ran
        weights = state["networks"]
        nets = {k: v for k, v in nets.items() if weights.get(k) is not None}
    else:
        weights = state
    for name, net in nets.items():
        if name not in weights:
            raise KeyError(f"{path} has no weights for {algo}'s network {name!r}")
        net.load_state_dict(weights[name])
        net.to(device).eval()
    counters = state.get("counters")
    steps = counters.get("step") if isinstance(counters, dict) else state.get("steps")
    return LoadedAgent(algo, cfg, nets, steps)


def export_agent(run_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write a trained agent's config and network weights only (no optimiser, replay or RNG
    state: small enough to ship, e.g. :mod:`course_lib.pretrained`) to ``path``; :func:`load_agent`
    reads it back."""
    from ..core.checkpoint import load_checkpoint

    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    algo = state["algo"]
    names = ["networks"] if algo == "alphago" else list(ALGORITHMS[algo].load().build_networks(
        ALGORITHMS[algo].config_class.from_stored(state["config"])))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"algo": algo, "config": state["config"], "steps": state["counters"]["step"]
                if "counters" in state else None, **{name: state[name] for name in names}}, path)
    return path


__all__ = ["ALGORITHMS", "Algorithm", "LoadedAgent", "export_agent", "load_agent"]
