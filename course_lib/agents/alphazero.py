r"""AlphaZero (Silver et al., 2017/2018) for small board games, with self-play searched in batches.

The loop, as the lecture writes it::

    repeat
        play G games against itself at once; at every move run MCTS guided by (p, v) = f_θ(s)
        in all G trees together, play a ~ π(a) ∝ N(s, a)^(1/τ), store (s, π)
        when a game ends with outcome z, label each of its positions with z (from the
        point of view of the player to move there)
        train f_θ on minibatches from a window of recent positions, minimising
            l = (z - v)² - πᵀ log p + c ||θ||²
    until the step budget is spent

One residual network gives both the policy prior ``p`` and the value ``v``
(:class:`PolicyValueNet`); the search is :mod:`course_lib.search` with the true rules
(:func:`~course_lib.search.rules_recurrent_fn`). Details that make it work on small
games: Dirichlet noise on the root prior in self-play, τ = 1 for the first moves and
then the most visited move, the board's symmetries as free extra data, and a replay
window so the network is not trained only on the latest games.

``selection="gumbel"`` trains Gumbel AlphaZero instead (Danihelka et al., 2022): the root
moves are drawn with Gumbel noise and narrowed by sequential halving, the move played is
the survivor, and the policy target is the improved policy
:func:`~course_lib.search.gumbel_policy` (prior and completed Q) rather than visit counts,
which still improves the policy with two simulations per move, where PUCT's visit counts
only echo the prior.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..core import Callback, ConfigError, Run, option
from ..core.loop import Counters, MeanStats, Stopwatch, TargetTracker, crossed
from ..games import BoardGame, make_game
from ..games.players import (AlphaBetaPlayer, OneStepLookaheadPlayer, PerfectPlayer, RandomPlayer,
                             evaluate_players)
from ..nets import conv_stem, residual_tower
from ..replay import ReplayBuffer
from ..search import make_policy, rules_recurrent_fn, rules_root
from .base import EnvConfig

__all__ = ["AlphaZeroConfig", "PolicyValueNet", "alphazero_loss", "outcome_targets", "SearchPlayer", "NetworkPlayer",
           "reference_players", "symmetries", "random_symmetry", "build_networks", "train", "export_network", "load_network",
           "evaluate_agent", "BENCHMARKS", "GAMES"]

GAMES = ("tictactoe", "connect4")
# Games per side of the periodic evaluations (eval_every).
PERIODIC_GAMES = 50


@dataclass
class AlphaZeroConfig(EnvConfig):
    """AlphaZero's hyper-parameters. Defaults: tic-tac-toe, learnt to perfect play in one to four CPU minutes."""

    env: str = option("tictactoe", "board game", choices=GAMES)
    env_backend: str = option("tensor", "board games are always played as batched tensors (unused)",
                              choices=("gymnasium", "tensor"))
    total_steps: int = option(60_000, "self-play moves to train for (summed over the parallel games)", low=1)
    num_envs: int = option(128, "self-play games played at once (one batched search per move)", low=1)
    num_simulations: int = option(32, "MCTS simulations per self-play move", low=1)
    temperature_moves: int = option(4, "moves of each game sampled from π ∝ N (τ = 1); later moves take the most "
                                       "visited action", low=0)
    dirichlet_alpha: float = option(1.0, "Dirichlet α of the root noise in self-play", low=0.0, low_open=True)
    noise_fraction: float = option(0.25, "weight ε of the root noise", low=0.0, high=1.0)
    c_puct: float = option(1.25, "PUCT exploration constant c1", low=0.0, low_open=True)
    selection: str = option("puct", "search: puct (AlphaZero) or gumbel (Gumbel AlphaZero: Gumbel noise and "
                                    "sequential halving at the root, the improved policy as target; "
                                    "dirichlet_alpha, noise_fraction, temperature_moves and c_puct unused)",
                            choices=("puct", "gumbel"))
    max_considered: int = option(16, "gumbel: root moves sequential halving starts from", low=1)
    channels: int = option(32, "channels of the residual tower", low=1)
    blocks: int = option(2, "residual blocks", low=0)
    replay_size: int = option(50_000, "positions kept for training (a window of the latest games)", low=1)
    batch_size: int = option(256, "minibatch size", low=1)
    updates_per_iteration: int = option(1, "gradient steps after each self-play move of all games", low=0)
    learning_rate: float = option(2e-3, "Adam step size", low=0.0, low_open=True)
    weight_decay: float = option(1e-4, "c of the c||θ||² term", low=0.0)
    augment: bool = option(True, "train on the board's symmetries too (8 for tic-tac-toe, 2 for Connect Four)")
    eval_episodes: int = option(100, "evaluation games per side against each reference player at the end", low=1)
    eval_simulations: int = option(0, "simulations of the search player in the final evaluation "
                                      "(0: num_simulations)", low=0)
    eval_every: int = option(0, "also play the network alone (no search) against the main reference player every "
                                "this many self-play moves, 50 games per side, for the curves (0: never)", low=0)
    log_every: int = option(2_000, "write a metrics row every this many self-play moves", low=1)
    checkpoint_every: int = option(20_000, "checkpoint every this many self-play moves (and at the end)", low=1)

    def check_env(self) -> None:
        if self.env not in GAMES:
            raise ConfigError(f"AlphaZero plays board games; env = {self.env!r} is not one; accepted: "
                              + ", ".join(GAMES))


AlphaZeroConfig.renamed = {"num_games": "num_envs", "eval_games": "eval_episodes"}


AlphaZeroConfig.presets = {
    # Connect Four on a CPU: a tower of 3 blocks of 32 channels (a 64x4 one costs four times as
    # much per position), 48 simulations per self-play move, evaluation with 200.
    "connect4": {"env": "connect4", "total_steps": 600_000, "num_envs": 256, "num_simulations": 48,
                 "temperature_moves": 8, "channels": 32, "blocks": 3, "replay_size": 200_000,
                 "updates_per_iteration": 4, "learning_rate": 1e-3, "eval_simulations": 200,
                 "eval_every": 50_000, "log_every": 10_240, "checkpoint_every": 51_200},
}

# name -> (preset, overrides): what `python -m course_lib bench alphazero` runs.
BENCHMARKS = {
    "tictactoe": (None, {}),
    "connect4": ("connect4", {}),
}


# --------------------------------------------------------------------------- network
class PolicyValueNet(nn.Module):
    r""":math:`(p, v) = f_\theta(s)`: a residual tower with a policy head and a value head.

    Input: the game's observation ``[B, 2, H, W]`` (stones of the player to move, of the
    opponent). Output: policy logits ``[B, A]`` (illegal moves are masked by the caller)
    and a value ``[B]`` in [-1, 1] for the player to move. The shape of AlphaZero's network,
    scaled down: a 3×3 convolution, ``blocks`` residual blocks, then 1×1 convolutions into
    a linear policy head and a tanh value head.
    """

    def __init__(self, game: BoardGame, channels: int = 32, blocks: int = 2):
        super().__init__()
        cells = game.rows * game.cols
        self.stem = conv_stem(game.obs_shape[0], channels)
        self.tower = residual_tower(channels, blocks)
        self.policy_head = nn.Sequential(nn.Conv2d(channels, 2, 1, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
                                         nn.Flatten(), nn.Linear(2 * cells, game.num_actions))
        self.value_head = nn.Sequential(nn.Conv2d(channels, 1, 1, bias=False), nn.BatchNorm2d(1), nn.ReLU(),
                                        nn.Flatten(), nn.Linear(cells, 64), nn.ReLU(), nn.Linear(64, 1), nn.Tanh())

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tower(self.stem(obs))
        return self.policy_head(x), self.value_head(x).squeeze(-1)


def alphazero_loss(logits: torch.Tensor, value: torch.Tensor, target_pi: torch.Tensor, target_z: torch.Tensor,
                   legal: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""AlphaZero's loss without the weight penalty (the optimiser's weight decay adds :math:`c\|\theta\|^2`).

    .. math::  l = (z - v)^2 - \pi^\top \log p

    Args:
      logits: ``[B, A]`` policy logits; ``legal`` ``[B, A]`` masks illegal moves out of ``p``.
      value: ``[B]`` :math:`v`.
      target_pi: ``[B, A]`` :math:`\pi`, the search's visit distribution.
      target_z: ``[B]`` :math:`z \in \{-1, 0, 1\}`, the game's outcome for the player to move.

    Returns:
      The mean loss and its parts (``value_loss``, ``policy_loss``, ``policy_entropy``).
    """
    if legal is not None:
        logits = logits.masked_fill(~legal, -1e9)
    log_p = torch.log_softmax(logits, dim=-1)
    value_loss = (target_z - value).square().mean()
    policy_loss = -(target_pi * log_p).sum(-1).mean()
    entropy = -(log_p.exp() * log_p).sum(-1).mean()
    return value_loss + policy_loss, {"value_loss": value_loss.detach(), "policy_loss": policy_loss.detach(),
                                      "policy_entropy": entropy.detach()}


def outcome_targets(lengths: torch.Tensor, final_rewards: torch.Tensor, max_moves: int) -> torch.Tensor:
    r"""The value target :math:`z_k` of every position of finished two-player games.

    Position :math:`k` (before move :math:`k`, counting from 0) belongs to the player who
    makes move :math:`k`. The last mover, who made move :math:`L-1`, received the final
    reward (+1 won, 0 draw), so

    .. math::  z_k = (-1)^{L-1-k}\, r_{\text{final}}

    Args:
      lengths: ``[n]`` :math:`L`, moves played in each game.
      final_rewards: ``[n]`` the last mover's reward.
      max_moves: width of the output.

    Returns:
      ``[n, max_moves]`` :math:`z_k` (entries with :math:`k \ge L` are meaningless).
    """
    k = torch.arange(max_moves, device=lengths.device)
    sign = 1.0 - 2.0 * ((lengths.unsqueeze(1) - 1 - k) % 2).float()
    return final_rewards.unsqueeze(1).float() * sign


def symmetries(game: BoardGame, states: torch.Tensor, pis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The board's symmetric copies of ``states [N, cells]`` with their policies ``[N, A]`` (all of them, stacked).

    Tic-tac-toe: the 8 rotations and reflections of the square (a move is a cell, so the
    policy turns with the board). Connect Four: the left–right mirror (a move is a column).
    Copy ``g`` of sample ``n`` is row ``g * N + n`` (:meth:`BoardGame.symmetries`' order).
    """
    cells, actions = game.symmetries(states.device)
    return (states[:, cells].transpose(0, 1).reshape(-1, states.shape[1]),
            pis[:, actions].transpose(0, 1).reshape(-1, pis.shape[1]))


def random_symmetry(game: BoardGame, states: torch.Tensor, pis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of ``states [N, cells]`` (with its policy ``[N, A]``) turned by one random symmetry of the
    board: cheap, and over many minibatches the network sees them all."""
    s_all, p_all = symmetries(game, states, pis)
    n = states.shape[0]
    pick = torch.randint(s_all.shape[0] // n, (n,), device=states.device) * n + torch.arange(n, device=states.device)
    return s_all[pick], p_all[pick]


# --------------------------------------------------------------------------- players
class NetworkPlayer:
    """Plays the network's most probable legal move, without search."""

    def __init__(self, game: BoardGame, net: PolicyValueNet):
        self.game, self.net = game, net

    @torch.no_grad()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        logits, _ = self.net(self.game.observation(states))
        return logits.masked_fill(~self.game.legal(states), -math.inf).argmax(-1)


class SearchPlayer:
    """Plays the move of an MCTS guided by the network, without noise: the most visited one
    (``selection="puct"``), or the survivor of sequential halving (``"gumbel"``)."""

    def __init__(self, game: BoardGame, net: PolicyValueNet, num_simulations: int, c_puct: float = 1.25,
                 selection: str = "puct", max_considered: int = 16):
        self.game, self.net, self.num_simulations, self.c_puct = game, net, num_simulations, c_puct
        self.selection, self.max_considered = selection, max_considered

    def evaluate(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(self.game.observation(states))

    @torch.no_grad()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        # No exploration: no root noise and temperature 0 (PUCT), no Gumbel noise (Gumbel).
        policy = make_policy(self.selection, self.num_simulations, c1=self.c_puct, max_considered=self.max_considered,
                             gumbel_scale=0.0)
        root, legal = rules_root(self.game, self.evaluate, states)
        return policy(root, rules_recurrent_fn(self.game, self.evaluate), legal, temperature=0).action


def reference_players(game: BoardGame, seed: int = 0) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The opponents a trained agent is measured against: perfect play for tic-tac-toe;
    one-step lookahead and depth-limited alpha-beta for Connect Four; random for both."""
    if game.name == "tictactoe":
        return {"perfect": PerfectPlayer(game, seed=seed), "random": RandomPlayer(game, seed=seed)}
    return {"one_step": OneStepLookaheadPlayer(game, seed=seed), "alphabeta": AlphaBetaPlayer(game, seed=seed),
            "random": RandomPlayer(game, seed=seed)}


# --------------------------------------------------------------------------- training
def build_networks(cfg: AlphaZeroConfig) -> dict[str, nn.Module]:
    """AlphaZero's network for ``cfg.env``: ``{"net": PolicyValueNet}``."""
    return {"net": PolicyValueNet(make_game(cfg.env), cfg.channels, cfg.blocks)}


@dataclasses.dataclass
class AlphaZeroCounters(Counters):
    """Besides the shared counters (``step`` counts self-play moves): finished games, first-player wins, draws."""

    games: int = 0
    first_wins: int = 0
    draws: int = 0


def train(config: AlphaZeroConfig | None = None, out: str | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True, callback: Callback | None = None) -> dict[str, Any]:
    """Train AlphaZero; returns the summary (also written to ``out/summary.json``).

    The summary's ``evaluation`` holds wins/draws/losses of the network alone (``net``,
    greedy, no search) and with search (``search``) against each reference player, from
    both sides (``as_first``, ``as_second``). Args: as :func:`course_lib.agents.ppo.train`.
    """
    cfg = config if config is not None else AlphaZeroConfig()
    run = Run(out, "alphazero", cfg, resume=resume, overwrite=overwrite, progress=progress, callback=callback)
    device = run.device
    game = make_game(cfg.env)
    net = build_networks(cfg)["net"].to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    G, A, cells = cfg.num_envs, game.num_actions, game.rows * game.cols
    max_moves = cells + 1
    # Self-play state: G games, each with the positions and search policies of its moves so far.
    selfplay = {"states": game.initial(G, device), "moves": torch.zeros(G, dtype=torch.long, device=device),
                "pending_states": torch.zeros(G, max_moves, cells, dtype=torch.int8, device=device),
                "pending_pis": torch.zeros(G, max_moves, A, device=device)}
    # Replay window: a ring of positions with their search policy and outcome.
    replay = ReplayBuffer(cfg.replay_size, {"states": ((cells,), torch.int8), "pis": ((A,), torch.float32),
                                            "z": ((), torch.float32)}, device)
    counters, stats = AlphaZeroCounters(), MeanStats(device)
    clock = Stopwatch(counters, device)
    # The network alone against the main reference player every eval_every moves, for the curves.
    periodic = TargetTracker(cfg, counters, run.elapsed, score=lambda result: None,
                             evaluate=lambda _, seed: _net_vs_reference(game, net, PERIODIC_GAMES, seed))
    saved = run.restore(net=net, optimizer=optimizer, replay=replay, counters=counters, periodic=periodic,
                        stats=stats)
    if saved:
        for name, t in selfplay.items():
            t.copy_(saved[name])
    states, moves = selfplay["states"], selfplay["moves"]
    pending_states, pending_pis = selfplay["pending_states"], selfplay["pending_pis"]
    recurrent = rules_recurrent_fn(game, lambda s: net(game.observation(s)))
    # Self-play's search: PUCT with Dirichlet root noise, or Gumbel with Gumbel root noise.
    policy_fn = make_policy(cfg.selection, cfg.num_simulations, c1=cfg.c_puct, dirichlet_alpha=cfg.dirichlet_alpha,
                            noise_fraction=cfg.noise_fraction, max_considered=cfg.max_considered)

    def store(finished: torch.Tensor, reward: torch.Tensor) -> None:
        """Label the positions of the finished games with their outcome and add them to the window."""
        idx = finished.nonzero().flatten()
        if idx.numel() == 0:
            return
        length = moves[idx]                                                  # moves played, incl. the last
        valid = torch.arange(max_moves, device=device).unsqueeze(0) < length.unsqueeze(1)
        replay.add(states=pending_states[idx][valid], pis=pending_pis[idx][valid],
                   z=outcome_targets(length, reward[idx], max_moves)[valid])
        counters.games += idx.numel()
        counters.first_wins += int(((reward[idx] > 0) & (length % 2 == 1)).sum())
        counters.draws += int((reward[idx] == 0).sum())

    logged = {"games": counters.games, "first_wins": counters.first_wins, "draws": counters.draws}
    num_iterations = max(1, cfg.total_steps // G)
    net.eval()
    with run.loop(num_iterations * G, counters, f"alphazero {cfg.env}"):
        while counters.iteration < num_iterations:
            previous_step = counters.step
            with clock("acting"), torch.no_grad():
                # 1. One move in each of the G games: a batched search, then π ∝ N^(1/τ).
                root, legal = rules_root(game, lambda s: net(game.observation(s)), states)
                # PUCT: π = visit counts, moves drawn from π in the opening, then the most visited.
                # Gumbel: the noise picks the root moves to consider, sequential halving the move,
                # and π is the improved policy.
                action, pi, _ = policy_fn(root, recurrent, legal, explore=moves < cfg.temperature_moves)
                pending_states[torch.arange(G, device=device), moves] = states
                pending_pis[torch.arange(G, device=device), moves] = pi
                next_states, reward, done = game.step(states, action)
                moves += 1
                store(done, reward)
                # Finished games start again at once, so every search keeps G trees.
                states.copy_(torch.where(done.unsqueeze(1), game.initial(G, device), next_states))
                moves.copy_(torch.where(done, 0, moves))
                counters.step += G
                counters.iteration += 1

            with clock("learning"):
                # 2. Train on the replay window (each position turned by a random symmetry of the board).
                for _ in range(cfg.updates_per_iteration if len(replay) >= cfg.batch_size else 0):
                    batch = replay.sample(cfg.batch_size)
                    s, p = random_symmetry(game, batch["states"], batch["pis"]) if cfg.augment else (
                        batch["states"], batch["pis"])
                    net.train()
                    logits, value = net(game.observation(s))
                    loss, parts = alphazero_loss(logits, value, p, batch["z"], game.legal(s))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    net.eval()
                    counters.updates += 1
                    stats.add(parts)

            # 3. Now and then: the network alone against a reference player, a metrics row, a checkpoint.
            periodic.update(previous_step)
            row = None
            if crossed(counters.step, previous_step, cfg.log_every) or counters.iteration == num_iterations:
                # Self-play outcomes of the games finished since the last row.
                games = max(counters.games - logged["games"], 1)
                row = {"step": counters.step, "updates": counters.updates, "wall_time": run.elapsed(),
                       "games": counters.games, "replay": len(replay),
                       "first_player_win_rate": (counters.first_wins - logged["first_wins"]) / games,
                       "draw_rate": (counters.draws - logged["draws"]) / games, **stats.pop(),
                       **_eval_fields(periodic.last_result),
                       "steps_per_second": run.steps_per_second()}
                logged.update(games=counters.games, first_wins=counters.first_wins, draws=counters.draws)
            run.end_iteration(counters.step, previous_step, row, extra=selfplay,
                              postfix={"games": counters.games, "draws": f"{row['draw_rate']:.2f}"} if row else None)

    # 4. Evaluate against the reference players, network alone and with search.
    with clock("evaluating"):
        evaluation = evaluate_agent(game, net, cfg.eval_simulations or cfg.num_simulations, cfg.eval_episodes,
                                    seed=cfg.seed, c_puct=cfg.c_puct, selection=cfg.selection,
                                    max_considered=cfg.max_considered)
    run.save(selfplay)
    return run.finish(run.summary(counters, evaluation=evaluation, games=counters.games))


def _net_vs_reference(game: BoardGame, net: PolicyValueNet, games: int, seed: int) -> dict[str, Any]:
    """The network alone (no search) against the first reference player, ``games`` per side."""
    name, opponent = next(iter(reference_players(game, seed).items()))
    device = next(net.parameters()).device
    return {"opponent": name, **evaluate_players(game, NetworkPlayer(game, net), opponent, games, seed=seed,
                                                 device=device)}


def _eval_fields(last: dict | None) -> dict[str, Any]:
    """Metrics columns of the latest periodic evaluation: the network's score (win 1, draw ½) per side."""
    if not last:
        return {}
    out = {}
    for side in ("as_first", "as_second"):
        r = last[side]
        out[f"net_score_{side}_vs_{last['opponent']}"] = (r["wins"] + 0.5 * r["draws"]) / max(sum(r.values()), 1)
    return out


def export_network(run_dir: str | Path, path: str | Path) -> Path:
    """Write the network of the run in ``run_dir`` (its config and weights only, a few hundred kB) to ``path``."""
    from . import export_agent

    return export_agent(run_dir, path)


def load_network(path: str | Path, device: str | torch.device = "cpu") -> tuple[BoardGame, PolicyValueNet]:
    """The game and the trained network stored by :func:`export_network` (or a run's ``checkpoint.pt``)."""
    from . import load_agent

    agent = load_agent(path, device)
    return make_game(agent.config.env), agent.net


def evaluate_agent(game: BoardGame, net: PolicyValueNet, num_simulations: int, games_per_side: int,
                   seed: int = 0, c_puct: float = 1.25, selection: str = "puct",
                   max_considered: int = 16) -> dict[str, Any]:
    """Wins/draws/losses of the network alone and with search against every reference player, from both sides."""
    net.eval()
    device = next(net.parameters()).device     # games are played where the network is
    agents = {"net": NetworkPlayer(game, net),
              "search": SearchPlayer(game, net, num_simulations, c_puct, selection, max_considered)}
    out: dict[str, Any] = {"search_simulations": num_simulations}
    for opp_name, opponent in reference_players(game, seed).items():
        out[opp_name] = {name: evaluate_players(game, agent, opponent, games_per_side, seed=seed, device=device)
                         for name, agent in agents.items()}
    return out
