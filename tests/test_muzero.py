"""MuZero: value scaling and supports, n-step targets against a loop, replay targets, the
unrolled loss's pieces, and short runs on CartPole and tic-tac-toe (resumed)."""
from __future__ import annotations

import json

import pytest
import torch

from course_lib.agents.muzero import (MuZeroConfig, MuZeroNet, augment_unrolls, from_support,
                                      muzero_loss, n_step_value_targets, replay_fields, scale_value, to_support,
                                      train, unroll_batch, unscale_value)
from course_lib.core import ConfigError
from course_lib.core.checkpoint import load_checkpoint
from course_lib.games import TicTacToe
from course_lib.replay import SequenceReplay


def test_value_scaling_is_inverted_exactly():
    x = torch.tensor([-300.0, -5.5, -1.0, 0.0, 0.3, 1.0, 42.0, 500.0], dtype=torch.float64)
    assert torch.allclose(unscale_value(scale_value(x)), x, atol=1e-6)
    assert scale_value(torch.tensor(3.0)).item() == pytest.approx(1.0 + 0.003)


def test_two_hot_support_has_the_right_mean():
    x = torch.tensor([-7.3, 0.0, 0.4, 12.0, 99.0])
    dist = to_support(x, 10)
    assert torch.allclose(dist.sum(-1), torch.ones(5))
    assert ((dist > 0).sum(-1) <= 2).all()
    support = torch.arange(-10, 11, dtype=torch.float32)
    assert torch.allclose((dist * support).sum(-1), scale_value(x), atol=1e-5)
    # Logits equal to the log of the two-hot distribution give the value back.
    assert torch.allclose(from_support(dist.clamp(min=1e-12).log(), 10), x, rtol=1e-3, atol=1e-3)
    # Values beyond the support (scaled 200 is about 13.2 > 10) are clipped to its edge.
    assert to_support(torch.tensor([200.0, -200.0]), 10)[:, [-1, 0]].diagonal().tolist() == [1.0, 1.0]


def _loop_targets(rewards, values, length, terminated, bootstrap, gamma, n):
    out = []
    for t in range(length):
        z, g = 0.0, 1.0
        for i in range(n):
            if t + i >= length:
                break
            z += g * rewards[t + i]
            g *= gamma
        if t + n < length:
            z += g * values[t + n]
        elif not terminated:
            z += g * bootstrap
        out.append(z)
    return out


@pytest.mark.parametrize("gamma,n", [(0.9, 3), (0.997, 50), (-1.0, 10), (1.0, 1)])
def test_n_step_targets_match_a_loop(gamma, n):
    torch.manual_seed(0)
    E, T = 4, 12
    rewards = torch.randn(E, T, dtype=torch.float64)
    values = torch.randn(E, T, dtype=torch.float64)
    lengths = torch.tensor([12, 7, 1, 5])
    terminated = torch.tensor([False, True, True, False])
    bootstrap = torch.randn(E, dtype=torch.float64)
    z = n_step_value_targets(rewards, values, lengths, terminated, bootstrap, gamma, n)
    for e in range(E):
        L = int(lengths[e])
        expected = _loop_targets(rewards[e].tolist(), values[e].tolist(), L, bool(terminated[e]), bootstrap[e].item(),
                                 gamma, n)
        assert z[e, :L].tolist() == pytest.approx(expected, abs=1e-9)
        assert (z[e, L:] == 0).all()


def test_two_player_targets_are_the_outcome_for_the_player_to_move():
    # A 5-move game won by its last mover (the first player): rewards only on the last move.
    rewards = torch.tensor([[0.0, 0, 0, 0, 1]])
    z = n_step_value_targets(rewards, torch.zeros(1, 5), torch.tensor([5]), torch.tensor([True]), torch.zeros(1),
                             -1.0, 10)
    assert z[0].tolist() == [1, -1, 1, -1, 1]


def test_replay_targets_past_the_end_of_an_episode():
    replay = SequenceReplay(20, replay_fields(1, 2))
    # A terminated episode of 3 steps, then a truncated one of 2.
    replay.add_episode(True, obs=torch.zeros(3, 1), action=torch.tensor([0, 1, 0]), reward=torch.tensor([1.0, 1.0, 1.0]),
                       value_target=torch.tensor([3.0, 2.0, 1.0]), policy=torch.full((3, 2), 0.5))
    replay.add_episode(False, obs=torch.ones(2, 1), action=torch.tensor([1, 1]), reward=torch.tensor([1.0, 1.0]),
                       value_target=torch.tensor([9.0, 9.5]), policy=torch.full((2, 2), 0.5))
    gen = torch.Generator().manual_seed(0)
    obs, actions, value, reward, policy, value_mask, policy_mask = unroll_batch(replay, 200, 3, 100, generator=gen)
    # Positions from the first episode sampled at t = 1: steps 1, 2 inside; 3 and 4 past a terminal end.
    first = (obs[:, 0] == 0) & (value[:, 0] == 2.0)
    assert first.any()
    row = first.nonzero()[0, 0]
    assert value[row].tolist() == [2.0, 1.0, 0.0, 0.0] and value_mask[row].tolist() == [1, 1, 1, 1]
    assert reward[row].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert policy_mask[row].tolist() == [1, 1, 0, 0]
    # From the truncated episode at t = 1: nothing past its end is trained on.
    second = (obs[:, 0] == 1) & (value[:, 0] == 9.5)
    row = second.nonzero()[0, 0]
    assert value_mask[row].tolist() == [1, 0, 0, 0] and policy_mask[row].tolist() == [1, 0, 0, 0]


def test_augmented_unrolls_are_games_on_the_turned_board():
    """Turned observations, actions and policies still describe the same game, on the turned board."""
    game = TicTacToe()
    gen = torch.Generator().manual_seed(1)
    states, boards, obs, actions, policies = game.initial(32), [], [], [], []
    for _ in range(4):                          # four moves: no game ends before the fifth
        legal = game.legal(states)
        moves = torch.multinomial(legal.float(), 1, generator=gen)[:, 0]
        boards.append(states)
        obs.append(game.observation(states).flatten(1))
        actions.append(moves)
        policies.append(legal.float() / legal.sum(-1, keepdim=True) + 0.1 * torch.nn.functional.one_hot(moves, 9))
        states, _, _ = game.step(states, moves)
    # Unrolls from the position after one move, along moves 2-4 (K = 3).
    value, reward, mask = torch.rand(32, 4), torch.rand(32, 4), torch.ones(32, 4)
    batch = (obs[1], torch.stack(actions[1:], 1), value, reward, torch.stack(policies[1:] + policies[:1], 1),
             mask, mask)
    torch.manual_seed(0)
    t_obs, t_actions, t_value, t_reward, t_policy, *_ = augment_unrolls(game, *batch)
    torch.manual_seed(0)
    cells, _ = game.random_symmetries(32)       # the symmetries augment_unrolls drew
    assert len(set(cells.tolist()[i][0] for i in range(32))) > 1     # not all the identity
    assert t_value is value and t_reward is reward
    planes = t_obs.view(32, 2, 9)
    turned = (planes[:, 0] - planes[:, 1]).to(torch.int8)
    assert torch.equal(turned, boards[1].gather(1, cells))
    for k in range(3):
        # The turned action is the policy target's most likely move, and the turned board
        # after it is the original board after the original move, turned.
        assert torch.equal(t_policy[:, k].argmax(-1), t_actions[:, k])
        assert torch.allclose(t_policy[:, k].sort(-1).values, batch[4][:, k].sort(-1).values)
        turned, _, _ = game.step(turned, t_actions[:, k])
        assert torch.equal(turned, boards[k + 2].gather(1, cells) if k < 2 else states.gather(1, cells))


def test_loss_pieces_and_gradient_scaling():
    torch.manual_seed(0)
    net = MuZeroNet(4, 2, latent=8, hidden=16, value_support=5, reward_support=2)
    B, K = 6, 3
    obs = torch.randn(B, 4)
    actions = torch.randint(2, (B, K))
    value = torch.randn(B, K + 1)
    reward = torch.rand(B, K + 1)
    policy = torch.softmax(torch.randn(B, K + 1, 2), -1)
    ones = torch.ones(B, K + 1)
    loss, parts = muzero_loss(net, obs, actions, value, reward, policy, ones, ones, value_coef=0.25)
    # Recompute step 0 by hand: its weight is 1, the others 1/K.
    latent = net.represent(obs)
    p0, v0 = net.predict(latent)
    step0 = (0.25 * -(to_support(value[:, 0], 5) * torch.log_softmax(v0, -1)).sum(-1)
             - (policy[:, 0] * torch.log_softmax(p0, -1)).sum(-1)).mean()
    rest = 0.0
    for k in range(1, K + 1):
        latent, r = net.step(latent, actions[:, k - 1])
        p, v = net.predict(latent)
        rest += (0.25 * -(to_support(value[:, k], 5) * torch.log_softmax(v, -1)).sum(-1)
                 - (to_support(reward[:, k], 2) * torch.log_softmax(r, -1)).sum(-1)
                 - (policy[:, k] * torch.log_softmax(p, -1)).sum(-1)).mean()
    assert loss.item() == pytest.approx((step0 + rest / K).item(), rel=1e-5)
    assert set(parts) == {"value_loss", "reward_loss", "policy_loss"}
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_latent_states_are_normalised():
    net = MuZeroNet(4, 3, latent=10)
    s = net.represent(torch.randn(5, 4) * 100)
    assert torch.allclose(s.min(-1).values, torch.zeros(5)) and torch.allclose(s.max(-1).values, torch.ones(5))
    s2, _ = net.step(s, torch.tensor([0, 1, 2, 0, 1]))
    assert s2.min().item() >= 0 and s2.max().item() <= 1 + 1e-6


def test_short_cartpole_run_and_resume(tmp_path):
    cfg = dict(total_steps=640, num_envs=8, num_simulations=8, learning_starts=100, batch_size=32, eval_episodes=2,
               eval_every=320, target_return=None, log_every=160, checkpoint_every=320, device="cpu")
    out = tmp_path / "mz"
    summary = train(MuZeroConfig(**cfg), str(out), progress=False)
    assert summary["total_steps"] == 640 and summary["updates"] > 0 and len(summary["eval_returns"]) == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 640 and rows[-1]["eval_return"] is not None
    more = train(MuZeroConfig(**{**cfg, "total_steps": 960}), str(out), resume=True, progress=False)
    assert more["total_steps"] == 960 and more["updates"] > summary["updates"] and more["resumes"] == 1


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_short_tictactoe_run(tmp_path, selection):
    summary = train(MuZeroConfig.from_dict({"total_steps": 512, "num_envs": 32, "num_simulations": 8,
                                            "learning_starts": 64, "batch_size": 32, "eval_episodes": 2,
                                            "selection": selection, "device": "cpu"}, preset="tictactoe"),
                    str(tmp_path / "run"), progress=False)
    assert summary["games"] > 0
    for opponent in ("perfect", "random"):
        sides = summary["evaluation"][opponent]["search"]
        assert sum(sides["as_first"].values()) == 2 and sum(sides["as_second"].values()) == 2
    replay = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["replay"]
    policies, boards = replay["policy"], replay["obs"].view(-1, 2, 9).sum(1)
    assert torch.allclose(policies.sum(1), torch.ones(len(policies)))
    assert (policies[boards > 0] == 0).all()           # occupied cells get no probability at the root
    if selection == "gumbel":   # the improved policy covers every legal move, 8 visits could not
        assert ((policies > 0).sum(1) == (boards == 0).sum(1)).all()


def test_config_errors():
    with pytest.raises(ConfigError, match="temperatures"):
        MuZeroConfig(temperatures=(1, 0.5))
    with pytest.raises(ConfigError, match="discrete"):
        train(MuZeroConfig(env="Pendulum-v1", env_backend="gymnasium", total_steps=8), None, progress=False)
