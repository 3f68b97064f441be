r"""IMPALA: Importance Weighted Actor-Learner Architecture (Espeholt et al., 2018).

Acting and learning are decoupled. Actors run a copy of the policy that may be a few
updates old (the behaviour policy :math:`\mu`) and send fixed-length unrolls, with the
probability :math:`\mu(a_t|x_t)` of every action they took, to one learner. The learner
trains the current policy :math:`\pi` on them and publishes new weights; the actors pick
them up at the start of their next unroll::

    each actor (a process, or a Ray actor)          the learner (this process)
        repeat                                          repeat
            mu <- newest published weights                 take batch_unrolls unrolls, as they arrive
            run n steps in its envs, keep log mu(a|x)       V-trace targets v_s and advantages      (returns.vtrace)
            send the unroll                                 one gradient step on the V-trace loss   (vtrace_loss)
                                                            publish the new weights
                                                        until total steps reached (or the return target is met)

By the time an unroll is learned from, the learner has moved on: the *policy lag* is
the number of updates between the weights that acted and the weights that learn. The
data are off-policy, and V-trace corrects for it with truncated importance weights
:math:`\rho_t = \min(\bar\rho, \pi/\mu)`, :math:`c_t = \min(\bar c, \pi/\mu)`. The loss on a
batch of unrolls is the lecture's

.. math::
    \mathcal L = c_V\,\mathbb E\big[(v_s - V(x_s))^2\big]
        - \mathbb E\big[\rho_s \log\pi(a_s|x_s)\,(r_s + \gamma v_{s+1} - V(x_s))\big]
        - \eta\,\mathbb E\big[\mathcal H(\pi(\cdot|x_s))\big] .

Two settings exist for teaching: ``policy_lag`` makes the actors act with the weights of
that many updates ago (extra lag on top of the natural one), and ``vtrace=False`` drops
the correction (:math:`\rho = c = 1`, as if the data were on-policy), so a notebook can
show what V-trace corrects.

Where the actors run is the ``backend`` (:mod:`course_lib.agents.impala_actors`):
``local`` processes on this machine, or ``ray`` actors on a local Ray instance or a
cluster (``ray_address``). Either way an actor that dies is restarted while the learner
goes on with the others; the restarts are logged and counted.

Resuming restores the learner (network, optimiser, counters, RNGs, metrics); the actors
start afresh with new environment seeds. Asynchronous actors are not deterministic
anyway: which unrolls make up a batch depends on timing, so two runs with one seed differ.

Actor processes import the script that started them, as all of Python's multiprocessing
does: a script (not a notebook, not ``python -m course_lib``) must call :func:`train`
under ``if __name__ == "__main__":``.
"""
from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from ..core import Callback, ConfigError, EpisodeTracker, Run, option
from ..core.loop import Counters, Stopwatch, TargetTracker
from ..envs import SpaceInfo, env_spaces, make_vector_env
from ..evaluation import evaluate_policy
from ..nets import ActorCritic
from ..returns import vtrace
from ..rollout import collect_rollout
from .base import ReturnConfig
from .impala_actors import ACTOR_BACKENDS, check_backend, make_actor_pool

__all__ = ["IMPALAConfig", "Unroll", "UnrollActor", "LaggedWeights", "vtrace_loss", "build_networks", "train",
           "BENCHMARKS"]

# After a greedy check that did not confirm the target, wait this many steps before the next one.
CONFIRM_INTERVAL = 10_000


@dataclass
class IMPALAConfig(ReturnConfig):
    """IMPALA's hyper-parameters. Defaults are tuned for CartPole-v1 on a 2-core CPU."""

    total_steps: int = option(500_000, "environment frames for the learner to consume", low=1)
    backend: str = option("local", "where actors run: local processes, or Ray actors", choices=ACTOR_BACKENDS)
    ray_address: str | None = option(None, "Ray cluster to join ('auto', 'ray://host:10001'); none starts a "
                                           "local Ray instance (backend ray only)")
    actors: int = option(2, "actors, each with its own environments and copy of the policy", low=1)
    envs_per_actor: int = option(16, "environments per actor", low=1)
    unroll_length: int = option(16, "steps n per unroll", low=1)
    batch_unrolls: int = option(4, "unrolls per learner batch", low=1)
    actor_queue: int = option(1, "unrolls an actor may send ahead of the learner (bounds the natural lag)", low=1)
    policy_lag: int = option(0, "extra policy lag: actors act with the weights of this many updates ago", low=0)
    vtrace: bool = option(True, "correct for policy lag with V-trace (false: ρ = c = 1, as if on-policy)")
    rho_bar: float = option(1.0, "truncation ρ̄ of the importance weights", low=0.0, low_open=True)
    c_bar: float = option(1.0, "truncation c̄ of the traces (c̄ <= ρ̄)", low=0.0, low_open=True)
    gamma: float = option(0.99, "discount factor γ", low=0.0, high=1.0)
    reward_scale: float = option(0.1, "the learner multiplies rewards by this, keeping values of order 1 "
                                      "(returns are reported unscaled)", low=0.0, low_open=True)
    learning_rate: float = option(2e-3, "Adam step size", low=0.0, low_open=True)
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0 over total_steps")
    value_coef: float = option(0.5, "value-loss coefficient c_V", low=0.0)
    entropy_coef: float = option(0.01, "entropy-bonus coefficient η", low=0.0)
    max_grad_norm: float = option(0.5, "clip the gradient's global norm to this", low=0.0, low_open=True)
    hidden_size: int = option(64, "units per hidden layer (policy and value)", low=1)
    hidden_layers: int = option(2, "hidden layers (policy and value)", low=1)
    activation: str = option("tanh", "hidden activation", choices=("tanh", "relu", "silu", "elu"))
    checkpoint_every: int = option(100_000, "checkpoint every this many steps (and at the end)", low=1)
    actor_timeout: float = option(60.0, "seconds the learner waits on an actor that sends nothing before "
                                        "restarting it (a starting actor gets at least 120 s)", low=0.0,
                                  low_open=True)
    max_actor_restarts: int = option(10, "actor restarts after which the run stops with an error", low=0)

    def validate(self) -> None:
        super().validate()
        if self.c_bar > self.rho_bar:
            raise ConfigError(f"c_bar = {self.c_bar} must not exceed rho_bar = {self.rho_bar}; accepted: "
                              "c_bar <= rho_bar")
        if self.ray_address is not None and self.backend != "ray":
            raise ConfigError(f"ray_address is used by backend ray only; accepted: --backend ray with "
                              f"--ray-address, or no --ray-address (backend is {self.backend!r})")
        try:
            check_backend(self.backend)
        except RuntimeError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def frames_per_unroll(self) -> int:
        return self.unroll_length * self.envs_per_actor

    @property
    def batch_frames(self) -> int:
        return self.batch_unrolls * self.frames_per_unroll


IMPALAConfig.presets = {}

# What `python -m course_lib bench impala` runs: (preset or None for defaults, extra options).
BENCHMARKS = {
    "default": (None, {"target_return": 475.0, "stop_at_target": True, "eval_every": 25_000}),
}


# ----------------------------------------------------------------------------- actors
class Unroll(NamedTuple):
    """``n`` steps of one actor in its ``E`` environments, time-major: what it sends the learner.

    ``final_obs[t]`` is the observation :math:`a_t` led to (the episode's last one where it
    ended), so ``V(final_obs)`` is :math:`V(x_{t+1})` for every step, the unroll's last included.
    """

    obs: torch.Tensor                  # [n, E, *obs_shape] x_t
    actions: torch.Tensor              # [n, E] (or [n, E, d]) a_t ~ mu(.|x_t)
    behaviour_log_probs: torch.Tensor  # [n, E] log mu(a_t|x_t)
    rewards: torch.Tensor              # [n, E] r_t
    terminated: torch.Tensor           # [n, E] bool
    truncated: torch.Tensor            # [n, E] bool
    final_obs: torch.Tensor            # [n, E, *obs_shape] x_{t+1} before any reset
    policy_version: int                # the learner's update count when the acting weights were published
    actor_id: int
    episode_returns: list[float]       # episodes that ended during the unroll
    episode_lengths: list[int]


class UnrollActor:
    """One actor: its environments and its copy of the policy (always on the CPU).

    The backends run one of these per process or Ray actor; tests run it in-process.
    ``load_weights`` installs published weights, ``unroll`` plays ``unroll_length`` steps
    and returns them with the log-probabilities of the actions under the policy that chose them.
    """

    def __init__(self, config: Mapping[str, Any], actor_id: int, seed: int):
        cfg = config if isinstance(config, IMPALAConfig) else IMPALAConfig.from_dict(config)
        self.actor_id = actor_id
        self.unroll_length = cfg.unroll_length
        self.envs = make_vector_env(cfg.env, cfg.envs_per_actor, seed=seed, backend=cfg.env_backend)
        self.policy = build_networks(cfg, self.envs.spaces)["agent"]
        self.policy_version = -1
        self.obs = self.envs.reset()
        self.episodes = EpisodeTracker(cfg.envs_per_actor, torch.device("cpu"), window=1)

    def load_weights(self, flat: torch.Tensor, version: int) -> None:
        """Install the learner's weights (a flat vector, as :func:`flat_weights` makes them)."""
        nn.utils.vector_to_parameters(torch.as_tensor(flat, dtype=torch.float32), self.policy.parameters())
        self.policy_version = version

    @torch.no_grad()
    def unroll(self) -> Unroll:
        # Fresh tensors each time: the unroll is sent away while the next one is collected.
        rollout, self.obs = collect_rollout(self.envs, self.policy, self.obs, self.unroll_length, values=False,
                                            episodes=self.episodes)
        returns, lengths = self.episodes.drain(with_lengths=True)
        return Unroll(rollout.obs, rollout.actions, rollout.log_probs, rollout.rewards, rollout.terminated,
                      rollout.truncated, rollout.final_obs, self.policy_version, self.actor_id, returns, lengths)

    def close(self) -> None:
        self.envs.close()


def flat_weights(agent: nn.Module) -> torch.Tensor:
    """All parameters as one flat CPU float32 vector: what the learner publishes."""
    return nn.utils.parameters_to_vector(agent.parameters()).detach().to("cpu", torch.float32)


class LaggedWeights:
    """The weights actors are given: the learner's from ``lag`` updates ago (``lag=0``: the newest).

    This injects policy lag on purpose, on top of the lag that asynchrony brings: after
    update ``u`` the published weights are those of update ``max(0, u - lag)``.
    """

    def __init__(self, lag: int):
        if lag < 0:
            raise ValueError(f"lag must be >= 0; got {lag}")
        self.lag = lag
        self._history: collections.deque[tuple[torch.Tensor, int]] = collections.deque(maxlen=lag + 1)

    def push(self, weights: torch.Tensor, version: int) -> None:
        self._history.append((weights.clone(), version))

    def published(self) -> tuple[torch.Tensor, int]:
        """(weights, version) to hand to the actors now."""
        return self._history[0]

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self._history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._history.clear()
        self._history.extend(state["history"])


# ------------------------------------------------------------------------------- loss
def vtrace_loss(
    log_probs: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
    behaviour_log_probs: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
    *, gamma: float, rho_bar: float = 1.0, c_bar: float = 1.0, correct: bool = True, value_coef: float = 0.5,
    entropy_coef: float = 0.01,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""The IMPALA loss on a batch of unrolls, and diagnostics.

    .. math::
        \text{loss} = c_V\,\overline{(v_s - V(x_s))^2}
            - \overline{\log\pi(a_s|x_s)\,\rho_s\big(r_s + \gamma v_{s+1} - V(x_s)\big)}
            - \eta\,\overline{\mathcal H(\pi(\cdot|x_s))}

    with :math:`v_s` and the advantage from :func:`course_lib.returns.vtrace` and
    :math:`\log\rho_s = \log\pi(a_s|x_s) - \log\mu(a_s|x_s)`. Targets and advantages carry
    no gradient; gradients flow through ``log_probs``, ``values`` and ``entropy``.
    ``correct=False`` drops the correction: :math:`\rho = c = 1`, the behaviour policy
    taken for the learner's own. With :math:`\pi = \mu` it is the on-policy actor-critic
    loss on bootstrapped n-step returns.

    Args:
      log_probs: ``[T, B]`` :math:`\log\pi(a_t|x_t)` under the learner's policy.
      entropy: ``[T, B]`` :math:`\mathcal H(\pi(\cdot|x_t))`.
      values: ``[T, B]`` :math:`V(x_t)`.
      next_values: ``[T, B]`` :math:`V(x_{t+1})` (of the final observation where an episode ended).
      behaviour_log_probs: ``[T, B]`` :math:`\log\mu(a_t|x_t)`, sent by the actor.
      rewards, terminated, truncated: ``[T, B]``.
      gamma, rho_bar, c_bar: as in :func:`~course_lib.returns.vtrace`.
      correct: use the importance weights (V-trace) or not.
      value_coef, entropy_coef: :math:`c_V` and :math:`\eta`.

    Returns:
      ``(loss, stats)``: ``policy_loss``, ``value_loss``, ``entropy``, ``rho_mean`` (the mean
      truncated :math:`\rho_t`), ``rho_clipped_fraction`` (share of steps with
      :math:`\pi/\mu > \bar\rho`) and ``log_rho_abs`` (mean :math:`|\log \pi/\mu|`), all of
      the true ratios even when ``correct=False``; ``explained_variance`` of :math:`v_s` by
      :math:`V(x_s)`.
    """
    if log_probs.shape != behaviour_log_probs.shape:
        raise ValueError(f"log_probs {tuple(log_probs.shape)} and behaviour_log_probs "
                         f"{tuple(behaviour_log_probs.shape)} must have the same shape [T, B]")
    log_rhos = log_probs.detach() - behaviour_log_probs
    targets = vtrace(rewards, values.detach(), next_values.detach(), terminated, truncated,
                     log_rhos if correct else torch.zeros_like(log_rhos), gamma, rho_bar=rho_bar, c_bar=c_bar)
    policy_loss = -(log_probs * targets.pg_advantages).mean()
    value_loss = (targets.vs - values).square().mean()
    mean_entropy = entropy.mean()
    loss = policy_loss + value_coef * value_loss - entropy_coef * mean_entropy
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": mean_entropy,
            "rho_mean": log_rhos.exp().clamp(max=rho_bar).mean(),
            "rho_clipped_fraction": (log_rhos.exp() > rho_bar).float().mean(),
            "log_rho_abs": log_rhos.abs().mean(),
            "explained_variance": 1 - (targets.vs - values).var(correction=0) / (targets.vs.var(correction=0)
                                                                                  + 1e-8),
        }
    return loss, stats


def stack_unrolls(unrolls: list[Unroll], device: torch.device) -> dict[str, torch.Tensor]:
    """Unrolls side by side: each field ``[T, E]`` becomes ``[T, B]`` with ``B = sum of E``."""
    fields = ("obs", "actions", "behaviour_log_probs", "rewards", "terminated", "truncated", "final_obs")
    return {f: torch.cat([getattr(u, f) for u in unrolls], dim=1).to(device) for f in fields}


# --------------------------------------------------------------------------- training
def build_networks(cfg: IMPALAConfig, spaces: SpaceInfo | None = None) -> dict[str, nn.Module]:
    """IMPALA's network (the learner's, and each actor's copy): ``{"agent": ActorCritic}``."""
    spaces = spaces if spaces is not None else env_spaces(cfg.env, cfg.env_backend)
    return {"agent": ActorCritic(spaces, cfg.hidden_size, cfg.hidden_layers, cfg.activation)}


@dataclasses.dataclass
class IMPALACounters(Counters):
    """Besides the shared counters (``time_acting`` is the learner's time waiting for unrolls):
    actor restarts, and the sum and count of policy lags (for their mean)."""

    actor_restarts: int = 0
    lag_sum: int = 0
    lag_count: int = 0


def train(config: IMPALAConfig | None = None, out: str | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True, callback: Callback | None = None) -> dict[str, Any]:
    """Train IMPALA; returns the summary (also written to ``out/summary.json``).

    Args: as :func:`course_lib.agents.ppo.train`; a resumed run starts fresh actors.

    Each metrics row (one per update) holds ``step`` (environment frames the learner has
    consumed), ``update``, ``episode_return``/``episode_length`` (moving average over the
    actors' last finished episodes), ``eval_return`` (latest greedy evaluation, with
    ``eval_every``), the loss terms and diagnostics of :func:`vtrace_loss`, ``policy_lag``
    and ``policy_lag_max`` (in learner updates, over the batch's unrolls), ``actor_restarts``
    and ``steps_per_second`` (the learner's frames per second). The summary adds
    ``actor_restarts``, ``mean_policy_lag``, ``backend`` and ``actors``; its ``time_acting``
    is the time the learner waited for unrolls.
    """
    cfg = config if config is not None else IMPALAConfig()
    run = Run(out, "impala", cfg, resume=resume, overwrite=overwrite, progress=progress, callback=callback)
    device = run.device
    agent = build_networks(cfg)["agent"].to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5)
    episodes = EpisodeTracker(0, device)
    lagged = LaggedWeights(cfg.policy_lag)
    counters = IMPALACounters()
    clock = Stopwatch(counters, device)
    target = TargetTracker(cfg, counters, run.elapsed, episodes=episodes, confirm_every=CONFIRM_INTERVAL,
                           evaluate=lambda n, seed: evaluate_policy(agent.greedy, cfg.env, episodes=n, seed=seed,
                                                                    device=device, backend=cfg.env_backend))
    if run.restore(agent=agent, optimizer=optimizer, episodes=episodes, lagged=lagged, counters=counters,
                   target=target) is None:
        lagged.push(flat_weights(agent), 0)
    # Actors get their own environment seeds, different in every resumed session.
    make_actor = partial(_make_actor, cfg.to_dict(), cfg.seed + 100_003 * run.resumes)
    num_updates = max(1, cfg.total_steps // cfg.batch_frames)
    restarts_before = counters.actor_restarts
    # On a CPU the cores are the actors'; one learner thread also avoids OpenMP's spinning
    # when processes outnumber cores.
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    pool = None
    try:
        pool = make_actor_pool(cfg.backend, make_actor, cfg.actors, queue=cfg.actor_queue,
                               timeout=cfg.actor_timeout, max_restarts=cfg.max_actor_restarts,
                               ray_address=cfg.ray_address)
        pool.publish(*lagged.published())
        with run.loop(num_updates * cfg.batch_frames, counters, f"impala {cfg.env}"):
            while counters.iteration < num_updates:
                lr = cfg.learning_rate * ((1.0 - counters.iteration / num_updates) if cfg.anneal_lr else 1.0)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                previous_step = counters.step

                with clock("acting"):
                    # 1. Wait for a batch of unrolls from whichever actors are ready.
                    unrolls = pool.get(cfg.batch_unrolls)
                    counters.actor_restarts = restarts_before + pool.restarts

                with clock("learning"):
                    # 2. V-trace loss under the current policy pi; one gradient step.
                    batch = stack_unrolls(unrolls, device)
                    T, B = batch["rewards"].shape
                    both = torch.cat([batch["obs"], batch["final_obs"]]).flatten(0, 1)
                    values, next_values = agent.value(both).view(2, T, B)
                    dist = agent.dist(batch["obs"].flatten(0, 1))
                    log_probs = dist.log_prob(batch["actions"].flatten(0, 1)).view(T, B)
                    loss, stats = vtrace_loss(
                        log_probs, dist.entropy().view(T, B), values, next_values, batch["behaviour_log_probs"],
                        batch["rewards"] * cfg.reward_scale, batch["terminated"], batch["truncated"],
                        gamma=cfg.gamma, rho_bar=cfg.rho_bar, c_bar=cfg.c_bar, correct=cfg.vtrace,
                        value_coef=cfg.value_coef, entropy_coef=cfg.entropy_coef)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    # Policy lag: updates between the weights that acted and those that just learned.
                    lags = [counters.iteration - u.policy_version for u in unrolls]
                    counters.lag_sum += sum(lags)
                    counters.lag_count += len(lags)
                    counters.iteration += 1
                    counters.updates += 1
                    counters.step += T * B
                    # 3. Publish the new weights (or, with policy_lag, those of policy_lag updates ago).
                    lagged.push(flat_weights(agent), counters.iteration)
                    pool.publish(*lagged.published())

                # 4. As in PPO: the target (confirmed greedily), periodic evaluations, log, checkpoint.
                for u in unrolls:
                    episodes.record(u.episode_returns, u.episode_lengths)
                reached = target.update(previous_step)
                row = {"step": counters.step, "update": counters.iteration, "wall_time": run.elapsed(),
                       "episode_return": episodes.mean_return(), "episode_length": episodes.mean_length(),
                       "episodes": episodes.episodes, "eval_return": target.last_eval, "lr": lr,
                       **{k: v.item() for k, v in stats.items()},
                       "policy_lag": sum(lags) / len(lags), "policy_lag_max": max(lags),
                       "actor_restarts": counters.actor_restarts,
                       "steps_per_second": run.steps_per_second()}
                if run.end_iteration(counters.step, previous_step, row, stop=reached,
                                     postfix={"ret": row["episode_return"], "eval": target.last_eval,
                                              "lag": row["policy_lag"], "restarts": counters.actor_restarts or None}):
                    break
        pool.close()  # free the cores for the evaluation

        # Final evaluation: greedy policy, fresh seeds, one episode per environment.
        eval_returns = target.final()
        run.save()
        return run.finish(run.summary(
            counters, episodes=episodes, eval_returns=eval_returns, target=target, backend=cfg.backend,
            actors=cfg.actors, actor_restarts=counters.actor_restarts,
            mean_policy_lag=counters.lag_sum / max(1, counters.lag_count)))
    finally:
        if pool is not None:
            pool.close()
        torch.set_num_threads(threads)


def _make_actor(config: dict[str, Any], base_seed: int, actor_id: int, incarnation: int) -> UnrollActor:
    """Build actor ``actor_id``'s ``incarnation``-th life (0 at first, +1 per restart) in its own
    process: its environments and action sampling get seeds no other actor or life uses."""
    seed = base_seed + 10_007 + config["envs_per_actor"] * actor_id + 1_000_033 * incarnation
    torch.manual_seed(seed)
    return UnrollActor(config, actor_id, seed)

