"""Two-player board games as batched tensor functions, and reference players.

Games (:class:`TicTacToe`, :class:`ConnectFour`) are stateless objects of pure functions
on ``[B, rows * cols]`` int8 states in canonical form (+1 the player to move, -1 the
opponent); see :mod:`course_lib.games.board` for the interface a search calls.
Players map a batch of states to a batch of legal moves; :func:`play_match` and
:func:`evaluate_players` pit them against each other.

Example:
  >>> from course_lib.games import make_game, RandomPlayer, PerfectPlayer, evaluate_players
  >>> game = make_game("tictactoe")
  >>> evaluate_players(game, PerfectPlayer(game), RandomPlayer(game), games_per_side=100)["as_first"]["losses"]
  0
"""
from __future__ import annotations

from .board import BoardGame, permute, permute_moves, winning_lines
from .connect4 import ConnectFour
from .players import (AlphaBetaPlayer, OneStepLookaheadPlayer, PerfectPlayer, Player, RandomPlayer,
                      TicTacToeSolution, evaluate_players, play_match, solve_tictactoe)
from .tictactoe import TicTacToe

__all__ = ["BoardGame", "TicTacToe", "ConnectFour", "make_game", "GAMES", "winning_lines", "permute", "permute_moves",
           "Player", "RandomPlayer", "OneStepLookaheadPlayer", "PerfectPlayer", "AlphaBetaPlayer",
           "TicTacToeSolution", "solve_tictactoe", "play_match", "evaluate_players"]

GAMES: dict[str, type[BoardGame]] = {"tictactoe": TicTacToe, "connect4": ConnectFour}


def make_game(name: str) -> BoardGame:
    """The game called ``name``: ``"tictactoe"`` or ``"connect4"``."""
    if name not in GAMES:
        raise ValueError(f"unknown game {name!r}; accepted names: {', '.join(repr(n) for n in GAMES)}")
    return GAMES[name]()
