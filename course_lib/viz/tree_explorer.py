r"""An explorer for one Monte-Carlo search tree: step through its simulations and look inside.

The batched search of :mod:`course_lib.search.mcts` keeps B trees as arrays. To *see* what
it does, this module takes one of them apart, one simulation at a time:

* :func:`tree_snapshot` reads tree ``b`` into a plain dict: its expanded nodes (N, W/N, the
  network's value, board or latent), every edge's N, Q, P and the PUCT score the next
  simulation would compute at its parent (with :func:`~course_lib.search.puct_scores`, the
  function the search itself calls), and the path of the latest simulation;
* :func:`layout` places the drawn nodes in layers, root at the top;
* :func:`render_svg` draws the tree, :func:`render_panel` one node (its board and the
  table of its children), :func:`board_svg` a board position.

These are pure functions of the tree, tested without a browser. Two front-ends draw with them:

* **live** (:meth:`TreeExplorer.widget`, or ``display(explorer)``): ipywidgets buttons Step,
  Run all and Reset and a node menu; each click runs the search in the kernel and re-renders.
* **static** (:meth:`TreeExplorer.to_html`, :meth:`TreeExplorer.show_static`): for the book,
  where no kernel runs. The tree after each simulation ``k`` is rendered in advance and
  stored as JSON inside one self-contained HTML string; a few lines of inline JavaScript
  (no external script) only switch between the stored drawings with a slider and show a
  clicked node's panel.

Conventions (those of the search): a node's value is for the player **to move** at that
node; ``Q(s, a)`` is for the player to move at ``s``. Node ids are the tree's node indices
(the root is 0, the k-th simulation creates node k), so a node keeps its id as the tree grows.

Example (a notebook cell)::

    from course_lib.games import make_game
    from course_lib.viz import TreeExplorer
    game = make_game("tictactoe")
    evaluate = lambda states: (torch.zeros(len(states), game.num_actions), torch.zeros(len(states)))
    explorer = TreeExplorer(game, evaluate, game.initial(1), num_simulations=50)
    explorer.widget()            # live, with a kernel
    explorer.show_static()       # for the book: a slider over k = 0 .. 50
"""
from __future__ import annotations

import html
import json
import math
import re
import uuid
from typing import Sequence

import torch

from ..search.mcts import (Evaluator, RecurrentFn, RootOutput, Tree, _normalised_q, init_tree, puct_scores,
                           rules_recurrent_fn, rules_root, simulate)

__all__ = ["TreeExplorer", "TreeExplorerWidget", "tree_snapshot", "layout", "render_svg", "render_panel",
           "board_svg", "static_html", "player_names"]

# Drawing constants (pixels) and colours.
SLOT = 92            # horizontal distance between neighbours on a level
LEVEL = 104          # vertical distance between depths
RADIUS = 13          # node radius
TOP = 62             # header lines and the root's label above the root
MARGIN = 12
MIN_WIDTH = 440
EDGE = "#9aa0a6"     # edges off the path
PATH = "#e8710a"     # the latest simulation's path
NEW = "#188038"      # the node the latest simulation expanded
SELECTED = "#1a73e8"
TEXT = "#202124"
MUTED = "#5f6368"
STONES = {"X": "#1967d2", "O": "#d93025", "red": "#d93025", "yellow": "#fbbc04"}
_FONT = "font-family='sans-serif'"


# ----------------------------------------------------------------------------- snapshot
def player_names(game) -> tuple[str, str]:
    """The names of the first and second player as boards are drawn: X/O, or red/yellow in Connect Four."""
    return ("red", "yellow") if getattr(game, "gravity", False) else tuple(game.symbols)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _check_view(qtransform: str, max_depth: int | None, top_k: int | None) -> None:
    """Clear errors for the drawing options shared by the snapshot and the explorer."""
    if qtransform not in ("none", "minmax"):
        raise ValueError(f"qtransform must be 'none' or 'minmax'; got {qtransform!r}")
    if max_depth is not None and max_depth < 0:
        raise ValueError(f"max_depth must be >= 0 or None; got {max_depth}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None; got {top_k}")


def tree_snapshot(tree: Tree, game=None, *, b: int = 0, c1: float = 1.25, c2: float = 19652.0,
                  qtransform: str = "none", unvisited_q: float = 0.0, max_depth: int | None = None,
                  top_k: int | None = None) -> dict:
    """What tree ``b`` holds now, as a plain dict (the input of every renderer here).

    A node is *expanded* when the search reached it (it is linked from the root through
    ``children_index``); only expanded nodes are listed, never the scratch slot. Of those,
    a node is *shown* when its parent is shown and it is within ``max_depth`` and among the
    ``top_k`` children of its parent by visits (ties: lower action); the nodes on the latest
    simulation's path are always shown, so its highlight is never cut.

    Args:
      tree: the search trees (:class:`~course_lib.search.Tree`); ``b`` picks one.
      game: the board game whose states the embeddings are (searching the true rules), or
        None (a learned model's latent states: nodes are labelled "latent state #n").
      c1, c2, qtransform, unvisited_q: the search's settings (see :func:`~course_lib.search.search`),
        used to recompute each edge's PUCT score exactly as the next simulation would.
      max_depth: show nodes down to this depth (root = 0); None: all.
      top_k: show at most this many children per node, the most visited; None: all.

    Returns:
      ``{"k": simulations run, "num_simulations": the tree's capacity, "nodes": [node, ...]``
      (shown nodes, depth-first in action order), ``"edges": [...]`` (one per shown non-root
      node), ``"path": [node ids]`` (root first), ``"new_node"`` (the node the latest
      simulation expanded, or None), ``"num_expanded"``, ``"num_hidden"``, ``"max_depth"``,
      ``"top_k"``, ``"players"}``. A node is ``{"id", "parent", "action", "depth", "visits",
      "value_sum", "value" (W/N), "raw_value" (the network's), "reward", "discount",
      "terminal", "to_move" (0/1 or None), "board" (canonical cells or None), "label",
      "children": [{"action", "child" (id or None), "visits", "q" (None if unvisited),
      "prior", "puct", "shown"}, ...] (legal actions; none at a terminal node),
      "next_action" (highest PUCT), "hidden" (expanded descendants not shown)}``.
      An edge is ``{"parent", "child", "action", "visits", "q", "prior", "puct"}``.
    """
    if not 0 <= b < tree.batch_size:
        raise ValueError(f"b must be in [0, {tree.batch_size}); got {b}")
    _check_view(qtransform, max_depth, top_k)
    scratch = tree.scratch
    if game is not None and tuple(tree.embedding.shape[2:]) != (game.num_cells,):
        raise ValueError(f"with game={game!r} the embeddings must be its states [B, S + 1, {game.num_cells}]; "
                         f"got {tuple(tree.embedding.shape)} (pass game=None for latent states)")

    # One copy of tree b to the host; everything below is plain Python on <= S nodes.
    children_index = tree.children_index[b].tolist()                             # [S + 1][A]
    visits, value_sum, raw_value, reward, discount = (
        getattr(tree, name)[b].tolist() for name in ("node_visits", "value_sum", "raw_value", "reward", "discount"))
    depth, parent, action, terminal = (tree.depth[b].tolist(), tree.parent[b].tolist(), tree.action[b].tolist(),
                                       tree.terminal[b].tolist())

    # Expanded nodes: reachable from the root (a simulation that ends on a terminal node
    # leaves its unused slot unlinked, so "index <= k" is not the test).
    expanded, kids = [0], {}
    for node in expanded:
        kids[node] = [(a, c) for a, c in enumerate(children_index[node]) if c >= 0]
        expanded.extend(c for _, c in kids[node])
    size = {}
    for node in reversed(expanded):                                          # children before parents
        size[node] = 1 + sum(size[c] for _, c in kids[node])

    # PUCT of every edge of every expanded node, as simulate() computes it.
    idx = torch.tensor(expanded, dtype=torch.long, device=tree.children_index.device)
    edges = tree.edges(b, idx)                                                # each [M, A]
    m = len(expanded)
    q = _normalised_q(edges, tree.min_q[b].expand(m), tree.max_q[b].expand(m), qtransform, unvisited_q)
    puct = puct_scores(edges.prior, edges.visits, q, edges.legal, tree.node_visits[b, idx], c1, c2)
    row = {node: i for i, node in enumerate(expanded)}
    stats = torch.stack([edges.prior, edges.visits, edges.q, edges.legal.to(edges.q.dtype)], -1).tolist()  # [M][A][4]
    puct = puct.tolist()

    path = [n for n in tree.last_path[b].tolist() if n != scratch]
    on_path = set(path)
    k = tree.num_simulations
    new_node = k if k > 0 and path[-1] == k else None

    # Shown nodes, depth-first in action order (the order layout() places them).
    shown: list[int] = []
    hidden_below: dict[int, int] = {}
    stack = [0]
    while stack:
        node = stack.pop()
        shown.append(node)
        ranked = sorted(kids[node], key=lambda ac: (-visits[ac[1]], ac[0]))
        keep = {c for _, c in (ranked if top_k is None else ranked[:top_k])}
        show = [c for _, c in kids[node]
                if c in on_path or (c in keep and (max_depth is None or depth[c] <= max_depth))]
        hidden_below[node] = sum(size[c] for _, c in kids[node] if c not in show)
        stack.extend(reversed(show))
    shown_set = set(shown)

    players = player_names(game) if game is not None else None
    boards = (tree.embedding[b, torch.tensor(shown, device=tree.embedding.device)].to(torch.int64).tolist()
              if game is not None else [None] * len(shown))
    nodes, edges = [], []
    for node, board in zip(shown, boards):
        children = []
        for a, (prior, n, q, legal) in enumerate(stats[row[node]]):
            if legal > 0 and not terminal[node]:       # a terminal node has no moves to search
                child = children_index[node][a]
                children.append({"action": a, "child": child if child >= 0 else None, "visits": int(n),
                                 "q": q if n > 0 else None, "prior": prior, "puct": _finite(puct[row[node]][a]),
                                 "shown": child in shown_set})
        best = max((c for c in children if c["puct"] is not None), key=lambda c: c["puct"], default=None)
        to_move = sum(c != 0 for c in board) % 2 if board is not None else None
        nodes.append({
            "id": node, "parent": parent[node] if node else None, "action": action[node] if node else None,
            "depth": depth[node], "visits": int(visits[node]), "value_sum": value_sum[node],
            "value": value_sum[node] / max(visits[node], 1), "raw_value": raw_value[node], "reward": reward[node],
            "discount": discount[node], "terminal": terminal[node], "to_move": to_move, "board": board,
            "label": f"{players[to_move]} to move" if board is not None else f"latent state #{node}",
            "children": children, "next_action": best["action"] if best else None, "hidden": hidden_below[node]})
        if node:
            p, a = parent[node], action[node]
            prior, n, q, _ = stats[row[p]][a]
            edges.append({"parent": p, "child": node, "action": a, "visits": int(n), "q": q, "prior": prior,
                          "puct": _finite(puct[row[p]][a])})
    return {"k": k, "num_simulations": scratch - 1, "nodes": nodes, "edges": edges, "path": path,
            "new_node": new_node, "num_expanded": len(expanded), "num_hidden": len(expanded) - len(shown),
            "max_depth": max_depth, "top_k": top_k, "players": list(players) if players else None}


def layout(snapshot: dict) -> dict[int, tuple[float, int]]:
    """Positions of the shown nodes: ``{id: (x, depth)}``, root at depth 0 (the top), ``min x = 0``.

    A layered tree layout: children left to right in action order (so a node keeps its side
    as the tree grows), a parent midway between its first and last child, and each subtree
    pushed just far enough right of its left siblings' subtrees that, depth by depth, nodes
    stay at least one unit apart (the contour idea of Reingold and Tilford, 1981): a short
    branch beside a deep one takes no extra width below its last level.
    """
    children: dict[int, list[int]] = {n["id"]: [] for n in snapshot["nodes"]}
    for edge in sorted(snapshot["edges"], key=lambda e: e["action"]):
        children[edge["parent"]].append(edge["child"])
    order, stack, depth = [], [0], {0: 0}                    # depth-first, parents before children
    while stack:
        node = stack.pop()
        order.append(node)
        for child in children[node]:
            depth[child] = depth[node] + 1
        stack.extend(reversed(children[node]))

    # Bottom-up: each subtree's x relative to its root and its [min x, max x] per level.
    offset: dict[int, float] = {}                            # x of a node relative to its parent
    contour: dict[int, list[list[float]]] = {}
    for node in reversed(order):                             # children before parents
        forest: list[list[float]] = []                       # the children's subtrees placed so far
        roots = []
        for child in children[node]:
            sub = contour.pop(child)
            shift = max((forest[d][1] - sub[d][0] + 1 for d in range(min(len(forest), len(sub)))), default=0.0)
            for d, (lo, hi) in enumerate(sub):
                if d < len(forest):
                    forest[d][1] = hi + shift                # the new subtree is the rightmost so far
                else:
                    forest.append([lo + shift, hi + shift])
            roots.append(shift)
        centre = (roots[0] + roots[-1]) / 2 if roots else 0.0
        offset.update((child, x - centre) for child, x in zip(children[node], roots))
        contour[node] = [[0.0, 0.0]] + [[lo - centre, hi - centre] for lo, hi in forest]

    x = {0: 0.0}
    for node in order:
        for child in children[node]:
            x[child] = x[node] + offset[child]
    left = min(x.values())
    return {n: (x[n] - left, depth[n]) for n in order}


# ------------------------------------------------------------------------------- drawing
def _attr(text: str) -> str:
    return html.escape(str(text), quote=True)


def _pixels(x: float, depth: int) -> tuple[float, float]:
    return MARGIN + (x + 0.5) * SLOT, TOP + RADIUS + depth * LEVEL


def _fmt(x: float | None, signed: bool = False, digits: int = 2) -> str:
    if x is None:
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _header(snapshot: dict) -> tuple[str, str]:
    k, n = snapshot["k"], snapshot["num_simulations"]
    line1 = f"after {k} of {n} simulation{'s' if n != 1 else ''} · {snapshot['num_expanded']} nodes"
    if snapshot["num_hidden"]:
        why = []
        if snapshot["top_k"] is not None:
            why.append(f"top {snapshot['top_k']} children by N")
        if snapshot["max_depth"] is not None:
            why.append(f"depth ≤ {snapshot['max_depth']}")
        line1 += f", {snapshot['num_hidden']} hidden (showing {' and '.join(why)}, plus the path)"
    if k == 0:
        line2 = "only the root, evaluated once by the network"
    elif snapshot["new_node"] is None:
        line2 = f"orange: path of simulation {k}, which ended on a terminal node (nothing expanded)"
    else:
        line2 = f"orange: path of simulation {k} · green: node {snapshot['new_node']}, which it expanded"
    return line1, line2


def render_svg(snapshot: dict, positions: dict | None = None, *, selected: int | None = None) -> str:
    """The tree of ``snapshot`` as an SVG string (top-down, root at the top).

    Each edge is labelled with its action and N, Q, P and PUCT (at the parent); its width
    grows with N. The latest simulation's path is orange, the node it expanded green,
    terminal nodes are squares; a node shows its visit count N and, below it, how many of
    its expanded descendants are hidden. Every node's shape is inside a
    ``<g data-node=id transform=translate(x y)>`` (the static page's script finds clicks
    with it); the dashed ring around ``selected`` is the element ``data-ring`` (the script
    moves it). Styles are presentation attributes, so the SVG stands alone.
    """
    positions = layout(snapshot) if positions is None else positions
    nodes = {n["id"]: n for n in snapshot["nodes"]}
    pixels = {i: _pixels(x, d) for i, (x, d) in positions.items()}
    columns = max(x for x, _ in positions.values()) + 1
    height = max(d for _, d in positions.values())
    width = round(max(MIN_WIDTH, 2 * MARGIN + columns * SLOT))
    total_height = round(TOP + 2 * RADIUS + height * LEVEL + 18)
    path = snapshot["path"]
    path_edges = set(zip(path[:-1], path[1:]))
    root_visits = max(nodes[0]["visits"], 1)
    line1, line2 = _header(snapshot)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{total_height}' "
           f"viewBox='0 0 {width} {total_height}' {_FONT} font-size='10' text-anchor='middle'>",
           f"<text x='{MARGIN}' y='16' font-size='12' fill='{TEXT}' text-anchor='start'>{_attr(line1)}</text>",
           f"<text x='{MARGIN}' y='32' font-size='11' fill='{MUTED}' text-anchor='start'>{_attr(line2)}</text>"]
    lines = {False: [], True: []}
    labels = []
    for e in snapshot["edges"]:
        (px, py), (cx, cy) = pixels[e["parent"]], pixels[e["child"]]
        w = 1 + 5 * math.sqrt(e["visits"] / root_visits)
        lines[(e["parent"], e["child"]) in path_edges].append(
            f"<path d='M{px:.0f} {py + RADIUS:.0f}L{cx:.0f} {cy - RADIUS:.0f}' stroke-width='{w:.1f}'/>")
        labels.append(f"<text x='{cx:.0f}' y='{cy - RADIUS - 27:.0f}'><tspan font-weight='bold'>a={e['action']}</tspan>"
                      f" N={e['visits']}<tspan x='{cx:.0f}' dy='10'>Q={_fmt(e['q'], True)} P={_fmt(e['prior'])}"
                      f"</tspan><tspan x='{cx:.0f}' dy='10'>PUCT={_fmt(e['puct'])}</tspan></text>")
    # Edges (the path's on top), their labels (on a white halo), the nodes, the numbers on them.
    out.append(f"<g stroke='{EDGE}'>{''.join(lines[False])}</g><g stroke='{PATH}'>{''.join(lines[True])}</g>")
    out.append(f"<g fill='{TEXT}' stroke='white' stroke-width='3' paint-order='stroke'>{''.join(labels)}</g>")
    shapes, numbers = [], []
    for node_id, (cx, cy) in pixels.items():
        n = nodes[node_id]
        is_new, on_path = node_id == snapshot["new_node"], node_id in path
        look = (f" fill='#ceead6' stroke='{NEW}' stroke-width='3'" if is_new else
                f" stroke='{PATH}' stroke-width='3'" if on_path else "")
        if n["terminal"]:
            look += "" if is_new else " fill='#e8eaed'"
            shape = f"<rect x='-{RADIUS}' y='-{RADIUS}' width='{2 * RADIUS}' height='{2 * RADIUS}'{look}/>"
        else:
            shape = f"<circle r='{RADIUS}'{look}/>"
        tip = f"node {node_id} · N={n['visits']} · W/N={n['value']:+.2f}" + (" · terminal" if n["terminal"] else "")
        shapes.append(f"<g data-node='{node_id}' transform='translate({cx:.0f} {cy:.0f})'><title>{tip}</title>"
                      f"{shape}</g>")
        numbers.append(f"<text x='{cx:.0f}' y='{cy + 3.5:.1f}'>{n['visits']}</text>")
        if n["hidden"]:
            numbers.append(f"<text x='{cx:.0f}' y='{cy + RADIUS + 12:.0f}' fill='{MUTED}'>+{n['hidden']} hidden</text>")
    rx, ry = pixels[0]
    numbers.append(f"<text x='{rx:.0f}' y='{ry - RADIUS - 5:.0f}' fill='{MUTED}'>root</text>")
    out.append(f"<g fill='white' stroke='{MUTED}' stroke-width='1.5' style='cursor:pointer'>{''.join(shapes)}</g>")
    out.append(f"<g fill='{TEXT}' pointer-events='none'>{''.join(numbers)}</g>")
    sx, sy = pixels[selected if selected in pixels else 0]
    out.append(f"<circle data-ring='1' transform='translate({sx:.0f} {sy:.0f})' r='{RADIUS + 5}' fill='none' "
               f"stroke='{SELECTED}' stroke-width='2.5' stroke-dasharray='4 2' pointer-events='none' "
               f"visibility='{'visible' if selected in pixels else 'hidden'}'/>")
    out.append("</svg>")
    return "".join(out)


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


BOARD_PLACEHOLDER = "<span data-board='1'></span>"
# Both front-ends put this style block once on the page, and the panels in <div class='mctsx'>.
PANEL_CSS = (".mctsx td,.mctsx th{padding:1px 6px;text-align:right}.mctsx td:first-child{text-align:left}"
             f".mctsx table{{border-collapse:collapse}}.mctsx tr.next{{font-weight:bold;background:#fef7e0}}"
             f".mctsx .note{{color:{MUTED};font-size:11px;margin-top:4px}}")
PANEL_NOTE = ("Values are for the player to move at the node, Q(s,a) for the player to move at s; PUCT is the score "
              "the next simulation through the node computes (highlighted: the highest, the edge it takes).")


def render_panel(snapshot: dict, node_id: int, game=None, *, board: bool = True) -> str:
    """HTML for one node of ``snapshot``: its board, its statistics and the table of its children.

    The table lists every legal action with its N, Q, P and PUCT score; the row of the
    highest PUCT, the edge the next simulation through this node takes, has class ``next``.
    With ``board=False`` the board is left out (the element ``<span data-board='1'>`` marks
    its place). Styled by :data:`PANEL_CSS` inside an element of class ``mctsx``.
    """
    nodes = {n["id"]: n for n in snapshot["nodes"]}
    if node_id not in nodes:
        raise ValueError(f"node {node_id} is not shown in this snapshot; shown: {sorted(nodes)}")
    n = nodes[node_id]
    if n["terminal"]:
        if n["board"] is not None and snapshot["players"]:
            terminal = f"yes: {snapshot['players'][1 - n['to_move']]} won" if n["reward"] > 0 else "yes: draw"
        else:
            terminal = "yes"
    else:
        terminal = "no"
    rows = [("position", _attr(n["label"])), ("visits N", n["visits"]),
            ("value W/N", _fmt(n["value"], True, 3)), ("network value", _fmt(n["raw_value"], True, 3))]
    if n["parent"] is not None:
        rows.append(("edge in: r, γ", f"{n['reward']:g}, {n['discount']:g}"))
    rows.append(("terminal", terminal))
    stats = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    board_html = BOARD_PLACEHOLDER
    if board:
        board_html = (board_svg(game, n["board"], last_action=n["action"])
                      if game is not None and n["board"] is not None else "")
    out = [f"<div><b>node {node_id} · {_attr(_node_path(nodes, n))}</b>",
           f"<div style='display:flex;gap:10px;align-items:flex-start;margin-top:4px'>{board_html}"
           f"<table>{stats}</table></div>"]
    if n["children"]:
        body = "".join(
            f"<tr{' class=next' if c['action'] == n['next_action'] else ''}><td>{c['action']}</td><td>{c['visits']}"
            f"</td><td>{_fmt(c['q'], True, 3)}</td><td>{_fmt(c['prior'], False, 3)}</td>"
            f"<td>{_fmt(c['puct'], False, 3)}</td></tr>" for c in n["children"])
        out.append(f"<table style='margin-top:6px'><tr><th>action</th><th>N</th><th>Q</th><th>P</th><th>PUCT</th>"
                   f"</tr>{body}</table>")
    elif n["terminal"]:
        out.append("<div class='note'>A terminal node: never expanded; each simulation that reaches it backs up "
                   "its edge's reward again.</div>")
    out.append("</div>")
    return "".join(out)


def _node_path(nodes: dict, node: dict) -> str:
    """The actions from the root to ``node``: "root → 3 → 4"."""
    moves = []
    while node["parent"] is not None:
        moves.append(str(node["action"]))
        node = nodes[node["parent"]]
    return " → ".join(["root"] + moves[::-1])


def _node_option(snapshot: dict, node: dict) -> str:
    """A node's name in a menu: the actions from the root, and N."""
    return f"{_node_path({n['id']: n for n in snapshot['nodes']}, node)}  (node {node['id']}, N={node['visits']})"


def _body_html(tree_svg: str, panel_html: str) -> str:
    """The tree beside a node's panel: the part both front-ends show alike."""
    return (f"<div style='display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start'>"
            f"<div data-role='tree' style='flex:1 1 480px;min-width:0;overflow:auto;max-height:720px;"
            f"border:1px solid #dadce0'>{tree_svg}</div><div style='flex:0 1 330px'>"
            f"<div data-role='panel'>{panel_html}</div><div class='note'>{PANEL_NOTE}</div></div></div>")


def _frame(inner: str, uid: str | None = None) -> str:
    """The style block and the outer element of either front-end."""
    ident = f" id='{uid}'" if uid else ""
    return (f"<style>{PANEL_CSS}</style><div{ident} class='mctsx' style='font:12px/1.35 sans-serif;color:{TEXT};"
            f"margin:6px 0'>{inner}</div>")


def _view_html(snapshot: dict, game, selected: int) -> str:
    """The live view: the tree, with ``selected`` ringed, beside that node's panel."""
    return _frame(_body_html(render_svg(snapshot, selected=selected), render_panel(snapshot, selected, game)))


# ---------------------------------------------------------------------- static front-end
_SCRIPT = r"""(function () {
  var root = document.getElementById(%(id)s);
  var data = JSON.parse(document.getElementById(%(id)s + '-data').textContent);
  var snaps = data.snapshots, at = data.start, sel = 0;
  function q(role) { return root.querySelector('[data-role="' + role + '"]'); }
  var tree = q('tree'), panel = q('panel'), slider = q('slider'), label = q('label');
  function show() {
    var s = snaps[at];
    tree.innerHTML = s.svg;
    if (!(sel in s.panels)) sel = 0;
    var g = tree.querySelector('[data-node="' + sel + '"]'), ring = tree.querySelector('[data-ring]');
    if (g && ring) {
      ring.setAttribute('transform', g.getAttribute('transform'));
      ring.setAttribute('visibility', 'visible');
    }
    panel.innerHTML = data.panels[s.panels[sel]].replace(%(placeholder)s, data.boards[sel] || '');
    slider.value = at;
    label.textContent = 'k = ' + s.k + ' of ' + data.num_simulations + ' simulations';
    q('first').disabled = q('prev').disabled = at === 0;
    q('last').disabled = q('next').disabled = at === snaps.length - 1;
  }
  function go(i) { at = Math.max(0, Math.min(snaps.length - 1, i)); show(); }
  tree.addEventListener('click', function (e) {
    var t = e.target;
    while (t && t !== tree && !(t.getAttribute && t.getAttribute('data-node') !== null)) t = t.parentNode;
    if (t && t !== tree) { sel = +t.getAttribute('data-node'); show(); }
  });
  slider.addEventListener('input', function () { go(+slider.value); });
  q('first').addEventListener('click', function () { go(0); });
  q('prev').addEventListener('click', function () { go(at - 1); });
  q('next').addEventListener('click', function () { go(at + 1); });
  q('last').addEventListener('click', function () { go(snaps.length - 1); });
  show();
})();"""


def _json_for_script(payload) -> str:
    """JSON that is safe inside ``<script>``: the ``<`` of ``</script``, ``<script`` and ``<!--`` written
    ``\\u003c`` (inside a JSON string, which reads it back as ``<``)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return re.sub(r"<(?=/?script|!--)", r"\\u003c", text, flags=re.IGNORECASE)


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def static_html(snapshots: Sequence[dict], game=None, *, start: int = -1, title: str | None = None) -> str:
    """One self-contained HTML string stepping through ``snapshots`` (from :func:`tree_snapshot`).

    The trees are drawn here, in Python, by :func:`render_svg` and :func:`render_panel` (the
    same drawings the live widget shows); the page stores them as JSON in a
    ``<script type="application/json">`` element and inline JavaScript switches between them:
    a slider and first/prev/next/last buttons over the snapshots, and a click on a node shows
    its panel. Panels are stored once per distinct content and boards once per node, which
    keeps 50 simulations of Connect Four well under a megabyte. Element ids are unique per
    call, so several explorers can share a page; without JavaScript (an untrusted notebook)
    the snapshot ``start`` is still shown.

    Args:
      snapshots: the snapshots, in the order of the slider.
      game: the board game (to draw the boards), or None.
      start: index of the snapshot shown first (-1: the last).
      title: an optional caption above the explorer.
    """
    if not snapshots:
        raise ValueError("static_html needs at least one snapshot")
    if not -len(snapshots) <= start < len(snapshots):
        raise ValueError(f"start must index the {len(snapshots)} snapshots; got {start}")
    start %= len(snapshots)
    uid = f"mctsx-{uuid.uuid4().hex[:12]}"
    panels, panel_index, boards, packed = [], {}, {}, []
    for snap in snapshots:
        refs = {}
        for n in snap["nodes"]:
            text = render_panel(snap, n["id"], game, board=False)
            refs[n["id"]] = panel_index.setdefault(text, len(panels))
            if refs[n["id"]] == len(panels):
                panels.append(text)
            if game is not None and n["board"] is not None and n["id"] not in boards:
                boards[n["id"]] = board_svg(game, n["board"], last_action=n["action"])
        packed.append({
            "k": snap["k"], "path": snap["path"], "new_node": snap["new_node"],
            "nodes": [[n["id"], n["parent"], n["action"], n["visits"], _r(n["value"]), _r(n["raw_value"]),
                       int(n["terminal"])] for n in snap["nodes"]],
            "edges": [[e["parent"], e["child"], e["action"], e["visits"], _r(e["q"]), _r(e["prior"]), _r(e["puct"])]
                      for e in snap["edges"]],
            "panels": refs, "svg": render_svg(snap)})
    payload = {"format": "course_lib.viz.tree_explorer/1", "num_simulations": snapshots[0]["num_simulations"],
               "start": start, "node_fields": ["id", "parent", "action", "N", "W/N", "network value", "terminal"],
               "edge_fields": ["parent", "child", "action", "N", "Q", "P", "PUCT"],
               "boards": boards, "panels": panels, "snapshots": packed}
    first = snapshots[start]
    first_panel = panels[packed[start]["panels"][0]].replace(BOARD_PLACEHOLDER, boards.get(0, ""))
    button = "style='font-size:12px;padding:1px 6px'"
    script = _SCRIPT % {"id": json.dumps(uid), "placeholder": _json_for_script(BOARD_PLACEHOLDER)}
    return _frame(
        (f"<div style='font-weight:bold;margin-bottom:4px'>{_attr(title)}</div>" if title else "")
        + f"<div style='display:flex;align-items:center;gap:6px;margin-bottom:6px'>"
        f"<button data-role='first' {button}>⏮</button><button data-role='prev' {button}>◀ prev</button>"
        f"<input data-role='slider' type='range' min='0' max='{len(snapshots) - 1}' value='{start}' step='1' "
        f"style='flex:0 1 320px'><button data-role='next' {button}>next ▶</button>"
        f"<button data-role='last' {button}>⏭</button>"
        f"<span data-role='label'>k = {first['k']} of {first['num_simulations']} simulations</span>"
        f"<span style='color:{MUTED}'>· click a node to see it</span></div>"
        + _body_html(packed[start]["svg"], first_panel)
        + f"<script type='application/json' id='{uid}-data'>{_json_for_script(payload)}</script>"
        f"<script>{script}</script>", uid)


# ------------------------------------------------------------------------------ explorer
class TreeExplorer:
    """Step through one MCTS search and look at its tree (live in a kernel, or as a static page).

    Searches **one** tree (a batch of one) with :func:`~course_lib.search.simulate`, the
    same function :func:`~course_lib.search.search` loops over, so ``k`` steps here give
    exactly the tree of ``search(..., num_simulations=k)``.

    Args:
      game: the board game (:func:`~course_lib.games.make_game`); its true rules are searched.
      evaluate: ``states [B, cells] -> (prior_logits [B, A], value [B])``, the network or a
        stand-in, value for the player to move.
      root_state: ``[cells]`` or ``[1, cells]`` canonical state to search from (a game still on).
      num_simulations: simulations in the full search (>= 1).
      c1, c2, qtransform, unvisited_q: the search's settings (see :func:`~course_lib.search.search`).
      root_noise: ``[A]`` exploration noise mixed into the root prior, or None.
      noise_fraction: its weight ε.
      max_depth, top_k: what to draw of a large tree (see :func:`tree_snapshot`); None: everything.

    Use :meth:`from_model` for a learned model's latent search (MuZero).
    """

    def __init__(self, game, evaluate: Evaluator, root_state: torch.Tensor, num_simulations: int = 50, *,
                 c1: float = 1.25, c2: float = 19652.0, qtransform: str = "none", unvisited_q: float = 0.0,
                 root_noise: torch.Tensor | None = None, noise_fraction: float = 0.25,
                 max_depth: int | None = None, top_k: int | None = None):
        if game is None:
            raise ValueError("TreeExplorer(game, ...) searches a game's rules; for a learned model use "
                             "TreeExplorer.from_model(root, recurrent_fn, ...)")
        if not isinstance(root_state, torch.Tensor):
            raise ValueError(f"root_state must be a torch.Tensor; got {type(root_state).__name__}")
        state = root_state.unsqueeze(0) if root_state.dim() == 1 else root_state
        if state.dim() != 2 or state.shape[0] != 1:
            raise ValueError(f"root_state must be one {game.name} state, [{game.num_cells}] or [1, {game.num_cells}]; "
                             f"got {tuple(root_state.shape)}")
        game.check_state(state)
        if bool(game.outcome(state).ne(0).any()) or bool(game.is_full(state).any()):
            raise ValueError(f"the root position is finished (won or drawn), so there is nothing to search:\n"
                             f"{game.render(state[0])}")
        _check_simulations(num_simulations)
        with torch.no_grad():
            root, legal = rules_root(game, evaluate, state)
        self._setup(game, root, rules_recurrent_fn(game, evaluate), legal, num_simulations, c1, c2, qtransform,
                    unvisited_q, root_noise, noise_fraction, max_depth, top_k)

    @classmethod
    def from_model(cls, root: RootOutput, recurrent_fn: RecurrentFn, num_simulations: int = 50, *,
                   root_legal: torch.Tensor | None = None, game=None, c1: float = 1.25, c2: float = 19652.0,
                   qtransform: str = "minmax", unvisited_q: float = 0.0, root_noise: torch.Tensor | None = None,
                   noise_fraction: float = 0.25, max_depth: int | None = None,
                   top_k: int | None = None) -> "TreeExplorer":
        """An explorer of a search with any ``recurrent_fn``, e.g. MuZero's learned model over latent states.

        Args:
          root: :class:`~course_lib.search.RootOutput` for one root: ``prior_logits [1, A]``,
            ``value [1]``, ``embedding [1, ...]`` (the leading 1 may be left out).
          recurrent_fn: ``(embedding [1, ...], action [1]) -> RecurrentOutput``.
          root_legal: ``[A]`` or ``[1, A]`` legal actions at the root (None: all).
          game: None for latent states (nodes are labelled "latent state #n"); a game only if
            the embeddings are its states (then boards are drawn).
          qtransform: "minmax" by default, as MuZero (rewards of any scale).
          The other arguments are those of :class:`TreeExplorer`.
        """
        if not isinstance(root, tuple) or len(root) != 3:
            raise ValueError(f"root must be a RootOutput(prior_logits, value, embedding); got {type(root).__name__}")
        logits, value, embedding = root
        if logits.dim() == 1:
            logits, value, embedding = logits.unsqueeze(0), value.reshape(1), embedding.unsqueeze(0)
        if logits.dim() != 2 or logits.shape[0] != 1 or value.shape != (1,) or embedding.shape[0] != 1:
            raise ValueError(f"the explorer searches one tree: root needs prior_logits [1, A], value [1], "
                             f"embedding [1, ...]; got {tuple(logits.shape)}, {tuple(value.shape)}, "
                             f"{tuple(embedding.shape)}")
        if root_legal is not None and root_legal.dim() == 1:
            root_legal = root_legal.unsqueeze(0)
        _check_simulations(num_simulations)
        self = cls.__new__(cls)
        self._setup(game, RootOutput(logits, value, embedding), recurrent_fn, root_legal, num_simulations, c1, c2,
                    qtransform, unvisited_q, root_noise, noise_fraction, max_depth, top_k)
        return self

    def _setup(self, game, root, recurrent_fn, legal, num_simulations, c1, c2, qtransform, unvisited_q, root_noise,
               noise_fraction, max_depth, top_k) -> None:
        _check_view(qtransform, max_depth, top_k)
        if root_noise is not None and root_noise.dim() == 1:
            root_noise = root_noise.unsqueeze(0)
        self.game = game
        self.num_simulations = int(num_simulations)
        self.search_settings = {"c1": c1, "c2": c2, "qtransform": qtransform, "unvisited_q": unvisited_q}
        self.max_depth, self.top_k = max_depth, top_k
        self._root, self._recurrent_fn, self._legal = root, recurrent_fn, legal
        self._noise, self._noise_fraction = root_noise, noise_fraction
        self._widget = None
        self.tree = self._new_tree()     # validates the root (shapes, a legal move) once, here

    def _new_tree(self) -> Tree:
        return init_tree(self._root, self.num_simulations, self._legal, self._noise, self._noise_fraction)

    def _simulate(self, tree: Tree) -> None:
        with torch.no_grad():
            simulate(tree, self._recurrent_fn, **self.search_settings)

    # -- the search
    @property
    def k(self) -> int:
        """Simulations run so far."""
        return self.tree.num_simulations

    @property
    def done(self) -> bool:
        """True once all ``num_simulations`` have run."""
        return self.k >= self.num_simulations

    def step(self, n: int = 1) -> int:
        """Run up to ``n`` more simulations (never past ``num_simulations``); returns how many ran."""
        if n < 0:
            raise ValueError(f"n must be >= 0; got {n}")
        ran = min(n, self.num_simulations - self.k)
        for _ in range(ran):
            self._simulate(self.tree)
        return ran

    def run_all(self) -> int:
        """Run all remaining simulations; returns how many ran."""
        return self.step(self.num_simulations - self.k)

    def reset(self) -> None:
        """Back to the root alone (k = 0); the same steps then give the same tree again."""
        self.tree = self._new_tree()

    # -- what is drawn
    def snapshot(self, tree: Tree | None = None) -> dict:
        """:func:`tree_snapshot` of the current tree (or of ``tree``) with this explorer's settings."""
        return tree_snapshot(self.tree if tree is None else tree, self.game, **self.search_settings,
                             max_depth=self.max_depth, top_k=self.top_k)

    def svg(self) -> str:
        """The current tree as SVG (:func:`render_svg`)."""
        return render_svg(self.snapshot())

    def snapshots(self, steps: Sequence[int] | None = None) -> list[dict]:
        """Snapshots after each of ``steps`` simulations (default ``0 .. num_simulations``), from a fresh search.

        The explorer's own tree is left as it is.
        """
        steps = list(range(self.num_simulations + 1)) if steps is None else [int(s) for s in steps]
        if not steps or any(not 0 <= s <= self.num_simulations for s in steps):
            raise ValueError(f"steps must be simulation counts in [0, {self.num_simulations}]; got {steps}")
        if steps != sorted(set(steps)):
            raise ValueError(f"steps must be increasing, without repeats; got {steps}")
        tree, out = self._new_tree(), []
        for k in range(steps[-1] + 1):
            if k > 0:
                self._simulate(tree)
            if k in steps:
                out.append(self.snapshot(tree))
        return out

    # -- front-ends
    def to_html(self, steps: Sequence[int] | None = None, *, start: int = -1, title: str | None = None) -> str:
        """A self-contained HTML page fragment stepping through the search (:func:`static_html`)."""
        return static_html(self.snapshots(steps), self.game, start=start, title=title)

    def show_static(self, steps: Sequence[int] | None = None, *, start: int = -1, title: str | None = None) -> None:
        """Display :meth:`to_html` in a notebook (works without a kernel: in the built book)."""
        from IPython.display import HTML, display
        display(HTML(self.to_html(steps, start=start, title=title)))

    def widget(self) -> "TreeExplorerWidget":
        """The live explorer (ipywidgets): Step, Run all, Reset, a node menu, the tree and the node's panel."""
        if self._widget is None:
            self._widget = TreeExplorerWidget(self)
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget())

    def __repr__(self) -> str:
        what = repr(self.game) if self.game is not None else "latent model"
        return f"TreeExplorer({what}, k={self.k} of {self.num_simulations} simulations)"


def _check_simulations(num_simulations) -> None:
    if not isinstance(num_simulations, int) or isinstance(num_simulations, bool) or num_simulations < 1:
        raise ValueError(f"num_simulations must be an integer >= 1; got {num_simulations!r}")


class TreeExplorerWidget:
    """The live front-end of a :class:`TreeExplorer` (ipywidgets 7 and 8).

    Attributes: ``step_button``, ``run_button``, ``reset_button``, ``node_menu`` (a
    Dropdown of the shown nodes), ``status`` (Label), ``view`` (HTML: the tree and the
    selected node's panel) and ``container`` (the VBox displayed). The buttons' handlers
    run the search in the kernel and call :meth:`refresh`; ``button.click()`` runs them too.
    """

    def __init__(self, explorer: TreeExplorer):
        import ipywidgets as widgets

        self.explorer = explorer
        self.selected = 0
        self._updating = False
        self.step_button = widgets.Button(description="Step", tooltip="run one simulation")
        self.run_button = widgets.Button(description="Run all", tooltip="run the remaining simulations")
        self.reset_button = widgets.Button(description="Reset", tooltip="back to the root alone")
        self.node_menu = widgets.Dropdown(description="node", options=[("root", 0)], value=0,
                                          layout=widgets.Layout(width="360px"))
        self.status = widgets.Label()
        self.view = widgets.HTML()
        self.step_button.on_click(self._on_step)
        self.run_button.on_click(self._on_run_all)
        self.reset_button.on_click(self._on_reset)
        self.node_menu.observe(self._on_node, names="value")
        self.container = widgets.VBox([
            widgets.HBox([self.step_button, self.run_button, self.reset_button, self.status]),
            self.node_menu, self.view])
        self.refresh()

    def _on_step(self, _button=None) -> None:
        self.explorer.step()
        self.refresh()

    def _on_run_all(self, _button=None) -> None:
        self.explorer.run_all()
        self.refresh()

    def _on_reset(self, _button=None) -> None:
        self.explorer.reset()
        self.selected = 0
        self.refresh()

    def _on_node(self, change) -> None:
        if not self._updating and change.get("new") is not None:
            self.selected = int(change["new"])
            self.refresh()

    def refresh(self) -> None:
        """Re-read the explorer's tree and redraw everything."""
        snapshot = self.explorer.snapshot()
        shown = {n["id"] for n in snapshot["nodes"]}
        if self.selected not in shown:
            self.selected = 0
        self._updating = True
        try:
            self.node_menu.options = [(_node_option(snapshot, n), n["id"]) for n in snapshot["nodes"]]
            self.node_menu.value = self.selected
        finally:
            self._updating = False
        done = self.explorer.done
        self.step_button.disabled = self.run_button.disabled = done
        self.status.value = f"k = {self.explorer.k} of {self.explorer.num_simulations} simulations"
        self.view.value = _view_html(snapshot, self.explorer.game, self.selected)

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.container)
