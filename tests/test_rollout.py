"""The shared rollout collector (PPO's learner, IMPALA's actors) and record_episode."""
import pytest
import torch

from course_lib.core import EpisodeTracker
from course_lib.envs import make_vector_env
from course_lib.nets import ActorCritic
from course_lib.rollout import RolloutStorage, collect_rollout, record_episode


def test_rollout_is_time_major_and_keeps_final_observations_at_episode_ends():
    torch.manual_seed(0)
    envs = make_vector_env("CartPole-v1", 4, seed=0, backend="tensor")
    policy = ActorCritic(envs.spaces)
    episodes = EpisodeTracker(4, torch.device("cpu"))
    obs = envs.reset()
    batch, next_obs = collect_rollout(envs, policy, obs, 60, episodes=episodes, reward_fn=lambda r, done: 2 * r)
    assert batch.obs.shape == (60, 4, 4) and batch.actions.shape == (60, 4) and batch.values.shape == (60, 4)
    assert torch.equal(batch.obs[0], obs) and torch.equal(batch.rewards, 2 * torch.ones(60, 4))
    done = batch.terminated | batch.truncated
    assert done.any(), "a random CartPole policy ends episodes within 60 steps"
    # Inside an episode the next step starts where the last one ended; at an end it starts afresh.
    same = torch.isclose(batch.final_obs[:-1], batch.obs[1:]).all(-1)
    assert same[~done[:-1]].all() and not same[done[:-1]].any()
    # log pi(a|x) as the policy computes it, and returns counted unscaled.
    torch.testing.assert_close(batch.log_probs, policy.dist(batch.obs.flatten(0, 1)).log_prob(
        batch.actions.flatten()).view(60, 4))
    finished = episodes.drain()
    assert len(finished) == int(done.sum()) and all(r == int(r) for r in finished)
    assert next_obs.shape == (4, 4)


def test_storage_is_reused_and_checked():
    envs = make_vector_env("Pendulum-v1", 2, seed=0, backend="tensor")
    policy = ActorCritic(envs.spaces)
    storage = RolloutStorage.for_env(envs, 5, values=False)
    batch, _ = collect_rollout(envs, policy, envs.reset(), 5, storage=storage, values=False)
    assert batch.values is None and batch.actions.shape == (5, 2, 1) and batch.obs.data_ptr() == storage.obs.data_ptr()
    with pytest.raises(ValueError, match="holds 5 steps"):
        collect_rollout(envs, policy, envs.reset(), 6, storage=storage, values=False)
    with pytest.raises(ValueError, match="values=True needs"):
        collect_rollout(envs, policy, envs.reset(), 5, storage=storage)


def test_record_episode_keeps_the_whole_episode():
    episode = record_episode("CartPole-v1", lambda obs: torch.zeros(1, dtype=torch.long), seed=3, render=False)
    T = len(episode.rewards)
    assert episode.terminated and 5 < T < 100          # always pushing left falls over quickly
    assert episode.observations.shape == (T + 1, 4) and episode.actions.shape == (T,) and episode.total_return == T
    try:
        import pygame  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="needs pygame"):
            record_episode("CartPole-v1", lambda obs: torch.zeros(1, dtype=torch.long))
    else:
        drawn = record_episode("CartPole-v1", lambda obs: torch.zeros(1, dtype=torch.long), seed=3)
        assert len(drawn.frames) == T + 1 and drawn.frames[0].shape[-1] == 3
    short = record_episode("Pendulum-v1", lambda obs: torch.zeros(1, 1), max_steps=7, render=False)
    assert len(short.rewards) == 7 and short.frames == [] and not short.terminated
