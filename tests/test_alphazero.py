"""AlphaZero: targets, symmetries and loss by hand; a short run end to end, resumed; command-line errors."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from course_lib.agents.alphazero import (AlphaZeroConfig, NetworkPlayer, PolicyValueNet, SearchPlayer,
                                         alphazero_loss, outcome_targets, symmetries, train)
from course_lib.core import ConfigError
from course_lib.core.checkpoint import load_checkpoint
from course_lib.games import ConnectFour, TicTacToe

TINY = dict(total_steps=512, num_envs=64, num_simulations=8, batch_size=64, eval_episodes=3, eval_simulations=4,
            log_every=128, checkpoint_every=256, device="cpu")


def test_outcome_targets_by_hand():
    # Game 0: 5 moves, the first player (moves 0, 2, 4) won. Game 1: a draw. Game 2: 6 moves, second player won.
    z = outcome_targets(torch.tensor([5, 9, 6]), torch.tensor([1.0, 0.0, 1.0]), 9)
    assert z[0, :5].tolist() == [1, -1, 1, -1, 1]
    assert z[1, :9].tolist() == [0] * 9
    assert z[2, :6].tolist() == [-1, 1, -1, 1, -1, 1]


def test_tictactoe_symmetries_turn_the_policy_with_the_board():
    game = TicTacToe()
    s = game.initial(1)
    for a in (0, 5):             # X in a corner, O on an edge: no symmetry maps the board to itself
        s, _, _ = game.step(s, torch.tensor([a]))
    pi = torch.zeros(1, 9)
    pi[0, 7] = 1.0               # all mass on one empty cell
    boards, pis = symmetries(game, s, pi)
    assert boards.shape == (8, 9) and pis.shape == (8, 9)
    assert len({tuple(b.tolist()) for b in boards}) == 8
    for b, p in zip(boards, pis):
        assert b[p.argmax()].item() == 0                     # the move still points at an empty cell
        assert (b != 0).sum().item() == 2
    # The identity is among them.
    assert any(torch.equal(b, s[0]) and torch.equal(p, pi[0]) for b, p in zip(boards, pis))


def test_connect4_mirror():
    game = ConnectFour()
    s, _, _ = game.step(game.initial(1), torch.tensor([0]))
    pi = torch.tensor([[0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0]])
    boards, pis = symmetries(game, s, pi)
    assert torch.equal(boards[1].view(6, 7), s.view(6, 7).flip(1))
    assert torch.equal(pis[1], pi[0].flip(0))


def test_loss_by_hand():
    logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    value = torch.tensor([0.5, -0.2])
    pi = torch.tensor([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    z = torch.tensor([1.0, -1.0])
    legal = torch.tensor([[True, True, True], [True, True, False]])
    loss, parts = alphazero_loss(logits, value, pi, z, legal)
    log_p0 = torch.log_softmax(logits[0], 0)
    expected_policy = (-(pi[0] * log_p0).sum() + math.log(2.0)) / 2       # row 1: uniform over 2 legal moves
    expected_value = ((1 - 0.5) ** 2 + (-1 + 0.2) ** 2) / 2
    assert parts["policy_loss"].item() == pytest.approx(expected_policy.item(), abs=1e-6)
    assert parts["value_loss"].item() == pytest.approx(expected_value, abs=1e-6)
    assert loss.item() == pytest.approx(expected_policy.item() + expected_value, abs=1e-6)


def test_players_only_play_legal_moves():
    game = ConnectFour()
    net = PolicyValueNet(game, 8, 1).eval()
    s = game.initial(4)
    for _ in range(6):       # fill column 3
        s, _, _ = game.step(s, torch.full((4,), 3))
    players = (NetworkPlayer(game, net), SearchPlayer(game, net, 16), SearchPlayer(game, net, 5, selection="gumbel"))
    for player in players:
        actions = player(s)
        assert game.legal(s).gather(1, actions.unsqueeze(1)).all()


def test_short_run_writes_results_and_resumes(tmp_path):
    out = tmp_path / "az"
    summary = train(AlphaZeroConfig(**TINY, eval_every=256), str(out), progress=False)
    assert summary["total_steps"] == 512 and summary["games"] > 0 and summary["updates"] > 0
    for opponent in ("perfect", "random"):
        for player in ("net", "search"):
            sides = summary["evaluation"][opponent][player]
            assert sum(sides["as_first"].values()) == 3 and sum(sides["as_second"].values()) == 3
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 512 and "net_score_as_first_vs_perfect" in rows[-1]
    # Resume with a larger budget: the run goes on from its checkpoint (same games, replay, optimiser).
    more = train(AlphaZeroConfig(**{**TINY, "total_steps": 1024}, eval_every=256), str(out), resume=True,
                 progress=False)
    assert more["total_steps"] == 1024 and more["resumes"] == 1
    assert more["updates"] > summary["updates"] and more["games"] > summary["games"]


def test_gumbel_self_play_trains_on_the_improved_policy(tmp_path):
    out = tmp_path / "gumbel"
    summary = train(AlphaZeroConfig(**{**TINY, "num_simulations": 2}, selection="gumbel"), str(out), progress=False)
    assert summary["total_steps"] == 512 and summary["games"] > 0
    assert sum(summary["evaluation"]["perfect"]["search"]["as_first"].values()) == 3
    state = load_checkpoint(out / "checkpoint.pt")
    n = state["replay"]["size"]
    pis, boards = state["replay"]["pis"][:n], state["replay"]["states"][:n]
    assert n > 0 and torch.allclose(pis.sum(1), torch.ones(n))
    # Two simulations give visit policies of 0, 1/2 and 1 only; the improved policy spreads
    # its mass over every legal move, by the prior and the completed Q, and none elsewhere.
    assert ((pis > 0).sum(1) > 2).float().mean() > 0.9
    assert (pis[boards != 0] == 0).all()


def test_config_rejects_gym_envs():
    with pytest.raises(ConfigError, match="accepted"):
        AlphaZeroConfig(env="CartPole-v1").validate()


def test_cli_error_names_the_games(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_lib", "train", "alphazero", "--env", "chess",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "tictactoe" in proc.stderr and "connect4" in proc.stderr
