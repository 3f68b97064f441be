"""Environments: the tensor CartPole against gymnasium, and the gymnasium adapter's autoreset handling."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from course_lib.envs import GymVectorEnv, TensorCartPole, UnknownEnvironment, check_env, make_vector_env
from course_lib.evaluation import evaluate_policy


def gym_cartpole():
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    return env


def random_states(n, seed):
    g = np.random.default_rng(seed)
    # Spread over (and a little past) the region where episodes live, so some steps terminate.
    return g.uniform([-2.5, -3, -0.25, -3.5], [2.5, 3, 0.25, 3.5], size=(n, 4))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_one_step_matches_gymnasium(dtype, tol):
    env = gym_cartpole()
    states = random_states(500, seed=1)
    actions = np.random.default_rng(2).integers(0, 2, size=500)
    tensor_env = TensorCartPole(500, dtype=dtype)
    tensor_env.reset()
    tensor_env.state = torch.as_tensor(states, dtype=dtype)
    result = tensor_env.step(torch.as_tensor(actions))
    terminated_seen = 0
    for i in range(500):
        env.unwrapped.state = states[i].copy()
        env.unwrapped.steps_beyond_terminated = None
        obs, reward, terminated, truncated, _ = env.step(int(actions[i]))
        np.testing.assert_allclose(result.final_obs[i].double().numpy(), obs, atol=tol, rtol=0)
        assert bool(result.terminated[i]) == terminated, f"state {states[i]}, action {actions[i]}"
        assert float(result.reward[i]) == reward
        terminated_seen += terminated
    assert 20 < terminated_seen < 480  # the sample covers both outcomes


def test_episode_matches_gymnasium_until_truncation():
    """A balancing controller keeps the pole up for the full 500 steps in both; same states, same truncation."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=123)
    tensor_env = TensorCartPole(1, dtype=torch.float64)
    tensor_env.reset()
    tensor_env.state = torch.as_tensor(env.unwrapped.state, dtype=torch.float64).unsqueeze(0)
    for t in range(500):
        x, x_dot, theta, theta_dot = obs
        action = int(theta + 0.3 * theta_dot + 0.01 * x + 0.05 * x_dot > 0)
        obs, reward, terminated, truncated, _ = env.step(action)
        result = tensor_env.step(torch.tensor([action]))
        np.testing.assert_allclose(result.final_obs[0].numpy(), obs, atol=1e-5, rtol=0)
        assert bool(result.terminated[0]) == terminated and bool(result.truncated[0]) == truncated, t
        if terminated or truncated:
            break
    assert t == 499 and truncated and not terminated, "controller should survive until the time limit"
    # The tensor env reset itself in the same step: a fresh start, step counter back to 0.
    assert tensor_env.steps[0] == 0
    assert result.obs[0].abs().max() <= 0.05


def test_auto_reset_in_same_step():
    env = TensorCartPole(64, seed=0)
    env.reset()
    pushes = torch.ones(64, dtype=torch.long)  # always push right: the pole falls within ~10 steps
    for _ in range(30):
        result = env.step(pushes)
        if result.terminated.any():
            break
    done = result.terminated
    assert done.any()
    final = result.final_obs[done]
    assert ((final[:, 2].abs() > TensorCartPole.theta_threshold) | (final[:, 0].abs() > TensorCartPole.x_threshold)).all()
    assert (result.obs[done].abs() <= 0.05).all(), "ended episodes restart from a fresh initial state"
    torch.testing.assert_close(result.obs[~done], result.final_obs[~done])


def test_tensor_env_state_dict_round_trip():
    a = TensorCartPole(16, seed=5)
    a.reset()
    for _ in range(7):
        a.step(torch.randint(0, 2, (16,)))
    saved = a.state_dict()
    steps_then = saved["steps"].clone()
    a.step(torch.randint(0, 2, (16,)))
    assert torch.equal(saved["steps"], steps_then), "a saved state must not change as the env steps on"
    a.load_state_dict(saved)
    b = TensorCartPole(16, seed=99)
    b.load_state_dict(saved)
    actions = torch.randint(0, 2, (40, 16))
    for act in actions:
        ra, rb = a.step(act), b.step(act)
        torch.testing.assert_close(ra.obs, rb.obs)
        assert torch.equal(ra.truncated, rb.truncated) and torch.equal(ra.terminated, rb.terminated)


def test_gym_adapter_transitions_are_real():
    """Every (obs, action, reward, final_obs) the adapter returns is a real CartPole transition:
    no step after a done that ignores the action, and final_obs is the true last observation."""
    n, seed = 3, 10
    adapter = make_vector_env("CartPole-v1", n, seed=seed)
    singles = [gym.make("CartPole-v1") for _ in range(n)]
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    obs = adapter.reset()
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(300):
        actions = rng.integers(0, 2, size=n)
        for i in range(n):
            np.testing.assert_allclose(obs[i].numpy(), single_obs[i], atol=1e-6)
        result = adapter.step(torch.as_tensor(actions))
        for i, env in enumerate(singles):
            o, r, term, trunc, _ = env.step(int(actions[i]))
            np.testing.assert_allclose(result.final_obs[i].numpy(), o, atol=1e-6)
            assert float(result.reward[i]) == r == 1.0
            assert bool(result.terminated[i]) == term and bool(result.truncated[i]) == trunc
            if term or trunc:
                ends += 1
                o, _ = env.reset()
            single_obs[i] = o
        obs = result.obs
    assert ends >= 10


def test_gym_adapter_refuses_next_step_autoreset():
    env = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")  # gymnasium's default NEXT_STEP
    with pytest.raises(ValueError, match="SAME_STEP"):
        GymVectorEnv(env, seed=0)


def test_gym_adapter_state_dict_round_trip():
    a = make_vector_env("CartPole-v1", 4, seed=3)
    a.reset()
    for _ in range(30):
        a.step(torch.randint(0, 2, (4,)))
    b = make_vector_env("CartPole-v1", 4, seed=77)
    b.reset()
    b.load_state_dict(a.state_dict())
    for _ in range(60):
        act = torch.randint(0, 2, (4,))
        ra, rb = a.step(act), b.step(act)
        torch.testing.assert_close(ra.obs, rb.obs)
        torch.testing.assert_close(ra.final_obs, rb.final_obs)


def test_continuous_env_through_adapter():
    env = make_vector_env("Pendulum-v1", 2, seed=0)
    assert not env.spaces.discrete and env.spaces.action_dim == 1 and env.spaces.action_high == (2.0,)
    obs = env.reset()
    assert obs.shape == (2, 3)
    result = env.step(torch.zeros(2, 1))
    assert result.reward.dtype == torch.float32 and result.reward.shape == (2,)


def test_unknown_environment_lists_accepted():
    with pytest.raises(UnknownEnvironment, match="accepted: CartPole-v1"):
        check_env("CartPole-v9", "gymnasium")
    with pytest.raises(UnknownEnvironment, match="for backend 'tensor'; accepted: CartPole-v1, Pendulum-v1"):
        make_vector_env("Acrobot-v1", 2, seed=0, backend="tensor")
    with pytest.raises(UnknownEnvironment, match="backend"):
        check_env("CartPole-v1", "jax")


@pytest.mark.parametrize("backend", ["gymnasium", "tensor"])
def test_evaluate_counts_first_episode_only(backend):
    # Always pushing left ends every episode within a few dozen steps.
    returns = evaluate_policy(lambda obs: torch.zeros(len(obs), dtype=torch.long), "CartPole-v1",
                              episodes=6, seed=0, backend=backend)
    assert len(returns) == 6
    assert all(5 <= r <= 40 for r in returns), returns


def test_tensor_env_on_cuda_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    env = TensorCartPole(8, device="cuda")
    obs = env.reset()
    assert obs.device.type == "cuda"
    assert env.step(torch.ones(8, dtype=torch.long, device="cuda")).reward.device.type == "cuda"
