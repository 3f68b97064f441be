r"""An explorer for one Monte-Carlo search tree: step through its simulations and look inside.

Built on :mod:`course_lib.viz.tree` (snapshot, layout, drawing of one tree), it has two
front-ends:

* **live** (:meth:`TreeExplorer.widget`, or ``display(explorer)``): ipywidgets buttons Step,
  Run all and Reset and a node menu; each click runs the search in the kernel and re-renders.
  Displayed as one output that also holds the static page
  (:class:`~course_lib.viz.live.LiveAndStatic`), which the book shows instead.
* **static** (:meth:`TreeExplorer.to_html`, :meth:`TreeExplorer.show_static`): for the book,
  where no kernel runs. The tree after each simulation ``k`` is rendered in advance into an
  :func:`~course_lib.viz.page.explorable_page` (``data-explorer="mcts-tree"``): a slider over
  ``k``, and a click on a node shows its panel. It opens scrolled so that the root is in the
  middle of the drawing's box.

Example (a notebook cell)::

    from course_lib.games import make_game
    from course_lib.viz import TreeExplorer
    game = make_game("tictactoe")
    evaluate = lambda states: (torch.zeros(len(states), game.num_actions), torch.zeros(len(states)))
    explorer = TreeExplorer(game, evaluate, game.initial(1), num_simulations=50)
    explorer.widget()            # live, with a kernel (and the static page for the book)
    explorer.show_static()       # the static page alone: a slider over k = 0 .. 50
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..search.mcts import (Evaluator, RecurrentFn, RootOutput, Tree, init_tree, rules_recurrent_fn, rules_root,
                           simulate)
from .boards import TEXT, board_svg
from .live import LiveAndStatic
from .page import Frame, Slider, explorable_page
from .tree import (BOARD_PLACEHOLDER, PANEL_CSS, PANEL_NOTE, _check_view, _node_option, render_panel, render_svg,
                   tree_snapshot)

__all__ = ["TreeExplorer", "TreeExplorerWidget", "static_html"]


# ----------------------------------------------------------------------------- the views
def _body_html(tree_svg: str, panel_html: str) -> str:
    """The tree beside a node's panel: the part both front-ends show alike (the static page passes
    its template placeholders ``$tree`` and ``$panel``)."""
    return (f"<div style='display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start'>"
            f"<div data-view='tree' style='flex:1 1 480px;min-width:0;overflow:auto;max-height:720px;"
            f"border:1px solid #dadce0'>{tree_svg}</div><div style='flex:0 1 330px'>"
            f"<div data-view='panel'>{panel_html}</div><div class='note'>{PANEL_NOTE}</div></div></div>")


def _view_html(snapshot: dict, game, selected: int) -> str:
    """The live view: the tree, with ``selected`` ringed, beside that node's panel."""
    body = _body_html(render_svg(snapshot, selected=selected), render_panel(snapshot, selected, game))
    return (f"<style>{PANEL_CSS}</style><div class='mctsx' style='font:12px/1.35 sans-serif;color:{TEXT};"
            f"margin:6px 0'>{body}</div>")


# --------------------------------------------------------------------------- static page
# Called by the page after every render: ring the selected node, and keep the root in view. A
# wide tree (1,700-3,200 px for 50 simulations of Connect Four) has its root far to the right
# of the box's left edge, so the page opens with the root centred in the box; afterwards the
# root stays where the reader scrolled it while the drawing grows or shrinks with k.
_ON_SHOW = r"""(function () {
  var rootX = null;
  return function (page, state) {
    var box = page.querySelector('[data-view="tree"]');
    var ring = box.querySelector('[data-ring]'), chosen = box.querySelector('[data-selected]');
    if (ring) {
      if (chosen) ring.setAttribute('transform', chosen.getAttribute('transform'));
      ring.setAttribute('visibility', chosen ? 'visible' : 'hidden');
    }
    var node = box.querySelector('[data-node="0"]');
    var found = node && /translate\(\s*([-0-9.]+)/.exec(node.getAttribute('transform'));
    if (!found || box.clientWidth === 0) return;   // not laid out yet (a hidden cell): centre later
    var x = parseFloat(found[1]);
    if (rootX === null) box.scrollLeft = x - box.clientWidth / 2;
    else box.scrollLeft += x - rootX;
    rootX = x;
  };
})()"""


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def static_html(snapshots: Sequence[dict], game=None, *, start: int = -1, title: str | None = None) -> str:
    """One self-contained HTML string stepping through ``snapshots`` (from :func:`~course_lib.viz.tree_snapshot`).

    The trees are drawn here, in Python, by :func:`~course_lib.viz.render_svg` and
    :func:`~course_lib.viz.render_panel` (the same drawings the live widget shows) and put in an
    :func:`~course_lib.viz.page.explorable_page` of kind ``mcts-tree``: a slider and
    first/prev/next/last buttons over the snapshots; a click on a node (``data-click`` = its id)
    rings it and shows its panel, a second click goes back to the root's. Every distinct panel
    part and board is stored once, which keeps 50 simulations of Connect Four well under a
    megabyte. The page's ``meta`` holds each snapshot's numbers (``nodes`` and ``edges`` as rows
    of ``node_fields`` and ``edge_fields``). Element ids are unique per call, so several explorers
    can share a page; without JavaScript the snapshot ``start`` is still shown.

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
    boards: dict[int, str] = {}
    frames, numbers = [], []
    for snap in snapshots:
        panels = {}
        for n in snap["nodes"]:
            if game is not None and n["board"] is not None and n["id"] not in boards:
                boards[n["id"]] = board_svg(game, n["board"], last_action=n["action"])
            before, after = render_panel(snap, n["id"], game, board=False).split(BOARD_PLACEHOLDER)
            panels[str(n["id"])] = {"panel": [before, boards.get(n["id"], ""), after]}
        frames.append(Frame({"tree": render_svg(snap), "panel": panels["0"]["panel"]}, panels))
        numbers.append({
            "k": snap["k"], "path": snap["path"], "new_node": snap["new_node"],
            "nodes": [[n["id"], n["parent"], n["action"], n["visits"], _r(n["value"]), _r(n["raw_value"]),
                       int(n["terminal"])] for n in snap["nodes"]],
            "edges": [[e["parent"], e["child"], e["action"], e["visits"], _r(e["q"]), _r(e["prior"]), _r(e["puct"])]
                      for e in snap["edges"]]})
    total = snapshots[0]["num_simulations"]
    slider = Slider("k", [s["k"] for s in snapshots], label="k",
                    texts=[f"k = {s['k']} of {total} simulations" for s in snapshots], start=start)
    return explorable_page(
        frames, [slider], kind="mcts-tree",
        body=_body_html("$tree", "$panel"), title=title, hint="click a node to see it (click it again: the root)",
        select="0", on_show=_ON_SHOW, css=PANEL_CSS, css_class="mctsx", id_prefix="mctsx",
        meta={"num_simulations": total,
              "node_fields": ["id", "parent", "action", "N", "W/N", "network value", "terminal"],
              "edge_fields": ["parent", "child", "action", "N", "Q", "P", "PUCT"], "snapshots": numbers})


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

    def widget(self, steps: Sequence[int] | None = None, *, title: str | None = None) -> "TreeExplorerWidget":
        """The live explorer (ipywidgets): Step, Run all, Reset, a node menu, the tree and the node's panel.

        Displayed, it is one output holding the widget and the static page ``to_html(steps, title=title)``,
        which the book shows in its place. The widget is made once; a later call changes only what its
        static page shows.
        """
        if self._widget is None:
            self._widget = TreeExplorerWidget(self)
        self._widget.static_options(steps, title=title)
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
        self._static: str | None = None
        self._static_options: tuple = (None, None)
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

    def static_options(self, steps: Sequence[int] | None = None, *, title: str | None = None) -> None:
        """What the static page shows: the snapshots after ``steps`` simulations (default all), and a title."""
        options = (None if steps is None else [int(k) for k in steps], title)
        if options != self._static_options:
            self._static_options, self._static = options, None

    def static_page(self) -> str:
        """The static page shown with the widget (:meth:`TreeExplorer.to_html` of a fresh search), made once."""
        if self._static is None:
            steps, title = self._static_options
            self._static = self.explorer.to_html(steps, title=title)
        return self._static

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        # One output: the live widget for a kernel, the static page for the book (see LiveAndStatic).
        return LiveAndStatic(self.container, self.static_page(), text=repr(self.explorer))._repr_mimebundle_()