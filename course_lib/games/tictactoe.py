"""Tic-tac-toe (noughts and crosses) as a batched tensor game.

A 3 x 3 board, nine actions (the cells, row-major from the top-left), three in a row
wins. Small enough to solve exactly (5,478 reachable positions), which makes it the
game on which a search can be checked against perfect play; see
:class:`course_lib.games.PerfectPlayer`.
"""
from __future__ import annotations

from .board import BoardGame

__all__ = ["TicTacToe"]


class TicTacToe(BoardGame):
    """Tic-tac-toe: state ``[B, 9]`` int8, actions ``0..8`` = cells, 8 winning lines.

    Cell numbers::

        0 1 2
        3 4 5
        6 7 8

    Example:
      >>> import torch
      >>> game = TicTacToe()
      >>> s = game.initial(1)
      >>> s, reward, done = game.step(s, torch.tensor([4]))   # X in the centre
      >>> print(game.render(s[0]))
      . . .
      . X .
      . . .
    """

    name = "tictactoe"

    def __init__(self):
        super().__init__(rows=3, cols=3, win_length=3, gravity=False)
