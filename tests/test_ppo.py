"""PPO: loss pieces by hand, distributions against torch.distributions, short training runs."""
import json
import math

import pytest
import torch

from course_lib.agents.ppo import (ActorCritic, PPOConfig, clipped_surrogate_objective, clipped_value_loss,
                                   ppo_loss, train)
from course_lib.envs import SpaceInfo
from course_lib.nets import Categorical, DiagGaussian


# ---------------------------------------------------------------- clipped surrogate
def test_clipped_surrogate_hand_worked():
    eps = 0.2
    ratio = torch.tensor([0.5, 1.0, 1.1, 1.5, 0.5, 1.5])
    adv = torch.tensor([2.0, 2.0, 2.0, 2.0, -1.0, -1.0])
    got = clipped_surrogate_objective(ratio.log(), torch.zeros(6), adv, eps)
    # A > 0: min(r A, clip(r) A) -> r=.5: min(1, 1.6)=1 ; r=1: 2 ; r=1.1: 2.2 ; r=1.5: min(3, 2.4)=2.4
    # A < 0: r=.5: min(-.5, -.8) = -.8 (clipped) ; r=1.5: min(-1.5, -1.2) = -1.5 (not clipped)
    torch.testing.assert_close(got, torch.tensor([1.0, 2.0, 2.2, 2.4, -0.8, -1.5]))


def test_clipped_surrogate_gradient_vanishes_only_where_clipped():
    ratio = torch.tensor([1.5, 1.5, 0.5, 0.5, 1.1])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0])
    log_prob = ratio.log().requires_grad_(True)
    clipped_surrogate_objective(log_prob, torch.zeros(5), adv, 0.2).sum().backward()
    # d/dlogp (r A) = r A where not clipped; 0 where the clip is active.
    torch.testing.assert_close(log_prob.grad, torch.tensor([0.0, -1.5, 0.5, 0.0, 1.1]))


def test_clipped_surrogate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        clipped_surrogate_objective(torch.zeros(3), torch.zeros(3), torch.zeros(4), 0.2)


def test_clipped_value_loss_hand_worked():
    values = torch.tensor([1.0, 3.0, 0.0])
    old = torch.tensor([0.0, 2.9, 0.0])
    targets = torch.tensor([0.0, 0.0, 1.0])
    # sample 0: unclipped 1, clipped (0 + .2 - 0)^2 = .04 -> max 1
    # sample 1: unclipped 9, clipped (2.9 + .1 - 0)^2 = 9 -> 9
    # sample 2: no change in value: both (0 - 1)^2 = 1
    torch.testing.assert_close(clipped_value_loss(values, old, targets, 0.2), torch.tensor([1.0, 9.0, 1.0]))
    torch.testing.assert_close(clipped_value_loss(values, old, targets, None), torch.tensor([1.0, 9.0, 1.0]))
    # Clipping bites when the new value jumps past the target side: old 0, target 1, new 3 vs clipped .2
    torch.testing.assert_close(clipped_value_loss(torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([1.0]), 0.2),
                               torch.tensor([4.0]))
    torch.testing.assert_close(
        clipped_value_loss(torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor([1.0]), 0.2),
        torch.tensor([0.64]))  # max((.5-1)^2=.25, (.2-1)^2=.64)


def test_ppo_loss_combines_terms_with_coefficients():
    torch.manual_seed(0)
    agent = ActorCritic(SpaceInfo(obs_shape=(4,), discrete=True, num_actions=2))
    obs = torch.randn(16, 4)
    actions = torch.randint(0, 2, (16,))
    with torch.no_grad():
        old_lp = agent.dist(obs).log_prob(actions)
        old_v = agent.value(obs)
    adv, targets = torch.randn(16), torch.randn(16)
    kwargs = dict(clip_eps=0.2, clip_value=False, normalize_advantages=False)
    base, stats = ppo_loss(agent, obs, actions, old_lp, adv, old_v, targets, value_coef=0.0, entropy_coef=0.0, **kwargs)
    # Same policy as the data's: ratio 1, so L^CLIP is the mean advantage and KL is 0.
    assert base.item() == pytest.approx(-adv.mean().item(), abs=1e-6)
    assert stats["approx_kl"].item() == pytest.approx(0.0, abs=1e-7)
    full, _ = ppo_loss(agent, obs, actions, old_lp, adv, old_v, targets, value_coef=0.5, entropy_coef=0.01, **kwargs)
    expected = base + 0.5 * (old_v - targets).square().mean() - 0.01 * stats["entropy"]
    assert full.item() == pytest.approx(expected.item(), rel=1e-5)


# -------------------------------------------------------------------- distributions
def test_categorical_matches_torch():
    logits = torch.randn(5, 3)
    ours, ref = Categorical(logits), torch.distributions.Categorical(logits=logits)
    a = torch.tensor([0, 1, 2, 1, 0])
    torch.testing.assert_close(ours.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    assert torch.equal(ours.mode(), logits.argmax(-1))


def test_categorical_sampling_frequencies():
    torch.manual_seed(0)
    probs = torch.tensor([0.1, 0.6, 0.3])
    samples = Categorical(probs.log().expand(200_000, 3)).sample()
    freq = torch.bincount(samples, minlength=3).float() / samples.numel()
    torch.testing.assert_close(freq, probs, atol=5e-3, rtol=0)


def test_gaussian_matches_torch():
    mean, log_std = torch.randn(4, 2), torch.randn(2)
    ours = DiagGaussian(mean, log_std)
    ref = torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)
    a = torch.randn(4, 2)
    torch.testing.assert_close(ours.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(ours.entropy(), ref.entropy())


def test_orthogonal_init_and_small_policy_head():
    agent = ActorCritic(SpaceInfo(obs_shape=(4,), discrete=True, num_actions=2))
    w = agent.actor[0].weight  # [64, 4]: orthonormal columns scaled by gain sqrt(2)
    torch.testing.assert_close(w.T @ w, 2.0 * torch.eye(4), atol=1e-5, rtol=0)
    assert agent.actor[-1].weight.norm() < 0.05  # gain 0.01: the first policy is near uniform


# ------------------------------------------------------------------------- training
SMALL = dict(env_backend="tensor", num_envs=16, num_steps=16, num_epochs=2, num_minibatches=2,
             device="cpu", eval_episodes=4, checkpoint_every=10_000)


def test_train_writes_files_and_summary(tmp_path):
    cfg = PPOConfig(total_steps=2048, **SMALL)
    summary = train(cfg, tmp_path / "run", progress=False)
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("algo", "env", "seed", "total_steps", "eval_return", "train_return", "steps_per_second",
                "wall_seconds", "device", "time_acting", "time_learning"):
        assert key in on_disk, key
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["total_steps"] == 2048 and len(summary["eval_returns"]) == 4
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2048 // 256 and rows[-1]["step"] == 2048
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


@pytest.mark.slow
def test_ppo_learns_cartpole_quickly(median_of_runs):
    """A learning check, not a benchmark: 60k steps lift the return far above a random policy's ~22.

    The median of three seeds, so that it holds on any CPU (whose kernels take another trajectory):
    over seeds 0-14 with one thread and 0-4 with two, single runs gave 146-437; the medians of
    seeds 0-2 were 219 and 261."""
    cfg = PPOConfig(env_backend="tensor", total_steps=60_000, num_envs=64, num_steps=32, num_epochs=4,
                    num_minibatches=2, learning_rate=3e-3, gamma=0.99, gae_lambda=0.9, anneal_clip=False,
                    device="cpu", deterministic=True)
    median, returns = median_of_runs(
        lambda seed: train(cfg.replace(seed=seed), None, progress=False)["train_return"], seeds=(0, 1, 2))
    assert median > 100, returns


def test_gaussian_policy_runs_on_pendulum(tmp_path):
    cfg = PPOConfig(env="Pendulum-v1", total_steps=1024, num_envs=4, num_steps=64, num_epochs=2,
                    num_minibatches=4, gamma=0.9, device="cpu", eval_episodes=2)
    summary = train(cfg, tmp_path / "pendulum", progress=False)
    assert -2000 < summary["eval_return"] < 0
    assert math.isfinite(summary["train_return"])


def test_interrupted_run_resumes_identically(tmp_path):
    """In-process: a run stopped after a checkpoint and resumed equals one that was never stopped."""
    cfg = PPOConfig(total_steps=4096, deterministic=True, **{**SMALL, "checkpoint_every": 1024})
    whole = train(cfg, tmp_path / "whole", progress=False)

    class Stop(Exception):
        pass

    def stop_after_1536(row):
        if row["step"] == 1536:  # after the checkpoint at 1024: 2 rows will be redone
            raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "split", progress=False, callback=stop_after_1536)
    resumed = train(cfg, tmp_path / "split", resume=True, progress=False)
    for key in ("eval_return", "eval_returns", "train_return", "total_steps", "episodes"):
        assert resumed[key] == whole[key], key
    assert resumed["resumes"] == 1

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in ("wall_time", "steps_per_second")} for r in rows]

    from course_lib.core import read_metrics
    assert strip(read_metrics(tmp_path / "split")) == strip(read_metrics(tmp_path / "whole"))


def test_resume_refuses_changed_settings(tmp_path):
    cfg = PPOConfig(total_steps=512, **SMALL)
    train(cfg, tmp_path / "run", progress=False)
    from course_lib.core import ConfigError, RunExists
    with pytest.raises(ConfigError, match=r"gamma \(stored 0.98, given 0.9\)"):
        train(cfg.replace(gamma=0.9), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(RunExists, match="--resume"):
        train(cfg, tmp_path / "run", progress=False)
