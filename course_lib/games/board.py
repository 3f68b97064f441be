r"""Two-player board games as pure functions on batches of states.

A game here is a *stateless* object: every method takes a batch of states and returns
new tensors, so one ``TicTacToe()`` serves any number of searches at once, on whatever
device the states live on. This is the interface the batched MCTS calls at every
simulation, so each method is a handful of tensor operations, with no Python loop over
the batch and, in ``step(check=False)``, no host-device synchronisation.

State layout, ``[B, rows * cols]`` ``int8``, row-major with row 0 at the top, always in
*canonical* form (seen by the player to move):

* ``+1``: a stone of the player to move,
* ``-1``: a stone of the opponent,
* ``0``: an empty cell.

A move puts a ``+1`` stone on the board; the next state is then the board *negated*, so
that it is again seen by the player to move. The search therefore never needs to know
whose turn it is: a value is always "for the player to move", and the value of a child
is minus the value of its parent's move (negamax). Which absolute colour is to move is
recovered from the stone count (``to_move``) when a board is drawn for people.

Wins are found by gathering the cells of precomputed winning lines, ``lines [L, k]``
(8 lines of 3 in tic-tac-toe, 69 windows of 4 in Connect Four), and checking for
:math:`k` equal stones. ``step`` only looks at the lines through the cell just played
(at most 4 in tic-tac-toe, 13 in Connect Four), since only the mover can have just
completed a line.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["BoardGame", "winning_lines", "permute", "permute_moves"]


def winning_lines(rows: int, cols: int, k: int) -> torch.Tensor:
    """All lines of ``k`` cells in a row on a ``rows x cols`` board.

    Horizontal, vertical, and both diagonal directions, as flat row-major cell indices.

    Args:
      rows, cols: board size.
      k: length of a winning line.

    Returns:
      ``[L, k]`` long tensor of cell indices (CPU). For ``(3, 3, 3)`` L = 8; for
      ``(6, 7, 4)`` L = 69 (24 horizontal, 21 vertical, 12 + 12 diagonal).
    """
    lines = []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):  # right, down, down-right, down-left
        for r in range(rows):
            for c in range(cols):
                cells = [(r + i * dr, c + i * dc) for i in range(k)]
                if all(0 <= rr < rows and 0 <= cc < cols for rr, cc in cells):
                    lines.append([rr * cols + cc for rr, cc in cells])
    return torch.tensor(lines, dtype=torch.long).reshape(-1, k)


class _Tables(NamedTuple):
    """The index tables of one game, on one device."""

    lines: torch.Tensor        # [L, k] long: cells of each winning line
    cell_lines: torch.Tensor   # [cells, M * k] long: cells of the lines through each cell (padded)
    column_cells: torch.Tensor  # [cols, rows] long: cells of each column, top to bottom
    landing: torch.Tensor      # [cols, rows + 1] long: cell a stone dropped in column c lands on,
    #                            given e empty cells in that column (e = 0, a full column: top cell)
    line_matrix: torch.Tensor  # [cells, L] float32: 1 where a cell is on a line


class BoardGame:
    """A two-player, zero-sum, k-in-a-row board game on a ``rows x cols`` grid.

    Subclasses (:class:`TicTacToe`, :class:`ConnectFour`) fix the board size, the line
    length ``win_length`` and ``gravity``: without it an action is a cell
    (``num_actions = rows * cols``); with it an action is a column and the stone falls
    to the lowest empty cell (``num_actions = cols``).

    Attributes:
      name: the name ``make_game`` knows the game by.
      rows, cols: board size; ``num_cells = rows * cols``.
      num_actions: ``A``, the size of the action space.
      obs_shape: ``(2, rows, cols)``, the shape of one ``observation``.
      win_length: ``k``, stones in a row needed to win.
      lines: ``[L, k]`` long (CPU) cells of every winning line.
      line_matrix: ``[num_cells, L]`` float32 (CPU), 1 where a cell is on a line, so that
        ``stones @ line_matrix`` sums every line at once.

    All methods take ``state [B, num_cells]`` int8 in canonical form (see the module
    docstring) and return tensors on ``state.device``.
    """

    name: str = "board"
    symbols: tuple[str, str] = ("X", "O")  # first player, second player, for render

    def __init__(self, rows: int, cols: int, win_length: int, gravity: bool):
        if rows < 1 or cols < 1 or not 1 <= win_length <= max(rows, cols):
            raise ValueError(f"invalid board: rows={rows}, cols={cols}, win_length={win_length}")
        self.rows, self.cols, self.win_length, self.gravity = rows, cols, win_length, gravity
        self.num_cells = rows * cols
        self.num_actions = cols if gravity else rows * cols
        self.obs_shape = (2, rows, cols)
        self.lines = winning_lines(rows, cols, win_length)
        # Legal moves and fullness only need the top row when stones fall.
        self._open_cells = slice(0, cols) if gravity else slice(None)
        self._tables_cpu = self._build_tables()
        self._lines_per_cell = self._tables_cpu.cell_lines.shape[1] // win_length
        self.line_matrix = self._tables_cpu.line_matrix
        self._tables: dict[torch.device, _Tables] = {torch.device("cpu"): self._tables_cpu}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------------ index tables
    def _build_tables(self) -> _Tables:
        rows, cols, k = self.rows, self.cols, self.win_length
        through = [[line for line in self.lines.tolist() if cell in line] for cell in range(self.num_cells)]
        width = max(len(t) for t in through)
        # Pad with repeats of a real line through the same cell: repeats change no `any`.
        padded = [(t * width)[:width] for t in through]
        cell_lines = torch.tensor(padded, dtype=torch.long).reshape(self.num_cells, width * k)
        column_cells = torch.arange(self.num_cells).reshape(rows, cols).T.contiguous()
        # e empty cells in a stacked column: the stone lands on row e - 1 (row 0 if e = 0).
        landing = torch.stack([column_cells[:, max(e - 1, 0)] for e in range(rows + 1)], dim=1)
        line_matrix = torch.zeros(self.num_cells, len(self.lines))
        line_matrix.scatter_(0, self.lines.T, 1.0)
        return _Tables(self.lines, cell_lines, column_cells, landing, line_matrix)

    def _tables_on(self, device: torch.device) -> _Tables:
        tables = self._tables.get(device)
        if tables is None:
            tables = _Tables(*(t.to(device) for t in self._tables_cpu))
            self._tables[device] = tables
        return tables

    # ------------------------------------------------------------------ the interface
    def initial(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """``batch`` empty boards: ``[batch, num_cells]`` int8 zeros (first player to move)."""
        if batch < 0:
            raise ValueError(f"batch must be >= 0; got {batch}")
        return torch.zeros(batch, self.num_cells, dtype=torch.int8, device=device)

    def legal(self, state: torch.Tensor) -> torch.Tensor:
        """Legal-move mask ``[B, A]`` bool: an empty cell, or a column with an empty top cell.

        A finished game (someone has won) still lists its empty cells; callers track ``done``.
        """
        return state[:, self._open_cells].eq(0)

    # -------------------------------------------------------------------- symmetries
    def symmetries(self, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The board's symmetries as permutations: ``(cells [G, num_cells], actions [G, A])`` long.

        ``state[:, cells[g]]`` is the board turned by symmetry ``g`` and ``pi[:, actions[g]]``
        the policy that turns with it; a move ``a`` on the old board is the move
        ``actions[g].argsort()[a]`` on the turned one. Symmetry 0 is the identity. A square
        board without gravity has the 8 rotations and reflections of the square (tic-tac-toe),
        in the order rotation by ``k`` quarter turns, then that mirrored left–right; with
        gravity only the left–right mirror keeps the rules (Connect Four: 2); other
        rectangles have the 4 mirrors.
        """
        grid = torch.arange(self.num_cells, device=device).view(self.rows, self.cols)
        if self.gravity:
            cells = [grid, grid.flip(1)]
        elif self.rows == self.cols:
            cells = [t for k in range(4) for t in (torch.rot90(grid, k), torch.rot90(grid, k).flip(1))]
        else:
            cells = [grid, grid.flip(1), grid.flip(0), grid.flip(0).flip(1)]
        cells = torch.stack([c.flatten() for c in cells])
        # With gravity an action is a column, and columns move as the top row's cells do.
        return cells, (cells[:, :self.cols].contiguous() if self.gravity else cells)

    def random_symmetries(self, batch: int, generator: torch.Generator | None = None,
                          device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One uniformly drawn symmetry per sample: ``(cells [batch, num_cells], actions [batch, A])``.

        Use them with :func:`permute` (boards, observations, policies) and :func:`permute_moves`.
        """
        cells, actions = self.symmetries(device)
        g = torch.randint(cells.shape[0], (batch,), generator=generator, device=device)
        return cells[g], actions[g]

    def is_full(self, state: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: no empty cell is left (no legal move)."""
        return state[:, self._open_cells].ne(0).all(-1)

    def _action_cells(self, state: torch.Tensor, action: torch.Tensor, tables: _Tables) -> torch.Tensor:
        """``[B]`` long: the cell each action puts its stone on."""
        if not self.gravity:
            return action
        # Stones stack, so the empties of a column are its top cells: land on the last one.
        empties = state.gather(1, tables.column_cells.index_select(0, action)).eq(0).sum(-1)
        return tables.landing[action, empties]

    def step(
        self, state: torch.Tensor, action: torch.Tensor, check: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Plays ``action`` for the player to move in every state of the batch.

        With :math:`s'` the board after the move, seen by the mover,

        .. math::
            r = \mathbb{1}[\text{the mover has a line of } k \text{ in } s'], \qquad
            \text{done} = r \lor \text{full}(s'), \qquad
            \text{next\_state} = -s'

        so ``next_state`` is canonical for the next player, and ``reward`` is the mover's
        (the opponent's is ``-reward``: the game is zero-sum).

        Args:
          state: ``[B, num_cells]`` int8 canonical states.
          action: ``[B]`` long, a cell (tic-tac-toe) or a column (Connect Four).
          check: validate shapes, range and legality first and raise ``ValueError``
            naming the offending batch indices. This synchronises with the device; with
            ``check=False`` (the default, for search) an illegal action gives an
            undefined result and nothing is checked.

        Returns:
          ``(next_state [B, num_cells] int8, reward [B] float32, done [B] bool)``.
        """
        if check:
            self.check_actions(state, action)
        tables = self._tables_on(state.device)
        cell = self._action_cells(state, action, tables)
        board = state.scatter(1, cell.unsqueeze(1), 1)
        k = self.win_length
        stones = board.gather(1, tables.cell_lines.index_select(0, cell))  # [B, M * k]
        won = stones.view(stones.shape[0], self._lines_per_cell, k).sum(-1, dtype=torch.int8).eq(k).any(-1)
        done = won | board[:, self._open_cells].ne(0).all(-1)
        return board.neg(), won.to(torch.float32), done

    def check_actions(self, state: torch.Tensor, action: torch.Tensor) -> None:
        """Raises ``ValueError`` unless ``action [B]`` is a legal move in each ``state [B, num_cells]``."""
        self.check_state(state)
        if not isinstance(action, torch.Tensor) or action.dim() != 1 or action.shape[0] != state.shape[0]:
            shape = tuple(action.shape) if isinstance(action, torch.Tensor) else type(action).__name__
            raise ValueError(f"action must be a [B] = [{state.shape[0]}] tensor; got {shape}")
        if action.dtype.is_floating_point or action.dtype == torch.bool or action.dtype.is_complex:
            raise ValueError(f"action must be an integer tensor; got {action.dtype}")
        A = self.num_actions
        bad_range = (action < 0) | (action >= A)
        if bad_range.any():
            idx = bad_range.nonzero().flatten().tolist()
            raise ValueError(f"{self.name}: actions out of range [0, {A}) at batch indices {_short(idx)}: "
                             f"{_short(action[bad_range].tolist())}")
        illegal = ~self.legal(state).gather(1, action.long().unsqueeze(1)).squeeze(1)
        if illegal.any():
            idx = illegal.nonzero().flatten().tolist()
            what = "full columns" if self.gravity else "occupied cells"
            raise ValueError(f"{self.name}: illegal actions ({what}) at batch indices {_short(idx)}: "
                             f"{_short(action[illegal].tolist())}")

    def check_state(self, state: torch.Tensor) -> None:
        """Raises ``ValueError`` unless ``state`` is an integer ``[B, num_cells]`` tensor of -1/0/+1."""
        if not isinstance(state, torch.Tensor):
            raise ValueError(f"state must be a torch.Tensor; got {type(state).__name__}")
        if state.dim() != 2 or state.shape[1] != self.num_cells:
            raise ValueError(f"{self.name} state must have shape [B, {self.num_cells}]; got {tuple(state.shape)}")
        if state.dtype.is_floating_point or state.dtype == torch.bool:
            raise ValueError(f"{self.name} state must be an integer tensor (int8); got {state.dtype}")
        if (state.abs() > 1).any():
            raise ValueError(f"{self.name} state entries must be -1, 0 or +1")

    def outcome(self, state: torch.Tensor) -> torch.Tensor:
        """``[B]`` float32: +1 if the player to move has a line, -1 if the opponent has, else 0.

        In a position reached by play only the player who just moved can have a line, so
        this is -1 for a lost game and 0 for a draw or a game still going on.
        """
        k = self.win_length
        # Entries are -1/0/+1, so a line sums to +k (-k) exactly when it is all the mover's
        # (the opponent's); one matmul with the [cells, L] line-membership matrix sums them all.
        sums = state.to(torch.float32) @ self._tables_on(state.device).line_matrix  # [B, L]
        return sums.eq(k).any(-1).to(torch.float32) - sums.eq(-k).any(-1).to(torch.float32)

    def observation(self, state: torch.Tensor) -> torch.Tensor:
        """``[B, 2, rows, cols]`` float32: plane 0 the stones of the player to move, plane 1 the opponent's."""
        planes = torch.stack((state.eq(1), state.eq(-1)), dim=1)
        return planes.to(torch.float32).view(state.shape[0], 2, self.rows, self.cols)

    def to_move(self, state: torch.Tensor) -> torch.Tensor:
        """``[B]`` long: 0 if the first player (X) is to move, 1 otherwise (stone-count parity)."""
        return state.ne(0).sum(-1).remainder(2)

    def render(self, state: torch.Tensor) -> str:
        """One board as ASCII text in absolute colours (X moves first), for printing.

        Args:
          state: ``[num_cells]`` (or ``[1, num_cells]``) canonical state.
        """
        if state.dim() == 2 and state.shape[0] == 1:
            state = state[0]
        if state.dim() != 1 or state.shape[0] != self.num_cells:
            raise ValueError(f"render takes one {self.name} state of shape [{self.num_cells}]; "
                             f"got {tuple(state.shape)}")
        cells = state.tolist()
        mover = sum(c != 0 for c in cells) % 2  # 0: the +1 stones are the first player's
        symbol = {0: "."}
        symbol[1], symbol[-1] = (self.symbols if mover == 0 else self.symbols[::-1])
        lines = [" ".join(symbol[c] for c in cells[r * self.cols:(r + 1) * self.cols]) for r in range(self.rows)]
        if self.gravity:
            lines.append(" ".join(str(c % 10) for c in range(self.cols)))
        return "\n".join(lines)


def _short(values: list, limit: int = 10) -> str:
    """A list for an error message, cut after ``limit`` items."""
    if len(values) <= limit:
        return str(values)
    return str(values[:limit])[:-1] + f", ... ({len(values)} in all)]"


def permute(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, ..., index[b]]``: the last dimension of each sample reordered by its own permutation.

    Args:
      x: ``[B, ..., n]``, e.g. states ``[B, cells]``, observation planes ``[B, 2, cells]``
        or policies over an unroll ``[B, K, A]``.
      index: ``[B, n]`` long, e.g. a row of :meth:`BoardGame.random_symmetries`.
    """
    shape = (index.shape[0],) + (1,) * (x.dim() - 2) + (index.shape[1],)
    return x.gather(-1, index.view(shape).expand_as(x))


def permute_moves(moves: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The moves ``[B]`` or ``[B, K]`` on the boards turned by ``actions [B, A]`` (see :meth:`BoardGame.symmetries`)."""
    inverse = actions.argsort(dim=-1)
    if moves.dim() == 1:
        return inverse.gather(1, moves.unsqueeze(1)).squeeze(1)
    return inverse.gather(1, moves)
