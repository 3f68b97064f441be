"""load_agent: config and networks of any trained agent from its run directory, in one call."""
import pytest
import torch

from course_lib.agents import ALGORITHMS, load_agent
from course_lib.pretrained import pretrained_path

TINY = {
    "ppo": dict(env_backend="tensor", num_envs=8, num_steps=8, total_steps=64, num_epochs=1, eval_episodes=1),
    "sac": dict(total_steps=40, learning_starts=20, batch_size=8, hidden_size=8, eval_episodes=1, log_every=20),
    "alphazero": dict(total_steps=64, num_envs=32, num_simulations=2, batch_size=16, eval_episodes=1,
                      eval_simulations=2, channels=4, blocks=1, log_every=32),
    "muzero": dict(total_steps=64, num_envs=8, num_simulations=2, learning_starts=16, batch_size=8, eval_episodes=1,
                   eval_every=0, log_every=32, hidden_size=8, latent_size=8),
    "alphago": dict(expert_games=20, sl_steps=2, rl_iterations=1, rl_games=4, value_games=20, value_steps=2,
                    batch_size=8, hidden=8, simulations=(2,), rollout_mix=0.0, eval_episodes=1),
    "vit": dict(epochs=1, d_model=16, n_heads=2, n_layers=1, eval_every=0),
}


@pytest.mark.parametrize("algo", sorted(TINY))
def test_load_agent_rebuilds_the_trained_networks(algo, tmp_path):
    module = ALGORITHMS[algo].load()
    cfg = ALGORITHMS[algo].config_class.from_dict({**TINY[algo], "device": "cpu"})
    module.train(cfg, tmp_path / "run", progress=False)
    agent = load_agent(tmp_path / "run")
    assert agent.algo == algo and agent.config == cfg
    stored = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    weights = stored["networks"] if algo == "alphago" else stored
    assert agent.nets, algo
    for name, net in agent.nets.items():
        assert not net.training
        for key, value in net.state_dict().items():
            assert torch.equal(value, weights[name][key]), (name, key)


def test_load_agent_reads_the_shipped_pretrained_networks_and_names_mistakes(tmp_path):
    agent = load_agent(pretrained_path("alphazero-tictactoe"))
    assert agent.algo == "alphazero" and agent.config.env == "tictactoe" and agent.steps > 0
    assert agent.net is agent.nets["net"]
    with pytest.raises(AttributeError, match="has no network 'actor'; it has: net"):
        agent.actor
    with pytest.raises(FileNotFoundError, match="no trained agent"):
        load_agent(tmp_path)
