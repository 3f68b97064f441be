"""The networks shipped in course_lib/pretrained: present, small, loadable, and trained."""
from __future__ import annotations

import torch

from course_lib.agents.muzero import (MuZeroConfig, MuZeroNet, export_network, from_support, latent_recurrent_fn,
                                      latent_root, load_network, train)
from course_lib.evaluation import evaluate_policy
from course_lib.pretrained import COMMANDS, HERE, pretrained_path
from course_lib.search import root_value, search


def test_every_listed_network_is_shipped_and_small():
    files = {path.stem for path in HERE.glob("*.pt")}
    assert files == set(COMMANDS), f"files {sorted(files)} but COMMANDS lists {sorted(COMMANDS)}"
    for name in COMMANDS:
        size = pretrained_path(name).stat().st_size
        assert size < 512 * 1024, f"{name}.pt is {size:,} bytes: ship config and weights only (export_network)"


def test_muzero_export_keeps_config_and_weights_only(tmp_path):
    cfg = MuZeroConfig(total_steps=64, num_envs=4, num_simulations=2, learning_starts=16, batch_size=8,
                       eval_episodes=1, eval_every=0, log_every=32, seed=3)
    train(cfg, out=tmp_path / "run", progress=False)
    path = export_network(tmp_path / "run", tmp_path / "net.pt")
    assert path.stat().st_size < (tmp_path / "run" / "checkpoint.pt").stat().st_size / 10
    loaded_cfg, net = load_network(path)
    assert loaded_cfg == cfg and isinstance(net, MuZeroNet) and not net.training
    run_cfg, run_net = load_network(tmp_path / "run" / "checkpoint.pt")       # a run's checkpoint works too
    assert run_cfg == cfg
    for (name, a), b in zip(net.state_dict().items(), run_net.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_shipped_muzero_cartpole_network_is_trained():
    cfg, net = load_network(pretrained_path("muzero-cartpole"))
    assert cfg.env == "CartPole-v1" and cfg.value_support == 20 and cfg.reward_support == 5

    # Its prior alone balances the pole (an untrained network's falls in about 10 to 30 steps).
    returns = evaluate_policy(lambda obs: latent_root(net, obs.float()).prior_logits.argmax(-1), "CartPole-v1",
                              episodes=8, seed=0, backend="tensor")
    assert sum(returns) / len(returns) >= 400, returns

    # From the start state it predicts rewards near 1 and a value well above 0 (an untrained model
    # predicts about 0 for both; the value lags the returns, about 36 after this short run), and a
    # 32-simulation search over its latent states backs them up into Q values of the same scale.
    root = latent_root(net, torch.tensor([[0.01, 0.0, -0.01, 0.0]]))
    with torch.no_grad():
        _, reward_logits = net.step(root.embedding, torch.tensor([0]))
    assert abs(from_support(reward_logits, net.reward_support).item() - 1.0) < 0.2
    assert 10 < root.value.item() < 260, root.value
    tree = search(root, latent_recurrent_fn(net, cfg.gamma), 32, qtransform="minmax")
    assert 10 < root_value(tree).item() < 260, root_value(tree)
