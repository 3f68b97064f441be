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

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..core import ConfigError, ProgressBar, Run, option, resolve_device, seed_everything
from ..core.checkpoint import load_checkpoint
from ..core.run import to_cpu
from ..games import BoardGame, make_game
from ..games.players import (AlphaBetaPlayer, OneStepLookaheadPlayer, PerfectPlayer, RandomPlayer,
                             evaluate_players)
from ..search import (dirichlet_noise, gumbel_noise, gumbel_policy, rules_recurrent_fn, rules_root, rules_search,
                      sample_action, search, search_move, visit_policy)
from .base import RunConfig

__all__ = ["AlphaZeroConfig", "PolicyValueNet", "alphazero_loss", "outcome_targets", "SearchPlayer", "NetworkPlayer",
           "reference_players", "symmetries", "train", "export_network", "load_network", "evaluate_agent",
           "BENCHMARKS", "GAMES"]

GAMES = ("tictactoe", "connect4")


@dataclass
class AlphaZeroConfig(RunConfig):
    """AlphaZero's hyper-parameters. Defaults: tic-tac-toe, learnt to perfect play in one to four CPU minutes."""

    env: str = option("tictactoe", "board game", choices=GAMES)
    total_steps: int = option(60_000, "self-play moves to train for (summed over the parallel games)", low=1)
    num_games: int = option(128, "self-play games played at once (one batched search per move)", low=1)
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
    eval_games: int = option(100, "evaluation games per side against each reference player at the end", low=1)
    eval_simulations: int = option(0, "simulations of the search player in the final evaluation "
                                      "(0: num_simulations)", low=0)
    eval_every: int = option(0, "also play the network alone (no search) against the main reference player every "
                                "this many self-play moves, 50 games per side, for the curves (0: never)", low=0)
    log_every: int = option(2_000, "write a metrics row every this many self-play moves", low=1)
    checkpoint_every: int = option(20_000, "checkpoint every this many self-play moves (and at the end)", low=1)

    def validate(self) -> None:
        self.validate_device()
        if self.env not in GAMES:
            raise ConfigError(f"AlphaZero plays board games; env = {self.env!r} is not one; accepted: "
                              + ", ".join(GAMES))


AlphaZeroConfig.presets = {
    # Connect Four on a CPU: a tower of 3 blocks of 32 channels (a 64x4 one costs four times as
    # much per position), 48 simulations per self-play move, evaluation with 200.
    "connect4": {"env": "connect4", "total_steps": 600_000, "num_games": 256, "num_simulations": 48,
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
class _Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


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
        self.stem = nn.Sequential(nn.Conv2d(game.obs_shape[0], channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.tower = nn.Sequential(*[_Block(channels) for _ in range(blocks)])
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
        tree = rules_search(self.game, self.evaluate, states, self.num_simulations, c1=self.c_puct,
                            selection=self.selection, max_considered=self.max_considered)
        return search_move(tree)


def reference_players(game: BoardGame, seed: int = 0) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The opponents a trained agent is measured against: perfect play for tic-tac-toe;
    one-step lookahead and depth-limited alpha-beta for Connect Four; random for both."""
    if game.name == "tictactoe":
        return {"perfect": PerfectPlayer(game, seed=seed), "random": RandomPlayer(game, seed=seed)}
    return {"one_step": OneStepLookaheadPlayer(game, seed=seed), "alphabeta": AlphaBetaPlayer(game, seed=seed),
            "random": RandomPlayer(game, seed=seed)}


# --------------------------------------------------------------------------- training
def train(
    config: AlphaZeroConfig | None = None,
    out: str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train AlphaZero; returns the summary (also written to ``out/summary.json``).

    The summary's ``evaluation`` holds wins/draws/losses of the network alone (``net``,
    greedy, no search) and with search (``search``) against each reference player, from
    both sides (``as_first``, ``as_second``).

    Args: as the other agents' ``train`` (see :func:`course_lib.agents.ppo.train`).
    """
    cfg = config if config is not None else AlphaZeroConfig()
    run = Run(out, "alphazero", cfg, resume=resume, overwrite=overwrite)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    game = make_game(cfg.env)
    net = PolicyValueNet(game, cfg.channels, cfg.blocks).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    G, A, cells = cfg.num_games, game.num_actions, game.rows * game.cols
    max_moves = cells + 1

    # Self-play state: G games, each with the positions and search policies of its moves so far.
    states = game.initial(G, device)
    moves = torch.zeros(G, dtype=torch.long, device=device)
    pending_states = torch.zeros(G, max_moves, cells, dtype=torch.int8, device=device)
    pending_pis = torch.zeros(G, max_moves, A, device=device)
    # Replay window: a ring of positions with their search policy and outcome.
    R = cfg.replay_size
    replay_states = torch.zeros(R, cells, dtype=torch.int8, device=device)
    replay_pis = torch.zeros(R, A, device=device)
    replay_z = torch.zeros(R, device=device)
    counters = dict(step=0, iteration=0, updates=0, games=0, first_wins=0, draws=0, replay_pos=0, replay_len=0,
                    time_acting=0.0, time_learning=0.0, time_evaluating=0.0, last_eval=None)
    if run.restored is not None:
        saved = run.restored
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        counters.update(saved["counters"])
        for name, t in (("states", states), ("moves", moves), ("pending_states", pending_states),
                        ("pending_pis", pending_pis), ("replay_states", replay_states), ("replay_pis", replay_pis),
                        ("replay_z", replay_z)):
            t.copy_(saved["selfplay"][name])
    run.restore_rng()

    def checkpoint_state() -> dict[str, Any]:
        return {"net": net.state_dict(), "optimizer": optimizer.state_dict(), "counters": dict(counters),
                "selfplay": to_cpu({"states": states, "moves": moves, "pending_states": pending_states,
                                    "pending_pis": pending_pis, "replay_states": replay_states,
                                    "replay_pis": replay_pis, "replay_z": replay_z})}

    def evaluate(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return net(game.observation(s))

    recurrent = rules_recurrent_fn(game, evaluate)
    stats_sum: dict[str, float] = {}
    stats_n = 0

    def store(finished: torch.Tensor, reward: torch.Tensor) -> None:
        """Label the positions of the finished games with their outcome and add them to the window."""
        idx = finished.nonzero().flatten()
        if idx.numel() == 0:
            return
        length = moves[idx]                                                  # moves played, incl. the last
        valid = torch.arange(max_moves, device=device).unsqueeze(0) < length.unsqueeze(1)
        z = outcome_targets(length, reward[idx], max_moves)[valid]
        s = pending_states[idx][valid]
        p = pending_pis[idx][valid]
        n = z.shape[0]
        pos = (counters["replay_pos"] + torch.arange(n, device=device)) % R
        replay_states[pos], replay_pis[pos], replay_z[pos] = s, p, z
        counters["replay_pos"] = (counters["replay_pos"] + n) % R
        counters["replay_len"] = min(R, counters["replay_len"] + n)
        counters["games"] += idx.numel()
        counters["first_wins"] += int(((reward[idx] > 0) & (length % 2 == 1)).sum())
        counters["draws"] += int((reward[idx] == 0).sum())

    def learn() -> None:
        nonlocal stats_n
        idx = torch.randint(counters["replay_len"], (cfg.batch_size,), device=device)
        s, p, z = replay_states[idx], replay_pis[idx], replay_z[idx]
        if cfg.augment:
            # One random symmetry per sample: cheap, and over many steps the net sees them all.
            s_all, p_all = symmetries(game, s, p)
            copies = s_all.shape[0] // s.shape[0]
            pick = torch.randint(copies, (s.shape[0],), device=device) * s.shape[0] + torch.arange(
                s.shape[0], device=device)
            s, p = s_all[pick], p_all[pick]
        net.train()
        logits, value = net(game.observation(s))
        loss, stats = alphazero_loss(logits, value, p, z, game.legal(s))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        net.eval()
        counters["updates"] += 1
        for key, v in stats.items():
            stats_sum[key] = stats_sum.get(key, 0.0) + float(v)
        stats_n += 1

    logged = {key: counters[key] for key in ("games", "first_wins", "draws")}
    num_iterations = max(1, cfg.total_steps // G)
    bar = ProgressBar(num_iterations * G, f"alphazero {cfg.env}", initial=counters["step"], enabled=progress)
    loop_start, steps_at_start = time.perf_counter(), counters["step"]
    net.eval()
    with run:
        while counters["iteration"] < num_iterations:
            # 1. One move in each of the G games: a batched search, then π ∝ N^(1/τ).
            t0 = time.perf_counter()
            with torch.no_grad():
                root, legal = rules_root(game, evaluate, states)
                if cfg.selection == "gumbel":
                    # Gumbel AlphaZero: the noise picks the root moves to consider, sequential
                    # halving the move to play, and the target is the improved policy.
                    tree = search(root, recurrent, cfg.num_simulations, root_legal=legal, selection="gumbel",
                                  gumbel=gumbel_noise((G, A), device=device), max_considered=cfg.max_considered)
                    action, pi = gumbel_policy(tree)
                else:
                    noise = dirichlet_noise(legal, cfg.dirichlet_alpha)
                    tree = search(root, recurrent, cfg.num_simulations, root_legal=legal, root_noise=noise,
                                  noise_fraction=cfg.noise_fraction, c1=cfg.c_puct)
                    pi = visit_policy(tree, temperature=1.0)
                    greedy = visit_policy(tree, temperature=0)
                    explore = (moves < cfg.temperature_moves).unsqueeze(1)
                    action = sample_action(torch.where(explore, pi, greedy))
                pending_states[torch.arange(G, device=device), moves] = states
                pending_pis[torch.arange(G, device=device), moves] = pi
                states, reward, done = game.step(states, action)
                moves += 1
                store(done, reward)
                # Finished games start again at once, so every search keeps G trees.
                states = torch.where(done.unsqueeze(1), game.initial(G, device), states)
                moves = torch.where(done, 0, moves)
            counters["step"] += G
            counters["iteration"] += 1
            t1 = time.perf_counter()

            # 2. Train on the replay window.
            if counters["replay_len"] >= cfg.batch_size:
                for _ in range(cfg.updates_per_iteration):
                    learn()
            t2 = time.perf_counter()
            counters["time_acting"] += t1 - t0
            counters["time_learning"] += t2 - t1

            prev = counters["step"] - G
            if cfg.eval_every and counters["step"] // cfg.eval_every > prev // cfg.eval_every:
                t_eval = time.perf_counter()
                name, opponent = next(iter(reference_players(game, cfg.seed + counters["iteration"]).items()))
                result = evaluate_players(game, NetworkPlayer(game, net), opponent, 50, seed=cfg.seed, device=device)
                counters["last_eval"] = {"opponent": name, **result}
                counters["time_evaluating"] += time.perf_counter() - t_eval
            if counters["step"] // cfg.log_every > prev // cfg.log_every or counters["iteration"] == num_iterations:
                # Self-play outcomes of the games finished since the last row.
                games = max(counters["games"] - logged["games"], 1)
                row = {"step": counters["step"], "updates": counters["updates"], "wall_time": run.elapsed(),
                       "games": counters["games"], "replay": counters["replay_len"],
                       "first_player_win_rate": (counters["first_wins"] - logged["first_wins"]) / games,
                       "draw_rate": (counters["draws"] - logged["draws"]) / games,
                       **{k: v / max(stats_n, 1) for k, v in stats_sum.items()},
                       **_eval_fields(counters.get("last_eval")),
                       "steps_per_second": (counters["step"] - steps_at_start) / (time.perf_counter() - loop_start)}
                stats_sum.clear()
                stats_n = 0
                logged.update(games=counters["games"], first_wins=counters["first_wins"], draws=counters["draws"])
                run.log(row)
                if callback is not None:
                    callback(row)
                bar.update(counters["step"], games=counters["games"], draws=f"{row['draw_rate']:.2f}")
            if counters["step"] // cfg.checkpoint_every > prev // cfg.checkpoint_every:
                run.save(checkpoint_state())
            run.stop_if_interrupted(checkpoint_state, counters["step"])
        bar.close()
        train_seconds = time.perf_counter() - loop_start

        # 3. Evaluate against the reference players, network alone and with search.
        t_eval = time.perf_counter()
        evaluation = evaluate_agent(game, net, cfg.eval_simulations or cfg.num_simulations, cfg.eval_games,
                                    seed=cfg.seed, c_puct=cfg.c_puct, selection=cfg.selection,
                                    max_considered=cfg.max_considered)
        counters["time_evaluating"] += time.perf_counter() - t_eval
        run.save(checkpoint_state())
        return run.finish({
            "env": cfg.env, "seed": cfg.seed, "total_steps": counters["step"], "games": counters["games"],
            "updates": counters["updates"], "evaluation": evaluation,
            "steps_per_second": (counters["step"] - steps_at_start) / train_seconds if train_seconds > 0 else None,
            "wall_seconds": run.elapsed(), "train_seconds": run.elapsed() - counters["time_evaluating"],
            "time_acting": counters["time_acting"], "time_learning": counters["time_learning"],
            "time_evaluating": counters["time_evaluating"], "device": str(device),
        })


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
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"algo": "alphazero", "config": state["config"], "net": state["net"],
                "steps": state["counters"]["step"]}, path)
    return path


def load_network(path: str | Path, device: str | torch.device = "cpu") -> tuple[BoardGame, PolicyValueNet]:
    """The game and the trained network stored by :func:`export_network` (or a run's ``checkpoint.pt``)."""
    state = torch.load(Path(path), map_location=device, weights_only=False)
    cfg = AlphaZeroConfig.from_dict(state["config"])
    game = make_game(cfg.env)
    net = PolicyValueNet(game, cfg.channels, cfg.blocks).to(device)
    net.load_state_dict(state["net"])
    return game, net.eval()


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
