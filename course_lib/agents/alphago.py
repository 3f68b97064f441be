r"""AlphaGo in small (Silver et al., 2016): its whole pipeline, on tic-tac-toe.

The lecture's pipeline, one function per stage::

    1. expert games     (s, a*) pairs                       expert_positions
    2. SL policy π_1    min  L_π = -log π_1(a*|s)            train_sl_policy
    3. RL policy π_2    π_2 ← π_1, then self-play REINFORCE  train_rl_policy
                        against earlier versions of itself
    4. value net v_φ    one position per π_2 self-play game,  train_value
                        min (v_φ(s) - z)²
    5. MCTS             prior P(s, a) = π_1(a|s),             alphago_evaluator, AlphaGoPlayer
                        leaf value V(s) = (1-λ) v_φ(s) + λ z_rollout,
                        play argmax_a N(s_0, a)

:func:`run_alphago` runs them in order and plays every stage (π_1 alone, π_2 alone, a
one-step player that only uses v_φ, and the search at several simulation counts) against
perfect and random play.

What stands in for what. Go's human expert games are games of the *perfect* tic-tac-toe
player (exact minimax, :class:`~course_lib.games.PerfectPlayer`); its opponent mixes
perfect and random moves so that the expert is recorded in many different positions, as
the KGS games covered many situations. The 13-layer convolutional networks are small
MLPs on the ``[2, 3, 3]`` observation, and the policy and value networks are *separate*,
as in AlphaGo (AlphaZero, :mod:`course_lib.agents.alphazero`, merges them into one).
One departure, explained in :func:`value_positions`: the value network's position is
drawn from anywhere after AlphaGo's random move, not only just after it.

Everything is batched: all the games of a stage are played at once, one batched
network call per move (a loop over the at most 9 moves of a game, never over games),
on whatever device the networks live on.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import nn

from ..core import ProgressBar, Run, TrainConfig, option
from ..core.fit import fit
from ..games import BoardGame, TicTacToe, make_game, permute, permute_moves
from ..games.players import PerfectPlayer, Player, RandomPlayer, evaluate_players
from ..nets.mlp import mlp
from ..search import puct_policy, rules_recurrent_fn, rules_root

__all__ = ["GameRecords", "play_games", "alternate", "mover_outcomes", "expert_positions", "split_by_position",
           "PolicyNet", "ValueNet", "masked_log_policy", "sl_policy_loss", "train_sl_policy", "policy_agreement",
           "PolicyPlayer", "reinforce_loss", "train_rl_policy", "one_position_per_game", "value_positions",
           "value_loss", "train_value", "ValueGreedyPlayer", "rollout_outcomes", "alphago_evaluator",
           "AlphaGoPlayer", "AlphaGoConfig", "build_networks", "train", "run_alphago", "format_results"]

PlayerFn = Callable[[torch.Tensor], torch.Tensor]
MoveFn = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
Evaluator = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


# --------------------------------------------------------------------------- playing games in batches
class GameRecords(NamedTuple):
    """B finished games, move by move. ``T = game.num_cells``, the most moves a game can last.

    ``states [T, B, cells]`` int8: the canonical position before move ``t`` (seen by its
    mover; zeros once the game is over). ``actions [T, B]`` long: move ``t``.
    ``playing [T, B]`` bool: move ``t`` was made. ``outcome [B]`` float32: +1 the first
    player won, -1 the second, 0 a draw. ``length [B]`` long: moves played.
    """
    states: torch.Tensor
    actions: torch.Tensor
    playing: torch.Tensor
    outcome: torch.Tensor
    length: torch.Tensor


def play_games(game: BoardGame, move: MoveFn, n_games: int,
               device: torch.device | str | None = None) -> GameRecords:
    """Plays ``n_games`` games at once from the empty board and records every move.

    At ply ``t`` the games still going on are one batch: ``move(states [n, cells], t,
    games [n])`` returns their moves (``games`` are the indices of those games in
    ``0..n_games-1``, so a move function can treat games differently). Every move is
    checked against the rules (``game.step(check=True)``).

    Returns:
      :class:`GameRecords`.
    """
    if n_games < 0:
        raise ValueError(f"n_games must be >= 0; got {n_games}")
    T, cells = game.num_cells, game.num_cells
    states = game.initial(n_games, device)
    device = states.device
    rec_states = torch.zeros(T, n_games, cells, dtype=torch.int8, device=device)
    rec_actions = torch.zeros(T, n_games, dtype=torch.long, device=device)
    playing = torch.zeros(T, n_games, dtype=torch.bool, device=device)
    outcome = torch.zeros(n_games, device=device)
    length = torch.zeros(n_games, dtype=torch.long, device=device)
    games = torch.arange(n_games, device=device)
    for t in range(T):
        if games.numel() == 0:
            break
        actions = move(states, t, games)
        rec_states[t, games], rec_actions[t, games], playing[t, games] = states, actions, True
        states, reward, done = game.step(states, actions, check=True)
        outcome[games[reward > 0]] = 1.0 if t % 2 == 0 else -1.0  # even plies are the first player's
        length[games] += 1
        states, games = states[~done], games[~done]
    return GameRecords(rec_states, rec_actions, playing, outcome, length)


def alternate(first: PlayerFn, second: PlayerFn) -> MoveFn:
    """The move function of a match: ``first`` plays the even plies, ``second`` the odd ones."""
    return lambda states, ply, games: (first if ply % 2 == 0 else second)(states)


def mover_outcomes(outcome: torch.Tensor, T: int) -> torch.Tensor:
    r"""``[T, B]`` :math:`z_t`: the outcome of each game for the player to move before move ``t``.

    The first player moves at even :math:`t`, so :math:`z_t = (-1)^t\, z`, with ``outcome``
    :math:`z` ``[B]`` from the first player's view (+1 won, 0 draw, -1 lost).
    """
    sign = 1.0 - 2.0 * (torch.arange(T, device=outcome.device) % 2).to(outcome.dtype)
    return sign.unsqueeze(1) * outcome.unsqueeze(0)


def _cat_records(a: GameRecords, b: GameRecords) -> GameRecords:
    """Two batches of games as one (along B)."""
    return GameRecords(*(torch.cat((x, y), dim=0 if x.dim() == 1 else 1) for x, y in zip(a, b)))


def _check_tictactoe(game: BoardGame) -> None:
    if not isinstance(game, TicTacToe):
        raise ValueError(f"AlphaGo in small needs an expert that plays perfectly, which exists for tic-tac-toe "
                         f"only; got {game!r}; accepted: make_game('tictactoe')")


def _random_symmetry(game: BoardGame, states: torch.Tensor, moves: torch.Tensor | None,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``states [B, cells]`` (and their ``moves [B]``) each turned by a random one of the 8 symmetries."""
    cells, actions = game.random_symmetries(states.shape[0], generator, states.device)
    return permute(states, cells), None if moves is None else permute_moves(moves, actions)


# --------------------------------------------------------------------------- 1. expert games
class _MixedPlayer(Player):
    """Plays ``other``'s move with probability ``fraction``, else ``player``'s, independently per game and move."""

    def __init__(self, game: BoardGame, player: PlayerFn, other: PlayerFn, fraction: float, seed: int = 0):
        super().__init__(game, seed)
        self.player, self.other, self.fraction = player, other, fraction

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        coin = torch.rand(states.shape[0], generator=self._generator(states.device), device=states.device)
        return torch.where(coin < self.fraction, self.other(states), self.player(states))


def expert_positions(game: BoardGame, n_games: int, seed: int = 0, random_fraction: float = 0.5,
                     device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The "human expert games" of tic-tac-toe: positions :math:`s` and the expert's moves :math:`a^*`.

    The expert is the perfect player (minimax, a random move among the optimal ones). It
    moves first in half of the ``n_games`` games and second in the other half; its
    opponent plays a uniformly random legal move with probability ``random_fraction``
    and a perfect move otherwise, independently at every move, so the expert is seen in
    good positions and in positions where it can punish a blunder. Only the expert's
    moves are recorded, so every pair is :math:`(s, a^*)` with :math:`a^*` optimal.

    Args:
      game: a :class:`~course_lib.games.TicTacToe`.
      n_games: games to play (all at once).
      seed: seeds the expert's tie-breaking and the opponent.
      random_fraction: the opponent's probability of a random move.

    Returns:
      ``(positions [N, 9] int8, moves [N] long)``, one pair per expert move, game after game
      (positions recur: the empty board is in half of the games).
    """
    _check_tictactoe(game)
    if not 0.0 <= random_fraction <= 1.0:
        raise ValueError(f"random_fraction must be in [0, 1]; got {random_fraction}")
    expert = PerfectPlayer(game, seed=seed)
    opponent = _MixedPlayer(game, PerfectPlayer(game, seed=seed + 1), RandomPlayer(game, seed=seed + 2),
                            random_fraction, seed=seed + 3)
    positions, moves = [], []
    for seat, n in ((0, n_games - n_games // 2), (1, n_games // 2)):
        rec = play_games(game, alternate(expert, opponent) if seat == 0 else alternate(opponent, expert), n, device)
        ply = torch.arange(game.num_cells, device=rec.states.device).unsqueeze(1)
        experts_move = rec.playing & (ply % 2 == seat)                                   # [T, B]
        positions.append(rec.states[experts_move])
        moves.append(rec.actions[experts_move])
    return torch.cat(positions), torch.cat(moves)


def split_by_position(positions: torch.Tensor, moves: torch.Tensor, held_out: float = 0.1,
                      seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Splits ``(positions [N, cells], moves [N])`` so that no held-out *position* is ever trained on.

    A fraction ``held_out`` of the distinct positions (with all their recorded moves) is
    held out; a random split of the pairs would test mostly on boards seen in training,
    since positions recur across games.

    Returns:
      ``((train_positions, train_moves), (test_positions, test_moves))``.
    """
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be in (0, 1); got {held_out}")
    distinct, which = torch.unique(positions, dim=0, return_inverse=True)
    generator = torch.Generator().manual_seed(seed)
    n_test = max(1, round(held_out * distinct.shape[0]))
    test_ids = torch.randperm(distinct.shape[0], generator=generator)[:n_test].to(positions.device)
    is_test = torch.isin(which, test_ids)
    return (positions[~is_test], moves[~is_test]), (positions[is_test], moves[is_test])


# --------------------------------------------------------------------------- networks
class PolicyNet(nn.Module):
    r""":math:`\pi(a|s)`: an MLP from the observation ``[B, 2, rows, cols]`` to logits ``[B, A]``.

    Illegal moves are *not* masked here: the caller masks them (:func:`masked_log_policy`,
    the search's legal-move mask). The last layer starts near zero, so a fresh network
    plays almost uniformly.
    """

    def __init__(self, game: BoardGame, hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.body = mlp(math.prod(game.obs_shape), list(hidden), game.num_actions, activation="relu", out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs.flatten(1))


class ValueNet(nn.Module):
    r""":math:`v_\phi(s) \in [-1, 1]`: an MLP from the observation ``[B, 2, rows, cols]`` to ``[B]``.

    The expected outcome for the player to move (+1 a win, -1 a loss), through a tanh.
    """

    def __init__(self, game: BoardGame, hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.body = mlp(math.prod(game.obs_shape), list(hidden), 1, activation="relu", out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(obs.flatten(1))).squeeze(-1)


def masked_log_policy(game: BoardGame, policy: PolicyNet, states: torch.Tensor) -> torch.Tensor:
    r"""``[B, A]`` :math:`\log \pi(a|s)` over the legal moves of ``states [B, cells]`` (-inf for illegal ones)."""
    logits = policy(game.observation(states))
    return torch.log_softmax(logits.masked_fill(~game.legal(states), -math.inf), dim=-1)


def _device_of(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


# --------------------------------------------------------------------------- 2. supervised policy π_1
def sl_policy_loss(logits: torch.Tensor, legal: torch.Tensor, expert_moves: torch.Tensor) -> torch.Tensor:
    r"""The supervised policy loss, averaged over the batch:

    .. math::  \mathcal{L}_\pi = -\log \pi_\theta(a^*|s)

    the cross-entropy between the expert's move :math:`a^*` and :math:`\pi_\theta`, a
    softmax over the legal moves only.

    Args:
      logits: ``[B, A]`` policy logits.
      legal: ``[B, A]`` bool legal moves.
      expert_moves: ``[B]`` long :math:`a^*` (legal).
    """
    if logits.dim() != 2 or legal.shape != logits.shape or expert_moves.shape != logits.shape[:1]:
        raise ValueError(f"need logits and legal [B, A], expert_moves [B]; got {tuple(logits.shape)}, "
                         f"{tuple(legal.shape)}, {tuple(expert_moves.shape)}")
    log_pi = torch.log_softmax(logits.masked_fill(~legal, -math.inf), dim=-1)
    return -log_pi.gather(1, expert_moves.unsqueeze(1)).mean()


def train_sl_policy(game: BoardGame, positions: torch.Tensor, moves: torch.Tensor, steps: int = 2000,
                    batch_size: int = 256, learning_rate: float = 1e-3, hidden: Sequence[int] = (128, 128),
                    weight_decay: float = 1e-4, augment: bool = True, seed: int = 0,
                    progress: bool = False) -> PolicyNet:
    r"""π_1: a :class:`PolicyNet` trained to predict the expert's moves.

    Minimises :math:`\mathcal{L}_\pi = -\log \pi_1(a^*|s)` (:func:`sl_policy_loss`) with
    Adam on minibatches of ``(s, a*)`` pairs. With ``augment`` each pair is turned by a
    random symmetry of the board (AlphaGo trained on all 8 of the Go board too).

    Args:
      game: the game.
      positions: ``[N, cells]`` int8 states; the network is built on their device.
      moves: ``[N]`` long expert moves.
      steps: gradient steps.
      seed: seeds the initialisation (torch's global generator) and the minibatches.

    Returns:
      π_1, in eval mode.
    """
    if positions.dim() != 2 or moves.shape != positions.shape[:1] or positions.shape[0] == 0:
        raise ValueError(f"need positions [N, cells] and moves [N] with N > 0; got {tuple(positions.shape)}, "
                         f"{tuple(moves.shape)}")
    torch.manual_seed(seed)
    device = positions.device
    policy = PolicyNet(game, hidden).to(device)
    generator = torch.Generator(device=device).manual_seed(seed + 1)

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        s, a = positions[idx], moves[idx]
        if augment:
            s, a = _random_symmetry(game, s, a, generator)
        return sl_policy_loss(policy(game.observation(s)), game.legal(s), a)

    fit(policy, loss_fn, positions.shape[0], steps, batch_size, learning_rate=learning_rate,
        weight_decay=weight_decay, seed=seed, desc="SL policy π1", progress=progress)
    return policy


@torch.no_grad()
def policy_agreement(game: BoardGame, policy: PolicyNet, positions: torch.Tensor,
                     moves: torch.Tensor) -> dict[str, float]:
    """How often the policy's most probable move matches the expert, on ``(positions, moves)``.

    Returns ``top1`` (the expert's recorded move; AlphaGo's 57% on KGS), ``optimal`` (any
    minimax-optimal move: the expert breaks ties at random, so ``top1`` cannot reach 1),
    and what a uniformly random legal move scores on each (``chance_top1``,
    ``chance_optimal``).
    """
    _check_tictactoe(game)
    log_pi = masked_log_policy(game, policy, positions)
    choice = log_pi.argmax(-1)
    q = PerfectPlayer(game).action_values(positions)
    optimal = q.eq(q.amax(-1, keepdim=True))                                     # [N, A]
    legal = game.legal(positions).sum(-1).float()
    return {"top1": choice.eq(moves).float().mean().item(),
            "optimal": optimal.gather(1, choice.unsqueeze(1)).float().mean().item(),
            "chance_top1": (1.0 / legal).mean().item(),
            "chance_optimal": (optimal.sum(-1).float() / legal).mean().item()}


# --------------------------------------------------------------------------- 3. RL policy π_2
class PolicyPlayer(Player):
    r"""A policy network as a player: its most probable legal move, or a sample of :math:`\pi(\cdot|s)^{1/\tau}`.

    Sampling draws from a seeded generator (Gumbel-max: :math:`\arg\max_a \log\pi(a|s)/\tau
    + g_a`, :math:`g_a` Gumbel noise), so games are reproducible.
    """

    def __init__(self, game: BoardGame, policy: PolicyNet, sample: bool = False, temperature: float = 1.0,
                 seed: int = 0):
        super().__init__(game, seed)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.policy, self.sample, self.temperature = policy, sample, temperature

    @torch.no_grad()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        log_pi = masked_log_policy(self.game, self.policy, states)
        if not self.sample:
            return log_pi.argmax(-1)
        u = torch.rand(log_pi.shape, generator=self._generator(states.device), device=states.device)
        gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
        return (log_pi / self.temperature + gumbel).argmax(-1)     # -inf stays -inf: illegal never chosen


def reinforce_loss(log_probs: torch.Tensor, outcomes: torch.Tensor, mask: torch.Tensor,
                   baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    r"""The REINFORCE loss of AlphaGo's RL policy, for B games of up to T moves:

    .. math::
        \Delta\rho \propto \frac{1}{B} \sum_{i=1}^{B} \sum_{t}
            \frac{\partial \log \pi_\rho(a_t^i|s_t^i)}{\partial \rho}\,(z_t^i - b_t^i),
        \qquad
        \text{loss} = -\frac{1}{B} \sum_{i, t:\ \text{mask}} (z_t^i - b_t^i) \log \pi_\rho(a_t^i|s_t^i)

    so a gradient step on the loss makes the moves of won games (:math:`z = +1`) more
    probable and those of lost games (:math:`z = -1`) less; draws (0) teach nothing.
    AlphaGo used :math:`b = 0` on its first pass and the value network as the baseline
    :math:`b` on its second.

    Args:
      log_probs: ``[T, B]`` :math:`\log \pi_\rho(a_t|s_t)` of the moves played (differentiable).
      outcomes: ``[T, B]`` :math:`z_t \in \{-1, 0, +1\}`, each game's outcome for the mover at ``t``
        (:func:`mover_outcomes`).
      mask: ``[T, B]`` bool, the moves to learn from (the learner's own; not the opponent's).
      baseline: :math:`b`, a number or ``[T, B]``.
    """
    if log_probs.dim() != 2 or outcomes.shape != log_probs.shape or mask.shape != log_probs.shape:
        raise ValueError(f"log_probs, outcomes and mask must all be [T, B]; got {tuple(log_probs.shape)}, "
                         f"{tuple(outcomes.shape)}, {tuple(mask.shape)}")
    advantage = (outcomes - baseline).detach()
    terms = torch.where(mask, advantage * log_probs, torch.zeros_like(log_probs))
    return -terms.sum() / log_probs.shape[1]


def train_rl_policy(game: BoardGame, sl_policy: PolicyNet, iterations: int = 200, games_per_iteration: int = 256,
                    learning_rate: float = 1e-3, snapshot_every: int = 20, temperature: float = 1.0,
                    seed: int = 0, progress: bool = False) -> PolicyNet:
    r"""π_2: π_1 refined by self-play policy gradient against an *opponent pool* of its earlier versions.

    The pool starts as {π_1}; every ``snapshot_every`` iterations the current π_2 joins it.
    Each iteration, as in AlphaGo:

    1. draw an opponent uniformly from the pool (playing a random earlier self, not just
       the current one, keeps π_2 from overfitting to a single opponent);
    2. play ``games_per_iteration`` games at once, π_2 first in half of them and second in
       the other half, both sides *sampling* their moves from
       :math:`\pi(\cdot|s)^{1/\tau}`;
    3. take one Adam step on :func:`reinforce_loss` over π_2's moves, with
       :math:`z_t` the game's outcome for π_2 (+1 won, 0 draw, -1 lost) and no baseline.

    Args:
      game: the game.
      sl_policy: π_1 (left unchanged); π_2 starts as a copy and lives on its device.
      iterations: policy-gradient steps.
      seed: seeds the games and the choice of opponents.

    Returns:
      π_2, in eval mode.
    """
    if iterations < 0 or games_per_iteration < 2 or snapshot_every < 1:
        raise ValueError(f"need iterations >= 0, games_per_iteration >= 2, snapshot_every >= 1; got {iterations}, "
                         f"{games_per_iteration}, {snapshot_every}")
    device = _device_of(sl_policy)
    policy = copy.deepcopy(sl_policy).train()                                       # π_2 ← π_1
    opponent_net = copy.deepcopy(sl_policy).eval()
    pool = [copy.deepcopy(sl_policy.state_dict())]
    learner = PolicyPlayer(game, policy, sample=True, temperature=temperature, seed=seed)
    opponent = PolicyPlayer(game, opponent_net, sample=True, temperature=temperature, seed=seed + 1)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    choose = torch.Generator().manual_seed(seed + 2)
    half = games_per_iteration // 2
    T = game.num_cells
    ply = torch.arange(T, device=device).unsqueeze(1)                               # [T, 1]
    seat = torch.cat((torch.zeros(games_per_iteration - half, dtype=torch.long, device=device),
                      torch.ones(half, dtype=torch.long, device=device)))           # [B] π_2's seat
    bar = ProgressBar(iterations, "RL policy π2", enabled=progress)
    for it in range(1, iterations + 1):
        opponent_net.load_state_dict(pool[int(torch.randint(len(pool), (), generator=choose))])
        with torch.no_grad():
            rec = _cat_records(play_games(game, alternate(learner, opponent), games_per_iteration - half, device),
                               play_games(game, alternate(opponent, learner), half, device))
        mine = rec.playing & (ply % 2 == seat)                                       # [T, B] π_2's moves
        log_pi = masked_log_policy(game, policy, rec.states.flatten(0, 1)).view(T, -1, game.num_actions)
        log_probs = log_pi.gather(2, rec.actions.unsqueeze(2)).squeeze(2)            # [T, B]
        loss = reinforce_loss(log_probs, mover_outcomes(rec.outcome, T), mine)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if it % snapshot_every == 0:
            pool.append(copy.deepcopy(policy.state_dict()))
        if progress:
            won = (rec.outcome * (1.0 - 2.0 * seat.float())).gt(0).float().mean()   # π_2's wins vs the pool
            bar.update(it, win_rate=f"{float(won):.2f}", pool=len(pool))
    bar.close()
    return policy.eval()


# --------------------------------------------------------------------------- 4. value network v_φ
def one_position_per_game(records: GameRecords, pick: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Position ``pick[i]`` of each game ``i`` and its outcome for the player to move there.

    AlphaGo's trick against overfitting: successive positions of one game differ by one
    stone and share one outcome, so a value network trained on all of them memorises
    games instead of learning to evaluate positions. Taking *one* position per game makes
    the samples (nearly) independent. The target is :math:`z_t = (-1)^t z` (:func:`mover_outcomes`).

    Args:
      records: B finished games (:class:`GameRecords`).
      pick: ``[B]`` long, the move index of the position to take from each game.

    Returns:
      ``(positions [M, cells], z [M], kept [B] bool)``: the games whose position ``pick``
      was reached with the game still going on (``pick < length``), in order.
    """
    B = records.outcome.shape[0]
    if pick.shape != (B,):
        raise ValueError(f"pick must be [B] = [{B}]; got {tuple(pick.shape)}")
    T = records.states.shape[0]
    kept = (pick >= 0) & (pick < records.length)
    t = pick.clamp(0, T - 1)
    games = torch.arange(B, device=pick.device)
    z = mover_outcomes(records.outcome, T)[t, games]
    return records.states[t, games][kept], z[kept], kept


def value_positions(game: BoardGame, rl_policy: PolicyNet, n_games: int, sl_policy: PolicyNet | None = None,
                    temperature: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The value network's data: one position per self-play game, labelled with the outcome.

    AlphaGo's recipe, for each game: draw a time :math:`U` uniformly from ``0 .. cells-2``;
    play moves :math:`t < U` sampled from π_1 (the SL policy: varied openings), move
    :math:`U` uniformly at random (so that positions off π_2's own path are seen), and
    moves :math:`t > U` sampled from π_2 (at ``temperature``) to the end. Keep one
    position and its outcome :math:`z_t` for the player to move there
    (:func:`one_position_per_game`); games over by move :math:`U + 1` are dropped.

    Which position: AlphaGo kept :math:`s_{U+1}`, the one just after the random move. In
    tic-tac-toe one random move often decides the game, so :math:`s_{U+1}` nearly always
    favours its player to move, and a network trained on it rarely sees a lost position.
    Here the kept position is drawn uniformly from :math:`s_{U+1}, \dots, s_{L-1}` (L the
    game's length): still one per game, from both players' points of view.

    Args:
      rl_policy: π_2 (its device is used).
      sl_policy: π_1; None plays the opening with π_2 too.
      temperature: π_2's sampling temperature τ (π ∝ π_2^{1/τ}).

    Returns:
      ``(positions [M, cells] int8, z [M] float32)``, ``M <= n_games``.
    """
    device = _device_of(rl_policy)
    pi_2 = PolicyPlayer(game, rl_policy, sample=True, temperature=temperature, seed=seed)
    pi_1 = PolicyPlayer(game, sl_policy if sl_policy is not None else rl_policy, sample=True, seed=seed + 1)
    uniform = RandomPlayer(game, seed=seed + 2)
    generator = torch.Generator(device=device).manual_seed(seed + 3)
    U = torch.randint(game.num_cells - 1, (n_games,), generator=generator, device=device)

    def move(states: torch.Tensor, t: int, games: torch.Tensor) -> torch.Tensor:
        u = U[games]
        return torch.where(t < u, pi_1(states), torch.where(t == u, uniform(states), pi_2(states)))

    records = play_games(game, move, n_games, device)
    after = (records.length - U - 1).clamp(min=0)               # positions s_{U+1} .. s_{L-1} of each game
    r = torch.rand(n_games, generator=generator, device=device)
    pick = torch.where(after > 0, U + 1 + (r * after).long(), records.length)  # length: dropped
    positions, z, _ = one_position_per_game(records, pick)
    return positions, z


def value_loss(value: torch.Tensor, outcome: torch.Tensor) -> torch.Tensor:
    r"""The value loss :math:`\frac{1}{B}\sum_b (v_\phi(s_b) - z_b)^2`.

    Args:
      value: ``[B]`` :math:`v_\phi(s)`.
      outcome: ``[B]`` :math:`z`, the outcome for the player to move in :math:`s`.
    """
    if value.shape != outcome.shape or value.dim() != 1:
        raise ValueError(f"value and outcome must both be [B]; got {tuple(value.shape)}, {tuple(outcome.shape)}")
    return (value - outcome).square().mean()


def train_value(game: BoardGame, rl_policy: PolicyNet, n_games: int, sl_policy: PolicyNet | None = None,
                steps: int = 2000, batch_size: int = 256, learning_rate: float = 1e-3,
                hidden: Sequence[int] = (128, 128), weight_decay: float = 1e-4, augment: bool = True,
                temperature: float = 1.0, seed: int = 0,
                progress: bool = False) -> tuple[ValueNet, tuple[torch.Tensor, torch.Tensor]]:
    r""":math:`v_\phi`: a :class:`ValueNet` regressed on the outcomes of π_2's self-play.

    .. math::  \min_\phi\; \big(v_\phi(s_t) - z_t\big)^2

    over the positions of :func:`value_positions` (one per game), with Adam on
    minibatches; with ``augment`` each position is turned by a random board symmetry
    (the value of a position does not change when the board turns).

    Returns:
      ``(v_φ in eval mode, (positions, z))``, the data it was trained on.
    """
    torch.manual_seed(seed)
    positions, z = value_positions(game, rl_policy, n_games, sl_policy, temperature, seed=seed)
    if positions.shape[0] == 0:
        raise ValueError(f"no position survived from {n_games} games; play more games")
    device = positions.device
    value_net = ValueNet(game, hidden).to(device)
    generator = torch.Generator(device=device).manual_seed(seed + 1)

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        s = positions[idx]
        if augment:
            s, _ = _random_symmetry(game, s, None, generator)
        return value_loss(value_net(game.observation(s)), z[idx])

    fit(value_net, loss_fn, positions.shape[0], steps, batch_size, learning_rate=learning_rate,
        weight_decay=weight_decay, seed=seed, desc="value net v", progress=progress)
    return value_net, (positions, z)


class ValueGreedyPlayer(Player):
    r"""One step of lookahead with the value network alone: :math:`\arg\max_a Q(s, a)`,

    .. math::
        Q(s, a) = \begin{cases} +1 & a \text{ wins} \\ 0 & a \text{ fills the board} \\
                  -v_\phi(s') & \text{otherwise, } s' \text{ the opponent's position} \end{cases}

    A check of what :math:`v_\phi` knows without any policy or search. Ties at random.
    """

    def __init__(self, game: BoardGame, value_net: ValueNet, seed: int = 0):
        super().__init__(game, seed)
        self.value_net = value_net

    @torch.no_grad()
    def action_values(self, states: torch.Tensor) -> torch.Tensor:
        """``[B, A]`` :math:`Q(s, a)` of every move (-inf for illegal ones)."""
        B, A = states.shape[0], self.game.num_actions
        actions = torch.arange(A, device=states.device).repeat(B)
        nxt, reward, done = self.game.step(states.repeat_interleave(A, dim=0), actions)
        q = torch.where(done, reward, -self.value_net(self.game.observation(nxt)))
        return q.view(B, A).masked_fill(~self.game.legal(states), -math.inf)

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        q = self.action_values(states)
        return self._choose(q.eq(q.amax(-1, keepdim=True)))


# --------------------------------------------------------------------------- 5. search
@torch.no_grad()
def rollout_outcomes(game: BoardGame, states: torch.Tensor, player: PlayerFn) -> torch.Tensor:
    r"""``[B]`` :math:`z_{\text{rollout}}`: the outcome of playing each state to the end with ``player``.

    Both sides play ``player``'s moves (a *rollout*, AlphaGo's fast evaluation of a
    leaf); the outcome is from the point of view of the player to move in ``states``:
    +1 won, 0 drawn, -1 lost. A finished position needs no play: -1 if the opponent has a
    line, 0 if the board is full. All rollouts run together, one ``player`` call per ply.

    Args:
      states: ``[B, cells]`` canonical states.
      player: ``states -> actions``, legal moves (e.g. a sampling :class:`PolicyPlayer`).
    """
    z = game.outcome(states)                                       # -1: the previous mover has won
    games = ((z == 0) & ~game.is_full(states)).nonzero().flatten()
    s, sign = states[games], 1.0
    while games.numel() > 0:
        s, reward, done = game.step(s, player(s))
        z[games[reward > 0]] = sign                                # the mover of this ply won
        s, games, sign = s[~done], games[~done], -sign
    return z


def alphago_evaluator(game: BoardGame, sl_policy: PolicyNet, value_net: ValueNet, rollout_mix: float = 0.0,
                      rollout_policy: PolicyNet | PlayerFn | None = None, seed: int = 0) -> Evaluator:
    r"""The network evaluation AlphaGo's search calls at every new leaf: ``states -> (prior_logits, value)``.

    * Prior :math:`P(s, a) = \pi_1(a|s)`: the *SL* policy. AlphaGo found it a better prior
      than the stronger RL policy: human-like moves are more diverse, and the search needs
      candidates, not a single best guess.
    * Leaf value, mixing the value network with the outcome of one rollout:

      .. math::  V(s_L) = (1 - \lambda)\, v_\phi(s_L) + \lambda\, z_{\text{rollout}}

      where the rollout plays :math:`s_L` to the end with ``rollout_policy`` (a
      :class:`PolicyNet`, sampled at temperature 1, or any player callable; default π_1)
      for both sides (:func:`rollout_outcomes`). AlphaGo's rollouts used a small, fast
      policy and :math:`\lambda = 0.5`; here :math:`\lambda = 0` (``rollout_mix``, the
      default) uses :math:`v_\phi` alone and skips the rollouts.

    Args:
      sl_policy, value_net: π_1 and :math:`v_\phi`.
      rollout_mix: :math:`\lambda \in [0, 1]`.
      seed: seeds the rollouts' sampling.

    Returns:
      ``evaluate(states [B, cells]) -> (prior_logits [B, A], value [B])``, the value in
      [-1, 1] for the player to move: what :func:`~course_lib.search.rules_root` and
      :func:`~course_lib.search.rules_recurrent_fn` take.
    """
    if not 0.0 <= rollout_mix <= 1.0:
        raise ValueError(f"rollout_mix (λ) must be in [0, 1]; got {rollout_mix}")
    if rollout_policy is None:
        rollout_policy = sl_policy
    roller = (PolicyPlayer(game, rollout_policy, sample=True, seed=seed) if isinstance(rollout_policy, nn.Module)
              else rollout_policy)

    @torch.no_grad()
    def evaluate(states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = game.observation(states)
        prior_logits, value = sl_policy(obs), value_net(obs)
        if rollout_mix > 0:
            value = (1.0 - rollout_mix) * value + rollout_mix * rollout_outcomes(game, states, roller)
        return prior_logits, value

    return evaluate


class AlphaGoPlayer(Player):
    r"""AlphaGo's move: an MCTS guided by π_1 and :math:`v_\phi`, then the most visited root move.

    .. math::  a = \arg\max_a N(s_0, a)

    (the lecture's :math:`\pi_{\text{MCTS}}(a|s_0) \propto N(s_0, a)^{1/\tau}` as
    :math:`\tau \to 0`). The search is :func:`~course_lib.search.puct_policy` (no root noise) with the
    true rules, batched over all the positions it is given, with PUCT exploration ``c_puct``.
    """

    def __init__(self, game: BoardGame, sl_policy: PolicyNet, value_net: ValueNet, num_simulations: int = 32,
                 c_puct: float = 1.25, rollout_mix: float = 0.0, rollout_policy: PolicyNet | PlayerFn | None = None,
                 seed: int = 0):
        super().__init__(game, seed)
        if num_simulations < 1:
            raise ValueError(f"num_simulations must be >= 1; got {num_simulations}")
        self.sl_policy, self.value_net, self.rollout_policy = sl_policy, value_net, rollout_policy
        self.num_simulations, self.c_puct, self.rollout_mix = num_simulations, c_puct, rollout_mix
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> AlphaGoPlayer:
        """Re-seeds the rollouts (a new evaluator): a match is reproducible."""
        super().manual_seed(seed)
        if hasattr(self, "sl_policy"):
            self.evaluate = alphago_evaluator(self.game, self.sl_policy, self.value_net, self.rollout_mix,
                                              self.rollout_policy, seed=self.seed)
        return self

    @torch.no_grad()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        root, legal = rules_root(self.game, self.evaluate, states)
        return puct_policy(root, rules_recurrent_fn(self.game, self.evaluate), self.num_simulations, root_legal=legal,
                           c1=self.c_puct, temperature=0).action


# --------------------------------------------------------------------------- the whole pipeline
@dataclass
class AlphaGoConfig(TrainConfig):
    """The pipeline's budget. Presets: ``quick`` (CI: about 5 s on one CPU core) and ``full`` (these
    defaults: about 45 s on one CPU core, most of it in the evaluation games)."""

    env: str = option("tictactoe", "board game (AlphaGo in small needs a solved game for its expert)",
                      choices=("tictactoe",))
    expert_games: int = option(4000, "expert games (the perfect player against a perfect/random mix)", low=1)
    expert_random_fraction: float = option(0.5, "probability of a random move by the expert's opponent",
                                           low=0.0, high=1.0)
    held_out: float = option(0.1, "fraction of distinct expert positions held out to test π1", low=0.0, high=1.0,
                             low_open=True, high_open=True)
    hidden: int = option(128, "width of the two hidden layers of every network", low=1)
    sl_steps: int = option(3000, "gradient steps of the SL policy", low=1)
    sl_learning_rate: float = option(1e-3, "Adam step size of the SL policy", low=0.0, low_open=True)
    rl_iterations: int = option(300, "REINFORCE iterations (one step each) of the RL policy", low=0)
    rl_games: int = option(512, "self-play games per RL iteration", low=2)
    rl_learning_rate: float = option(1e-3, "Adam step size of the RL policy", low=0.0, low_open=True)
    rl_snapshot_every: int = option(20, "add π2 to the opponent pool every this many iterations", low=1)
    value_games: int = option(100_000, "self-play games for the value net (one position kept per game)", low=1)
    value_steps: int = option(4000, "gradient steps of the value net", low=1)
    value_learning_rate: float = option(1e-3, "Adam step size of the value net", low=0.0, low_open=True)
    batch_size: int = option(256, "minibatch size of the SL policy and the value net", low=1)
    simulations: tuple[int, ...] = option((8, 32, 128), "MCTS simulation counts to evaluate", low=1)
    c_puct: float = option(1.25, "PUCT exploration constant", low=0.0, low_open=True)
    rollout_mix: float = option(0.5, "λ of one extra search with rollouts at the largest simulation count "
                                     "(0: none)", low=0.0, high=1.0)
    eval_episodes: int = option(200, "evaluation games per side against each reference player", low=1)


AlphaGoConfig.renamed = {"eval_games": "eval_episodes"}
AlphaGoConfig.presets = {
    "full": {},
    "quick": {"expert_games": 1000, "sl_steps": 800, "rl_iterations": 40, "rl_games": 256,
              "rl_snapshot_every": 10, "value_games": 8000, "value_steps": 800, "simulations": (16,),
              "rollout_mix": 0.0, "eval_episodes": 50},
}
# What `python -m course_lib bench alphago` runs.
BENCHMARKS = {"full": ("full", {})}
STAGES = ("sl_policy", "rl_policy", "value_net", "evaluation")


def build_networks(cfg: AlphaGoConfig) -> dict[str, nn.Module]:
    """The pipeline's three networks: π_1 (``sl_policy``), π_2 (``rl_policy``) and v_φ (``value_net``)."""
    game, hidden = make_game(cfg.env), (cfg.hidden, cfg.hidden)
    return {"sl_policy": PolicyNet(game, hidden), "rl_policy": PolicyNet(game, hidden),
            "value_net": ValueNet(game, hidden)}


class _Networks:
    """The pipeline's networks as one checkpointable object (a stage not reached yet is None)."""

    def __init__(self, cfg: AlphaGoConfig, device: torch.device):
        self.cfg, self.device, self.nets = cfg, device, dict.fromkeys(("sl_policy", "rl_policy", "value_net"))

    def state_dict(self) -> dict[str, Any]:
        return {name: net.state_dict() if net is not None else None for name, net in self.nets.items()}

    def load_state_dict(self, state) -> None:
        built = build_networks(self.cfg)
        for name, weights in state.items():
            if weights is not None:
                built[name].load_state_dict(weights)
                self.nets[name] = built[name].to(self.device).eval()


class _Results(dict):
    """The stages' results so far (checkpointed; a resumed run skips the stages they hold)."""

    def state_dict(self) -> dict[str, Any]:
        return dict(self)

    def load_state_dict(self, state) -> None:
        self.clear()
        self.update(state)


def train(config: AlphaGoConfig | None = None, out: str | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True,
          callback: Callable[[dict[str, Any]], None] | None = None, keep_networks: bool = False) -> dict[str, Any]:
    r"""Run the whole AlphaGo pipeline and evaluate every stage; returns the summary.

    Stages: expert games → π_1 (SL) → π_2 (RL) → v_φ → MCTS with π_1 and v_φ. Each player
    then plays ``eval_episodes`` games from each side against the perfect player and the
    random player (:func:`~course_lib.games.evaluate_players`): π_1 and π_2 alone (their
    most probable move), ``value_greedy`` (:class:`ValueGreedyPlayer`), and
    :class:`AlphaGoPlayer` at each simulation count (``mcts_<n>``, and
    ``mcts_<n>_rollouts`` with :math:`\lambda` = ``rollout_mix`` at the largest one).

    After each stage a metrics row is logged and the run checkpointed, so ``resume`` goes on
    with the next stage. The summary holds ``sl`` (expert data sizes and
    :func:`policy_agreement` on held-out positions), ``rl`` (π_2 against π_1, both sampling),
    ``value`` (data size, mean squared error against fresh outcomes and against the minimax
    value), ``evaluation`` (``{player: {"perfect" | "random": evaluate_players(...)}}``) and
    ``seconds`` per stage; with ``keep_networks`` also the networks themselves.
    """
    cfg = config if config is not None else AlphaGoConfig()
    run = Run(out, "alphago", cfg, resume=resume, overwrite=overwrite, progress=False, callback=callback)
    device, seed = run.device, cfg.seed
    game = make_game(cfg.env)
    nets, results = _Networks(cfg, device), _Results(seconds={})
    run.restore(networks=nets, results=results)
    hidden = (cfg.hidden, cfg.hidden)

    def stage_done(name: str, started: float, **found: Any) -> None:
        results.update(found)
        results["seconds"][name] = time.perf_counter() - started
        step = STAGES.index(name) + 1
        run.end_iteration(step, step - 1, {"stage": name, "step": step, "seconds": results["seconds"][name],
                                           "wall_time": run.elapsed()}, stop=True)  # a checkpoint after every stage

    with run.loop(len(STAGES), len(results["seconds"]), "alphago"):
        if "sl_policy" not in results["seconds"]:
            # 1-2. Expert games, then π_1 by supervised learning.
            t0 = time.perf_counter()
            positions, moves = expert_positions(game, cfg.expert_games, seed=seed,
                                                random_fraction=cfg.expert_random_fraction, device=device)
            (train_s, train_a), (test_s, test_a) = split_by_position(positions, moves, cfg.held_out, seed=seed)
            sl_policy = nets.nets["sl_policy"] = train_sl_policy(
                game, train_s, train_a, steps=cfg.sl_steps, batch_size=cfg.batch_size,
                learning_rate=cfg.sl_learning_rate, hidden=hidden, seed=seed, progress=progress)
            # Scored on each distinct held-out (position, move) pair once: otherwise a held-out empty
            # board, in half of all games, would outweigh every other position.
            test_pairs = torch.unique(torch.cat((test_s, test_a.unsqueeze(1).to(test_s.dtype)), dim=1), dim=0)
            stage_done("sl_policy", t0, sl={
                "pairs": positions.shape[0], "distinct_positions": torch.unique(positions, dim=0).shape[0],
                "train_pairs": train_s.shape[0], "held_out_pairs": test_pairs.shape[0],
                "held_out": policy_agreement(game, sl_policy, test_pairs[:, :-1], test_pairs[:, -1].long())})
        sl_policy = nets.nets["sl_policy"]

        if "rl_policy" not in results["seconds"]:
            # 3. π_2 by self-play REINFORCE against the opponent pool.
            t0 = time.perf_counter()
            rl_policy = nets.nets["rl_policy"] = train_rl_policy(
                game, sl_policy, iterations=cfg.rl_iterations, games_per_iteration=cfg.rl_games,
                learning_rate=cfg.rl_learning_rate, snapshot_every=cfg.rl_snapshot_every, seed=seed + 10,
                progress=progress)
            stage_done("rl_policy", t0, rl={"vs_sl_sampled": evaluate_players(
                game, PolicyPlayer(game, rl_policy, sample=True), PolicyPlayer(game, sl_policy, sample=True),
                cfg.eval_episodes * 5, seed=seed, device=device)})
        rl_policy = nets.nets["rl_policy"]

        if "value_net" not in results["seconds"]:
            # 4. v_φ on one position per π_2 game, scored on fresh positions.
            t0 = time.perf_counter()
            value_net, (value_s, _) = train_value(game, rl_policy, cfg.value_games, sl_policy, steps=cfg.value_steps,
                                                  batch_size=cfg.batch_size, learning_rate=cfg.value_learning_rate,
                                                  hidden=hidden, seed=seed + 20, progress=progress)
            nets.nets["value_net"] = value_net
            with torch.no_grad():
                fresh_s, fresh_z = value_positions(game, rl_policy, max(cfg.value_games // 4, 1), sl_policy,
                                                   seed=seed + 30)
                fresh_v = value_net(game.observation(fresh_s))
                minimax = PerfectPlayer(game).value(fresh_s)
            stage_done("value_net", t0, value={
                "positions": value_s.shape[0], "distinct_positions": torch.unique(value_s, dim=0).shape[0],
                "mse_vs_outcome": value_loss(fresh_v, fresh_z).item(),
                "mse_vs_minimax": value_loss(fresh_v, minimax).item()})
        value_net = nets.nets["value_net"]

        if "evaluation" not in results["seconds"]:
            # 5-6. Every stage against perfect and random play.
            t0 = time.perf_counter()
            stage_done("evaluation", t0, evaluation=_evaluate_stages(cfg, game, nets.nets, device, progress))

    results["seconds"]["total"] = sum(v for k, v in results["seconds"].items() if k != "total")
    run.save()
    summary = run.finish({"env": cfg.env, "seed": seed, "device": str(device), **results})
    return {**summary, **nets.nets} if keep_networks else summary


def _evaluate_stages(cfg: AlphaGoConfig, game: BoardGame, nets: dict[str, nn.Module], device: torch.device,
                     progress: bool) -> dict[str, dict[str, Any]]:
    """Wins/draws/losses of every stage's player against the perfect and the random player, from both sides."""
    sl_policy, value_net, seed = nets["sl_policy"], nets["value_net"], cfg.seed
    players: dict[str, PlayerFn] = {"sl_policy": PolicyPlayer(game, sl_policy),
                                    "rl_policy": PolicyPlayer(game, nets["rl_policy"]),
                                    "value_greedy": ValueGreedyPlayer(game, value_net)}
    for n in cfg.simulations:
        players[f"mcts_{n}"] = AlphaGoPlayer(game, sl_policy, value_net, n, cfg.c_puct)
    if cfg.rollout_mix > 0:
        n = max(cfg.simulations)
        players[f"mcts_{n}_rollouts"] = AlphaGoPlayer(game, sl_policy, value_net, n, cfg.c_puct,
                                                      rollout_mix=cfg.rollout_mix)
    players["perfect (reference)"] = PerfectPlayer(game, seed=seed + 1)
    opponents = {"perfect": PerfectPlayer(game, seed=seed), "random": RandomPlayer(game, seed=seed)}
    evaluation: dict[str, dict[str, Any]] = {}
    bar = ProgressBar(len(players) * len(opponents), "evaluation", enabled=progress)
    for name, player in players.items():
        evaluation[name] = {}
        for opp_name, opponent in opponents.items():
            evaluation[name][opp_name] = evaluate_players(game, player, opponent, cfg.eval_episodes, seed=seed,
                                                          device=device)
            bar.update(sum(len(v) for v in evaluation.values()))
    bar.close()
    return evaluation


def run_alphago(game: str | BoardGame = "tictactoe", profile: str = "full", seed: int = 0, progress: bool = True,
                device: str | torch.device = "auto", **overrides: Any) -> dict[str, Any]:
    """The notebooks' entry to :func:`train`: the pipeline of a preset (``"quick"`` or ``"full"``) with
    ``overrides`` (:class:`AlphaGoConfig` fields, e.g. ``rl_iterations=100``), kept in memory; returns
    the summary with the networks ``sl_policy``, ``rl_policy`` and ``value_net``, and ``profile``.
    :func:`format_results` prints it as a table."""
    name = game.name if isinstance(game, BoardGame) else game
    if name != "tictactoe":
        raise ValueError(f"AlphaGo in small needs a solved game for its expert and the value check; "
                         f"got {name!r}; accepted: tictactoe")
    cfg = AlphaGoConfig.from_dict({**overrides, "env": name, "seed": seed, "device": str(device)}, preset=profile)
    return {**train(cfg, None, progress=progress, keep_networks=True), "profile": profile}


def format_results(results: dict[str, Any]) -> str:
    """:func:`run_alphago`'s results as a text table: wins/draws/losses of every stage, per opponent and side."""
    sides = ("as_first", "as_second")
    opponents = list(next(iter(results["evaluation"].values())))
    header = f"{'player':<22}" + "".join(f"{opp + ' ' + side.replace('as_', 'as '):>18}"
                                         for opp in opponents for side in sides)
    lines = [header, "-" * len(header)]
    for name, by_opponent in results["evaluation"].items():
        cells = [by_opponent[opp][side] for opp in opponents for side in sides]
        lines.append(f"{name:<22}" + "".join(f"{c['wins']:>6}/{c['draws']}/{c['losses']}".rjust(18) for c in cells))
    lines.append("(wins/draws/losses)")
    sl = results["sl"]["held_out"]
    lines.append(f"π1 on held-out positions: expert's move {sl['top1']:.0%} (chance {sl['chance_top1']:.0%}), "
                 f"an optimal move {sl['optimal']:.0%} (chance {sl['chance_optimal']:.0%})")
    r = results["rl"]["vs_sl_sampled"]
    lines.append("π2 vs π1, both sampling: " + ", ".join(
        f"{side.replace('as_', 'as ')} {r[side]['wins']}/{r[side]['draws']}/{r[side]['losses']}" for side in sides))
    v = results["value"]
    lines.append(f"v on fresh positions: MSE vs outcome {v['mse_vs_outcome']:.3f}, vs minimax value "
                 f"{v['mse_vs_minimax']:.3f}")
    lines.append("seconds: " + ", ".join(f"{k} {s:.1f}" for k, s in results["seconds"].items()))
    return "\n".join(lines)
