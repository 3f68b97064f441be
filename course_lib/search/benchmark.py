"""How fast the batched search runs: simulations per second for B trees at once.

    python -m course_lib search-speed [--game connect4] [--simulations 200] [--batches 1,64,256]
                                      [--evaluators trivial,mlp,resnet] [--device auto] [--repeats 3]

Each measurement searches B positions from the start of the game (every tree grows to
``simulations + 1`` nodes) with one evaluator:

* ``trivial``: uniform prior and value 0, the cost of the search alone;
* ``mlp``: a 64-64 MLP on the board (random weights), the evaluator of the issue's comparison;
* ``resnet``: AlphaZero's :class:`~course_lib.agents.alphazero.PolicyValueNet` at the Connect
  Four preset's size.

It reports sims/s = B × simulations / seconds (best of ``repeats``, after a warm-up search)
and the share of the time spent inside the evaluator.
"""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from ..core.device import resolve_device, synchronize
from ..games import make_game
from .mcts import rules_recurrent_fn, rules_root, search

EVALUATORS = ("trivial", "mlp", "resnet")


def make_evaluator(name: str, game, device: torch.device) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``states -> (prior_logits, value)`` for one of :data:`EVALUATORS`."""
    if name == "trivial":
        def trivial(states: torch.Tensor):
            n = states.shape[0]
            return states.new_zeros((n, game.num_actions), dtype=torch.float32), states.new_zeros(n, dtype=torch.float32)
        return trivial
    if name == "mlp":
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(2 * game.num_cells, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                            nn.Linear(64, game.num_actions + 1)).to(device).eval()
    elif name == "resnet":
        from ..agents.alphazero import AlphaZeroConfig, PolicyValueNet
        torch.manual_seed(0)
        preset = AlphaZeroConfig.presets["connect4"]
        resnet = PolicyValueNet(game, preset["channels"], preset["blocks"]).to(device).eval()

        def run_resnet(obs):
            logits, value = resnet(obs)
            return torch.cat([logits, value.unsqueeze(1)], 1)
        net = run_resnet
    else:
        raise ValueError(f"unknown evaluator {name!r}; accepted: {', '.join(EVALUATORS)}")

    def evaluate(states: torch.Tensor):
        out = net(game.observation(states))
        return out[:, :-1], torch.tanh(out[:, -1])
    return evaluate


@torch.no_grad()
def measure(game_name: str = "connect4", simulations: int = 200, batch: int = 256, evaluator: str = "trivial",
            device: str = "cpu", repeats: int = 3) -> dict:
    """One row of the benchmark: best-of-``repeats`` sims/s and the evaluator's share of the time."""
    dev = resolve_device(device)
    game = make_game(game_name)
    inner = make_evaluator(evaluator, game, dev)
    spent = [0.0]

    def timed(states):
        synchronize(dev)
        t = time.perf_counter()
        out = inner(states)
        synchronize(dev)
        spent[0] += time.perf_counter() - t
        return out

    states = game.initial(batch, dev)
    best, share = float("inf"), 0.0
    for rep in range(repeats + 1):                       # the first search warms up
        spent[0] = 0.0
        synchronize(dev)
        t0 = time.perf_counter()
        root, legal = rules_root(game, timed, states)
        search(root, rules_recurrent_fn(game, timed), simulations, root_legal=legal)
        synchronize(dev)
        seconds = time.perf_counter() - t0
        if rep and seconds < best:
            best, share = seconds, spent[0] / seconds
    return {"game": game_name, "evaluator": evaluator, "batch": batch, "simulations": simulations,
            "seconds": best, "sims_per_second": batch * simulations / best, "evaluator_share": share,
            "device": str(dev), "threads": torch.get_num_threads()}

