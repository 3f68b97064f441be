"""Connect Four as a batched tensor game.

Six rows by seven columns; an action is a column, and the stone falls to the lowest
empty cell of that column (the highest row index: row 0 is the top). Four in a row,
horizontally, vertically or diagonally, wins. There are 69 such windows.
"""
from __future__ import annotations

from .board import BoardGame

__all__ = ["ConnectFour"]


class ConnectFour(BoardGame):
    """Connect Four: state ``[B, rows * cols]`` int8 (``[B, 42]``), actions ``0..cols-1`` = columns.

    A column is legal while its top cell (row 0) is empty. ``render`` prints X for the
    first player (red) and O for the second (yellow), with column numbers underneath.

    Args:
      rows, cols: board size (6 x 7, the standard game, by default).
    """

    name = "connect4"

    def __init__(self, rows: int = 6, cols: int = 7):
        super().__init__(rows=rows, cols=cols, win_length=4, gravity=True)

    def __repr__(self) -> str:
        if (self.rows, self.cols) == (6, 7):
            return "ConnectFour()"
        return f"ConnectFour(rows={self.rows}, cols={self.cols})"
