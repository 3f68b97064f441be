r"""Reference players for the board games, and matches between them.

A player is any callable ``player(state [B, num_cells]) -> action [B] long`` that returns
a legal move for each canonical state of the batch (see :mod:`course_lib.games.board`).
The players here are batched tensor programs too, run on the device of the states, and
break ties uniformly at random with a ``torch.Generator`` of their own, seeded at
construction (``seed``), so a match is reproducible:

* :class:`RandomPlayer`: a uniformly random legal move.
* :class:`OneStepLookaheadPlayer`: wins at once if it can, else blocks an immediate win
  of the opponent, else plays at random.
* :class:`PerfectPlayer`: exact minimax play for tic-tac-toe, read from a table of all
  positions solved once.
* :class:`AlphaBetaPlayer`: a depth-limited minimax search with a heuristic leaf value,
  the classical Connect Four opponent.

:func:`play_match` plays a batch of games between two players, and
:func:`evaluate_players` plays a player against an opponent from both seats.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import torch

from .board import BoardGame, winning_lines
from .tictactoe import TicTacToe

__all__ = ["Player", "RandomPlayer", "OneStepLookaheadPlayer", "PerfectPlayer", "AlphaBetaPlayer",
           "TicTacToeSolution", "solve_tictactoe", "play_match", "evaluate_players"]

PlayerFn = Callable[[torch.Tensor], torch.Tensor]


class Player:
    """What the players share: a game and seeded random tie-breaking on any device.

    ``torch.Generator`` objects belong to one device, so the player keeps one per device
    it has seen, each seeded with ``seed`` when first used. ``manual_seed`` resets them
    all (``play_match`` calls it to make a match reproducible).
    """

    def __init__(self, game: BoardGame, seed: int = 0):
        if not isinstance(game, BoardGame):
            raise TypeError(f"game must be a BoardGame (TicTacToe, ConnectFour); got {type(game).__name__}")
        self.game = game
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> Player:
        """Re-seeds the tie-breaking generators; returns ``self``."""
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}
        return self

    def _generator(self, device: torch.device) -> torch.Generator:
        generator = self._generators.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[device] = generator
        return generator

    def _choose(self, mask: torch.Tensor) -> torch.Tensor:
        """``[B]`` long: for each row of ``mask [B, A]`` bool, a uniformly random ``True`` column.

        The argmax of independent uniform noise over the allowed columns is uniform among
        them. A row with no ``True`` gives column 0; callers never pass one.
        """
        noise = torch.rand(mask.shape, generator=self._generator(mask.device), device=mask.device)
        return noise.masked_fill(~mask, -1.0).argmax(-1)

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.game!r}, seed={self.seed})"


class RandomPlayer(Player):
    """A uniformly random legal move: ``action [B]`` for ``state [B, num_cells]``."""

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        return self._choose(self.game.legal(state))


class OneStepLookaheadPlayer(Player):
    """Wins if it can, else blocks, else plays at random; for any board game.

    For each state it tries all ``A`` moves, once as the mover and once as if the
    opponent were to move (the state negated), in one batched ``step`` of ``2 * B * A``
    states. A move that completes a line for the mover wins; a move that would complete
    one for the opponent is the cell (or column) the opponent needs next turn, so playing
    it blocks: with stones that fall, both would land on the same cell. Priority: a
    winning move, else a blocking move, else any legal move, each uniformly at random
    among its kind.
    """

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        game = self.game
        B, A = state.shape[0], game.num_actions
        legal = game.legal(state)  # [B, A]
        both = torch.cat((state, state.neg()))  # [2B, cells]: the mover's view, the opponent's view
        actions = torch.arange(A, device=state.device).repeat(2 * B)
        _, reward, _ = game.step(both.repeat_interleave(A, dim=0), actions)
        wins = reward.view(2, B, A).to(torch.bool) & legal  # [2, B, A]; illegal moves are garbage, masked
        win, block = wins[0], wins[1]
        choice = torch.where(win.any(-1, keepdim=True), win,
                             torch.where(block.any(-1, keepdim=True), block, legal))
        return self._choose(choice)


# --------------------------------------------------------------------------- tic-tac-toe solved
class TicTacToeSolution(NamedTuple):
    """Tic-tac-toe solved by minimax, indexed by the base-3 code of a canonical state.

    ``code(s) = sum_i d_i 3^i`` with digit ``d_i`` = 0 (empty), 1 (player to move),
    2 (opponent) for cell ``i``. Positions that do not arise in play from the empty board
    hold NaN.
    """

    value: torch.Tensor          # [3^9] float32: +1 win / 0 draw / -1 loss for the player to move
    action_values: torch.Tensor  # [3^9, 9] float32: value of each move for the mover; -inf if not playable
    reachable: torch.Tensor      # [3^9] bool: the position arises in play (5,478 of them, the empty board included)


@functools.lru_cache(maxsize=1)
def solve_tictactoe() -> TicTacToeSolution:
    r"""Solves tic-tac-toe exhaustively (negamax from the empty board), once per process.

    For a position :math:`s` with the player to move and a legal move :math:`a`,

    .. math::
        Q(s, a) = \begin{cases} +1 & a \text{ completes a line} \\
                                 0 & a \text{ fills the board} \\
                                 -V(s') & \text{otherwise, } s' \text{ the next canonical state}
                  \end{cases},
        \qquad V(s) = \max_a Q(s, a),

    and a finished position has :math:`V = -1` (the previous mover won) or :math:`0` (a
    draw) and no playable move (all :math:`Q = -\infty`). Values are game-theoretic only:
    a win in 1 and a win in 5 are both +1. It takes about 0.05 s in plain Python, and
    the result is cached, so every :class:`PerfectPlayer` shares it.
    """
    lines = [tuple(line) for line in winning_lines(3, 3, 3).tolist()]
    powers = [3 ** i for i in range(9)]
    value: dict[int, float] = {}
    action_values: dict[int, list[float]] = {}

    def solve(board: tuple[int, ...]) -> float:
        code = sum((x % 3) * p for x, p in zip(board, powers))
        if code in value:
            return value[code]
        q = [-math.inf] * 9
        if any(board[i] == board[j] == board[k] == -1 for i, j, k in lines):
            v = -1.0  # the player who just moved has a line
        elif 0 not in board:
            v = 0.0
        else:
            for cell in range(9):
                if board[cell] != 0:
                    continue
                after = list(board)
                after[cell] = 1
                # The next position is solved (and recorded) even when the move ends the
                # game: there V = -1 after a win and 0 after a draw, so Q = -V holds throughout.
                q[cell] = 0.0 - solve(tuple(-x for x in after))  # 0.0 -: no -0.0
            v = max(q)
        value[code], action_values[code] = v, q
        return v

    solve((0,) * 9)
    codes = torch.tensor(list(value), dtype=torch.long)
    value_table = torch.full((3 ** 9,), math.nan)
    value_table[codes] = torch.tensor(list(value.values()), dtype=torch.float32)
    q_table = torch.full((3 ** 9, 9), math.nan)
    q_table[codes] = torch.tensor([action_values[c] for c in value], dtype=torch.float32)
    reachable = torch.zeros(3 ** 9, dtype=torch.bool)
    reachable[codes] = True
    return TicTacToeSolution(value_table, q_table, reachable)


def tictactoe_codes(state: torch.Tensor) -> torch.Tensor:
    """``[B]`` long base-3 codes of canonical tic-tac-toe states ``[B, 9]`` (see :class:`TicTacToeSolution`)."""
    powers = 3 ** torch.arange(9, device=state.device)
    return (state.long().remainder(3) * powers).sum(-1)


class PerfectPlayer(Player):
    """Perfect tic-tac-toe: a uniformly random move among the minimax-optimal ones.

    Reads :func:`solve_tictactoe`'s table (built on first use, shared by all instances).
    Optimal means the best game-theoretic value (win > draw > loss); among winning moves
    it does *not* prefer faster wins, so it may delay a win it cannot lose. It never
    loses. On a position that does not arise in play (NaN in the table) or a finished one
    it plays a random legal move.

    Args:
      game: a :class:`TicTacToe`.
      seed: seed of the tie-breaking generator.
    """

    def __init__(self, game: TicTacToe, seed: int = 0):
        if not isinstance(game, TicTacToe):
            raise TypeError(f"PerfectPlayer plays tic-tac-toe only; got {type(game).__name__}")
        super().__init__(game, seed)
        self.solution = solve_tictactoe()
        self._tables: dict[torch.device, TicTacToeSolution] = {torch.device("cpu"): self.solution}

    def _on(self, device: torch.device) -> TicTacToeSolution:
        if device not in self._tables:
            self._tables[device] = TicTacToeSolution(*(t.to(device) for t in self.solution))
        return self._tables[device]

    def value(self, state: torch.Tensor) -> torch.Tensor:
        """``[B]`` float32 game value for the player to move: +1 win, 0 draw, -1 loss."""
        return self._on(state.device).value[tictactoe_codes(state)]

    def action_values(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, 9]`` float32: the game value, for the player to move, of playing each cell.

        +1 / 0 / -1 for a legal move, -inf for an occupied cell (and for every cell once
        the game is over). ``action_values(s).max(-1)`` equals ``value(s)`` while the game
        is on.
        """
        return self._on(state.device).action_values[tictactoe_codes(state)]

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        q = self.action_values(state)
        best = q.eq(q.amax(-1, keepdim=True))  # NaN rows compare False everywhere
        legal = self.game.legal(state)
        return self._choose(torch.where(best.any(-1, keepdim=True), best & legal, legal))


# --------------------------------------------------------------------------- depth-limited search
class AlphaBetaPlayer(Player):
    r"""Depth-limited minimax with a heuristic leaf value, for Connect Four.

    The decision is that of the classical depth-limited alpha-beta search: the root move
    with the highest negamax score, ties broken uniformly at random. Alpha-beta pruning
    returns exactly the minimax value, so this class computes the minimax *without*
    pruning, as a batched full-width search: every line of ``depth`` moves
    (:math:`A^{depth}` leaves, 2,401 for depth 4 in Connect Four) for every state of the
    batch is stepped with one ``game.step`` call per ply. In torch this is much faster
    than pruning in Python, and it gives every root move its exact score, which a pruned
    search does not (``action_scores``).

    Scores are from the point of view of the player to move. A move at ply :math:`d`
    (1 = the root's move) that completes a line scores ``WIN_SCORE - d`` for its mover,
    so faster wins and slower losses are preferred; a move that fills the board scores
    0; an illegal move :math:`-\infty`. Otherwise a move scores minus the score of the
    position it leads to (negamax), and a position at the depth limit scores the
    heuristic :math:`h`, for the player to move there:

    .. math::
        h(s) = \sum_{\text{windows } w} g(n_{\text{own}}(w), n_{\text{opp}}(w))
             + \text{CENTRE} \cdot (\text{own} - \text{opp stones in the centre column})

    with :math:`g = \pm` ``THREE`` for a window holding :math:`k-1` stones of one player
    (+ own, - opponent's) and an empty cell, :math:`\pm` ``TWO`` for :math:`k-2` stones
    and the rest empty, 0 otherwise. :math:`|h| < 400 \ll` ``WIN_SCORE``, so terminal
    results always dominate.

    Cost: :math:`B \cdot A^{depth}` states at the last ply (240,100 for 100 states at
    depth 4, about 10 MB of int8 boards); time and memory grow 7-fold per extra ply.

    Args:
      game: a :class:`ConnectFour` (any :class:`BoardGame` works; the weights are tuned
        for four in a row).
      depth: plies searched, >= 1. The default 4 decides 100 positions in well under a
        second on a laptop CPU.
      seed: seed of the tie-breaking generator.
    """

    WIN_SCORE = 10_000.0
    THREE = 5.0
    TWO = 2.0
    CENTRE = 3.0

    def __init__(self, game: BoardGame, depth: int = 4, seed: int = 0):
        super().__init__(game, seed)
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
        self.depth = depth
        k = game.win_length
        # A window's code is n_own + (k + 1) n_opp, found (doubled) by one matmul in
        # `heuristic`; `window_score` maps 2 * code -> g.
        window_score = torch.zeros(2 * (k + 1) ** 2)
        for n, weight in ((k - 1, self.THREE), (k - 2, self.TWO)):
            if n >= 1:
                window_score[2 * n] += weight
                window_score[2 * (k + 1) * n] -= weight
        centre = torch.zeros(game.rows, game.cols)
        centre[:, game.cols // 2] = self.CENTRE
        self._cpu = (game.line_matrix, window_score, centre.flatten())
        self._tables: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._tables:
            self._tables[device] = tuple(t.to(device) for t in self._cpu)
        return self._tables[device]

    def heuristic(self, state: torch.Tensor) -> torch.Tensor:
        """``[B]`` float32 heuristic value ``h`` of ``state [B, num_cells]`` for the player to move."""
        line_matrix, window_score, centre = self._on(state.device)
        k = self.game.win_length
        # Stones weighted 2 (own) and 2 (k + 1) (opponent's), as x ((k + 2) x - k), in int8
        # (this runs on all B * A^depth leaves), so a window sums to twice its code.
        weighted = state * (state * (k + 2) - k)
        codes2 = (weighted.to(torch.float32) @ line_matrix).to(torch.int32)  # [B, L]
        # Sum of window_score[codes] over the windows, without a [B, L] intermediate.
        windows = torch.nn.functional.embedding_bag(codes2, window_score.unsqueeze(1), mode="sum").squeeze(1)
        return windows + state.to(torch.float32) @ centre

    def action_scores(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, A]`` float32 depth-limited negamax score of each root move, -inf if illegal.

        Args:
          state: ``[B, num_cells]`` canonical states of games still going on.
        """
        game, A = self.game, self.game.num_actions
        actions = torch.arange(A, device=state.device)
        plies = []  # per ply d: (legal [n, A], won [n*A], done [n*A]) for the n positions at ply d - 1
        positions = state
        for _ in range(self.depth):
            n = positions.shape[0]
            legal = game.legal(positions)
            # Every move from every position, including those of finished or illegal lines:
            # fixed shapes, no compaction; their scores are masked out on the way back.
            positions, reward, done = game.step(positions.repeat_interleave(A, dim=0), actions.repeat(n))
            plies.append((legal, reward.to(torch.bool), done))
        value = self.heuristic(positions)  # [B * A^depth], for the player to move at the leaves
        for d in range(self.depth, 0, -1):
            legal, won, done = plies[d - 1]
            q = torch.where(won, self.WIN_SCORE - d, torch.where(done, 0.0, -value))
            q = q.view(legal.shape).masked_fill(~legal, -math.inf)  # [n, A]
            value = q.amax(-1)
        return q

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        q = self.action_scores(state)
        return self._choose(q.eq(q.amax(-1, keepdim=True)) & self.game.legal(state))


# --------------------------------------------------------------------------- matches
def _reseed(player: PlayerFn, seed: int) -> None:
    if hasattr(player, "manual_seed"):
        player.manual_seed(seed)


def play_match(
    game: BoardGame, first: PlayerFn, second: PlayerFn, games: int, seed: int = 0,
    device: torch.device | str | None = None,
) -> dict[str, int]:
    """Plays ``games`` games at once, ``first`` moving first in all of them.

    The games are one batch; a finished game drops out of it, so a player is only ever
    called on the states of unfinished games. Every move is checked
    (``game.step(check=True)``): a player returning an illegal move raises ``ValueError``.
    Players that have a ``manual_seed`` method (all of this module's) are re-seeded with
    ``seed`` (``first``) and ``seed + 1`` (``second``), so the result depends on ``seed``
    alone.

    Args:
      game: the game.
      first, second: players, ``state [B, num_cells] -> action [B]``.
      games: number of games, >= 0.
      seed: seed of the players' tie-breaking.
      device: where the boards live (default: CPU).

    Returns:
      ``{"first_wins": int, "draws": int, "second_wins": int}``, summing to ``games``.
    """
    if games < 0:
        raise ValueError(f"games must be >= 0; got {games}")
    _reseed(first, seed)
    _reseed(second, seed + 1)
    state = game.initial(games, device)
    playing = torch.arange(games, device=state.device)  # original index of each game in the batch
    result = torch.zeros(games, dtype=torch.long, device=state.device)  # +1 first won, -1 second won
    players = (first, second)
    ply = 0
    while playing.numel() > 0:
        mover = players[ply % 2]
        action = mover(state)
        try:
            state, reward, done = game.step(state, action, check=True)
        except ValueError as error:
            raise ValueError(f"{mover!r} (moving {'first' if ply % 2 == 0 else 'second'}) "
                             f"made a bad move at ply {ply}: {error}") from None
        result[playing[reward > 0]] = 1 if ply % 2 == 0 else -1
        state, playing = state[~done], playing[~done]
        ply += 1
    return {"first_wins": int(result.eq(1).sum()), "draws": int(result.eq(0).sum()),
            "second_wins": int(result.eq(-1).sum())}


def evaluate_players(
    game: BoardGame, player: PlayerFn, opponent: PlayerFn, games_per_side: int = 100, seed: int = 0,
    device: torch.device | str | None = None,
) -> dict[str, dict[str, int]]:
    """``player`` against ``opponent``, ``games_per_side`` games from each seat.

    Games differ only through the players' own random tie-breaking (no random openings),
    so two deterministic players would repeat one game. The two matches use seeds
    ``seed`` and ``seed + 2`` (see :func:`play_match`).

    Returns:
      ``{"as_first": {"wins", "draws", "losses"}, "as_second": {...}}``, counted from
      ``player``'s point of view.
    """
    first = play_match(game, player, opponent, games_per_side, seed=seed, device=device)
    second = play_match(game, opponent, player, games_per_side, seed=seed + 2, device=device)
    return {
        "as_first": {"wins": first["first_wins"], "draws": first["draws"], "losses": first["second_wins"]},
        "as_second": {"wins": second["second_wins"], "draws": second["draws"], "losses": second["first_wins"]},
    }
