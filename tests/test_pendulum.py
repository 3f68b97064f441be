"""The tensor Pendulum against gymnasium's Pendulum-v1: dynamics, reward, time limit, autoreset, registry."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from course_lib.envs import (TENSOR_ENVS, TensorPendulum, UnknownEnvironment, check_env, env_ids,
                             make_vector_env)
from course_lib.evaluation import evaluate_policy


def random_states_and_actions(n, seed):
    g = np.random.default_rng(seed)
    theta = g.uniform(-2 * np.pi, 2 * np.pi, size=n)  # past ±π: the cost must wrap the angle
    theta_dot = g.uniform(-8, 8, size=n)
    theta_dot[: n // 4] = g.uniform(7.5, 8, size=n // 4) * g.choice([-1, 1], size=n // 4)  # near the speed limit
    actions = g.uniform(-3.5, 3.5, size=n)  # about 40% outside [-2, 2]: exercises the torque clip
    return np.stack([theta, theta_dot], axis=1), actions


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_one_step_matches_gymnasium(dtype, tol):
    n = 500
    states, actions = random_states_and_actions(n, seed=1)
    env = gym.make("Pendulum-v1")
    env.reset(seed=0)
    tensor_env = TensorPendulum(n, dtype=dtype)
    tensor_env.reset()
    tensor_env.state = torch.as_tensor(states, dtype=dtype)
    action_batch = torch.as_tensor(actions, dtype=dtype).unsqueeze(-1)  # [N, 1]
    costs = tensor_env.cost(tensor_env.state, action_batch[:, 0])
    result = tensor_env.step(action_batch)
    assert result.obs.dtype == result.reward.dtype == torch.float32
    speed_clipped = 0
    for i in range(n):
        env.reset()  # restarts TimeLimit's step count, which 500 steps would otherwise pass
        env.unwrapped.state = states[i].copy()
        # A float64 action, so gymnasium computes u**2 in float64 too.
        obs, reward, terminated, truncated, _ = env.step(np.array([actions[i]]))
        assert not terminated and not truncated
        # The state after the step, before any reset (one step from step 0 never truncates).
        np.testing.assert_allclose(tensor_env.state[i].double().numpy(), env.unwrapped.state, atol=tol, rtol=0)
        np.testing.assert_allclose(-float(costs[i]), reward, atol=tol, rtol=0)
        # Observations and rewards are float32: compare at float32 precision.
        np.testing.assert_allclose(result.final_obs[i].numpy(), obs, atol=max(tol, 1e-6), rtol=0)
        np.testing.assert_allclose(float(result.reward[i]), reward, atol=max(tol, 1e-5), rtol=1e-6)
        speed_clipped += abs(env.unwrapped.state[1]) == 8.0
    torques_clipped = int((np.abs(actions) > 2).sum())
    assert 100 < torques_clipped < 400 and speed_clipped > 20  # the sample reaches both clips
    assert not result.terminated.any() and not result.truncated.any()
    torch.testing.assert_close(result.obs, result.final_obs, rtol=0, atol=0)


def test_episode_matches_gymnasium_until_truncation():
    """200 steps of one fixed (partly out-of-range) action sequence: the same states at every step
    in float64, never terminated, truncated exactly at step 200."""
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=123)
    tensor_env = TensorPendulum(1, dtype=torch.float64)
    tensor_env.reset()
    tensor_env.state = torch.as_tensor(env.unwrapped.state, dtype=torch.float64).unsqueeze(0)
    actions = np.random.default_rng(4).uniform(-3, 3, size=250)
    total, tensor_total = 0.0, 0.0
    for t in range(250):
        obs, reward, terminated, truncated, _ = env.step(np.array([actions[t]]))
        result = tensor_env.step(torch.tensor([[actions[t]]], dtype=torch.float64))
        np.testing.assert_array_equal(result.final_obs[0].numpy(), obs, err_msg=f"step {t + 1}")
        np.testing.assert_allclose(float(result.reward[0]), reward, rtol=1e-6, atol=1e-6, err_msg=f"step {t + 1}")
        assert not bool(result.terminated[0]) and not terminated
        assert bool(result.truncated[0]) == truncated, f"step {t + 1}"
        total += reward
        tensor_total += float(result.reward[0])
        if truncated:
            break
        np.testing.assert_allclose(tensor_env.state[0].numpy(), env.unwrapped.state, atol=1e-12, rtol=0)
    assert t + 1 == TensorPendulum.max_episode_steps == 200 and truncated
    np.testing.assert_allclose(tensor_total, total, rtol=1e-5)
    # The tensor env reset itself in the same step: a fresh start, step counter back to 0.
    assert tensor_env.steps[0] == 0
    assert abs(float(result.obs[0, 2])) <= 1.0 and not torch.equal(result.obs, result.final_obs)


def test_auto_reset_in_same_step():
    n = 256
    env = TensorPendulum(n, seed=0)
    env.reset()
    g = torch.Generator().manual_seed(1)
    for _ in range(199):
        result = env.step(torch.rand(n, 1, generator=g) * 4 - 2)
        assert not result.truncated.any() and not result.terminated.any()
    # The random torques spin some pendulums up well past the start speeds.
    assert (result.obs[:, 2].abs() > 1).sum() > n // 4
    action = torch.rand(n, 1, generator=g) * 4 - 2
    expected_final = env.observation(env.dynamics(env.state, action[:, 0]))
    result = env.step(action)
    assert result.truncated.all() and not result.terminated.any()
    torch.testing.assert_close(result.final_obs, expected_final, rtol=0, atol=0)
    # Every episode restarts from gymnasium's start distribution: θ̇ in [-1, 1], a unit (cos θ, sin θ).
    assert (result.obs[:, 2].abs() <= 1).all()
    torch.testing.assert_close(result.obs[:, :2].square().sum(-1), torch.ones(n))
    assert (result.obs != result.final_obs).any(-1).all()
    assert (env.steps == 0).all()
    # Episodes out of step with each other: only those at the limit reset.
    env.steps[::2] = TensorPendulum.max_episode_steps - 1
    result = env.step(torch.zeros(n, 1))
    assert torch.equal(result.truncated, torch.arange(n) % 2 == 0)
    torch.testing.assert_close(result.obs[1::2], result.final_obs[1::2], rtol=0, atol=0)
    assert (result.obs[::2] != result.final_obs[::2]).any(-1).all()


def test_reset_draws_gymnasiums_start_distribution():
    env = TensorPendulum(4096, seed=3)
    obs = env.reset()
    theta, theta_dot = env.state.unbind(-1)
    assert theta.abs().max() <= np.pi and theta.min() < -3.0 and theta.max() > 3.0
    assert theta_dot.abs().max() <= 1 and theta_dot.min() < -0.95 and theta_dot.max() > 0.95
    assert abs(float(theta.mean())) < 0.1 and abs(float(theta_dot.mean())) < 0.05
    torch.testing.assert_close(obs, torch.stack((theta.cos(), theta.sin(), theta_dot), -1))
    assert not torch.equal(obs, TensorPendulum(4096, seed=4).reset())
    assert torch.equal(obs, TensorPendulum(4096, seed=3).reset())


def test_tensor_env_state_dict_round_trip():
    a = TensorPendulum(16, seed=5)
    a.reset()
    for _ in range(7):
        a.step(torch.rand(16, 1) * 6 - 3)
    saved = a.state_dict()
    b = TensorPendulum(16, seed=99)
    b.load_state_dict(saved)
    # Long enough to pass the time limit, so the restored generator draws the new starts.
    truncations = 0
    for act in torch.rand(250, 16, 1) * 6 - 3:
        ra, rb = a.step(act), b.step(act)
        for field_a, field_b in zip(ra, rb):
            assert torch.equal(field_a, field_b)
        truncations += int(ra.truncated.sum())
    assert truncations == 16


def test_action_shapes():
    env = TensorPendulum(4, dtype=torch.float64)
    env.reset()
    saved = env.state_dict()
    flat = env.step(torch.tensor([0.5, -1.0, 3.0, -3.0]))
    env.load_state_dict(saved)
    column = env.step(torch.tensor([[0.5], [-1.0], [3.0], [-3.0]]))
    for x, y in zip(flat, column):
        assert torch.equal(x, y)
    with pytest.raises(ValueError, match=r"shape \[4, 1\] or \[4\]; got \[4, 2\]"):
        env.step(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"got \[3, 1\]"):
        env.step(torch.zeros(3, 1))


def test_registry_and_make_vector_env():
    assert TENSOR_ENVS["Pendulum-v1"] is TensorPendulum
    assert env_ids("tensor") == ["CartPole-v1", "Pendulum-v1"]
    check_env("Pendulum-v1", "tensor")
    with pytest.raises(UnknownEnvironment, match="for backend 'tensor'; accepted: CartPole-v1, Pendulum-v1"):
        check_env("Acrobot-v1", "tensor")
    env = make_vector_env("Pendulum-v1", 4, seed=0, backend="tensor")
    assert isinstance(env, TensorPendulum) and env.num_envs == 4
    assert env.spaces == make_vector_env("Pendulum-v1", 2, seed=0).spaces  # what gymnasium's spaces say
    obs = env.reset()
    assert obs.shape == (4, 3) and obs.dtype == torch.float32
    result = env.step(torch.zeros(4, 1))
    assert result.reward.shape == result.terminated.shape == result.truncated.shape == (4,)
    assert result.reward.dtype == torch.float32 and (result.reward <= 0).all()
    assert result.final_obs.shape == (4, 3)


def test_evaluate_runs_whole_episodes():
    returns = evaluate_policy(lambda obs: torch.zeros(len(obs), 1), "Pendulum-v1", episodes=8, seed=0,
                              backend="tensor")
    # 200 steps, each costing between 0 and π² + 0.1·8² (with no torque).
    assert len(returns) == 8 and all(-200 * (np.pi ** 2 + 6.4) <= r < 0 for r in returns)
    assert len(set(returns)) == 8


def test_tensor_env_on_cuda_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu, cuda = TensorPendulum(64, dtype=torch.float64), TensorPendulum(64, device="cuda", dtype=torch.float64)
    obs = cuda.reset()
    assert obs.device.type == "cuda"
    cpu.reset()
    cpu.state = cuda.state.cpu()
    action = torch.rand(64, 1) * 6 - 3
    rc, rg = cpu.step(action), cuda.step(action.cuda())
    assert rg.reward.device.type == rg.truncated.device.type == "cuda"
    torch.testing.assert_close(rg.final_obs.cpu(), rc.final_obs, rtol=0, atol=1e-6)
    torch.testing.assert_close(rg.reward.cpu(), rc.reward, rtol=1e-6, atol=1e-5)
