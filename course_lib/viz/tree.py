r"""One Monte-Carlo search tree taken apart: its snapshot, its layout, its drawing and a node's panel.

The batched search of :mod:`course_lib.search.mcts` keeps B trees as arrays. To *see* what it
does, this module reads one of them into plain Python and draws it:

* :func:`tree_snapshot` reads tree ``b`` into a plain dict: its expanded nodes (N, W/N, the
  network's value, board or latent), every edge's N, Q, P and the PUCT score the next
  simulation would compute at its parent (with :func:`~course_lib.search.puct_scores`, the
  function the search itself calls), and the path of the latest simulation;
* :func:`layout` places the drawn nodes in layers, root at the top;
* :func:`render_svg` draws the tree, :func:`render_panel` one node (its board and the table of
  its children).

These are pure functions of the tree, tested without a browser; the explorer
(:mod:`course_lib.viz.tree_explorer`) puts them behind buttons (live) or a slider (static).

Conventions (those of the search): a node's value is for the player **to move** at that node;
``Q(s, a)`` is for the player to move at ``s``. Node ids are the tree's node indices (the root
is 0, the k-th simulation creates node k), so a node keeps its id as the tree grows.
"""
from __future__ import annotations

import html
import math

import torch

from ..search.mcts import Tree, _normalised_q, puct_scores
from .boards import MUTED, TEXT, board_svg, player_names

__all__ = ["BOARD_PLACEHOLDER", "PANEL_CSS", "PANEL_NOTE", "layout", "render_panel", "render_svg", "tree_snapshot"]

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
_FONT = "font-family='sans-serif'"


# ----------------------------------------------------------------------------- snapshot
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
    ``<g data-node=id data-click=id transform=translate(x y)>`` (``data-click``: the static
    page selects a node by it); the dashed ring around ``selected`` is the element
    ``data-ring`` (the static page moves it). Styles are presentation attributes, so the SVG
    stands alone.
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
        shapes.append(f"<g data-node='{node_id}' data-click='{node_id}' transform='translate({cx:.0f} {cy:.0f})'>"
                      f"<title>{tip}</title>{shape}</g>")
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


# --------------------------------------------------------------------------------- panel
BOARD_PLACEHOLDER = "<span data-board='1'></span>"
# The explorer's front-ends put this style block once on the page, and the panels in <div class='mctsx'>.
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
