"""Board positions drawn as SVG: tic-tac-toe and Connect Four, in absolute colours.

:func:`board_svg` draws one position (the tree explorer's panels use it), :func:`boards_html`
a captioned row of them and :func:`show_boards` displays that row in a notebook.

Example::

    from course_lib.games import TicTacToe
    from course_lib.viz import show_boards
    game = TicTacToe()
    show_boards(game, [game.initial(1)], ["the empty board"])
"""
from __future__ import annotations

import html
from typing import Sequence

import torch

__all__ = ["STONES", "board_svg", "boards_html", "player_names", "show_boards"]

TEXT = "#202124"
MUTED = "#5f6368"
STONES = {"X": "#1967d2", "O": "#d93025", "red": "#d93025", "yellow": "#fbbc04"}


def player_names(game) -> tuple[str, str]:
    """The names of the first and second player as boards are drawn: X/O, or red/yellow in Connect Four."""
    return ("red", "yellow") if getattr(game, "gravity", False) else tuple(game.symbols)


def _attr(text: str) -> str:
    return html.escape(str(text), quote=True)


def board_svg(game, state, *, last_action: int | None = None, cell: int = 26) -> str:
    """One position of ``game`` as an SVG string, in absolute colours.

    Tic-tac-toe: X (blue crosses) and O (red rings); Connect Four: red and yellow discs in a
    blue frame, X = red moving first. Each stone is an element of class ``stone``. The
    cell of ``last_action`` (the move that led here) is shaded (tic-tac-toe) or dotted
    (Connect Four).

    Args:
      game: a :class:`~course_lib.games.BoardGame`.
      state: ``[num_cells]`` (or ``[1, num_cells]``) canonical state, tensor or sequence of -1/0/+1.
      last_action: the action that led to this position, or None.
      cell: pixels per cell.
    """
    cells = state.reshape(-1).tolist() if isinstance(state, torch.Tensor) else list(state)
    if len(cells) != game.num_cells or any(c not in (-1, 0, 1) for c in cells):
        raise ValueError(f"board_svg takes one {game.name} state of {game.num_cells} cells of -1/0/+1; "
                         f"got {len(cells)} cells")
    rows, cols = game.rows, game.cols
    mover = sum(c != 0 for c in cells) % 2            # 0: the +1 stones are the first player's
    first, second = player_names(game)
    owner = {1: first if mover == 0 else second, -1: second if mover == 0 else first}
    last_cell = None
    if last_action is not None:
        if game.gravity:   # the played stone is the top stone of its column
            last_cell = next((r * cols + last_action for r in range(rows) if cells[r * cols + last_action]), None)
        else:
            last_cell = last_action
    w, h = cols * cell + 4, rows * cell + 4
    title = game.render(torch.tensor(cells, dtype=torch.int8))
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' viewBox='0 0 {w} {h}' "
           f"role='img'><title>{_attr(title)}</title>"]
    if game.gravity:
        out.append(f"<rect x='0' y='0' width='{w}' height='{h}' rx='5' fill='#1a56db'/>")
    else:
        out.append(f"<rect x='0' y='0' width='{w}' height='{h}' fill='white'/>")
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            x, y = 2 + c * cell, 2 + r * cell
            mx, my = x + cell / 2, y + cell / 2
            if game.gravity:
                colour = STONES[owner[cells[i]]] if cells[i] else "white"
                kind = f" class='stone {owner[cells[i]]}'" if cells[i] else ""
                out.append(f"<circle{kind} cx='{mx}' cy='{my}' r='{cell * 0.4:.1f}' fill='{colour}'/>")
                if i == last_cell:
                    out.append(f"<circle cx='{mx}' cy='{my}' r='{cell * 0.1:.1f}' fill='{TEXT}'/>")
                continue
            shade = "#fef7e0" if i == last_cell else "white"
            out.append(f"<rect x='{x}' y='{y}' width='{cell}' height='{cell}' fill='{shade}' stroke='{MUTED}'/>")
            s, p = owner.get(cells[i]), cell * 0.25
            if s == first:
                out.append(f"<path class='stone {s}' d='M{x + p} {y + p}L{x + cell - p} {y + cell - p}"
                           f"M{x + cell - p} {y + p}L{x + p} {y + cell - p}' stroke='{STONES[s]}' stroke-width='3'/>")
            elif s == second:
                out.append(f"<circle class='stone {s}' cx='{mx}' cy='{my}' r='{cell / 2 - p:.1f}' fill='none' "
                           f"stroke='{STONES[s]}' stroke-width='3'/>")
    out.append("</svg>")
    return "".join(out)


def boards_html(game, states, captions: Sequence[str] | None = None, last_actions: Sequence[int | None] | None = None,
                *, cell: int = 26) -> str:
    """A row of positions (:func:`board_svg`), each with its caption underneath, wrapping on narrow pages.

    Args:
      game: the board game.
      states: ``[N, num_cells]`` tensor or a sequence of N states.
      captions: N captions (HTML), or None.
      last_actions: N actions that led to each position (or None each), or None.
      cell: pixels per cell.
    """
    states = list(states)
    for name, given in (("captions", captions), ("last_actions", last_actions)):
        if given is not None and len(given) != len(states):
            raise ValueError(f"{name} must have one entry per state ({len(states)}); got {len(given)}")
    items = []
    for i, state in enumerate(states):
        last = None if last_actions is None else last_actions[i]
        caption = "" if captions is None else captions[i]
        drawing = board_svg(game, state, last_action=last, cell=cell)
        items.append(f"<div style='text-align:center;font-size:12px'>{drawing}<br>{caption}</div>")
    return "<div style='display:flex;flex-wrap:wrap;gap:16px;align-items:flex-end'>" + "".join(items) + "</div>"


def show_boards(game, states, captions: Sequence[str] | None = None,
                last_actions: Sequence[int | None] | None = None, *, cell: int = 26) -> None:
    """Display :func:`boards_html` in a notebook."""
    from IPython.display import HTML, display

    display(HTML(boards_html(game, states, captions, last_actions, cell=cell)))
