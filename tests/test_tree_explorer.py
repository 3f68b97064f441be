"""The MCTS tree explorer: snapshots against the tree they read, stepping against search(),
the layout's geometry, the static page's frames against the live drawings, the live widget's
callbacks and its one output (widget + static page), boards."""
from __future__ import annotations

import re

import pytest
import torch

from course_lib.games import ConnectFour, TicTacToe
from course_lib.search import RecurrentOutput, RootOutput, puct_scores, rules_recurrent_fn, rules_root, search
from course_lib.viz import (TreeExplorer, board_svg, layout, read_page, render_panel, render_svg, static_html,
                            tree_snapshot)
from course_lib.viz.live import WIDGET_MIME
from test_search import hashed  # the deterministic stand-in network the search tests use
from test_viz_page import run_in_browser


def play(game, moves):
    state = game.initial(1)
    for move in moves:
        state, _, _ = game.step(state, torch.tensor([move]), check=True)
    return state


@pytest.fixture(scope="module")
def connect4_explorer():
    game = ConnectFour()
    explorer = TreeExplorer(game, hashed(game), play(game, [3, 3, 2]), num_simulations=40)
    explorer.run_all()
    return explorer


# ------------------------------------------------------------------------------ snapshot
def test_snapshot_matches_the_tree(connect4_explorer):
    explorer = connect4_explorer
    tree, snap = explorer.tree, explorer.snapshot()
    ids = [n["id"] for n in snap["nodes"]]
    # Only expanded nodes (visited, never the scratch slot), each once.
    visited = {i for i in range(tree.scratch) if tree.node_visits[0, i] > 0}
    assert set(ids) == visited and len(ids) == len(set(ids)) and tree.scratch not in ids
    assert snap["num_expanded"] == len(visited) and snap["num_hidden"] == 0 and snap["k"] == 40
    assert snap["path"] == [n for n in tree.last_path[0].tolist() if n != tree.scratch]
    for node in snap["nodes"]:
        i = node["id"]
        assert node["visits"] == tree.node_visits[0, i].item()
        assert node["value"] == pytest.approx((tree.value_sum[0, i] / tree.node_visits[0, i]).item())
        assert node["raw_value"] == pytest.approx(tree.raw_value[0, i].item())
        assert node["board"] == tree.embedding[0, i].tolist()
        prior, visits, q_edge = tree.children_prior[0, i], tree.children_visits[0, i], tree.children_q[0, i]
        # The PUCT the next simulation computes at this node (qtransform "none", unvisited Q = 0).
        q = torch.where(visits > 0, q_edge, 0.0)
        expected = puct_scores(prior[None], visits[None], q[None], tree.children_legal[0, i][None],
                               tree.node_visits[0, i:i + 1])[0]
        legal = [a for a in range(7) if tree.children_legal[0, i, a]] if not node["terminal"] else []
        assert [c["action"] for c in node["children"]] == legal
        for c in node["children"]:
            a = c["action"]
            assert c["visits"] == visits[a].item() and c["prior"] == pytest.approx(prior[a].item())
            assert c["puct"] == pytest.approx(expected[a].item())
            assert c["child"] == (tree.children_index[0, i, a].item() if tree.children_index[0, i, a] >= 0 else None)
            if c["visits"]:
                assert c["q"] == pytest.approx(q_edge[a].item())
        if node["children"]:
            assert node["next_action"] == int(expected.argmax())
    for edge in snap["edges"]:
        parent = next(n for n in snap["nodes"] if n["id"] == edge["parent"])
        row = next(c for c in parent["children"] if c["action"] == edge["action"])
        assert (row["child"], row["visits"], row["puct"]) == (edge["child"], edge["visits"], edge["puct"])
    assert len(snap["edges"]) == len(ids) - 1


def test_path_and_new_node_follow_each_step():
    game = TicTacToe()
    explorer = TreeExplorer(game, hashed(game), game.initial(1), num_simulations=12)
    snap = explorer.snapshot()
    assert snap["path"] == [0] and snap["new_node"] is None and [n["id"] for n in snap["nodes"]] == [0]
    for k in range(1, 13):
        explorer.step()
        snap = explorer.snapshot()
        assert snap["k"] == k and snap["path"][0] == 0 and snap["new_node"] == k == snap["path"][-1]
        assert all(explorer.tree.parent[0, b] == a for a, b in zip(snap["path"], snap["path"][1:]))


def test_a_path_ending_on_a_terminal_node_expands_nothing():
    game = TicTacToe()
    # X to move can win at once (cells 0, 1 taken by X): the search keeps coming back to the win.
    explorer = TreeExplorer(game, hashed(game), play(game, [0, 3, 1, 4]), num_simulations=30)
    explorer.run_all()
    snap = explorer.snapshot()
    win = next(n for n in snap["nodes"] if n["parent"] == 0 and n["action"] == 2)
    assert win["terminal"] and win["visits"] > 1 and win["children"] == []
    assert "X won" in render_panel(snap, win["id"], game)
    assert len(snap["nodes"]) < 31      # simulations that ended on the win left their slots unused
    ids = {n["id"] for n in snap["nodes"]}
    assert all(explorer.tree.node_visits[0, i] == 0 for i in range(31) if i not in ids)


def test_stepping_equals_search():
    game = ConnectFour()
    state = play(game, [3])
    explorer = TreeExplorer(game, hashed(game), state, num_simulations=25)
    for k in (1, 7, 25):
        explorer.step(k - explorer.k)
        root, legal = rules_root(game, hashed(game), state)
        reference = search(root, rules_recurrent_fn(game, hashed(game)), k, root_legal=legal)
        nodes = k + 1
        for name in ("node_visits", "value_sum", "raw_value", "children_index", "edge_stats", "terminal"):
            assert torch.equal(getattr(explorer.tree, name)[:, :nodes], getattr(reference, name)[:, :nodes]), name
        assert explorer.tree.last_path.tolist() == [[n if n != reference.scratch else explorer.tree.scratch
                                                     for n in reference.last_path[0].tolist()]]


def test_step_run_all_reset():
    game = TicTacToe()
    explorer = TreeExplorer(game, hashed(game), game.initial(1), num_simulations=10)
    assert explorer.step(3) == 3 and explorer.k == 3
    assert explorer.run_all() == 7 and explorer.done
    assert explorer.step() == 0 and explorer.k == 10
    final = explorer.snapshot()
    explorer.reset()
    assert explorer.k == 0 and [n["id"] for n in explorer.snapshot()["nodes"]] == [0]
    explorer.run_all()
    assert explorer.snapshot() == final    # the same search again


def test_top_k_and_max_depth_hide_nodes_but_never_the_path(connect4_explorer):
    explorer = connect4_explorer
    full = tree_snapshot(explorer.tree, explorer.game)
    for top_k, max_depth in ((1, None), (2, 1), (None, 1), (3, 2)):
        snap = tree_snapshot(explorer.tree, explorer.game, top_k=top_k, max_depth=max_depth)
        ids = {n["id"] for n in snap["nodes"]}
        path = set(snap["path"])
        assert path <= ids and snap["num_hidden"] == full["num_expanded"] - len(ids) > 0
        assert sum(n["hidden"] for n in snap["nodes"]) == snap["num_hidden"]
        for node in snap["nodes"]:
            shown = [c for c in node["children"] if c["child"] in ids]
            off_path = [c for c in shown if c["child"] not in path]
            if top_k is not None:
                assert len(off_path) <= top_k
            if max_depth is not None:
                assert all(node["depth"] < max_depth for _ in off_path)
        assert f"{snap['num_hidden']} hidden" in render_svg(snap)


# -------------------------------------------------------------------------------- layout
def test_layout_is_a_layered_tree_without_overlaps(connect4_explorer):
    snap = connect4_explorer.snapshot()
    pos = layout(snap)
    assert set(pos) == {n["id"] for n in snap["nodes"]} and pos[0][1] == 0 and min(x for x, _ in pos.values()) == 0
    by_depth: dict[int, list[float]] = {}
    for node in snap["nodes"]:
        x, depth = pos[node["id"]]
        assert depth == node["depth"]
        by_depth.setdefault(depth, []).append(x)
        kids = [pos[c["child"]][0] for c in node["children"] if c["child"] is not None]
        if kids:
            assert kids == sorted(kids) and x == pytest.approx((kids[0] + kids[-1]) / 2)
    for xs in by_depth.values():
        xs.sort()
        assert all(b - a >= 1 - 1e-9 for a, b in zip(xs, xs[1:]))


def test_render_svg_draws_each_shown_node_and_the_path(connect4_explorer):
    snap = connect4_explorer.snapshot()
    svg = render_svg(snap, selected=snap["path"][-1])
    assert svg.count("<svg") == svg.count("</svg>") == 1
    assert sorted(int(i) for i in re.findall(r"data-node='(\d+)'", svg)) == sorted(n["id"] for n in snap["nodes"])
    path_group = re.search(r"<g stroke='#e8710a'>(.*?)</g>", svg).group(1)
    assert path_group.count("<path") == len(snap["path"]) - 1
    assert svg.count("PUCT=") == len(snap["edges"]) and "visibility='visible'" in svg


# ---------------------------------------------------------------------------- static page
def test_static_page_frames_are_the_live_drawings():
    game = ConnectFour()
    explorer = TreeExplorer(game, hashed(game), game.initial(1), num_simulations=20)
    page = explorer.to_html(steps=[0, 3, 20])
    data = read_page(page)
    assert explorer.k == 0                          # the explorer's own tree is untouched
    (slider,) = data["sliders"]
    assert data["kind"] == "mcts-tree" and data["select"] == "0"
    assert slider.values == (0, 3, 20) and slider.start == 2 and slider.shown_texts[1] == "k = 3 of 20 simulations"
    snapshots = explorer.snapshots([0, 3, 20])
    for frame, snap, numbers in zip(data["frames"], snapshots, data["meta"]["snapshots"]):
        ids = [n["id"] for n in snap["nodes"]]
        assert numbers["k"] == snap["k"] and [row[0] for row in numbers["nodes"]] == ids
        assert len(numbers["edges"]) == len(snap["edges"]) == len(ids) - 1
        assert frame.views["tree"] == render_svg(snap)
        # One panel per node, clicked by the node's data-click, each exactly the live widget's panel.
        assert sorted(re.findall(r"data-click='(\d+)'", frame.views["tree"])) == sorted(map(str, ids))
        assert set(frame.on_click) == {str(i) for i in ids}
        for i in ids:
            assert frame.on_click[str(i)] == {"panel": render_panel(snap, i, game)}
        assert frame.views["panel"] == render_panel(snap, 0, game)
    assert page.count("<svg") == page.count("</svg>")  # the start drawing outside the JSON
    assert "data-explorer='mcts-tree'" in page and page.count("type='range'") == 1
    assert "<script src" not in page and "require(" not in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "") and "https://" not in page
    assert page.count("</script>") == 2              # the JSON cannot close its script element early
    first, second = (read_page(p)["id"] for p in (page, explorer.to_html([0, 1])))
    assert first.startswith("mctsx-") and first != second and f"getElementById(\"{first}\")" in page


def test_static_page_opens_scrolled_to_the_root_and_answers_in_a_browser(tmp_path):
    # 50 simulations of Connect Four draw a tree about 2,200 px wide in a box of 640 px here: the
    # page must open with the root centred in the box, not at the drawing's left edge.
    game = ConnectFour()
    page = TreeExplorer(game, hashed(game), game.initial(1), num_simulations=50).to_html()
    out = run_in_browser(page, r"""
      var root = document.querySelector('[data-explorer="mcts-tree"]'), box = root.querySelector('[data-view="tree"]');
      function rootX() { return parseFloat(/translate\(([-0-9.]+)/.exec(box.querySelector('[data-node="0"]')
                                                                        .getAttribute('transform'))[1]); }
      out.width = box.clientWidth; out.drawing = box.scrollWidth; out.centre = box.scrollLeft + box.clientWidth / 2;
      out.root = rootX();
      var panel = root.querySelector('[data-view="panel"]');
      click(box.querySelector('[data-click="3"]'));       // the view is redrawn: find the ring afterwards
      var ring = box.querySelector('[data-ring]');
      out.clicked = [panel.textContent.slice(0, 6), ring.getAttribute('visibility') === 'visible' &&
                     ring.getAttribute('transform') ===
                     box.querySelector('[data-node="3"]').getAttribute('transform'), root.getAttribute('data-state')];
      slide(root.querySelector('input[type=range]'), 5);
      out.moved = [root.getAttribute('data-state'), box.querySelectorAll('[data-node]').length];
    """, tmp_path)
    assert out["drawing"] > 2 * out["width"] and out["root"] > out["width"]     # the case of the issue
    assert abs(out["centre"] - out["root"]) <= 1
    assert out["clicked"] == ["node 3", True, "50|3"] and out["moved"] == ["5|3", 6]


def test_static_html_for_fifty_connect_four_simulations_is_small():
    game = ConnectFour()
    page = TreeExplorer(game, hashed(game), game.initial(1), num_simulations=50).to_html()
    assert len(read_page(page)["frames"]) == 51
    assert len(page.encode()) < 1_500_000


def test_static_html_rejects_bad_steps():
    game = TicTacToe()
    explorer = TreeExplorer(game, hashed(game), game.initial(1), num_simulations=5)
    for steps in ([6], [3, 1], [], [-1]):
        with pytest.raises(ValueError, match="steps"):
            explorer.to_html(steps)
    with pytest.raises(ValueError, match="at least one snapshot"):
        static_html([])


# ---------------------------------------------------------------------------- live widget
def test_widget_buttons_and_node_menu():
    pytest.importorskip("ipywidgets")
    game = TicTacToe()
    explorer = TreeExplorer(game, hashed(game), game.initial(1), num_simulations=6)
    view = explorer.widget()
    assert view is explorer.widget() and "k = 0 of 6" in view.status.value
    view.step_button.click()
    assert explorer.k == 1 and "k = 1 of 6" in view.status.value and len(view.node_menu.options) == 2
    view.node_menu.value = 1
    assert view.selected == 1 and "node 1 ·" in view.view.value
    view.run_button.click()
    assert explorer.done and view.step_button.disabled and view.run_button.disabled
    assert view.selected == 1 and view.node_menu.value == 1
    assert len(view.node_menu.options) == 7 and view.view.value.count("data-node=") == 7
    view.reset_button.click()
    assert explorer.k == 0 and view.selected == 0 and not view.step_button.disabled
    assert [value for _, value in view.node_menu.options] == [0]


def test_widget_displays_as_one_output_with_the_static_page():
    pytest.importorskip("ipywidgets")
    from IPython.core.formatters import DisplayFormatter

    game = TicTacToe()
    explorer = TreeExplorer(game, hashed(game), game.initial(1), num_simulations=6)
    data, _ = DisplayFormatter().format(explorer.widget())      # what display() sends: one bundle
    assert data[WIDGET_MIME]["model_id"] == explorer.widget().container.model_id
    page = read_page(data["text/html"])
    assert page["kind"] == "mcts-tree" and page["sliders"][0].values == tuple(range(7))
    assert "TreeExplorer(" in data["text/plain"]
    view = explorer.widget([0, 3, 6], title="three steps")      # the same widget, another static page
    assert view is explorer.widget([0, 3, 6], title="three steps")
    html = DisplayFormatter().format(view)[0]["text/html"]
    assert read_page(html)["sliders"][0].values == (0, 3, 6) and "three steps" in html


# ---------------------------------------------------------------------------------- boards
def test_board_svg_draws_every_stone_in_absolute_colours():
    ttt = TicTacToe()
    state = play(ttt, [4, 0, 8])                         # X: 4, 8; O: 0; O to move
    svg = board_svg(ttt, state, last_action=8)
    assert svg.count("class='stone X'") == 2 and svg.count("class='stone O'") == 1
    assert svg.count("<svg") == svg.count("</svg>") == 1
    c4 = ConnectFour()
    state = play(c4, [3, 3, 2, 4, 3])                   # red 3 stones, yellow 2; yellow to move
    svg = board_svg(c4, state[0], last_action=3)
    assert svg.count("class='stone red'") == 3 and svg.count("class='stone yellow'") == 2
    assert svg.count("<circle") == 42 + 1                # the holes, and the last move's dot
    assert board_svg(c4, c4.initial(1)).count("class='stone") == 0
    with pytest.raises(ValueError, match="42 cells"):
        board_svg(c4, torch.zeros(9))


# ----------------------------------------------------------------------------- latent model
def test_latent_model_without_a_game():
    A, D = 3, 4
    torch.manual_seed(0)
    weights = torch.randn(A, D, D) * 0.5

    def recurrent_fn(embedding, action):
        nxt = torch.tanh(torch.einsum("bd,bde->be", embedding, weights[action]))
        return RecurrentOutput(reward=nxt[:, 0], discount=torch.full((nxt.shape[0],), 0.97),
                               prior_logits=nxt[:, 1:1 + A], value=nxt[:, -1], embedding=nxt)
    root = RootOutput(torch.zeros(A), torch.zeros(()), torch.ones(D))   # the batch dimension may be left out
    explorer = TreeExplorer.from_model(root, recurrent_fn, num_simulations=15)
    explorer.run_all()
    snap = explorer.snapshot()
    assert len(snap["nodes"]) == 16 and all(n["board"] is None for n in snap["nodes"])
    assert snap["nodes"][3]["label"] == f"latent state #{snap['nodes'][3]['id']}"
    assert "latent state #0" in render_panel(snap, 0) and "<svg" not in render_panel(snap, 0)
    data = read_page(explorer.to_html([0, 5, 15]))
    assert len(data["frames"]) == 3 and "<svg" not in data["frames"][2].on_click["3"]["panel"]
    # min-max Q (MuZero's default here): the PUCT shown is the one the search uses.
    assert explorer.search_settings["qtransform"] == "minmax"
    tree = explorer.tree
    visits = tree.children_visits[0, 0]
    q = torch.where(visits > 0, (tree.children_q[0, 0] - tree.min_q[0]) / (tree.max_q[0] - tree.min_q[0]), 0.0)
    expected = puct_scores(tree.children_prior[0, :1], visits[None], q[None], tree.children_legal[0, :1],
                           tree.node_visits[0, :1])[0]
    assert [c["puct"] for c in snap["nodes"][0]["children"]] == pytest.approx(expected.tolist())


# ---------------------------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors():
    game = TicTacToe()
    evaluate = hashed(game)
    won = play(game, [0, 3, 1, 4, 2])                    # X has the top row
    with pytest.raises(ValueError, match="finished"):
        TreeExplorer(game, evaluate, won)
    drawn = play(game, [0, 1, 2, 4, 3, 5, 7, 6, 8])
    with pytest.raises(ValueError, match="finished"):
        TreeExplorer(game, evaluate, drawn)
    for n in (0, -3, 2.5):
        with pytest.raises(ValueError, match="num_simulations"):
            TreeExplorer(game, evaluate, game.initial(1), num_simulations=n)
    with pytest.raises(ValueError, match="root_state"):
        TreeExplorer(game, evaluate, game.initial(2))
    with pytest.raises(ValueError, match="state must have shape"):
        TreeExplorer(game, evaluate, torch.zeros(1, 42, dtype=torch.int8))
    with pytest.raises(ValueError, match="from_model"):
        TreeExplorer(None, evaluate, game.initial(1))
    with pytest.raises(ValueError, match="top_k"):
        TreeExplorer(game, evaluate, game.initial(1), top_k=0)
    with pytest.raises(ValueError, match="qtransform"):
        TreeExplorer(game, evaluate, game.initial(1), qtransform="max")
    with pytest.raises(ValueError, match="one tree"):
        TreeExplorer.from_model(RootOutput(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 4)), None)
    explorer = TreeExplorer(game, evaluate, game.initial(1), num_simulations=3)
    with pytest.raises(ValueError, match="game=None"):
        tree_snapshot(TreeExplorer.from_model(RootOutput(torch.zeros(1, 9), torch.zeros(1), torch.zeros(1, 4)),
                                              None, 2).tree, game)
    with pytest.raises(ValueError, match="not shown"):
        render_panel(explorer.snapshot(), 2, game)
