"""IMPALA: the V-trace loss against the on-policy actor-critic loss, actors and policy lag,
killed and silent actors, resume, the command line, and the Ray backend."""
import importlib.util
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from course_lib.agents import impala_actors
from course_lib.agents.impala import (IMPALAConfig, LaggedWeights, UnrollActor, flat_weights, stack_unrolls, train,
                                      vtrace_loss)
from course_lib.agents.impala_actors import ActorFailure, LocalActorPool, from_wire, import_ray, to_wire
from course_lib.agents.ppo import ActorCritic
from course_lib.core import ConfigError, EpisodeTracker, read_metrics
from course_lib.returns import discounted_returns

# Small runs: 2 actors x 4 envs x 8 steps, 2 unrolls per batch = 64 frames per update.
SMALL = dict(actors=2, envs_per_actor=4, unroll_length=8, batch_unrolls=2, device="cpu", eval_episodes=3)
FRAMES = 64


@pytest.fixture
def watchdog():
    """Fail a test that takes longer than it may, instead of hanging the suite."""
    if not hasattr(signal, "SIGALRM"):  # Windows: no watchdog
        yield lambda seconds: None
        return

    def expire(signum, frame):
        raise TimeoutError("the test ran past its watchdog: something hangs")

    previous = signal.signal(signal.SIGALRM, expire)

    def arm(seconds):
        signal.alarm(seconds)

    yield arm
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def actor_processes():
    return [p for p in multiprocessing.active_children() if p.name.startswith("impala-actor")]


def random_batch(T=6, B=3, seed=0):
    """Unrolls as the learner sees them: next_values[t] is values[t+1] while the episode goes on
    (one critic on consecutive observations), the final observation's own value where it ended."""
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, B, generator=g)
    terminated = torch.rand(T, B, generator=g) < 0.15
    truncated = ~terminated & (torch.rand(T, B, generator=g) < 0.1)
    chain = torch.randn(T + 1, B, generator=g)
    values = chain[:-1].clone().requires_grad_(True)
    next_values = chain[1:].clone()
    done = terminated | truncated
    next_values[done] = torch.randn(int(done.sum()), generator=g)
    logits = torch.randn(T, B, 3, generator=g, requires_grad=True)
    actions = torch.randint(0, 3, (T, B), generator=g)
    return rewards, terminated, truncated, next_values, logits, values, actions


def policy_terms(logits, actions):
    log_pi = torch.log_softmax(logits, -1)
    log_probs = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_pi.exp() * log_pi).sum(-1)
    return log_probs, entropy


# ------------------------------------------------------------------------------- loss
def test_vtrace_loss_on_policy_is_the_actor_critic_loss():
    """pi = mu: rho = c = 1, v_s is the bootstrapped n-step return G_s and the advantage G_s - V(x_s)."""
    rewards, term, trunc, next_values, logits, values, actions = random_batch()
    log_probs, entropy = policy_terms(logits, actions)
    loss, stats = vtrace_loss(log_probs, entropy, values, next_values, log_probs.detach(), rewards, term, trunc,
                              gamma=0.9, value_coef=0.5, entropy_coef=0.01)
    returns = discounted_returns(rewards, term, trunc, next_values, 0.9)
    advantages = returns - values.detach()
    expected = (-(log_probs * advantages).mean() + 0.5 * (returns - values).square().mean()
                - 0.01 * entropy.mean())
    torch.testing.assert_close(loss, expected)
    got_grads = torch.autograd.grad(loss, [logits, values], retain_graph=True)
    want_grads = torch.autograd.grad(expected, [logits, values])
    for got, want in zip(got_grads, want_grads):
        torch.testing.assert_close(got, want)
    assert stats["rho_mean"].item() == pytest.approx(1.0) and stats["rho_clipped_fraction"].item() == 0.0


def test_vtrace_loss_corrects_off_policy_data_and_can_be_switched_off():
    rewards, term, trunc, next_values, logits, values, actions = random_batch(seed=1)
    log_probs, entropy = policy_terms(logits, actions)
    behaviour = log_probs.detach() + 0.5 * torch.randn_like(log_probs)
    kwargs = dict(gamma=0.9, value_coef=0.5, entropy_coef=0.01)
    off, stats = vtrace_loss(log_probs, entropy, values, next_values, behaviour, rewards, term, trunc, **kwargs)
    on, _ = vtrace_loss(log_probs, entropy, values, next_values, log_probs.detach(), rewards, term, trunc, **kwargs)
    uncorrected, stats_off = vtrace_loss(log_probs, entropy, values, next_values, behaviour, rewards, term, trunc,
                                         correct=False, **kwargs)
    assert not torch.allclose(off, on)
    # Without the correction the behaviour policy is taken for the learner's own.
    torch.testing.assert_close(uncorrected, on)
    ratios = (log_probs.detach() - behaviour).exp()
    for s in (stats, stats_off):  # the diagnostics describe the true ratios either way
        assert s["rho_mean"].item() == pytest.approx(ratios.clamp(max=1.0).mean().item())
        assert s["rho_clipped_fraction"].item() == pytest.approx((ratios > 1.0).float().mean().item())


def test_vtrace_loss_one_step_by_hand():
    # One terminal step, r = 1, V = 0, ratio 0.5: rho = 0.5, v_s = V + rho (r - V) = 0.5, A = rho (r - V) = 0.5.
    log_prob = torch.log(torch.tensor([[0.25]])).requires_grad_(True)
    value = torch.zeros(1, 1, requires_grad=True)
    one = torch.ones(1, 1, dtype=torch.bool)
    loss, stats = vtrace_loss(log_prob, torch.zeros(1, 1), value, torch.zeros(1, 1), torch.log(torch.tensor([[0.5]])),
                              torch.ones(1, 1), one, ~one, gamma=0.9, value_coef=1.0, entropy_coef=0.0)
    assert stats["value_loss"].item() == pytest.approx(0.25)   # (0.5 - 0)^2
    assert stats["policy_loss"].item() == pytest.approx(-0.5 * torch.log(torch.tensor(0.25)).item())
    assert stats["rho_mean"].item() == pytest.approx(0.5)
    loss.backward()
    assert log_prob.grad.item() == pytest.approx(-0.5)  # d/dlogpi of -(logpi * A)
    with pytest.raises(ValueError, match="same shape"):
        vtrace_loss(log_prob, torch.zeros(1, 1), value, torch.zeros(1, 1), torch.zeros(2, 1), torch.ones(1, 1),
                    one, ~one, gamma=0.9)


# ----------------------------------------------------------------------------- actors
def test_actor_sends_the_log_probs_of_the_policy_it_used():
    cfg = IMPALAConfig(envs_per_actor=5, unroll_length=40, device="cpu")
    actor = UnrollActor(cfg.to_dict(), actor_id=3, seed=11)
    policy = ActorCritic(actor.envs.spaces)
    torch.manual_seed(0)
    weights = 0.5 * torch.randn_like(flat_weights(policy))  # a policy far from uniform
    torch.nn.utils.vector_to_parameters(weights, policy.parameters())
    actor.load_weights(weights, version=7)
    u = actor.unroll()
    assert u.policy_version == 7 and u.actor_id == 3
    assert u.obs.shape == u.final_obs.shape == (40, 5, 4) and u.actions.shape == (40, 5)
    with torch.no_grad():
        want = policy.dist(u.obs.flatten(0, 1)).log_prob(u.actions.flatten()).view(40, 5)
    torch.testing.assert_close(u.behaviour_log_probs, want)
    # Transitions chain inside episodes: the observation after a_t is x_{t+1}, unless the episode ended.
    done = u.terminated | u.truncated
    torch.testing.assert_close(u.final_obs[:-1][~done[:-1]], u.obs[1:][~done[:-1]])
    assert len(u.episode_returns) == int(done.sum()) == len(u.episode_lengths)
    # Unrolls pickle as NumPy arrays and come back as the same tensors; batches stack side by side.
    back = from_wire(to_wire(u))
    torch.testing.assert_close(back.behaviour_log_probs, u.behaviour_log_probs)
    assert stack_unrolls([u, back], torch.device("cpu"))["obs"].shape == (40, 10, 4)
    actor.close()


def test_episodes_finished_in_actors_are_recorded_by_the_learner():
    tracker = EpisodeTracker(0, torch.device("cpu"), window=3)
    tracker.record([10.0, 20.0], [10, 20])
    tracker.record([30.0, 40.0], [30, 40])
    assert tracker.episodes == 4 and tracker.mean_return() == 30.0 and tracker.mean_length() == 30.0


def test_lagged_weights_publish_the_weights_of_lag_updates_ago():
    lagged = LaggedWeights(3)
    for update in range(10):
        lagged.push(torch.full((2,), float(update)), update)
        weights, version = lagged.published()
        assert version == max(0, update - 3)
        assert weights.tolist() == [float(version)] * 2
    restored = LaggedWeights(3)
    restored.load_state_dict(lagged.state_dict())
    assert restored.published()[1] == 6


def test_lag_injection_gives_the_asked_lag_to_an_actor():
    """Learner and actor in lockstep (no asynchrony): every unroll is exactly policy_lag updates old."""
    cfg = IMPALAConfig(envs_per_actor=2, unroll_length=4, device="cpu")
    actor = UnrollActor(cfg.to_dict(), 0, seed=0)
    agent = ActorCritic(actor.envs.spaces)
    lagged = LaggedWeights(4)
    lagged.push(flat_weights(agent), 0)
    lags = []
    for update in range(12):
        actor.load_weights(*lagged.published())
        lags.append(update - actor.unroll().policy_version)
        with torch.no_grad():  # stands in for a gradient step
            agent.actor[0].bias.add_(0.1)
        lagged.push(flat_weights(agent), update + 1)
    assert lags == [0, 1, 2, 3] + [4] * 8
    actor.close()


# ------------------------------------------------------------------------ config
def test_config_errors_name_the_setting():
    with pytest.raises(ConfigError, match="c_bar = 2.0 must not exceed rho_bar = 1.0"):
        IMPALAConfig(c_bar=2.0)
    with pytest.raises(ConfigError, match="ray_address is used by backend ray only"):
        IMPALAConfig(ray_address="auto")
    with pytest.raises(ConfigError, match="IMPALAConfig.backend = 'gpu' is not accepted; accepted: one of local, ray"):
        IMPALAConfig(backend="gpu")
    with pytest.raises(ConfigError, match="stop_at_target needs a target_return"):
        IMPALAConfig(stop_at_target=True)


def test_missing_ray_is_a_one_line_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert importlib.util.find_spec("ray") is None
    with pytest.raises(ConfigError, match=r'^the ray backend needs Ray, which is not installed: '
                                          r'pip install "course-lib\[ray\]"$'):
        IMPALAConfig(backend="ray")
    with pytest.raises(RuntimeError, match=r'pip install "course-lib\[ray\]"'):
        import_ray()


# ----------------------------------------------------------------------- training
@pytest.mark.slow
def test_killed_and_silent_actors_are_restarted_and_the_run_finishes(watchdog, caplog, monkeypatch):
    """SIGKILL one actor, later freeze (SIGSTOP) them all: the learner restarts them, logs it, never hangs."""
    watchdog(120)
    monkeypatch.setattr(impala_actors, "STARTUP_SECONDS", 10.0)  # a fresh actor's grace before it counts as silent
    cfg = IMPALAConfig(total_steps=FRAMES * 80, actor_timeout=3.0, **SMALL)

    def sabotage(row):
        if row["update"] == 3:
            os.kill(actor_processes()[0].pid, signal.SIGKILL)
        if row["update"] == 40:
            for process in actor_processes():
                os.kill(process.pid, signal.SIGSTOP)

    with caplog.at_level(logging.WARNING, logger="course_lib.impala"):
        start = time.monotonic()
        summary = train(cfg, None, progress=False, callback=sabotage)
    assert summary["total_steps"] == FRAMES * 80 and summary["updates"] == 80
    assert summary["actor_restarts"] >= 2
    assert "was killed by SIGKILL; restarted it" in caplog.text
    assert "sent nothing for 3 s; restarted it" in caplog.text
    assert time.monotonic() - start < 60
    assert actor_processes() == []  # nothing left behind, frozen ones included


@pytest.mark.slow
def test_actors_dying_too_often_stop_the_run_with_a_clear_error(watchdog):
    watchdog(60)
    cfg = IMPALAConfig(total_steps=FRAMES * 200, max_actor_restarts=0, **SMALL)

    def kill_one(row):
        if row["update"] == 2:
            os.kill(actor_processes()[0].pid, signal.SIGKILL)

    with pytest.raises(ActorFailure, match=r"failed 1 times, more than max_actor_restarts = 0; the last: actor \d "
                                           r"was killed by SIGKILL"):
        train(cfg, None, progress=False, callback=kill_one)
    assert actor_processes() == []


def _broken_actor(actor_id, incarnation):
    raise RuntimeError(f"actor {actor_id} has no environment today")


@pytest.mark.slow
def test_actors_that_cannot_start_fail_fast_with_their_error(watchdog, caplog):
    watchdog(60)
    pool = LocalActorPool(_broken_actor, 2, timeout=5.0)
    with caplog.at_level(logging.WARNING, logger="course_lib.impala"), pool:
        pool.publish(torch.zeros(3), 0)
        with pytest.raises(ActorFailure, match=r"fail to start: 2 died before any unroll came.*"
                                               r"if __name__ == \"__main__\""):
            pool.get(1)
    assert "has no environment today" in caplog.text  # the actor's own traceback, in the log
    assert actor_processes() == []


@pytest.mark.slow
def test_resume_continues_the_learner_and_keeps_the_injected_lag(tmp_path, watchdog):
    watchdog(120)
    cfg = IMPALAConfig(total_steps=FRAMES * 16, checkpoint_every=FRAMES * 5, policy_lag=2, **SMALL)

    class Stop(Exception):
        pass

    def stop_after_8(row):
        if row["update"] == 8:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "run", progress=False, callback=stop_after_8)
    assert actor_processes() == []
    summary = train(cfg, tmp_path / "run", resume=True, progress=False)
    assert summary["resumes"] == 1 and summary["updates"] == 16 and summary["total_steps"] == FRAMES * 16
    rows = read_metrics(tmp_path / "run")
    assert [r["update"] for r in rows] == list(range(1, 17))  # rows 6-8 were redone from the checkpoint at 5
    # Actors act with weights at least 2 updates old, before and after the resume (the lag history is restored).
    assert all(r["policy_lag"] >= 2 for r in rows if r["update"] >= 3)
    for key in ("policy_loss", "value_loss", "entropy", "rho_mean", "rho_clipped_fraction", "policy_lag",
                "actor_restarts", "steps_per_second", "episode_return"):
        assert key in rows[-1], key


@pytest.mark.slow
def test_impala_learns_cartpole(watchdog):
    """A learning check, not the benchmark (`python -m course_lib bench impala`): far above random's ~22.

    Asynchronous actors make every run a new trajectory, on any CPU. Over 18 runs (seeds 0-9 with
    10 final episodes, 0-7 with 20) a greedy check on 100 episodes confirmed 200 after 30-41k of
    the 200k steps, and the final evaluation gave 232-500."""
    watchdog(180)
    cfg = IMPALAConfig(total_steps=200_000, device="cpu", eval_episodes=20, eval_every=10_000, target_return=200.0,
                       stop_at_target=True)
    summary = train(cfg, None, progress=False)
    assert summary["steps_to_target"] is not None
    # Stopping early means a greedy check on 100 fresh episodes confirmed the target.
    assert summary["total_steps"] < cfg.total_steps, summary["total_steps"]
    assert summary["eval_return"] > 150, summary["eval_return"]


# ---------------------------------------------------------------------- command line
def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "course_lib", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)


CLI_SMALL = ["--actors", "2", "--envs-per-actor", "4", "--unroll-length", "8", "--batch-unrolls", "2",
             "--device", "cpu", "--eval-episodes", "3", "--quiet"]


@pytest.mark.parametrize("args,expected", [
    (["--actors", "0"], "IMPALAConfig.actors = 0 is out of range; accepted: actors >= 1"),
    (["--backend", "mpi"], "IMPALAConfig.backend = 'mpi' is not accepted; accepted: one of local, ray"),
])
def test_cli_mistakes_print_one_line_and_exit_2(args, expected):
    proc = cli("train", "impala", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"course_lib: error: {expected}", proc.stderr


@pytest.mark.slow
def test_cli_train_writes_the_files(tmp_path):
    out = tmp_path / "run"
    proc = cli("train", "impala", *CLI_SMALL, "--total-steps", FRAMES * 10, "--seed", 4, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "eval_return" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "impala" and summary["seed"] == 4 and summary["backend"] == "local"
    assert summary["total_steps"] == FRAMES * 10 and summary["actor_restarts"] == 0
    assert len(summary["eval_returns"]) == 3 and summary["steps_per_second"] > 0
    assert (out / "checkpoint.pt").is_file() and len(read_metrics(out)) == 10


def _descendants(pid):
    """Processes whose parent chain leads to ``pid`` (Linux /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cli_ctrl_c_checkpoints_and_stops_every_actor(tmp_path):
    out = tmp_path / "run"
    args = ["train", "impala", *CLI_SMALL, "--total-steps", FRAMES * 100_000, "--checkpoint-every", 10**9]
    # Its own session, so that a Ctrl-C can go to the whole group as a terminal sends it.
    proc = subprocess.Popen([sys.executable, "-m", "course_lib", *map(str, args), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "metrics.jsonl").exists() and len(read_metrics(out)) >= 5):
            assert proc.poll() is None and time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.05)
        helpers = _descendants(proc.pid)
        assert len(helpers) >= 2  # the actors (and the fork server)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "continue with --resume" in err
    deadline = time.monotonic() + 10
    while [p for p in helpers if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in helpers if _alive(p)] == []
    # The checkpoint holds the update the run stopped after (resuming is tested in-process above).
    assert len(read_metrics(out)) == torch.load(out / "checkpoint.pt", weights_only=False)["counters"]["iteration"]


# ---------------------------------------------------------------------------- Ray
@pytest.mark.slow
def test_ray_backend_trains_and_survives_a_killed_actor(tmp_path, watchdog, monkeypatch):
    ray = pytest.importorskip("ray")
    watchdog(240)
    # A throwaway local instance: no token file in $HOME (which a CI runner may not let us write), no usage report.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        cfg = IMPALAConfig(backend="ray", total_steps=FRAMES * 40, **SMALL)
        killed = []

        def kill_one(row):
            if row["update"] == 3:
                name = next(n for n in ray.util.list_named_actors() if n.endswith("-actor0.0"))
                ray.kill(ray.get_actor(name))
                killed.append(name)

        summary = train(cfg, tmp_path / "ray", progress=False, callback=kill_one)
        assert killed and summary["actor_restarts"] == 1 and summary["backend"] == "ray"
        assert summary["total_steps"] == FRAMES * 40 and (tmp_path / "ray" / "checkpoint.pt").is_file()
        assert len(read_metrics(tmp_path / "ray")) == 40
        assert not any(n.startswith("impala-") for n in ray.util.list_named_actors())  # all stopped
    finally:
        ray.shutdown()
