"""Batched MCTS: backup and PUCT against hand computations, the phases (select, expand, backup)
on hand-built trees, the batch against single searches, tic-tac-toe decisions against perfect
play, and the PUCT and Gumbel policies."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib.games import ConnectFour, TicTacToe
from course_lib.search import (Path, RecurrentOutput, RootOutput, Tree, backup, backup_values, considered_visits,
                               dirichlet_noise, expand, gumbel_noise, gumbel_policy, gumbel_readout, init_tree,
                               make_policy, puct_policy, puct_scores, root_value, rules_recurrent_fn, rules_root,
                               search, search_move, select, simulate, visit_policy)


def uniform(game):
    """A stand-in network: uniform prior, value 0 (search alone must find the moves)."""
    def evaluate(states):
        n = states.shape[0]
        return torch.zeros(n, game.num_actions), torch.zeros(n)
    return evaluate


def hashed(game):
    """A deterministic 'network' whose outputs depend only on each state (exactly, whatever the batch)."""
    weights = torch.arange(1, game.num_cells + 1, dtype=torch.float64)

    def evaluate(states):
        code = (states.double() * weights).sum(1)
        logits = torch.sin(code.unsqueeze(1) * torch.arange(1, game.num_actions + 1, dtype=torch.float64))
        return logits.float(), torch.cos(code).float() * 0.9
    return evaluate


def test_backup_values_matches_the_recursion():
    torch.manual_seed(0)
    B, D = 5, 6
    lengths = torch.tensor([0, 1, 3, 6, 4])
    rewards = torch.randn(B, D)
    discounts = torch.where(torch.rand(B, D) < 0.5, -1.0, 0.97)
    for b, n in enumerate(lengths.tolist()):      # past the leaf: r = 0, γ = 1
        rewards[b, n:] = 0
        discounts[b, n:] = 1
    leaf = torch.randn(B)
    g = backup_values(leaf, rewards, discounts)
    for b, n in enumerate(lengths.tolist()):
        expected = [0.0] * (n + 1)
        expected[n] = leaf[b].item()
        for k in range(n - 1, -1, -1):
            expected[k] = rewards[b, k].item() + discounts[b, k].item() * expected[k + 1]
        assert g[b, :n + 1].tolist() == pytest.approx(expected, abs=1e-5)


def test_backup_values_rejects_bad_shapes():
    with pytest.raises(ValueError, match="rewards and discounts"):
        backup_values(torch.zeros(2), torch.zeros(2, 3), torch.zeros(2, 4))


def test_puct_scores_by_hand():
    prior = torch.tensor([[0.5, 0.3, 0.2]])
    visits = torch.tensor([[3.0, 0.0, 1.0]])
    q = torch.tensor([[0.2, 0.0, -0.5]])
    legal = torch.tensor([[True, True, False]])
    n = torch.tensor([5.0])
    c = 1.25 + math.log((5 + 19652 + 1) / 19652)
    scores = puct_scores(prior, visits, q, legal, n)
    assert scores[0, 0].item() == pytest.approx(0.2 + c * 0.5 * math.sqrt(5) / 4)
    assert scores[0, 1].item() == pytest.approx(0.0 + c * 0.3 * math.sqrt(5) / 1)
    assert scores[0, 2].item() == -math.inf


def test_single_agent_search_finds_the_rewarding_action():
    B, A = 4, 5
    good = torch.tensor([0, 2, 4, 1])

    def step(embedding, action):
        reward = (action == good).float()
        return RecurrentOutput(reward, torch.full((B,), 0.9), torch.zeros(B, A), torch.zeros(B), embedding)
    tree = search(RootOutput(torch.zeros(B, A), torch.zeros(B), torch.zeros(B, 1)), step, 60,
                  qtransform="minmax")
    assert torch.equal(visit_policy(tree, 0).argmax(1), good)
    assert (root_value(tree) > 0.5).all()


def test_winning_move_has_q_one_and_the_root_value_follows():
    game = TicTacToe()
    # X (to move) has two in the top row: playing cell 2 wins.
    s = game.initial(1)
    for a in (0, 3, 1, 4):
        s, _, _ = game.step(s, torch.tensor([a]))
    root, legal = rules_root(game, uniform(game), s)
    tree = search(root, rules_recurrent_fn(game, uniform(game)), 200, root_legal=legal)
    q = tree.children_q[0, 0, 2].item()
    assert q == pytest.approx(1.0)
    assert visit_policy(tree, 0).argmax().item() == 2
    assert root_value(tree).item() > 0.8


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_illegal_moves_are_never_visited_and_terminal_nodes_never_expanded(selection):
    game = ConnectFour()
    s = game.initial(8)
    # Fill column 3 in all games, so it is illegal at the roots.
    for _ in range(6):
        s, _, _ = game.step(s, torch.full((8,), 3))
    root, legal = rules_root(game, uniform(game), s)
    assert not legal[:, 3].any()
    tree = search(root, rules_recurrent_fn(game, uniform(game)), 150, root_legal=legal, selection=selection,
                  gumbel=gumbel_noise((8, 7), generator=torch.Generator().manual_seed(0)))
    if selection == "gumbel":
        action, policy = gumbel_readout(tree)
        assert not (action == 3).any() and (policy[:, 3] == 0).all()
    assert (tree.children_visits[:, :-1][~tree.children_legal[:, :-1]] == 0).all()
    terminal = tree.terminal[:, :-1]
    assert (tree.children_index[:, :-1][terminal] == -1).all()


def test_batched_search_equals_one_tree_at_a_time():
    game = TicTacToe()
    gen = torch.Generator().manual_seed(3)
    B = 6
    states = game.initial(B)
    for _ in range(3):   # random openings of 3 moves
        legal = game.legal(states).float()
        states, _, _ = game.step(states, torch.multinomial(legal, 1, generator=gen).squeeze(1))
    evaluate = hashed(game)
    root, legal = rules_root(game, evaluate, states)
    noise = dirichlet_noise(legal, 0.5, generator=gen)
    batched = search(root, rules_recurrent_fn(game, evaluate), 40, root_legal=legal, root_noise=noise)
    for b in range(B):
        r1, l1 = rules_root(game, evaluate, states[b:b + 1])
        one = search(r1, rules_recurrent_fn(game, evaluate), 40, root_legal=l1, root_noise=noise[b:b + 1])
        # Every real node (the last slot is scratch space) is the same, bit for bit.
        assert torch.equal(one.edge_stats[0, :-1], batched.edge_stats[b, :-1])
        assert torch.equal(one.children_index[0, :-1], batched.children_index[b, :-1])
        assert torch.equal(one.value_sum[0, :-1], batched.value_sum[b, :-1])
        assert torch.equal(one.node_visits[0, :-1], batched.node_visits[b, :-1])


def _positions_with_a_best_move(game, perfect, count, seed):
    """Random reachable positions where perfect play separates the moves (not all equally good)."""
    gen = torch.Generator().manual_seed(seed)
    found = []
    while len(found) < count:
        s = game.initial(1)
        for _ in range(int(torch.randint(0, 7, (1,), generator=gen))):
            legal = game.legal(s).float()
            s, _, done = game.step(s, torch.multinomial(legal, 1, generator=gen).squeeze(1))
            if done.item():
                break
        else:
            values = perfect.action_values(s)[0]
            legal_values = values[values > -math.inf]
            if legal_values.max() > legal_values.min():
                found.append(s)
    return torch.cat(found)


def test_search_plays_minimax_optimal_moves_in_tictactoe():
    from course_lib.games import PerfectPlayer
    game = TicTacToe()
    perfect = PerfectPlayer(game)
    states = _positions_with_a_best_move(game, perfect, 40, seed=0)
    root, legal = rules_root(game, uniform(game), states)
    # With value 0 at every leaf only the game ends inform the search; 3,000 simulations
    # suffice here (1,000 leave 4 of 40 positions wrong: averaging converges to minimax slowly).
    tree = search(root, rules_recurrent_fn(game, uniform(game)), 3000, root_legal=legal)
    chosen = visit_policy(tree, 0).argmax(1)
    values = perfect.action_values(states)
    best = values.max(1).values
    picked = values.gather(1, chosen.unsqueeze(1)).squeeze(1)
    assert torch.equal(picked, best), f"{int((picked < best).sum())} of {len(states)} positions played sub-optimally"


def test_simulate_one_at_a_time_equals_search_and_records_the_path():
    game = TicTacToe()
    evaluate = hashed(game)
    root, legal = rules_root(game, evaluate, game.initial(2))
    whole = search(root, rules_recurrent_fn(game, evaluate), 12, root_legal=legal)
    tree = init_tree(root, 12, legal)
    for k in range(12):
        simulate(tree, rules_recurrent_fn(game, evaluate))
        path = tree.last_path[0]
        real = path[path != tree.scratch]
        assert real[0].item() == 0 and tree.num_simulations == k + 1
        # Each node on the path is the child of the one before it.
        assert torch.equal(tree.parent[0, real[1:]], real[:-1])
    assert torch.equal(tree.edge_stats[:, :-1], whole.edge_stats[:, :-1])
    with pytest.raises(ValueError, match="full"):
        simulate(tree, rules_recurrent_fn(game, evaluate))


def test_visit_policy_and_noise():
    game = ConnectFour()
    root, legal = rules_root(game, uniform(game), game.initial(3))
    tree = search(root, rules_recurrent_fn(game, uniform(game)), 30, root_legal=legal)
    visits = tree.children_visits[:, 0]
    assert visits.sum(1).tolist() == [30.0] * 3
    assert torch.allclose(visit_policy(tree, 1.0), visits / 30)
    assert torch.equal(visit_policy(tree, 0).argmax(1), visits.argmax(1))
    legal = torch.tensor([[True, False, True, True], [False, False, True, False]])
    eta = dirichlet_noise(legal, 0.3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(eta.sum(1), torch.ones(2)) and (eta[~legal] == 0).all()
    again = dirichlet_noise(legal, 0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(eta, again)


def test_searching_a_finished_game_is_an_error():
    root = RootOutput(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"roots \[1\] have no legal action"):
        search(root, None, 4, root_legal=torch.tensor([[True, False, False], [False, False, False]]))


def test_search_speed_command(tmp_path):
    import json
    import subprocess
    import sys
    out = tmp_path / "speed.json"
    proc = subprocess.run([sys.executable, "-m", "course_lib", "search-speed", "--simulations", "4", "--batches", "1,3",
                           "--evaluators", "trivial,mlp", "--repeats", "1", "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert [(r["evaluator"], r["batch"]) for r in rows] == [("trivial", 1), ("trivial", 3), ("mlp", 1), ("mlp", 3)]
    assert all(r["sims_per_second"] > 0 and 0 <= r["evaluator_share"] <= 1 for r in rows)
    bad = subprocess.run([sys.executable, "-m", "course_lib", "search-speed", "--evaluators", "magic"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "accepted: trivial, mlp, resnet" in bad.stderr


# ------------------------------------------------------------------------ Gumbel search
def test_considered_visits_schedule_is_sequential_halving():
    assert considered_visits(4, 10) == (0, 0, 0, 0, 1, 1, 2, 2, 3, 3)
    assert considered_visits(1, 5) == (0, 1, 2, 3, 4) and considered_visits(0, 3) == (0, 1, 2)
    for m in range(2, 17):
        for n in (1, 2, 7, 16, 32, 50, 200):
            schedule = considered_visits(m, n)
            assert len(schedule) == n and list(schedule) == sorted(schedule)
            # Replaying it with the moves ranked 0 (best) .. m-1: each simulation finds a move
            # with the visit count it asks for, and the best move ends with the most visits.
            visits = [0] * m
            for wanted in schedule:
                move = next(i for i in range(m) if visits[i] == wanted)
                visits[move] += 1
            assert visits[0] == max(visits) and sum(visits) == n


def test_gumbel_batched_search_equals_one_tree_at_a_time():
    game = TicTacToe()
    gen = torch.Generator().manual_seed(4)
    B = 5
    states = game.initial(B)
    for _ in range(2):
        legal = game.legal(states).float()
        states, _, _ = game.step(states, torch.multinomial(legal, 1, generator=gen).squeeze(1))
    evaluate = hashed(game)
    root, legal = rules_root(game, evaluate, states)
    g = gumbel_noise((B, game.num_actions), generator=gen)
    batched = search(root, rules_recurrent_fn(game, evaluate), 24, root_legal=legal, selection="gumbel", gumbel=g,
                     max_considered=4)
    action, policy = gumbel_readout(batched)
    for b in range(B):
        r1, l1 = rules_root(game, evaluate, states[b:b + 1])
        one = search(r1, rules_recurrent_fn(game, evaluate), 24, root_legal=l1, selection="gumbel", gumbel=g[b:b + 1],
                     max_considered=4)
        assert torch.equal(one.edge_stats[0, :-1], batched.edge_stats[b, :-1])
        assert torch.equal(one.children_index[0, :-1], batched.children_index[b, :-1])
        a1, p1 = gumbel_readout(one)
        assert a1.item() == action[b].item() and torch.equal(p1[0], policy[b])
    # Four moves considered: exactly four root moves were visited, the chosen one the most.
    root_visits = batched.children_visits[:, 0]
    assert ((root_visits > 0).sum(1) == 4).all()
    assert torch.equal(root_visits.gather(1, action.unsqueeze(1)).squeeze(1), root_visits.max(1).values)
    assert torch.allclose(policy.sum(1), torch.ones(B)) and (policy[~legal] == 0).all()


def test_gumbel_search_plays_minimax_optimal_moves_in_tictactoe():
    from course_lib.games import PerfectPlayer
    game = TicTacToe()
    perfect = PerfectPlayer(game)
    states = _positions_with_a_best_move(game, perfect, 40, seed=0)
    root, legal = rules_root(game, uniform(game), states)
    tree = search(root, rules_recurrent_fn(game, uniform(game)), 3000, root_legal=legal, selection="gumbel")
    chosen, policy = gumbel_readout(tree)
    values = perfect.action_values(states)
    best = values.max(1).values
    picked = values.gather(1, chosen.unsqueeze(1)).squeeze(1)
    assert torch.equal(picked, best), f"{int((picked < best).sum())} of {len(states)} positions played sub-optimally"
    # The improved policy puts most of its mass on optimal moves.
    assert (policy * (values == best.unsqueeze(1))).sum(1).min() > 0.5


def test_gumbel_improves_the_policy_with_few_simulations():
    """Two simulations see that cell 2 wins; the improved policy moves onto it, the visit counts cannot."""
    game = TicTacToe()
    s = game.initial(1)
    for a in (0, 3, 1, 4):          # X (to move) wins with cell 2; the prior prefers cell 8
        s, _, _ = game.step(s, torch.tensor([a]))
    logits = torch.zeros(1, 9)
    logits[0, 8] = 2.0

    def evaluate(states):
        return logits.expand(states.shape[0], 9), torch.zeros(states.shape[0])
    root, legal = rules_root(game, evaluate, s)
    g = torch.zeros(1, 9)
    g[0, 2] = 5.0                   # the noise puts cell 2 among the two considered moves
    tree = search(root, rules_recurrent_fn(game, evaluate), 2, root_legal=legal, selection="gumbel", gumbel=g,
                  max_considered=2)
    action, policy = gumbel_readout(tree)
    assert action.item() == 2
    prior = torch.softmax(logits.masked_fill(~legal, -math.inf), -1)
    assert policy[0, 2] > 0.9 > prior[0, 2]
    assert visit_policy(tree, 1.0)[0, 2] == pytest.approx(0.5)     # one visit each: no preference


def test_search_checks_its_options():
    game = ConnectFour()
    root, legal = rules_root(game, uniform(game), game.initial(2))
    with pytest.raises(ValueError, match="selection"):
        search(root, rules_recurrent_fn(game, uniform(game)), 4, root_legal=legal, selection="gumble")
    with pytest.raises(ValueError, match="max_considered"):
        search(root, rules_recurrent_fn(game, uniform(game)), 4, root_legal=legal, selection="gumbel",
               max_considered=0)


# ----------------------------------------------------------------- the phases, by hand
def _hand_built_trees() -> Tree:
    """Three trees with A = 3, after one simulation each: the root (node 0, visited twice,
    prior (0.5, 0.3, 0.2)) and node 1 behind root action 1 (visited once, prior (0.1, 0.1, 0.8)).
    Tree 0: Q(root, 1) = 0.4; tree 1: Q(root, 1) = 0.9; tree 2: as tree 1, node 1 terminal."""
    root = RootOutput(torch.tensor([[0.5, 0.3, 0.2]]).log().expand(3, 3), torch.zeros(3), torch.zeros(3, 1))
    tree = init_tree(root, num_simulations=4)
    tree.num_simulations = 1
    tree.children_index[:, 0, 1] = 1
    tree.parent[:, 1], tree.action[:, 1], tree.depth[:, 1] = 0, 1, 1
    tree.node_visits[:, 0], tree.node_visits[:, 1] = 2.0, 1.0
    tree.children_visits[:, 0, 1] = 1.0
    tree.children_q[:, 0, 1] = torch.tensor([0.4, 0.9, 0.9])
    tree.children_prior[:, 1] = torch.tensor([0.1, 0.1, 0.8])
    tree.edge_stats[:, 1, :, 3] = 1.0                               # every action legal at node 1
    tree.terminal[2, 1] = True
    return tree


def test_named_edge_arrays_are_views_of_the_tree():
    tree = _hand_built_trees()
    assert tree.children_prior[0, 0].tolist() == pytest.approx([0.5, 0.3, 0.2])
    assert tree.children_visits[:, 0].tolist() == [[0.0, 1.0, 0.0]] * 3
    assert tree.children_legal.dtype == torch.bool and tree.children_legal[:, :2].all()
    assert not tree.children_legal[:, 2:].any()                    # unexpanded nodes have no legal edges yet
    edges = tree.edges(torch.arange(3), torch.tensor([0, 1, 1]))
    assert edges.prior.shape == (3, 3) and edges.prior[1].tolist() == pytest.approx([0.1, 0.1, 0.8])
    assert edges.q[:, 1].tolist() == pytest.approx([0.4, 0.0, 0.0])


def test_select_follows_the_puct_argmax_by_hand():
    tree = _hand_built_trees()
    # At the root, N(s) = 2 and c = 1.25 + log((2 + 19652 + 1) / 19652):
    # tree 0: scores (0 + c 0.5 √2, 0.4 + c 0.3 √2 / 2, c 0.2 √2) = (0.884, 0.665, 0.354): action 0, unexpanded;
    # trees 1, 2: Q(root, 1) = 0.9 makes action 1 score 1.165 and the walk goes down to node 1.
    # There tree 1 takes the highest prior, action 2 (unexpanded); tree 2 stops: node 1 is terminal.
    c = 1.25 + math.log((2 + 19652 + 1) / 19652)
    assert 0.4 + c * 0.3 * math.sqrt(2) / 2 < c * 0.5 * math.sqrt(2) < 0.9 + c * 0.3 * math.sqrt(2) / 2
    path = select(tree)
    scratch = tree.scratch
    assert path.nodes.tolist() == [[0, 2, scratch], [0, 1, 2], [0, 1, scratch]]
    assert path.parent[:2].tolist() == [0, 1] and path.action[:2].tolist() == [0, 2]
    assert path.expand.tolist() == [True, True, False]
    assert path.leaf.tolist() == [2, 2, 1]
    assert tree.num_simulations == 1                                # select changes nothing
    # A large exploration constant turns tree 1 back to the root's unexpanded action 0.
    assert select(tree, c1=10.0).action[1].item() == 0
    # unvisited_q: a pessimistic value for unvisited edges keeps tree 0 on its visited action.
    assert select(tree, unvisited_q=-1.0).nodes[0, :2].tolist() == [0, 1]


def test_expand_writes_the_new_node_and_links_it():
    tree = _hand_built_trees()
    path = select(tree)
    calls = []

    def step(embedding, action):
        calls.append(action.clone())
        return RecurrentOutput(reward=torch.tensor([1.0, 2.0, 3.0]), discount=torch.full((3,), -1.0),
                               prior_logits=torch.tensor([[0.0, 0.0, 0.0]] * 3), value=torch.tensor([0.5, 0.6, 0.7]),
                               embedding=embedding + 1, terminal=torch.tensor([False, True, True]),
                               legal=torch.tensor([[True, True, False]] * 3))
    expand(tree, step, path)
    assert len(calls) == 1 and calls[0][:2].tolist() == [0, 2]      # one model call for all trees
    assert tree.num_simulations == 2
    assert tree.children_index[0, 0, 0] == 2 and tree.children_index[1, 1, 2] == 2
    assert (tree.children_index[2, :2] == torch.tensor([[-1, 1, -1], [-1, -1, -1]])).all()   # tree 2: unlinked
    assert tree.parent[:2, 2].tolist() == [0, 1] and tree.depth[:2, 2].tolist() == [1, 2]
    assert tree.reward[:, 2].tolist() == [1.0, 2.0, 3.0] and tree.discount[:, 2].tolist() == [-1.0] * 3
    # Tree 1's new node is terminal: value 0, not the model's 0.6. Tree 2 expanded nothing.
    assert tree.raw_value[:, 2].tolist() == pytest.approx([0.5, 0.0, 0.7])
    assert tree.terminal[:, 2].tolist() == [False, True, False]
    assert tree.children_prior[0, 2].tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert tree.children_legal[0, 2].tolist() == [True, True, False]


def test_backup_by_hand():
    """Tree 0, a single-agent path 0 -(a=1)-> 1 -(a=0)-> 2 with leaf value v = 4:
    G_2 = 4, G_1 = 2 + 0.5 · 4 = 4, G_0 = 1 + 0.5 · 4 = 3. Tree 1, a two-player path
    0 -(a=2)-> 1 into a won (terminal) position: G_1 = 0, G_0 = 1 + (-1) · 0 = 1."""
    root = RootOutput(torch.zeros(2, 3), torch.tensor([1.5, 0.0]), torch.zeros(2, 1))
    tree = init_tree(root, num_simulations=3)
    tree.num_simulations = 2
    tree.node_visits[:, 0] = 2.0
    tree.node_visits[0, 1], tree.value_sum[0, 1] = 1.0, 0.5                # tree 0: node 1 seen once before
    tree.reward[0, 1:3], tree.discount[0, 1:3] = torch.tensor([1.0, 2.0]), 0.5
    tree.action[0, 1:3] = torch.tensor([1, 0])
    tree.raw_value[0, 2] = 4.0
    tree.reward[1, 1], tree.discount[1, 1], tree.action[1, 1], tree.terminal[1, 1] = 1.0, -1.0, 2, True
    tree.min_q[0], tree.max_q[0] = 1.0, 1.0
    s = tree.scratch
    path = Path(nodes=torch.tensor([[0, 1, 2], [0, 1, s]]), parent=torch.tensor([1, 0]), action=torch.tensor([0, 0]),
                expand=torch.tensor([True, False]), leaf=torch.tensor([2, 1]))
    backup(tree, path)
    assert tree.node_visits[0, :3].tolist() == [3.0, 2.0, 1.0] and tree.node_visits[1, :2].tolist() == [3.0, 1.0]
    assert tree.value_sum[0, :3].tolist() == pytest.approx([1.5 + 3.0, 0.5 + 4.0, 4.0])
    assert tree.value_sum[1, :2].tolist() == pytest.approx([0.0 + 1.0, 0.0])
    # Edge statistics: N(s, a) = N(child), Q = r + γ W(child) / N(child).
    assert tree.children_visits[0, 0, 1].item() == 2.0 and tree.children_visits[0, 1, 0].item() == 1.0
    assert tree.children_q[0, 0, 1].item() == pytest.approx(1.0 + 0.5 * 4.5 / 2)
    assert tree.children_q[0, 1, 0].item() == pytest.approx(2.0 + 0.5 * 4.0)
    assert tree.children_visits[1, 0, 2].item() == 1.0 and tree.children_q[1, 0, 2].item() == pytest.approx(1.0)
    assert tree.min_q.tolist() == pytest.approx([1.0, 1.0]) and tree.max_q.tolist() == pytest.approx([4.0, 1.0])
    assert torch.equal(tree.last_path, path.nodes)
    assert tree.node_visits[:, s].tolist() == [0.0, 1.0]             # padding lands in the scratch node only


def test_phases_compose_to_simulate():
    game = ConnectFour()
    evaluate = hashed(game)
    root, legal = rules_root(game, evaluate, game.initial(3))
    for selection, kw in (("puct", {"qtransform": "minmax", "unvisited_q": -0.2}), ("gumbel", {})):
        gumbel = gumbel_noise((3, 7), generator=torch.Generator().manual_seed(1)) if selection == "gumbel" else None
        a = init_tree(root, 20, legal, gumbel=gumbel, max_considered=4 if selection == "gumbel" else 0)
        b = init_tree(root, 20, legal, gumbel=gumbel, max_considered=4 if selection == "gumbel" else 0)
        for _ in range(20):
            simulate(a, rules_recurrent_fn(game, evaluate), **kw)
            path = select(b, **kw)
            expand(b, rules_recurrent_fn(game, evaluate), path)
            backup(b, path)
        for name in ("node_visits", "value_sum", "raw_value", "children_index", "edge_stats", "min_q", "max_q",
                     "last_path", "parent", "embedding"):
            assert torch.equal(getattr(a, name), getattr(b, name)), (selection, name)


# --------------------------------------------------------------------------- policies
def test_puct_policy_returns_legal_moves_and_the_visit_distribution():
    game = ConnectFour()
    s = game.initial(6)
    for _ in range(6):
        s, _, _ = game.step(s, torch.full((6,), 3))               # column 3 full: illegal everywhere
    root, legal = rules_root(game, hashed(game), s)
    gen = torch.Generator().manual_seed(0)
    out = puct_policy(root, rules_recurrent_fn(game, hashed(game)), 24, root_legal=legal, dirichlet_alpha=0.5,
                      generator=gen)
    assert out.action.shape == (6,) and legal.gather(1, out.action.unsqueeze(1)).all()
    assert torch.allclose(out.policy_target.sum(1), torch.ones(6)) and (out.policy_target[~legal] == 0).all()
    assert torch.allclose(out.policy_target, out.tree.children_visits[:, 0] / 24)
    # The same generator seed gives the same noise, search and move.
    again = puct_policy(root, rules_recurrent_fn(game, hashed(game)), 24, root_legal=legal, dirichlet_alpha=0.5,
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.action, out.action) and torch.equal(again.tree.edge_stats, out.tree.edge_stats)
    # Temperature 0, or explore False: the most visited move, whatever the draw.
    greedy = puct_policy(root, rules_recurrent_fn(game, hashed(game)), 24, root_legal=legal, temperature=0)
    assert torch.equal(greedy.action, greedy.tree.children_visits[:, 0].argmax(1))
    for seed in range(3):
        mixed = puct_policy(root, rules_recurrent_fn(game, hashed(game)), 24, root_legal=legal, dirichlet_alpha=0.5,
                            explore=torch.tensor([False, True] * 3), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(mixed.action[0::2], mixed.tree.children_visits[0::2, 0].argmax(1))
    with pytest.raises(ValueError, match="temperature"):
        puct_policy(root, rules_recurrent_fn(game, hashed(game)), 4, root_legal=legal, temperature=-1.0)
    with pytest.raises(ValueError, match="explore"):
        puct_policy(root, rules_recurrent_fn(game, hashed(game)), 4, root_legal=legal, explore=torch.ones(2) > 0)


def test_puct_policy_draws_moves_from_the_tempered_visit_counts():
    """One position searched 4,000 times over: the moves' frequencies follow N^(1/τ)."""
    game = TicTacToe()
    n = 4000
    root, legal = rules_root(game, hashed(game), game.initial(n))
    for tau in (1.0, 0.5):
        out = puct_policy(root, rules_recurrent_fn(game, hashed(game)), 12, root_legal=legal, temperature=tau,
                          generator=torch.Generator().manual_seed(2))
        expected = visit_policy(out.tree, tau)[0]                    # every row's tree is the same
        assert torch.equal(visit_policy(out.tree, tau), expected.expand(n, 9))
        frequency = torch.bincount(out.action, minlength=9) / n
        assert torch.allclose(frequency, expected, atol=0.03), (tau, frequency, expected)


def test_gumbel_policy_returns_the_halving_survivor_and_the_improved_policy():
    game = TicTacToe()
    states = game.initial(5)
    root, legal = rules_root(game, hashed(game), states)
    out = gumbel_policy(root, rules_recurrent_fn(game, hashed(game)), 16, root_legal=legal, max_considered=4,
                        generator=torch.Generator().manual_seed(0))
    action, target = gumbel_readout(out.tree)
    assert torch.equal(out.action, action) and torch.equal(out.policy_target, target)
    assert legal.gather(1, out.action.unsqueeze(1)).all()
    assert torch.allclose(out.policy_target.sum(1), torch.ones(5)) and (out.policy_target[~legal] == 0).all()
    assert ((out.tree.children_visits[:, 0] > 0).sum(1) == 4).all()  # four root moves considered
    assert (out.tree.gumbel != 0).all()
    # gumbel_scale = 0: no noise, the deterministic search an evaluation plays.
    quiet = gumbel_policy(root, rules_recurrent_fn(game, hashed(game)), 16, root_legal=legal, max_considered=4,
                          gumbel_scale=0.0)
    plain = search(root, rules_recurrent_fn(game, hashed(game)), 16, root_legal=legal, selection="gumbel",
                   max_considered=4)
    assert torch.equal(quiet.tree.edge_stats, plain.edge_stats)
    assert torch.equal(quiet.action, search_move(plain))


def test_make_policy_binds_the_settings_of_either_selection():
    game = TicTacToe()
    root, legal = rules_root(game, hashed(game), game.initial(4))
    recurrent = rules_recurrent_fn(game, hashed(game))
    for selection in ("puct", "gumbel"):
        policy_fn = make_policy(selection, 10, c1=1.5, dirichlet_alpha=0.3, max_considered=3,
                                generator=torch.Generator().manual_seed(5))
        out = policy_fn(root, recurrent, legal, explore=torch.tensor([True, False, True, False]))
        direct = (puct_policy(root, recurrent, 10, root_legal=legal, c1=1.5, dirichlet_alpha=0.3,
                              explore=torch.tensor([True, False, True, False]),
                              generator=torch.Generator().manual_seed(5)) if selection == "puct" else
                  gumbel_policy(root, recurrent, 10, root_legal=legal, max_considered=3,
                                generator=torch.Generator().manual_seed(5)))
        assert torch.equal(out.action, direct.action) and torch.equal(out.policy_target, direct.policy_target)
        assert out.tree.max_considered == (3 if selection == "gumbel" else 0)
    with pytest.raises(ValueError, match="selection must be 'puct' or 'gumbel'"):
        make_policy("gumble", 10)
