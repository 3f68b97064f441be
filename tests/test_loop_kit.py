"""The training-loop kit: counters, stopwatch, device-side means, crossings, the target tracker,
named save/restore and the end-of-iteration tail of Run."""
import dataclasses
import signal
from collections import deque
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from course_lib.core import Config, ConfigError, Run, TrainConfig, option, read_metrics
from course_lib.core.loop import (CONFIRM_EPISODES, CONFIRM_SEED_OFFSET, PERIODIC_EVAL_SEED_STRIDE, Counters,
                                  MeanStats, Stopwatch, TargetTracker, crossed)


@dataclass
class ListConfig(Config):
    temps: tuple[float, ...] = option((1.0, 0.5), "temperatures", low=0.0)
    names: tuple[str, ...] | None = option(None, "names", choices=("a", "b"))


def test_tuple_options_validate_each_item_and_parse_from_the_command_line():
    assert ListConfig(temps=[2, 1]).temps == (2.0, 1.0)
    assert ListConfig.parse_value("temps", "1, 0.5,0.25") == (1.0, 0.5, 0.25)
    assert ListConfig.parse_value("names", "none") is None
    with pytest.raises(ConfigError, match=r"ListConfig\.temps = -1\.0 is out of range"):
        ListConfig(temps=(1.0, -1.0))
    with pytest.raises(ConfigError, match=r"ListConfig\.names = .c. is not accepted; accepted: one of a, b"):
        ListConfig(names=("a", "c"))
    with pytest.raises(ConfigError, match="is empty"):
        ListConfig(temps=())
    with pytest.raises(ConfigError, match=r"--temps '1,x' is not accepted"):
        ListConfig.parse_value("temps", "1,x")


def test_crossed():
    assert crossed(10, 9, 5) and crossed(12, 3, 5) and not crossed(9, 6, 5) and not crossed(100, 0, 0)


def test_counters_round_trip_and_reject_unknown_fields():
    @dataclasses.dataclass
    class Mine(Counters):
        games: int = 0

    c = Mine(step=5, games=2)
    d = Mine()
    d.load_state_dict(c.state_dict())
    assert d == c
    with pytest.raises(KeyError, match="'nope'"):
        d.load_state_dict({"nope": 1})


def test_stopwatch_adds_seconds_to_the_phase():
    c = Counters()
    clock = Stopwatch(c, "cpu")
    with clock("acting"):
        sum(range(10_000))
    assert c.time_acting > 0 and c.time_learning == 0
    with pytest.raises(AttributeError, match="phase 'dreaming'"):
        with clock("dreaming"):
            pass


def test_mean_stats_averages_tensors_and_numbers_and_round_trips():
    s = MeanStats()
    assert s.pop() == {}
    s.add({"loss": torch.tensor(1.0), "n": 2})
    s.add({"loss": torch.tensor(3.0), "n": 4})
    copy = MeanStats("cpu")
    copy.load_state_dict(s.state_dict())
    assert s.pop() == {"loss": 2.0, "n": 3.0} == copy.pop()
    s.add({"critic": torch.tensor(1.0)})
    s.add({"critic": torch.tensor(2.0), "actor": torch.tensor(5.0)})
    assert s.pop() == {"critic": 1.5, "actor": 5.0}  # each averaged over the calls that gave it
    assert s.pop() == {}


class FakeEpisodes:
    def __init__(self, returns):
        self.recent_returns = deque(returns, maxlen=3)

    def mean_return(self):
        return sum(self.recent_returns) / len(self.recent_returns)


def _tracker(evaluations, **cfg):
    fields = dict(seed=1, eval_every=0, eval_episodes=4, target_return=10.0, stop_at_target=True)
    fields.update(cfg)
    cfg = type("Cfg", (), fields)()
    counters = Counters()
    calls = []

    def evaluate(n, seed):
        calls.append((n, seed))
        return evaluations.pop(0)

    return TargetTracker(cfg, counters, lambda: 100.0, evaluate, FakeEpisodes([])), counters, calls


def test_target_on_training_returns_needs_a_full_window_and_a_greedy_confirmation():
    tracker, counters, calls = _tracker([[9.0] * 100, [11.0] * 100], confirm_every=0)
    tracker.episodes.recent_returns.extend([20.0, 20.0])
    counters.step, counters.iteration = 10, 1
    assert not tracker.update(0) and tracker.time_to_target is None  # window not full yet
    tracker.episodes.recent_returns.append(20.0)
    counters.time_evaluating = 30.0
    assert not tracker.update(0)  # reached, but the greedy check says 9 < 10
    assert tracker.steps_to_target == 10 and tracker.time_to_target == 70.0  # evaluation time excluded
    counters.step, counters.iteration = 20, 2
    assert tracker.update(10) and tracker.reached
    assert calls == [(CONFIRM_EPISODES, 1 + CONFIRM_SEED_OFFSET + 1), (CONFIRM_EPISODES, 1 + CONFIRM_SEED_OFFSET + 2)]
    assert tracker.steps_to_target == 10  # the first time counts


def test_target_on_periodic_evaluations_is_its_own_confirmation():
    tracker, counters, calls = _tracker([[5.0] * 4, [12.0] * 4], eval_every=100)
    tracker.episodes.recent_returns.extend([50.0] * 3)  # training returns are ignored with eval_every
    counters.step = 99
    assert not tracker.update(90) and calls == []
    counters.step = 100
    assert not tracker.update(99) and tracker.last_eval == 5.0
    counters.step = 250
    assert tracker.update(150) and tracker.steps_to_target == 250
    assert calls == [(4, 1 + PERIODIC_EVAL_SEED_STRIDE * 1), (4, 1 + PERIODIC_EVAL_SEED_STRIDE * 2)]


def test_target_without_stop_only_records_and_state_round_trips():
    tracker, counters, _ = _tracker([], stop_at_target=False)
    tracker.episodes.recent_returns.extend([20.0] * 3)
    counters.step = 7
    assert not tracker.update(0) and tracker.steps_to_target == 7
    other, _, _ = _tracker([])
    other.load_state_dict(tracker.state_dict())
    assert other.summary() == tracker.summary() == {"target_return": 10.0, "time_to_target": 100.0,
                                                    "steps_to_target": 7}


@dataclass
class TinyConfig(TrainConfig):
    total_steps: int = option(6, "steps", low=1)
    checkpoint_every: int = option(2, "steps between checkpoints", low=1)


def _tiny_train(out, resume=False, interrupt_at=None):
    """A toy 'agent' built on the kit: one Linear layer regressing noise, checkpointed every 2 steps."""
    cfg = TinyConfig(device="cpu", seed=3)
    run = Run(out, "tiny", cfg, resume=resume, progress=False)
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    counters, stats = Counters(), MeanStats()
    saved = run.restore(net=net, optimizer=opt, counters=counters, stats=stats)
    x = saved["x"] if saved else torch.zeros(2)
    with run.loop(cfg.total_steps, counters.step):
        while counters.step < cfg.total_steps:
            previous = counters.step
            x = x + torch.randn(2)
            loss = (net(x) - 1).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            stats.add({"loss": loss})
            counters.step += 1
            if counters.step == interrupt_at:
                signal.raise_signal(signal.SIGINT)  # held until end_iteration
            run.end_iteration(counters.step, previous, {"step": counters.step, **stats.pop()},
                              extra=lambda: {"x": x})
    return run.finish(run.summary(counters, extra_field=1))


def test_run_restores_named_state_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole = _tiny_train(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 3"):
        _tiny_train(tmp_path / "b", interrupt_at=3)
    assert len(read_metrics(tmp_path / "b")) == 3
    resumed = _tiny_train(tmp_path / "b", resume=True)
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")
    assert resumed["resumes"] == 1 and resumed["extra_field"] == 1 and resumed["total_steps"] == 6
    # One schema: every agent's summary has these fields (None where they do not apply).
    for key in ("env", "seed", "total_steps", "updates", "episodes", "eval_return", "evaluation", "train_return",
                "steps_per_second", "wall_seconds", "train_seconds", "time_acting", "time_learning",
                "time_evaluating", "target_return", "time_to_target", "steps_to_target", "device", "config"):
        assert key in whole, key
