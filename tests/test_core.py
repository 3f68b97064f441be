"""Foundations: config validation, atomic checkpoints, metrics log, device and seeding."""
import os
from dataclasses import dataclass

import pytest
import torch

from course_lib.agents.ppo import PPOConfig
from course_lib.core import (Config, ConfigError, EpisodeTracker, MetricsLogger, load_checkpoint, option,
                             read_metrics, resolve_device, rng_state, save_checkpoint, seed_everything,
                             set_rng_state)


@dataclass
class ToyConfig(Config):
    gamma: float = option(0.99, "discount", low=0.0, high=1.0)
    lr: float = option(1e-3, "step size", low=0.0, low_open=True)
    layers: int = option(2, "layers", low=1)
    act: str = option("tanh", "activation", choices=("tanh", "relu"))
    flag: bool = option(False, "a switch")
    kl: float | None = option(None, "optional limit", low=0.0)


ToyConfig.presets = {"fast": {"lr": 1e-2, "layers": 1}}


def test_config_accepts_defaults_and_coerces_numbers():
    cfg = ToyConfig(gamma=1, layers=3.0)
    assert cfg.gamma == 1.0 and isinstance(cfg.gamma, float)
    assert cfg.layers == 3 and isinstance(cfg.layers, int)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"gamma": 1.5}, r"ToyConfig\.gamma = 1\.5 is out of range; accepted: 0\.0 <= gamma <= 1\.0"),
    ({"lr": 0.0}, r"ToyConfig\.lr = 0\.0 is out of range; accepted: lr > 0\.0"),
    ({"layers": 0}, r"ToyConfig\.layers = 0 is out of range; accepted: layers >= 1"),
    ({"layers": 2.5}, r"ToyConfig\.layers = 2\.5 is not accepted; accepted: layers >= 1"),
    ({"act": "gelu"}, r"ToyConfig\.act = 'gelu' is not accepted; accepted: one of tanh, relu"),
    ({"flag": "yes"}, r"ToyConfig\.flag = 'yes' is not accepted; accepted: true or false"),
    ({"gamma": None}, r"ToyConfig\.gamma = None is not accepted"),
    ({"kl": -1.0}, r"ToyConfig\.kl = -1\.0 is out of range; accepted: kl >= 0\.0 or none"),
])
def test_config_errors_name_field_and_accepted_values(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        ToyConfig(**kwargs)


def test_unknown_field_lists_accepted_fields():
    with pytest.raises(ConfigError, match=r"unknown field 'gama' for ToyConfig; accepted: gamma, lr, layers, act, flag, kl"):
        ToyConfig.from_dict({"gama": 0.9})


def test_presets_then_overrides():
    cfg = ToyConfig.from_dict({"layers": 4}, preset="fast")
    assert cfg.lr == 1e-2 and cfg.layers == 4
    with pytest.raises(ConfigError, match=r"unknown preset 'slow' for ToyConfig; accepted: fast"):
        ToyConfig.from_dict({}, preset="slow")


def test_parse_values_from_the_command_line():
    assert ToyConfig.parse_value("flag", "true") is True and ToyConfig.parse_value("flag", "0") is False
    assert ToyConfig.parse_value("layers", "3") == 3 and ToyConfig.parse_value("layers", "1e5") == 100000
    assert ToyConfig.parse_value("kl", "none") is None
    with pytest.raises(ConfigError, match=r"--layers 'three' is not accepted; accepted: layers >= 1"):
        ToyConfig.parse_value("layers", "three")


def test_ppo_cross_field_validation():
    with pytest.raises(ConfigError, match="num_minibatches"):
        PPOConfig(num_envs=3, num_steps=5, num_minibatches=4)
    with pytest.raises(ConfigError, match=r"unknown environment 'Pong-v5'.*accepted: CartPole-v1"):
        PPOConfig(env="Pong-v5")
    with pytest.raises(ConfigError, match="stop_at_target needs"):
        PPOConfig(stop_at_target=True)
    with pytest.raises(ConfigError, match="device"):
        PPOConfig(device="gpu")
    assert PPOConfig.from_dict({}, preset="speed").env_backend == "tensor"


def test_replace_revalidates():
    cfg = ToyConfig()
    assert cfg.replace(lr=0.5).lr == 0.5
    with pytest.raises(ConfigError):
        cfg.replace(gamma=2.0)


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    state = {"model": model.state_dict(), "step": 42, "rng": rng_state()}
    path = save_checkpoint(tmp_path / "ckpt.pt", state)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 42
    torch.testing.assert_close(loaded["model"]["weight"], model.weight.detach())


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})

    def crash(obj, fh, *a, **k):
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1, "the old checkpoint survives a crash during the write"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"], "no temporary file is left behind"


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"checkpoint_version": 99}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="version 99"):
        load_checkpoint(tmp_path / "old.pt")


def test_rng_state_round_trip():
    seed_everything(3)
    saved = rng_state()
    a = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    set_rng_state(saved)
    b = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


# -------------------------------------------------------------------------- metrics
def test_metrics_logger_truncates_to_checkpoint_position(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLogger(path)
    log.log({"step": 1, "x": torch.tensor(0.5)})
    position = log.position()
    log.log({"step": 2, "x": float("nan")})
    log.close()
    resumed = MetricsLogger(path, truncate_to=position)
    resumed.log({"step": 2, "x": 3})
    resumed.close()
    assert read_metrics(path) == [{"step": 1, "x": 0.5}, {"step": 2, "x": 3}]
    assert read_metrics(tmp_path) == read_metrics(path)


def test_episode_tracker():
    tracker = EpisodeTracker(2, torch.device("cpu"), window=3)
    rewards = torch.ones(2)
    for t in range(5):
        tracker.step(rewards, torch.tensor([t == 1, t == 4]))
    assert tracker.drain() == [2.0, 5.0]
    assert tracker.mean_return() == 3.5 and tracker.mean_length() == 3.5
    state = tracker.state_dict()
    other = EpisodeTracker(2, torch.device("cpu"), window=3)
    other.load_state_dict(state)
    assert list(other.recent_returns) == [2.0, 5.0] and other.episodes == 2


# ---------------------------------------------------------------------------- device
def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="accepted: auto, cpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_deterministic_mode_toggles():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


# -------------------------------------------------------------------- normalisation
def test_running_mean_std_matches_batch_statistics():
    from course_lib.normalization import RunningMeanStd
    data = torch.randn(1000, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1]) + 2.0
    rms = RunningMeanStd((3,))
    for chunk in data.split(37):
        rms.update(chunk)
    torch.testing.assert_close(rms.mean, data.mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(rms.var, data.var(0, unbiased=False), rtol=1e-4, atol=0)  # up to the tiny prior


def test_reward_scaler_divides_by_return_std_and_resets_at_episode_end():
    from course_lib.normalization import RewardScaler
    scaler = RewardScaler(2, gamma=0.5)
    ones, never = torch.ones(2), torch.zeros(2, dtype=torch.bool)
    scaler(ones, never)
    assert scaler.returns.tolist() == [1.0, 1.0]
    scaled = scaler(ones, torch.tensor([True, False]))
    # Returns seen so far: 1, 1 then 1.5, 1.5 -> population std 0.25 (the tiny prior count barely matters).
    assert scaled[0].item() == pytest.approx(1 / 0.25, rel=1e-3)
    assert scaler.returns.tolist() == [0.0, 1.5], "the ended episode's return restarts"
    state = scaler.state_dict()
    other = RewardScaler(2, gamma=0.5)
    other.load_state_dict(state)
    torch.testing.assert_close(other(ones, never), scaler(ones, never))
