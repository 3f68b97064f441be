"""AlphaGo in small: each stage's loss or target against a hand computation, the expert data
against perfect play, short trainings against learning targets, and the quick pipeline."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib.agents.alphago import (AlphaGoConfig, AlphaGoPlayer, PolicyNet, PolicyPlayer, ValueGreedyPlayer,
                                       ValueNet, alphago_evaluator, alternate, expert_positions, format_results,
                                       mover_outcomes, one_position_per_game, play_games, policy_agreement,
                                       reinforce_loss, rollout_outcomes, run_alphago, sl_policy_loss,
                                       split_by_position, train_rl_policy, train_sl_policy, value_loss,
                                       value_positions)
from course_lib.core import ConfigError
from course_lib.games import PerfectPlayer, RandomPlayer, make_game


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Networks this small run fastest on one thread (and leave the other cores to other work)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def game():
    return make_game("tictactoe")


def board(*cells: int) -> torch.Tensor:
    """One canonical tic-tac-toe state ``[1, 9]`` from nine -1/0/+1 cells (+1: the player to move)."""
    assert len(cells) == 9
    return torch.tensor([cells], dtype=torch.int8)


# Player to move (+1) has cells 0 and 1; cell 2 is the only empty one and completes the top row.
# Four stones each, no line yet: a forced win in one move.
FORCED_WIN = board(1, 1, 0,
                   -1, -1, 1,
                   1, -1, -1)
# Player to move has 0 and 1, the opponent 3 and 4; five empty cells, cell 2 wins at once.
WIN_IN_ONE = board(1, 1, 0,
                   -1, -1, 0,
                   0, 0, 0)


def scripted(*games: list[int]):
    """A move function replaying fixed move lists, one per game."""
    def move(states, ply, idx):
        return torch.tensor([games[i][ply] for i in idx.tolist()])
    return move


# --------------------------------------------------------------------------- games and expert data
def test_play_games_records_scripted_games_and_outcomes(game):
    # Game 0: X takes the top row (5 moves). Game 1: O takes the middle row (6 moves).
    # Game 2: a draw (9 moves).
    rec = play_games(game, scripted([0, 3, 1, 4, 2], [0, 3, 1, 4, 8, 5], [0, 4, 8, 2, 6, 3, 5, 7, 1]), 3)
    assert rec.outcome.tolist() == [1.0, -1.0, 0.0]
    assert rec.length.tolist() == [5, 6, 9]
    assert rec.playing.sum(0).tolist() == [5, 6, 9]
    assert rec.actions[:5, 0].tolist() == [0, 3, 1, 4, 2]
    # Before move 2 of game 0, X (to move, +1) has cell 0 and O (-1) cell 3.
    assert rec.states[2, 0].tolist() == [1, 0, 0, -1, 0, 0, 0, 0, 0]
    assert rec.states[5:, 0].abs().sum() == 0          # nothing recorded after the end


def test_mover_outcomes_alternate_sign(game):
    z = mover_outcomes(torch.tensor([1.0, -1.0, 0.0]), 4)
    assert z.tolist() == [[1, -1, 0], [-1, 1, 0], [1, -1, 0], [-1, 1, 0]]


def test_expert_positions_contain_only_perfect_moves_from_both_seats(game):
    positions, moves = expert_positions(game, 200, seed=3)
    q = PerfectPlayer(game).action_values(positions)
    assert torch.isfinite(q.gather(1, moves.unsqueeze(1))).all()              # legal
    assert torch.equal(q.gather(1, moves.unsqueeze(1)).squeeze(1), q.amax(-1))  # optimal
    stones = positions.ne(0).sum(-1)
    assert (stones % 2 == 0).any() and (stones % 2 == 1).any()               # first and second player
    assert positions.shape[0] > 200 * 2                                      # every expert move recorded
    again = expert_positions(game, 200, seed=3)
    assert torch.equal(again[0], positions) and torch.equal(again[1], moves)  # seeded


def test_expert_positions_needs_tictactoe():
    with pytest.raises(ValueError, match="tictactoe"):
        expert_positions(make_game("connect4"), 4)


def test_split_by_position_never_trains_on_a_held_out_board(game):
    positions, moves = expert_positions(game, 100)
    (train_s, train_a), (test_s, test_a) = split_by_position(positions, moves, 0.3)
    assert train_s.shape[0] + test_s.shape[0] == positions.shape[0]
    assert test_s.shape[0] > 0
    assert not (test_s.unsqueeze(1) == train_s.unsqueeze(0)).all(-1).any()


# --------------------------------------------------------------------------- SL policy π_1
def test_sl_policy_loss_is_minus_log_prob_of_the_expert_move():
    torch.manual_seed(0)
    logits = torch.randn(3, 9)
    legal = torch.rand(3, 9) < 0.6
    legal[:, 4] = True
    moves = torch.tensor([4, int(legal[1].nonzero()[0]), int(legal[2].nonzero()[-1])])
    expected = 0.0
    for b in range(3):
        norm = sum(math.exp(logits[b, a]) for a in range(9) if legal[b, a])
        expected += -math.log(math.exp(logits[b, moves[b]]) / norm) / 3
    assert sl_policy_loss(logits, legal, moves).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="expert_moves"):
        sl_policy_loss(logits, legal, moves[:2])


def test_short_sl_training_agrees_with_the_expert_on_held_out_positions(game):
    positions, moves = expert_positions(game, 600, seed=1)
    (train_s, train_a), (test_s, test_a) = split_by_position(positions, moves, 0.2, seed=1)
    policy = train_sl_policy(game, train_s, train_a, steps=400, seed=1)
    score = policy_agreement(game, policy, test_s, test_a)
    # Margins that hold on any CPU: seeds 0-5 (one thread) and 0-2 (two) gave top1 1.8-2.2x chance, optimal 0.94-0.96.
    assert score["top1"] > 1.5 * score["chance_top1"]
    assert score["optimal"] > 0.85 > score["chance_optimal"] + 0.2


# --------------------------------------------------------------------------- RL policy π_2
@pytest.mark.parametrize("reward", [1.0, -1.0, 0.0])
def test_reinforce_step_moves_probability_with_the_reward(reward):
    # A one-state policy, logits θ: one gradient step on the loss of playing action 1.
    theta = torch.zeros(1, 3, requires_grad=True)
    log_pi = torch.log_softmax(theta, dim=-1)
    loss = reinforce_loss(log_pi[:, 1:2], torch.tensor([[reward]]), torch.tensor([[True]]))
    assert loss.item() == pytest.approx(-reward * math.log(1 / 3))
    loss.backward()
    with torch.no_grad():
        p_after = torch.softmax(theta - 0.5 * theta.grad, dim=-1)[0, 1].item()
    if reward == 0:
        assert p_after == pytest.approx(1 / 3)                   # a draw teaches nothing
    else:
        assert (p_after > 1 / 3) == (reward > 0)                 # a win makes the move likelier, a loss rarer


def test_reinforce_loss_averages_over_games_and_ignores_masked_moves():
    log_probs = torch.tensor([[-1.0, -2.0], [-0.5, float("-inf")]])      # [T=2, B=2]
    z = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    mask = torch.tensor([[True, True], [True, False]])                 # an opponent's move: masked
    expected = -((1 * -1.0) + (-1 * -2.0) + (-1 * -0.5)) / 2
    assert reinforce_loss(log_probs, z, mask).item() == pytest.approx(expected)
    with_baseline = -((1 - 1) * -1.0 + (-1 - 1) * -2.0 + (-1 - 1) * -0.5) / 2
    assert reinforce_loss(log_probs, z, mask, baseline=1.0).item() == pytest.approx(with_baseline)


def test_train_rl_policy_starts_from_pi1_and_leaves_it_unchanged(game):
    torch.manual_seed(0)
    sl = PolicyNet(game, (16,))
    before = [p.detach().clone() for p in sl.parameters()]
    rl = train_rl_policy(game, sl, iterations=3, games_per_iteration=16, snapshot_every=1)
    assert all(torch.equal(a, b) for a, b in zip(before, sl.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(sl.parameters(), rl.parameters()))


def test_policy_player_samples_legal_moves_reproducibly(game):
    torch.manual_seed(0)
    policy = PolicyNet(game, (16,))
    states = play_games(game, alternate(RandomPlayer(game, 1), RandomPlayer(game, 2)), 64).states[3]
    states = states[states.ne(0).any(-1)]
    moves = PolicyPlayer(game, policy, sample=True, seed=5)(states)
    assert game.legal(states).gather(1, moves.unsqueeze(1)).all()
    assert torch.equal(moves, PolicyPlayer(game, policy, sample=True, seed=5)(states))


# --------------------------------------------------------------------------- value network v_φ
def test_one_position_per_game_labels_the_player_to_move(game):
    # X wins (5 moves); O wins (6 moves); a draw (9 moves).
    rec = play_games(game, scripted([0, 3, 1, 4, 2], [0, 3, 1, 4, 8, 5], [0, 4, 8, 2, 6, 3, 5, 7, 1]), 3)
    positions, z, kept = one_position_per_game(rec, torch.tensor([1, 4, 6]))
    assert kept.tolist() == [True, True, True] and positions.shape == (3, 9)
    assert z.tolist() == [-1.0, -1.0, 0.0]       # O to move in a game X won; X to move in a game O won; a draw
    assert positions[0].tolist() == [-1, 0, 0, 0, 0, 0, 0, 0, 0]          # O's view after X's first move
    assert torch.equal(positions[1], rec.states[4, 1])
    positions, z, kept = one_position_per_game(rec, torch.tensor([4, 3, 5]))
    assert z.tolist() == [1.0, 1.0, 0.0]         # the winner to move
    _, z, kept = one_position_per_game(rec, torch.tensor([5, 0, 9]))    # past the end: dropped
    assert kept.tolist() == [False, True, False] and z.tolist() == [-1.0]


def test_value_positions_keep_at_most_one_live_position_per_game(game):
    torch.manual_seed(0)
    policy = PolicyNet(game, (16,))
    positions, z = value_positions(game, policy, 300, seed=2)
    assert 0 < positions.shape[0] <= 300 and z.shape == positions.shape[:1]
    assert set(z.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert (game.outcome(positions) == 0).all() and not game.is_full(positions).any()   # games still going on
    assert (z == 1).any() and (z == -1).any()


def test_value_loss_by_hand():
    assert value_loss(torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx((0.25 + 1) / 2)


def test_value_greedy_player_takes_a_win_in_one(game):
    torch.manual_seed(0)
    assert ValueGreedyPlayer(game, ValueNet(game, (16,)))(WIN_IN_ONE).tolist() == [2]


# --------------------------------------------------------------------------- search
def test_evaluator_shapes_and_value_range(game):
    torch.manual_seed(0)
    sl, value = PolicyNet(game, (16,)), ValueNet(game, (16,))
    states = play_games(game, alternate(RandomPlayer(game, 1), RandomPlayer(game, 2)), 32).states.flatten(0, 1)
    for mix in (0.0, 0.5):
        logits, v = alphago_evaluator(game, sl, value, rollout_mix=mix)(states)
        assert logits.shape == (states.shape[0], 9) and v.shape == (states.shape[0],)
        assert (v.abs() <= 1).all()
    with pytest.raises(ValueError, match="rollout_mix"):
        alphago_evaluator(game, sl, value, rollout_mix=1.5)


def test_rollout_mix_one_is_the_rollout_outcome(game):
    torch.manual_seed(0)
    sl, value = PolicyNet(game, (16,)), ValueNet(game, (16,))
    lost = board(1, 1, 0, -1, -1, -1, 0, 0, 0)            # the opponent has a line already
    drawn = board(1, -1, 1, 1, -1, -1, -1, 1, 1)          # full, no line
    states = torch.cat([FORCED_WIN, lost, drawn])
    _, v = alphago_evaluator(game, sl, value, rollout_mix=1.0)(states)
    assert v.tolist() == [1.0, -1.0, 0.0]
    _, v_half = alphago_evaluator(game, sl, value, rollout_mix=0.5)(FORCED_WIN)
    assert v_half.item() == pytest.approx(0.5 * value(game.observation(FORCED_WIN)).item() + 0.5)


def test_rollout_outcomes_of_random_play_match_the_recorded_games(game):
    # From the empty board, a rollout is a whole game: its outcome for the first player.
    z = rollout_outcomes(game, game.initial(200), RandomPlayer(game, seed=4))
    rec = play_games(game, alternate(RandomPlayer(game, 4), RandomPlayer(game, 4)), 200)
    assert set(z.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert z.eq(1).float().mean().item() == pytest.approx(rec.outcome.eq(1).float().mean().item(), abs=0.15)
    assert z.eq(1).mean(dtype=torch.float32) > z.eq(-1).mean(dtype=torch.float32)   # moving first helps


def test_alphago_player_takes_a_win_in_one_with_untrained_nets(game):
    torch.manual_seed(0)
    player = AlphaGoPlayer(game, PolicyNet(game, (16,)), ValueNet(game, (16,)), num_simulations=40)
    assert player(torch.cat([WIN_IN_ONE, WIN_IN_ONE])).tolist() == [2, 2]


# --------------------------------------------------------------------------- the pipeline
def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="simulations"):
        AlphaGoConfig(simulations=(8, 0))
    with pytest.raises(ConfigError, match="quick"):
        AlphaGoConfig.from_dict({}, preset="medium")
    with pytest.raises(ValueError, match="tictactoe"):
        run_alphago("connect4", profile="quick", progress=False)


def test_quick_profile_runs_and_its_search_beats_random():
    results = run_alphago(profile="quick", seed=0, progress=False, device="cpu")
    # Margins that hold on any CPU: seeds 0-4 (one thread) and 0-2 (two) drew all 100 games against
    # perfect play and won 39-50 of 50 per side against random play, losing none.
    assert {"sl_policy", "rl_policy", "value_net", "evaluation", "seconds"} <= set(results)
    assert results["sl"]["held_out"]["optimal"] > results["sl"]["held_out"]["chance_optimal"]
    mcts = [name for name in results["evaluation"] if name.startswith("mcts_")]
    assert mcts
    games = AlphaGoConfig.from_dict({}, preset="quick").eval_episodes
    for name in mcts:
        for side in ("as_first", "as_second"):
            vs_random = results["evaluation"][name]["random"][side]
            assert vs_random["losses"] <= 0.1 * games and vs_random["wins"] > games / 2
            assert results["evaluation"][name]["perfect"][side]["losses"] <= 0.1 * games
    assert "mcts_" in format_results(results)


def test_train_checkpoints_every_stage_and_a_resumed_run_skips_finished_stages(tmp_path, monkeypatch):
    """`train alphago` runs through the kit: one metrics row and checkpoint per stage, and --resume
    goes on from the last finished stage (here: it only redoes the evaluation)."""
    from course_lib.agents import alphago
    from course_lib.core import read_metrics

    tiny = dict(expert_games=60, sl_steps=5, rl_iterations=1, rl_games=8, value_games=40, value_steps=5,
                batch_size=16, hidden=8, simulations=(2,), rollout_mix=0.0, eval_episodes=2, device="cpu")
    cfg = AlphaGoConfig(**tiny)
    calls = []
    original = alphago._evaluate_stages

    def evaluate_once_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt("stopped during the evaluation")
        return original(*args, **kwargs)

    monkeypatch.setattr(alphago, "_evaluate_stages", evaluate_once_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        alphago.train(cfg, tmp_path / "run", progress=False)
    assert [r["stage"] for r in read_metrics(tmp_path / "run")] == ["sl_policy", "rl_policy", "value_net"]
    summary = alphago.train(cfg, tmp_path / "run", resume=True, progress=False)
    assert [r["stage"] for r in read_metrics(tmp_path / "run")] == list(alphago.STAGES)
    assert summary["resumes"] == 1 and len(calls) == 2 and "mcts_2" in summary["evaluation"]
