"""SAC: the soft target by hand, the squashed-Gaussian log-probability against torch and a
change of variables, the replay buffer, Polyak averaging, short training runs and resume."""
import json
import math

import pytest
import torch

from course_lib.agents.sac import (SACConfig, SquashedGaussianActor, TwinQ, polyak_update,
                                   soft_bellman_target, tanh_gaussian_log_prob, train, transition_fields)
from course_lib.core import ConfigError, read_metrics
from course_lib.envs import SpaceInfo
from course_lib.replay import ReplayBuffer

PENDULUM = SpaceInfo(obs_shape=(3,), discrete=False, action_dim=1, action_low=(-2.0,), action_high=(2.0,))


# ------------------------------------------------------------------- soft Bellman target
def test_soft_bellman_target_hand_worked():
    reward = torch.tensor([1.0, 1.0, 1.0, -2.0])
    next_q = torch.tensor([[10.0, 10.0, 10.0, 4.0],    # Q1_targ(s', a')
                           [8.0, 8.0, 8.0, 5.0]])      # Q2_targ(s', a')
    next_log_prob = torch.tensor([-1.0, -1.0, -1.0, 0.5])
    terminated = torch.tensor([False, True, False, False])  # sample 2 stands for a truncation: bootstraps
    y = soft_bellman_target(reward, next_q, next_log_prob, terminated, gamma=0.9, alpha=0.5)
    # 0, 2: 1 + .9 * (min(10, 8) - .5 * -1) = 1 + .9 * 8.5 = 8.65 ; 1: terminated -> r = 1
    # 3: -2 + .9 * (4 - .5 * .5) = -2 + .9 * 3.75 = 1.375
    torch.testing.assert_close(y, torch.tensor([8.65, 1.0, 8.65, 1.375]))


def test_soft_bellman_target_float_mask_tensor_alpha_and_hard_limit():
    reward, next_q = torch.zeros(3), torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 3.5]])
    log_prob = torch.tensor([-3.0, 2.0, 0.0])
    y_bool = soft_bellman_target(reward, next_q, log_prob, torch.tensor([False, False, True]), 1.0,
                                 torch.tensor(0.1))
    y_float = soft_bellman_target(reward, next_q, log_prob, torch.tensor([0.0, 0.0, 1.0]), 1.0, 0.1)
    torch.testing.assert_close(y_bool, y_float)
    torch.testing.assert_close(y_bool, torch.tensor([0.3, 1.8, 0.0]))
    # alpha -> 0: the backup of the min critic alone
    torch.testing.assert_close(soft_bellman_target(reward, next_q, log_prob, torch.zeros(3), 1.0, 0.0),
                               torch.tensor([0.0, 2.0, 3.0]))


def test_soft_bellman_target_checks_shapes():
    with pytest.raises(ValueError, match=r"next_q must be \[K, N\]"):
        soft_bellman_target(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3), 0.9, 0.1)
    with pytest.raises(ValueError, match="reward must be"):
        soft_bellman_target(torch.zeros(4), torch.zeros(2, 3), torch.zeros(3), torch.zeros(3), 0.9, 0.1)


# ------------------------------------------------------------- squashed Gaussian log-prob
def test_tanh_gaussian_log_prob_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    mean, log_std = torch.randn(64, 3), torch.randn(64, 3).clamp(-2, 1)
    u = mean + log_std.exp() * torch.randn(64, 3)
    ref = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), torch.distributions.transforms.TanhTransform())
    expected = ref.log_prob(torch.tanh(u).clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    keep = torch.tanh(u).abs().amax(-1) < 0.999  # where torch's atanh round trip is still accurate
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std)[keep], expected[keep], atol=1e-4,
                               rtol=1e-4)


def test_tanh_gaussian_log_prob_is_a_change_of_variables():
    """1-D: the density of a = tanh(u) is N(u) / (da/du); check da/du by finite differences,
    and that the density integrates to 1 over (-1, 1)."""
    mean, log_std = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[-0.5]], dtype=torch.float64)
    u = torch.linspace(-4, 4, 9, dtype=torch.float64).unsqueeze(-1)
    h = 1e-6
    dadu = (torch.tanh(u + h) - torch.tanh(u - h)) / (2 * h)
    normal = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).squeeze(-1)
    got = tanh_gaussian_log_prob(u, mean.expand_as(u), log_std.expand_as(u))
    torch.testing.assert_close(got, normal - dadu.log().squeeze(-1), atol=1e-8, rtol=1e-8)
    a = torch.linspace(-1, 1, 200_001, dtype=torch.float64)[1:-1]
    density = tanh_gaussian_log_prob(torch.atanh(a).unsqueeze(-1), mean, log_std).exp()
    assert torch.trapezoid(density, a).item() == pytest.approx(1.0, abs=1e-4)


def test_tanh_gaussian_log_prob_is_finite_where_tanh_saturates():
    u = torch.tensor([[15.0], [-30.0], [0.0]])
    got = tanh_gaussian_log_prob(u, torch.zeros(3, 1), torch.zeros(3, 1))
    assert torch.isfinite(got).all()
    # log(1 - tanh(u)^2) ~ 2 log 2 - 2|u| for large |u|
    expected = -0.5 * u.square() - 0.5 * math.log(2 * math.pi) - (2 * math.log(2) - 2 * u.abs())
    torch.testing.assert_close(got, expected.squeeze(-1).where(u.squeeze(-1) != 0, torch.tensor(
        -0.5 * math.log(2 * math.pi))), atol=1e-4, rtol=1e-5)


def test_actor_samples_in_bounds_and_greedy_is_tanh_mean():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(PENDULUM, hidden_size=32)
    obs = torch.randn(100, 3)
    action, log_prob = actor.sample(obs)
    assert action.shape == (100, 1) and log_prob.shape == (100,)
    assert action.abs().max() <= 1.0
    env_action = actor.greedy(obs)
    torch.testing.assert_close(env_action, 2.0 * torch.tanh(actor(obs)[0]))


# -------------------------------------------------------------------- critics, Polyak
def test_twin_q_members_are_independent_mlps():
    torch.manual_seed(0)
    critic = TwinQ(PENDULUM, hidden_size=16)
    obs, act = torch.randn(5, 3), torch.rand(5, 1)
    q = critic(obs, act)
    assert q.shape == (2, 5)
    x = torch.cat([obs, act], -1)
    for k in range(2):
        h = x
        for i, (w, b) in enumerate(zip(critic.net.weights, critic.net.biases)):
            h = h @ w[k] + b[k]
            if i < len(critic.net.weights) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(q[k], h.squeeze(-1))
    assert not torch.allclose(q[0], q[1])  # independently initialised


def test_frozen_critic_passes_gradients_to_the_action_only():
    """The actor's loss sees the critics frozen: d min_k Q_k / d action flows, the weights get nothing."""
    torch.manual_seed(0)
    critic = TwinQ(PENDULUM, hidden_size=16)
    obs, act = torch.randn(5, 3), torch.rand(5, 1).requires_grad_()
    q = critic(obs, act, frozen=True)
    torch.testing.assert_close(q, critic(obs, act))
    q.min(dim=0).values.sum().backward()
    assert act.grad is not None and act.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_ensemble_narrow_output_layer_equals_batched_matmul():
    """The critic's one-column output layer multiplies and sums instead of calling baddbmm
    (much faster on CPU); values and gradients must be those of the matmul."""
    from course_lib.nets import EnsembleMLP
    torch.manual_seed(0)
    net = EnsembleMLP(2, 4, [16, 16], 1)
    x = torch.randn(7, 4)
    fast = net(x)
    fast_grads = torch.autograd.grad(fast.square().sum(), list(net.parameters()))
    net.NARROW = 0  # every layer through baddbmm
    slow = net(x)
    slow_grads = torch.autograd.grad(slow.square().sum(), list(net.parameters()))
    assert fast.shape == slow.shape == (2, 7, 1)
    torch.testing.assert_close(fast, slow)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b)


def test_polyak_update():
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(target, online, 0.1)
    for t, b, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    polyak_update(target, online, 1.0)
    for t, o in zip(target.parameters(), online.parameters()):
        torch.testing.assert_close(t, o)


# ------------------------------------------------------------------------ replay buffer
def _transitions(start, n):
    i = torch.arange(start, start + n, dtype=torch.float32)
    return dict(obs=i[:, None].expand(n, 3), actions=-i[:, None], rewards=i, next_obs=i[:, None].expand(n, 3) + 0.5,
                terminated=(i % 2 == 0))


def _buffer(capacity: int) -> ReplayBuffer:
    return ReplayBuffer(capacity, transition_fields((3,), 1))


def test_replay_buffer_wraps_around():
    buf = _buffer(5)
    buf.add(**_transitions(0, 3))
    assert len(buf) == 3 and buf.pos == 3
    buf.add(**_transitions(3, 3))  # rows 3, 4 then 0: transition 5 overwrites transition 0
    assert len(buf) == 5 and buf.pos == 1
    torch.testing.assert_close(buf.rewards, torch.tensor([5.0, 1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(buf.actions[:, 0], -buf.rewards)
    torch.testing.assert_close(buf.next_obs[:, 0], buf.rewards + 0.5)
    torch.testing.assert_close(buf.terminated, torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0]))
    torch.manual_seed(0)
    batch = buf.sample(1000)
    assert set(batch["rewards"].tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    torch.testing.assert_close(batch["obs"][:, 2], batch["rewards"])  # rows stay together


def test_replay_buffer_samples_only_filled_rows():
    buf = _buffer(100)
    buf.add(**_transitions(7, 2))
    assert set(buf.sample(500)["rewards"].tolist()) == {7.0, 8.0}
    with pytest.raises(ValueError, match="empty"):
        _buffer(4).sample(2)


def test_replay_buffer_state_dict_round_trip():
    buf = _buffer(5)
    buf.add(**_transitions(0, 4))
    buf.add(**_transitions(4, 3))
    state = buf.state_dict()
    copy = _buffer(5)
    copy.load_state_dict(state)
    assert (copy.pos, copy.size) == (buf.pos, buf.size)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
        assert torch.equal(getattr(copy, name), getattr(buf, name)), name
    torch.manual_seed(1)
    a = buf.sample(8)
    torch.manual_seed(1)
    b = copy.sample(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="capacity"):
        _buffer(6).load_state_dict(state)


# ----------------------------------------------------------------------------- config
def test_config_rejects_discrete_env_and_bad_values():
    with pytest.raises(ConfigError, match="SAC needs continuous actions but 'CartPole-v1'.*accepted: Pendulum-v1"):
        SACConfig(env="CartPole-v1")
    with pytest.raises(ConfigError, match="tau = 0.0 is out of range"):
        SACConfig(tau=0.0)
    with pytest.raises(ConfigError, match="unknown environment"):
        SACConfig(env="Pong-v5")


# ---------------------------------------------------------------------------- training
SMALL = dict(device="cpu", hidden_size=32, batch_size=32, learning_starts=100, log_every=100, eval_episodes=2,
             checkpoint_every=10_000)


def test_train_writes_files_and_summary(tmp_path):
    cfg = SACConfig(total_steps=400, **SMALL)
    summary = train(cfg, tmp_path / "run", progress=False)
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("algo", "env", "seed", "total_steps", "eval_return", "train_return", "steps_per_second",
                "updates_per_second", "learning_steps_per_second", "wall_seconds", "device"):
        assert key in on_disk, key
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["algo"] == "sac" and summary["total_steps"] == 400 and len(summary["eval_returns"]) == 2
    assert summary["updates"] == 301 and summary["actor_updates"] == 150  # from step 100 on; policy every 2
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [100, 200, 300, 400]
    assert rows[0]["critic_loss"] is not None and rows[-1]["entropy"] is not None
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_interrupted_run_resumes_identically(tmp_path):
    """In-process: a run stopped after a checkpoint and resumed (replay buffer included)
    equals one that was never stopped."""
    cfg = SACConfig(total_steps=800, deterministic=True, **{**SMALL, "checkpoint_every": 400})
    whole = train(cfg, tmp_path / "whole", progress=False)

    class Stop(Exception):
        pass

    def stop_after_600(row):
        if row["step"] == 600:  # after the checkpoint at 400: two rows will be redone
            raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "split", progress=False, callback=stop_after_600)
    resumed = train(cfg, tmp_path / "split", resume=True, progress=False)
    for key in ("eval_return", "eval_returns", "train_return", "total_steps", "episodes", "updates", "alpha"):
        assert resumed[key] == whole[key], key
    assert resumed["resumes"] == 1

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in ("wall_time", "steps_per_second", "updates_per_second")}
                for r in rows]

    assert strip(read_metrics(tmp_path / "split")) == strip(read_metrics(tmp_path / "whole"))


def test_checkpoint_holds_the_replay_buffer(tmp_path):
    from course_lib.core import load_checkpoint
    train(SACConfig(total_steps=300, **SMALL), tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["buffer"]
    assert state["size"] == 300 and state["obs"].shape == (300, 3)


def test_bfloat16_precision_trains_with_float32_outputs():
    """precision=bfloat16 runs the hidden layers under autocast; the Q values, log-probabilities
    and losses stay float32 and finite."""
    summary = train(SACConfig(total_steps=300, precision="bfloat16", **SMALL), None, progress=False)
    assert summary["updates"] == 201 and math.isfinite(summary["eval_return"])
    torch.manual_seed(0)
    critic, actor = TwinQ(PENDULUM, hidden_size=32), SquashedGaussianActor(PENDULUM, hidden_size=32)
    obs, act = torch.randn(64, 3), torch.rand(64, 1) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = critic(obs, act)
        _, log_prob = actor.sample(obs)
    assert q.dtype == log_prob.dtype == torch.float32
    torch.testing.assert_close(q, critic(obs, act), atol=0.05, rtol=0.02)  # bfloat16 keeps ~3 digits


def test_mujoco_task_smoke():
    """HalfCheetah-v5 (MuJoCo, from the mujoco wheel) trains through the same code path."""
    cfg = SACConfig(env="HalfCheetah-v5", total_steps=300, **{**SMALL, "eval_episodes": 1})
    summary = train(cfg, None, progress=False)
    assert summary["env"] == "HalfCheetah-v5" and summary["updates"] == 201
    assert len(summary["eval_returns"]) == 1 and math.isfinite(summary["eval_return"])


@pytest.mark.slow
def test_sac_learns_pendulum_quickly(median_of_runs):
    """A learning check, not the benchmark: 6k steps of small networks lift the greedy return of
    Pendulum far above a random policy's ~-1200, in the median of three seeds.

    One run is not enough on another CPU, whose kernels take another trajectory. At 5k steps seed 0
    gave -654 with one thread and -717 with two (the -716.7 seen on a Xeon), seeds 1-9 -121 to -243:
    an episode that never swings up (~-1200) pulls the mean of four down by ~250. At 6k steps,
    seeds 0-9 with one and with two threads gave -120 to -446, medians of seeds 0-2 -210 and -213."""
    cfg = SACConfig(total_steps=6_000, hidden_size=64, batch_size=64, learning_starts=500, policy_frequency=1,
                    eval_episodes=4, device="cpu", deterministic=True)
    median, returns = median_of_runs(
        lambda seed: train(cfg.replace(seed=seed), None, progress=False)["eval_return"], seeds=(0, 1, 2))
    assert median > -700, returns


# ------------------------------------------------------------------------ command line
def _cli(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "course_lib", *map(str, args)], capture_output=True, text=True)


def test_cli_trains_resumes_and_reports_one_line_errors(tmp_path):
    out = tmp_path / "run"
    fast = ["--hidden-size", "32", "--batch-size", "32", "--learning-starts", "100", "--log-every", "100",
            "--eval-episodes", "2", "--device", "cpu", "--quiet", "--out", out]
    proc = _cli("train", "sac", "--total-steps", "200", *fast)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "sac" and summary["total_steps"] == 200 and summary["updates_per_second"] > 0
    proc = _cli("train", "sac", "--total-steps", "300", "--resume", *fast)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 300 and summary["resumes"] == 1
    proc = _cli("train", "sac", "--env", "CartPole-v1", "--quiet")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "SAC needs continuous actions but 'CartPole-v1' has discrete ones; accepted: Pendulum-v1" in proc.stderr
