"""Board games and reference players: hand-built positions, plain-Python references, matches."""
from __future__ import annotations

import math
import random

import pytest
import torch

from course_lib.games import (AlphaBetaPlayer, BoardGame, ConnectFour, OneStepLookaheadPlayer, PerfectPlayer,
                              RandomPlayer, TicTacToe, evaluate_players, make_game, permute, permute_moves,
                              play_match, solve_tictactoe)

TTT = TicTacToe()
C4 = ConnectFour()


# ----------------------------------------------------------------- plain-Python references
def board(*rows: str) -> torch.Tensor:
    """One canonical state ``[1, cells]`` from text rows: X = player to move (+1), O = opponent (-1)."""
    value = {".": 0, "X": 1, "O": -1}
    return torch.tensor([[value[ch] for row in rows for ch in row.replace(" ", "")]], dtype=torch.int8)


def ref_has_line(cells: list[int], rows: int, cols: int, k: int, player: int) -> bool:
    """``player`` has ``k`` in a row: walk every cell in every direction, nothing precomputed."""
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                run = 0
                for i in range(k):
                    rr, cc = r + i * dr, c + i * dc
                    if not (0 <= rr < rows and 0 <= cc < cols) or cells[rr * cols + cc] != player:
                        break
                    run += 1
                if run == k:
                    return True
    return False


def ref_step(game: BoardGame, cells: list[int], action: int) -> tuple[list[int], float, bool]:
    """``step`` for one state, in lists: place (or drop) a +1 stone, check lines, negate."""
    after = list(cells)
    if game.gravity:
        cell = max(r * game.cols + action for r in range(game.rows) if after[r * game.cols + action] == 0)
    else:
        cell = action
    after[cell] = 1
    won = ref_has_line(after, game.rows, game.cols, game.win_length, 1)
    done = won or all(x != 0 for x in after)
    return [-x for x in after], float(won), done


def ref_legal(game: BoardGame, cells: list[int]) -> list[bool]:
    return [cells[a] == 0 for a in range(game.num_actions)]  # a cell, or a column's top cell


def random_positions(game: BoardGame, count: int, seed: int, max_moves: int) -> list[list[int]]:
    """Unfinished positions after 0..max_moves random moves, played with the reference step."""
    rng = random.Random(seed)
    positions = []
    while len(positions) < count:
        cells, done = [0] * game.num_cells, False
        for _ in range(rng.randint(0, max_moves)):
            action = rng.choice([a for a, ok in enumerate(ref_legal(game, cells)) if ok])
            cells, _, done = ref_step(game, cells, action)
            if done:
                break
        if not done:
            positions.append(cells)
    return positions


def ref_heuristic(cells: list[int], game: BoardGame) -> float:
    """AlphaBetaPlayer's leaf value, window by window."""
    rows, cols, k = game.rows, game.cols, game.win_length
    score = 0.0
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                window = [(r + i * dr, c + i * dc) for i in range(k)]
                if not all(0 <= rr < rows and 0 <= cc < cols for rr, cc in window):
                    continue
                stones = [cells[rr * cols + cc] for rr, cc in window]
                own, opp = stones.count(1), stones.count(-1)
                for n, weight in ((k - 1, AlphaBetaPlayer.THREE), (k - 2, AlphaBetaPlayer.TWO)):
                    if own == n and opp == 0:
                        score += weight
                    if opp == n and own == 0:
                        score -= weight
    centre = cols // 2
    score += AlphaBetaPlayer.CENTRE * sum(cells[r * cols + centre] for r in range(rows))
    return score


def ref_alphabeta(game: BoardGame, cells: list[int], depth: int, ply: int, alpha: float, beta: float) -> float:
    """Textbook negamax alpha-beta (with pruning) with the same scores as AlphaBetaPlayer."""
    best = -math.inf
    for action in range(game.num_actions):
        if not ref_legal(game, cells)[action]:
            continue
        child, won, done = ref_step(game, cells, action)
        if won:
            q = AlphaBetaPlayer.WIN_SCORE - ply
        elif done:
            q = 0.0
        elif depth == 1:
            q = -ref_heuristic(child, game)
        else:
            q = -ref_alphabeta(game, child, depth - 1, ply + 1, -beta, -alpha)
        best = max(best, q)
        alpha = max(alpha, q)
        if alpha >= beta:
            break
    return best


# ----------------------------------------------------------------- interface
def test_make_game_and_attributes():
    assert isinstance(make_game("tictactoe"), TicTacToe) and isinstance(make_game("connect4"), ConnectFour)
    with pytest.raises(ValueError, match="'tictactoe', 'connect4'"):
        make_game("chess")
    assert (TTT.num_actions, TTT.num_cells, TTT.obs_shape, TTT.lines.shape) == (9, 9, (2, 3, 3), (8, 3))
    assert (C4.num_actions, C4.num_cells, C4.obs_shape, C4.lines.shape) == (7, 42, (2, 6, 7), (69, 4))
    s = C4.initial(5)
    assert s.shape == (5, 42) and s.dtype == torch.int8 and not s.any()
    assert C4.legal(s).all() and C4.legal(s).shape == (5, 7)


def test_tictactoe_lines_are_the_eight_by_hand():
    by_hand = {(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)}
    assert {tuple(sorted(line)) for line in TTT.lines.tolist()} == by_hand


# ----------------------------------------------------------------- win detection
@pytest.mark.parametrize("line", [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8),
                                  (0, 4, 8), (2, 4, 6)])
def test_tictactoe_completing_any_line_wins(line):
    # X holds two cells of the line, O two cells off it; X completes each of the three ways, in one batch.
    states, actions = [], []
    others = [c for c in range(9) if c not in line]
    for missing in line:
        cells = [0] * 9
        for c in line:
            cells[c] = 1 if c != missing else 0
        cells[others[0]] = cells[others[1]] = -1
        states.append(cells)
        actions.append(missing)
    state = torch.tensor(states, dtype=torch.int8)
    assert TTT.outcome(state).eq(0).all()
    nxt, reward, done = TTT.step(state, torch.tensor(actions), check=True)
    assert reward.tolist() == [1.0, 1.0, 1.0] and done.all()
    assert TTT.outcome(nxt).tolist() == [-1.0] * 3  # the next player to move has lost
    assert TTT.outcome(-nxt).tolist() == [1.0] * 3


def test_tictactoe_draw_on_full_board():
    moves = [0, 1, 2, 4, 3, 5, 7, 6, 8]  # ends X O X / X O O / O X X: no line
    state = TTT.initial(1)
    for i, move in enumerate(moves):
        state, reward, done = TTT.step(state, torch.tensor([move]), check=True)
        assert reward.item() == 0.0 and done.item() == (i == len(moves) - 1)
    assert TTT.is_full(state).item() and TTT.outcome(state).item() == 0.0
    assert TTT.legal(state).sum().item() == 0


CONNECT4_WINS = {
    "horizontal": (("......." , "......." , "......." , "......." , "OOO....", "XXX...."), 3),
    "vertical": (("......." , "......." , "......." , "X......", "X.O....", "X.O.O.."), 0),
    "diagonal down-right": (("......." , "......." , "X......", "OX.....", "OOX....", "OOO...."), 3),
    "diagonal down-left": (("......." , "......." , "...X...", "..XO...", ".XOO...", ".OOO..."), 0),
}


@pytest.mark.parametrize("name", list(CONNECT4_WINS))
def test_connect4_four_in_a_row_wins(name):
    rows, action = CONNECT4_WINS[name]
    state = board(*rows)
    nxt, reward, done = C4.step(state, torch.tensor([action]), check=True)
    assert reward.item() == 1.0 and done.item()
    assert C4.outcome(nxt).item() == -1.0
    ref_next, ref_reward, ref_done = ref_step(C4, state[0].tolist(), action)
    assert nxt[0].tolist() == ref_next and (ref_reward, ref_done) == (1.0, True)


def test_connect4_near_misses_are_not_wins():
    cases = [
        (("......." , "......." , "......." , "......." , "......." , "XX.O..."), 2),  # three in a row
        (("......." , "......." , "......." , "......." , "OOO....", "XX.X..."), 4),  # XX.XX: four with a gap
        # Flat indices 33, 34, 35, 36 in a row-major line, but wrapping from row 4 to row 5.
        (("......." , "......." , "......." , "......." , ".....XX", "X....OO"), 1),
        (("......." , "......." , "......." , "X......", "O......", "X......"), 0),  # XXOX down column 0
    ]
    for rows, action in cases:
        state = board(*rows)
        _, reward, done = C4.step(state, torch.tensor([action]), check=True)
        assert reward.item() == 0.0 and not done.item(), rows
        assert not ref_step(C4, state[0].tolist(), action)[1]


def test_connect4_draw_on_full_board():
    # Colour ((c // 2) + r) % 2 has no run longer than 2 in any direction.
    cells = [1 if ((c // 2) + r) % 2 == 0 else -1 for r in range(6) for c in range(7)]
    assert not ref_has_line(cells, 6, 7, 4, 1) and not ref_has_line(cells, 6, 7, 4, -1)
    mover = cells[0]
    cells = [x * mover for x in cells]  # canonical: the colour of the missing top-left stone moves
    cells[0] = 0
    state = torch.tensor([cells], dtype=torch.int8)
    assert C4.legal(state)[0].tolist() == [True] + [False] * 6 and not C4.is_full(state).item()
    nxt, reward, done = C4.step(state, torch.tensor([0]), check=True)
    assert reward.item() == 0.0 and done.item() and C4.is_full(nxt).item() and C4.outcome(nxt).item() == 0.0


# ----------------------------------------------------------------- dynamics
def test_connect4_stones_stack_from_the_bottom_and_full_column_is_illegal():
    state = C4.initial(1)
    for i in range(6):
        state, _, done = C4.step(state, torch.tensor([3]), check=True)
        assert not done.item()
        column = state[0].view(6, 7)[:, 3].tolist()
        # Rows 5, 4, ... hold alternating colours; the stone just played is the opponent's now (-1).
        expected = [0] * (5 - i) + [(-1) ** (j + 1) for j in range(i + 1)]
        assert column == expected
    assert C4.legal(state)[0].tolist() == [True, True, True, False, True, True, True]
    with pytest.raises(ValueError, match=r"full columns.*\[0\]"):
        C4.step(state, torch.tensor([3]), check=True)


def test_step_flips_to_the_next_players_view():
    state = board("XX.", "OO.", "...")
    nxt, reward, done = TTT.step(state, torch.tensor([8]))  # X misses the win at 2
    assert nxt.tolist() == [[-1, -1, 0, 1, 1, 0, 0, 0, -1]] and nxt.dtype == torch.int8
    assert reward.dtype == torch.float32 and done.dtype == torch.bool
    assert reward.item() == 0.0 and not done.item()
    # O, now the player to move (+1), completes its row: the reward is the mover's, +1.
    last, reward, done = TTT.step(nxt, torch.tensor([5]))
    assert reward.item() == 1.0 and done.item()
    assert TTT.outcome(last).item() == -1.0  # X, to move, has lost


@pytest.mark.parametrize("game", [TTT, C4], ids=["tictactoe", "connect4"])
def test_batch_step_equals_per_state_reference(game):
    positions = random_positions(game, 64, seed=1, max_moves=game.num_cells - 1)
    rng = random.Random(2)
    actions = [rng.choice([a for a, ok in enumerate(ref_legal(game, p)) if ok]) for p in positions]
    state, action = torch.tensor(positions, dtype=torch.int8), torch.tensor(actions)
    assert game.legal(state).tolist() == [ref_legal(game, p) for p in positions]
    nxt, reward, done = game.step(state, action, check=True)
    for b in range(len(positions)):
        ref_next, ref_reward, ref_done = ref_step(game, positions[b], actions[b])
        one = game.step(state[b:b + 1], action[b:b + 1])
        assert nxt[b].tolist() == ref_next == one[0][0].tolist()
        assert reward[b].item() == ref_reward == one[1].item() and done[b].item() == ref_done == one[2].item()
        ref_outcome = (float(ref_has_line(ref_next, game.rows, game.cols, game.win_length, 1))
                       - float(ref_has_line(ref_next, game.rows, game.cols, game.win_length, -1)))
        assert game.outcome(nxt[b:b + 1]).item() == ref_outcome


def test_check_true_names_the_offending_batch_indices():
    state = torch.cat([board("X..", "...", "..."), TTT.initial(2)])
    with pytest.raises(ValueError, match=r"occupied cells\) at batch indices \[0\]"):
        TTT.step(state, torch.tensor([0, 0, 1]), check=True)
    with pytest.raises(ValueError, match=r"out of range \[0, 9\) at batch indices \[1, 2\]"):
        TTT.step(state, torch.tensor([1, 9, -1]), check=True)
    with pytest.raises(ValueError, match="integer"):
        TTT.step(state, torch.tensor([1.0, 2.0, 3.0]), check=True)
    with pytest.raises(ValueError, match=r"\[B\] = \[3\]"):
        TTT.step(state, torch.tensor([1, 2]), check=True)
    with pytest.raises(ValueError, match=r"shape \[B, 42\]"):
        C4.step(state, torch.tensor([1, 2, 3]), check=True)
    # Legal actions pass, and check=False never raises on them.
    TTT.step(state, torch.tensor([1, 0, 8]), check=True)


def test_observation_to_move_and_render():
    state = TTT.initial(1)
    for move in (4, 0, 8):  # X centre, O corner, X corner: O to move
        state, _, _ = TTT.step(state, torch.tensor([move]))
    assert TTT.to_move(state).tolist() == [1]
    obs = TTT.observation(state)
    assert obs.shape == (1, 2, 3, 3) and obs.dtype == torch.float32
    assert obs[0, 0].flatten().tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]  # O's own stone
    assert obs[0, 1].flatten().tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert TTT.render(state[0]) == "O . .\n. X .\n. . X"

    state = C4.initial(1)
    for move in (3, 3, 4):
        state, _, _ = C4.step(state, torch.tensor([move]))
    assert C4.to_move(state).item() == 1
    lines = C4.render(state).splitlines()
    assert lines[-1] == "0 1 2 3 4 5 6" and lines[-2] == ". . . X X . ." and lines[-3] == ". . . O . . ."
    with pytest.raises(ValueError, match=r"shape \[42\]"):
        C4.render(C4.initial(2))


# ----------------------------------------------------------------- perfect tic-tac-toe
def test_tictactoe_solution_counts_and_values():
    solution = solve_tictactoe()
    assert int(solution.reachable.sum()) == 5478
    assert solution.value[0].item() == 0.0  # the empty board is a draw
    assert solution.action_values[0].tolist() == [0.0] * 9  # and so is every opening move
    reachable = solution.reachable
    assert not solution.value[reachable].isnan().any() and solution.value[~reachable].isnan().all()
    playable = reachable & solution.action_values.isfinite().any(-1)
    assert torch.equal(solution.action_values[playable].amax(-1), solution.value[playable])

    player = PerfectPlayer(TTT)
    after_corner = board("O..", "...", "...")  # the opponent took a corner: only the centre holds the draw
    q = player.action_values(after_corner)[0]
    assert q[4].item() == 0.0 and all(q[c].item() == -1.0 for c in (1, 2, 3, 5, 6, 7, 8))
    assert q[0].item() == -math.inf and player.value(after_corner).item() == 0.0
    # X to move with a win: the win is +1; O to move facing X's open two: blocking draws.
    assert player.value(board("XX.", "OO.", "...")).item() == 1.0


def test_perfect_player_plays_optimal_moves_uniformly():
    player = PerfectPlayer(TTT, seed=3)
    empty = TTT.initial(900)
    counts = torch.bincount(player(empty), minlength=9)
    assert (counts > 50).all()  # all nine openings are optimal (draws) and all get played
    assert player(board("O..", "...", "...").expand(50, -1)).eq(4).all()


def test_perfect_player_never_loses_and_draws_itself():
    perfect, rand = PerfectPlayer(TTT, seed=1), RandomPlayer(TTT, seed=2)
    result = evaluate_players(TTT, perfect, rand, games_per_side=200)
    assert result["as_first"]["losses"] == 0 and result["as_second"]["losses"] == 0
    assert result["as_first"]["wins"] > 150  # random play loses most games to perfect play
    assert play_match(TTT, perfect, PerfectPlayer(TTT, seed=4), games=200) == {
        "first_wins": 0, "draws": 200, "second_wins": 0}


def test_perfect_player_rejects_other_games():
    with pytest.raises(TypeError, match="tic-tac-toe"):
        PerfectPlayer(C4)


# ----------------------------------------------------------------- one-step lookahead
def test_one_step_lookahead_wins_then_blocks():
    player = OneStepLookaheadPlayer(TTT, seed=0)
    win_and_block = board("XX.", "OO.", "...").expand(40, -1)  # winning at 2 beats blocking at 5
    assert player(win_and_block).eq(2).all()
    block = board("X..", "OO.", "..X").expand(40, -1)
    assert player(block).eq(5).all()

    player = OneStepLookaheadPlayer(C4, seed=0)
    win = board("......." , "......." , "......." , "......O", "......O", "XXX...O").expand(40, -1)
    assert player(win).eq(3).all()
    block = board("......." , "......." , "......." , "......O", "X.....O", "X.X...O").expand(40, -1)
    assert player(block).eq(6).all()
    # Nothing to win or block: random legal moves, never the full column.
    full_column = board("O......", "X......", "O......", "X......", "O......", "X......")
    moves = player(full_column.expand(200, -1))
    assert not moves.eq(0).any() and len(moves.unique()) == 6


# ----------------------------------------------------------------- alpha-beta
def test_alphabeta_finds_a_double_threat_and_takes_immediate_wins():
    player = AlphaBetaPlayer(C4, depth=4, seed=0)
    # X X on the bottom row, open on both sides: dropping in column 1 or 4 makes an open
    # three, two threats, and O can block only one: a win on X's second move (ply 3).
    state = board("......." , "......." , "......." , "......." , "......O", "..XX..O")
    q = player.action_scores(state)[0]
    win_in_two = AlphaBetaPlayer.WIN_SCORE - 3
    assert q[1].item() == win_in_two and q[4].item() == win_in_two
    assert all(q[a].item() < 1000 for a in (0, 2, 3, 5, 6))
    assert set(player(state.expand(40, -1)).tolist()) == {1, 4}
    # With a win on the spot (column 6) it takes it rather than a double threat.
    state = board("......." , "......." , "......." , "......X", "O.....X", "O.XX..X")
    q = player.action_scores(state)[0]
    assert q[6].item() == AlphaBetaPlayer.WIN_SCORE - 1 and q.argmax().item() == 6
    assert q[4].item() == win_in_two
    assert player(state.expand(20, -1)).eq(6).all()


def test_alphabeta_avoids_a_move_that_loses_at_once():
    # O needs the cell above the bottom of column 3: dropping there first hands it over.
    state = board("......." , "......." , "......." , "......." , "OOO....", "XOX..XX")
    for depth in (2, 4):
        player = AlphaBetaPlayer(C4, depth=depth, seed=0)
        q = player.action_scores(state)[0]
        assert q[3].item() == -(AlphaBetaPlayer.WIN_SCORE - 2)
        assert not player(state.expand(50, -1)).eq(3).any()


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_alphabeta_scores_equal_python_alphabeta(depth):
    player = AlphaBetaPlayer(C4, depth=depth)
    positions = random_positions(C4, 4, seed=depth, max_moves=30)
    scores = player.action_scores(torch.tensor(positions, dtype=torch.int8))
    for cells, q in zip(positions, scores.tolist()):
        for action in range(7):
            if not ref_legal(C4, cells)[action]:
                assert q[action] == -math.inf
                continue
            child, won, done = ref_step(C4, cells, action)
            if won:
                expected = AlphaBetaPlayer.WIN_SCORE - 1
            elif done:
                expected = 0.0
            elif depth == 1:
                expected = -ref_heuristic(child, C4)
            else:
                expected = -ref_alphabeta(C4, child, depth - 1, 2, -math.inf, math.inf)
            assert q[action] == expected
        assert max(q) == ref_alphabeta(C4, cells, depth, 1, -math.inf, math.inf)
    assert torch.equal(player.heuristic(torch.tensor(positions, dtype=torch.int8)),
                       torch.tensor([ref_heuristic(p, C4) for p in positions]))


def test_alphabeta_beats_random():
    result = evaluate_players(C4, AlphaBetaPlayer(C4, seed=1), RandomPlayer(C4, seed=2), games_per_side=50)
    assert result["as_first"]["wins"] >= 48 and result["as_second"]["wins"] >= 48, result


def test_alphabeta_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        AlphaBetaPlayer(C4, depth=0)


@pytest.mark.parametrize("game", [TTT, C4], ids=["tictactoe", "connect4"])
def test_empty_batches(game):
    state = game.initial(0)
    nxt, reward, done = game.step(state, torch.zeros(0, dtype=torch.long), check=True)
    assert nxt.shape == (0, game.num_cells) and reward.shape == done.shape == (0,)
    assert game.outcome(state).shape == game.to_move(state).shape == (0,)
    players = [RandomPlayer(game), OneStepLookaheadPlayer(game), AlphaBetaPlayer(game, depth=2)]
    players += [PerfectPlayer(game)] if game is TTT else []
    for player in players:
        assert player(state).shape == (0,)


# ----------------------------------------------------------------- matches
class Watcher:
    """Wraps a player and records the states it is asked to move in."""

    def __init__(self, player):
        self.player, self.batch_sizes, self.saw_finished = player, [], False

    def manual_seed(self, seed):
        self.player.manual_seed(seed)

    def __call__(self, state):
        game = self.player.game
        self.batch_sizes.append(state.shape[0])
        self.saw_finished |= bool((game.outcome(state) != 0).any() or game.is_full(state).any())
        return self.player(state)


@pytest.mark.parametrize("game", [TTT, C4], ids=["tictactoe", "connect4"])
def test_play_match_counts_sum_and_finished_games_drop_out(game):
    first, second = Watcher(RandomPlayer(game, seed=1)), Watcher(OneStepLookaheadPlayer(game, seed=2))
    result = play_match(game, first, second, games=64, seed=5)
    assert set(result) == {"first_wins", "draws", "second_wins"} and sum(result.values()) == 64
    assert not first.saw_finished and not second.saw_finished
    sizes = [n for pair in zip(first.batch_sizes, second.batch_sizes) for n in pair]
    assert sizes[0] == 64 and sizes == sorted(sizes, reverse=True) and sizes[-1] < 64
    # Reproducible from the seed alone.
    assert play_match(game, first.player, second.player, games=64, seed=5) == result
    assert play_match(game, first.player, second.player, games=0) == {"first_wins": 0, "draws": 0, "second_wins": 0}


def test_evaluate_players_counts_both_seats():
    result = evaluate_players(TTT, OneStepLookaheadPlayer(TTT), RandomPlayer(TTT), games_per_side=30)
    for side in ("as_first", "as_second"):
        assert set(result[side]) == {"wins", "draws", "losses"} and sum(result[side].values()) == 30
        assert result[side]["wins"] > result[side]["losses"]


def test_play_match_reports_a_player_that_moves_illegally():
    with pytest.raises(ValueError, match="moving second.*occupied cells"):
        play_match(TTT, RandomPlayer(TTT), lambda s: torch.full((s.shape[0],), 4), games=3)


@pytest.mark.parametrize("game", [TTT, C4], ids=["tictactoe", "connect4"])
def test_symmetries_commute_with_the_rules(game):
    cells, actions = game.symmetries()
    count = 8 if isinstance(game, TicTacToe) else 2
    assert cells.shape == (count, game.num_cells) and actions.shape == (count, game.num_actions)
    assert torch.equal(cells[0], torch.arange(game.num_cells))                  # the identity first
    assert len({tuple(c.tolist()) for c in cells}) == count                     # all distinct
    assert all(torch.equal(c.sort().values, torch.arange(game.num_cells)) for c in cells)
    gen = torch.Generator().manual_seed(0)
    states = game.initial(64)
    for _ in range(game.num_cells):
        moves = torch.multinomial(game.legal(states).float(), 1, generator=gen)[:, 0]
        cell_perm, action_perm = game.random_symmetries(64, gen)
        turned = permute(states, cell_perm)
        # Legal moves turn like a policy; playing the turned move on the turned board gives
        # the turned next board, the same reward and the same end.
        assert torch.equal(game.legal(turned), permute(game.legal(states), action_perm))
        nxt_t, reward_t, done_t = game.step(turned, permute_moves(moves, action_perm))
        nxt, reward, done = game.step(states, moves)
        assert torch.equal(nxt_t, permute(nxt, cell_perm))
        assert torch.equal(reward_t, reward) and torch.equal(done_t, done)
        states = torch.where(done.unsqueeze(1), game.initial(64), nxt)
