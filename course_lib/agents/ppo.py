r"""Proximal Policy Optimisation (Schulman et al., 2017), complete and readable top to bottom.

The loop, as the lecture writes it::

    repeat
        collect trajectories with pi_theta_old                (rollout)
        compute returns and advantages with GAE-lambda        (course_lib.returns.gae_advantages)
        optimise L^CLIP for K epochs over minibatches         (ppo_loss)
        theta_old <- theta
    until total steps reached (or the return target is met)

The objective maximised on each minibatch is

.. math::
    L^{\text{PPO}}(\theta) = \mathbb E_t\Big[ L^{\text{CLIP}}_t(\theta)
        - c_1 \big(V_\theta(s_t) - V^{\text{target}}_t\big)^2
        + c_2\,\mathcal H\big[\pi_\theta(\cdot \mid s_t)\big] \Big]

with :math:`L^{\text{CLIP}}_t = \min\big(r_t(\theta)\hat A_t,\ \mathrm{clip}(r_t(\theta), 1-\epsilon,
1+\epsilon)\hat A_t\big)` and importance ratio
:math:`r_t(\theta) = \pi_\theta(a_t\mid s_t)/\pi_{\theta_\text{old}}(a_t\mid s_t)`.

The details that make it work (Andrychowicz et al., 2021; Huang et al., 2022): separate
actor and critic MLPs with orthogonal initialisation, advantage normalisation per
minibatch, a clipped value loss, gradient-norm clipping, Adam with ε = 1e-5, and linear
annealing of the learning rate (and optionally of ε).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..core import (ConfigError, EpisodeTracker, ProgressBar, Run, option, resolve_device,
                    seed_everything)
from ..core.run import to_cpu
from ..envs import SpaceInfo, make_vector_env
from ..evaluation import evaluate_policy
from ..nets import Categorical, DiagGaussian, mlp
from ..normalization import RewardScaler
from ..returns import gae_advantages
from .base import RunConfig, evaluate_if_due

__all__ = ["PPOConfig", "ActorCritic", "clipped_surrogate_objective", "clipped_value_loss", "ppo_loss",
           "train", "BENCHMARKS"]

# Greedy episodes that must confirm a reached target before stop_at_target stops a run.
CONFIRM_EPISODES = 100


@dataclass
class PPOConfig(RunConfig):
    """PPO's hyper-parameters. Defaults are tuned for CartPole-v1 at 100k steps (after rl-zoo)."""

    num_envs: int = option(8, "parallel environments", low=1)
    num_steps: int = option(32, "steps per environment per rollout", low=1)
    num_epochs: int = option(20, "optimisation epochs K over each rollout", low=1)
    num_minibatches: int = option(1, "minibatches per epoch", low=1)
    learning_rate: float = option(1e-3, "Adam step size", low=0.0, low_open=True)
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0")
    gamma: float = option(0.98, "discount factor γ", low=0.0, high=1.0)
    gae_lambda: float = option(0.8, "GAE λ", low=0.0, high=1.0)
    clip_eps: float = option(0.2, "clipping ε of the ratio (and of the value change)", low=0.0, low_open=True)
    anneal_clip: bool = option(True, "decay ε linearly to 0 with the learning rate")
    clip_value_loss: bool = option(False, "clip the value change to ±ε like the ratio (PPO2)")
    value_coef: float = option(0.5, "value-loss coefficient c1", low=0.0)
    entropy_coef: float = option(0.0, "entropy-bonus coefficient c2", low=0.0)
    normalize_advantages: bool = option(True, "normalise advantages in each minibatch")
    normalize_rewards: bool = option(False, "divide rewards by the running std of the discounted return")
    max_grad_norm: float = option(0.5, "clip the gradient's global norm to this", low=0.0, low_open=True)
    target_kl: float | None = option(None, "stop an update's epochs early past this approx. KL", low=0.0,
                                     low_open=True)
    hidden_size: int = option(64, "units per hidden layer (actor and critic)", low=1)
    hidden_layers: int = option(2, "hidden layers (actor and critic)", low=1)
    activation: str = option("tanh", "hidden activation", choices=("tanh", "relu", "silu", "elu"))
    eval_episodes: int = option(20, "greedy evaluation episodes at the end", low=1)
    eval_every: int = option(0, "also evaluate greedily every this many steps, for the curves (0: only at the end)",
                             low=0)
    target_return: float | None = option(None, "moving-average training return that counts as solved "
                                               "(the time and steps to reach it are reported)")
    stop_at_target: bool = option(False, "stop once the moving-average return reaches target_return and a "
                                         "greedy evaluation on fresh episodes confirms it")
    checkpoint_every: int = option(50_000, "checkpoint every this many steps (and at the end)", low=1)

    def validate(self) -> None:
        super().validate()
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                f"num_envs × num_steps = {self.batch_size} must divide into num_minibatches = "
                f"{self.num_minibatches} equal minibatches; accepted: a divisor of {self.batch_size}")
        if self.stop_at_target and self.target_return is None:
            raise ConfigError("stop_at_target needs a target_return")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


# Named configurations; command-line options override them.
PPOConfig.presets = {
    # Wall-clock speed on a CPU: 256 batched tensor CartPoles per rollout, four large
    # minibatches, a high learning rate kept in check by scaling rewards (values stay of
    # order 1), and a stop as soon as the moving-average return reaches 475 and a greedy
    # check on 100 fresh episodes agrees.
    "speed": dict(
        env="CartPole-v1", env_backend="tensor", total_steps=1_500_000, num_envs=256, num_steps=32,
        num_epochs=4, num_minibatches=4, learning_rate=3e-3, gamma=0.99, gae_lambda=0.9,
        anneal_clip=False, normalize_rewards=True, target_return=475.0, stop_at_target=True,
        checkpoint_every=500_000,
    ),
}

# What `python -m course_lib bench ppo` runs: (preset or None for defaults, extra options).
BENCHMARKS = {
    "default": (None, {"target_return": 475.0}),
    "speed": ("speed", {}),
}


# --------------------------------------------------------------------------- networks
class ActorCritic(nn.Module):
    """Separate policy and value MLPs over flat observations.

    Discrete actions get a categorical policy over logits; continuous actions a diagonal
    Gaussian with a learned, state-independent log standard deviation.
    """

    def __init__(self, spaces: SpaceInfo, hidden_size: int = 64, hidden_layers: int = 2, activation: str = "tanh"):
        super().__init__()
        self.spaces = spaces
        obs_dim = math.prod(spaces.obs_shape)
        hidden = [hidden_size] * hidden_layers
        self.critic = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)
        if spaces.discrete:
            self.actor = mlp(obs_dim, hidden, spaces.num_actions, activation, out_gain=0.01)
        else:
            self.actor = mlp(obs_dim, hidden, spaces.action_dim, activation, out_gain=0.01)
            self.log_std = nn.Parameter(torch.zeros(spaces.action_dim))
            self.register_buffer("action_low", torch.tensor(spaces.action_low, dtype=torch.float32))
            self.register_buffer("action_high", torch.tensor(spaces.action_high, dtype=torch.float32))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """:math:`V(s)`, shape ``[N]``."""
        return self.critic(obs.flatten(1)).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> Categorical | DiagGaussian:
        """:math:`\\pi(\\cdot \\mid s)` for a batch of observations."""
        out = self.actor(obs.flatten(1))
        if self.spaces.discrete:
            return Categorical(out)
        return DiagGaussian(out, self.log_std)

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """The action the environment receives: Gaussian samples are clipped to its bounds."""
        if self.spaces.discrete:
            return action
        return torch.maximum(torch.minimum(action, self.action_high), self.action_low)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action (evaluation)."""
        return self.env_action(self.dist(obs).mode())


# ------------------------------------------------------------------------------ losses
def clipped_surrogate_objective(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_eps: float,
) -> torch.Tensor:
    r"""PPO's clipped surrogate :math:`L^{\text{CLIP}}_t` per sample (to be *maximised*).

    .. math::
        r_t(\theta) = \exp\big(\log\pi_\theta(a_t|s_t) - \log\pi_{\theta_\text{old}}(a_t|s_t)\big), \qquad
        L^{\text{CLIP}}_t = \min\big(r_t\hat A_t,\ \mathrm{clip}(r_t, 1-\epsilon, 1+\epsilon)\,\hat A_t\big)

    For :math:`\hat A_t > 0` the objective stops growing once :math:`r_t > 1+\epsilon`; for
    :math:`\hat A_t < 0` once :math:`r_t < 1-\epsilon`. Moving the other way is never
    clipped: the min makes this a pessimistic bound on the unclipped surrogate.

    Args:
      log_prob: ``[N]`` :math:`\log\pi_\theta(a_t|s_t)` under the policy being optimised.
      old_log_prob: ``[N]`` the same under the policy that collected the data.
      advantages: ``[N]`` :math:`\hat A_t`.
      clip_eps: :math:`\epsilon`.

    Returns:
      ``[N]`` :math:`L^{\text{CLIP}}_t`.
    """
    if not (log_prob.shape == old_log_prob.shape == advantages.shape):
        raise ValueError(f"log_prob {tuple(log_prob.shape)}, old_log_prob {tuple(old_log_prob.shape)} and "
                         f"advantages {tuple(advantages.shape)} must have the same shape")
    ratio = torch.exp(log_prob - old_log_prob)
    return torch.min(ratio * advantages, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages)


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, targets: torch.Tensor, clip_eps: float | None,
) -> torch.Tensor:
    r"""Squared error of the critic per sample, optionally with PPO2's clipping.

    .. math::
        \ell_t = \max\Big(\big(V_\theta(s_t) - V^{\text{target}}_t\big)^2,\
                 \big(V_\text{old}(s_t) + \mathrm{clip}(V_\theta(s_t) - V_\text{old}(s_t), -\epsilon, \epsilon)
                 - V^{\text{target}}_t\big)^2\Big)

    With ``clip_eps=None`` it is the plain :math:`(V_\theta(s_t) - V^{\text{target}}_t)^2`.

    Returns:
      ``[N]`` per-sample value losses.
    """
    unclipped = (values - targets).square()
    if clip_eps is None:
        return unclipped
    clipped = (old_values + (values - old_values).clamp(-clip_eps, clip_eps) - targets).square()
    return torch.max(unclipped, clipped)


def ppo_loss(
    agent: ActorCritic, obs: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor,
    advantages: torch.Tensor, old_values: torch.Tensor, targets: torch.Tensor, *,
    clip_eps: float, value_coef: float, entropy_coef: float, clip_value: bool, normalize_advantages: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""The loss minimised on one minibatch: :math:`-L^{\text{PPO}}`, and diagnostics.

    .. math:: \text{loss} = -\overline{L^{\text{CLIP}}_t} + c_1\,\overline{\ell_t} - c_2\,\overline{\mathcal H_t}
    """
    dist = agent.dist(obs)
    log_probs = dist.log_prob(actions)
    if normalize_advantages and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_objective = clipped_surrogate_objective(log_probs, old_log_probs, advantages, clip_eps).mean()
    value_loss = clipped_value_loss(agent.value(obs), old_values, targets, clip_eps if clip_value else None).mean()
    entropy = dist.entropy().mean()
    loss = -policy_objective + value_coef * value_loss - entropy_coef * entropy
    with torch.no_grad():
        log_ratio = log_probs - old_log_probs
        stats = {
            "policy_loss": -policy_objective,
            "value_loss": value_loss,
            "entropy": entropy,
            # k3 estimator of KL(old || new) (Schulman, 2020): unbiased and never negative.
            "approx_kl": ((log_ratio.exp() - 1) - log_ratio).mean(),
            "clip_fraction": ((log_ratio.exp() - 1).abs() > clip_eps).float().mean(),
        }
    return loss, stats


# ---------------------------------------------------------------------------- training
def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so phase timings measure work, not queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(
    config: PPOConfig | None = None,
    out: str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train PPO; returns the summary (also written to ``out/summary.json``).

    Args:
      config: hyper-parameters (defaults: :class:`PPOConfig()`).
      out: run directory for ``metrics.jsonl``, ``checkpoint.pt`` and ``summary.json``;
        None keeps everything in memory.
      resume: continue the run checkpointed in ``out``.
      overwrite: replace a run already in ``out``.
      progress: show a progress bar.
      callback: called with every metrics row (e.g. a :class:`~course_lib.viz.LiveCurve`).
    """
    cfg = config if config is not None else PPOConfig()
    run = Run(out, "ppo", cfg, resume=resume, overwrite=overwrite)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)

    envs = make_vector_env(cfg.env, cfg.num_envs, seed=cfg.seed, device=device, backend=cfg.env_backend)
    agent = ActorCritic(envs.spaces, cfg.hidden_size, cfg.hidden_layers, cfg.activation).to(device)
    # Fused Adam updates all parameters in one kernel (CPU and CUDA): fewer tiny ops per step.
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5,
                                 fused=device.type in ("cpu", "cuda"))
    episodes = EpisodeTracker(cfg.num_envs, device)
    reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma, device) if cfg.normalize_rewards else None

    # Rollout storage, time-major [T, B, ...], allocated once on the device.
    T, B = cfg.num_steps, cfg.num_envs
    obs_buf = torch.zeros((T, B, *envs.spaces.obs_shape), device=device)
    final_obs_buf = torch.zeros_like(obs_buf)
    act_shape = () if envs.spaces.discrete else (envs.spaces.action_dim,)
    actions_buf = torch.zeros((T, B, *act_shape), device=device, dtype=torch.long if envs.spaces.discrete else None)
    log_probs_buf = torch.zeros((T, B), device=device)
    values_buf = torch.zeros((T, B), device=device)
    rewards_buf = torch.zeros((T, B), device=device)
    terminated_buf = torch.zeros((T, B), device=device, dtype=torch.bool)
    truncated_buf = torch.zeros((T, B), device=device, dtype=torch.bool)

    counters = dict(step=0, update=0, evals=0, time_acting=0.0, time_learning=0.0, time_evaluating=0.0,
                    time_to_target=None, steps_to_target=None, last_eval=None)
    if run.restored is not None:
        saved = run.restored
        agent.load_state_dict(saved["agent"])
        optimizer.load_state_dict(saved["optimizer"])
        envs.load_state_dict(saved["envs"])
        episodes.load_state_dict(saved["episodes"])
        if reward_scaler is not None:
            reward_scaler.load_state_dict(saved["reward_scaler"])
        counters.update(saved["counters"])
        next_obs = saved["next_obs"].to(device)
    else:
        next_obs = envs.reset()
    run.restore_rng()

    def checkpoint_state() -> dict[str, Any]:
        return {"agent": agent.state_dict(), "optimizer": optimizer.state_dict(), "envs": envs.state_dict(),
                "episodes": episodes.state_dict(), "counters": dict(counters), "next_obs": to_cpu(next_obs),
                "reward_scaler": reward_scaler.state_dict() if reward_scaler is not None else None}

    def evaluate(episodes_n: int, seed: int) -> list[float]:
        return evaluate_policy(agent.greedy, cfg.env, episodes=episodes_n, seed=seed, device=device,
                               backend=cfg.env_backend)

    # Whole rollouts only, never more steps than asked for (at least one rollout).
    num_updates = max(1, cfg.total_steps // cfg.batch_size)
    bar = ProgressBar(num_updates * cfg.batch_size, f"ppo {cfg.env}", initial=counters["step"], enabled=progress)
    loop_start, steps_at_start = time.perf_counter(), counters["step"]
    with run:
        while counters["update"] < num_updates:
            frac = 1.0 - counters["update"] / num_updates
            lr = cfg.learning_rate * (frac if cfg.anneal_lr else 1.0)
            clip_eps = cfg.clip_eps * (frac if cfg.anneal_clip else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # 1. Collect a rollout with the current policy (pi_theta_old).
            t0 = time.perf_counter()
            with torch.no_grad():
                for t in range(T):
                    obs_buf[t] = next_obs
                    dist = agent.dist(next_obs)
                    action = dist.sample()
                    values_buf[t] = agent.value(next_obs)
                    actions_buf[t] = action
                    log_probs_buf[t] = dist.log_prob(action)
                    step = envs.step(agent.env_action(action))
                    done = step.terminated | step.truncated
                    rewards_buf[t] = step.reward if reward_scaler is None else reward_scaler(step.reward, done)
                    terminated_buf[t] = step.terminated
                    truncated_buf[t] = step.truncated
                    final_obs_buf[t] = step.final_obs
                    episodes.step(step.reward, done)  # returns are reported unscaled
                    next_obs = step.obs
                # V(s_{t+1}) of the observation each action led to: at an episode's end that is
                # its final observation, so truncated episodes bootstrap correctly.
                next_values = agent.value(final_obs_buf.flatten(0, 1)).view(T, B)
                # 2. Advantages with GAE-lambda; the critic's targets are A + V.
                advantages = gae_advantages(rewards_buf, values_buf, next_values, terminated_buf,
                                            truncated_buf, cfg.gamma, cfg.gae_lambda)
                targets = advantages + values_buf
            counters["step"] += T * B
            _sync(device)
            t1 = time.perf_counter()

            # 3. Optimise the PPO loss for K epochs over shuffled minibatches.
            b_obs = obs_buf.flatten(0, 1)
            b_actions = actions_buf.flatten(0, 1)
            b_log_probs, b_values = log_probs_buf.flatten(), values_buf.flatten()
            b_advantages, b_targets = advantages.flatten(), targets.flatten()
            stats_sum: dict[str, torch.Tensor] = {}
            n_minibatches = 0
            for _epoch in range(cfg.num_epochs):
                order = torch.randperm(cfg.batch_size, device=device)
                for idx in order.split(cfg.minibatch_size):
                    loss, stats = ppo_loss(
                        agent, b_obs[idx], b_actions[idx], b_log_probs[idx], b_advantages[idx], b_values[idx],
                        b_targets[idx], clip_eps=clip_eps, value_coef=cfg.value_coef,
                        entropy_coef=cfg.entropy_coef, clip_value=cfg.clip_value_loss,
                        normalize_advantages=cfg.normalize_advantages,
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm, foreach=True)
                    optimizer.step()
                    for key, value in stats.items():
                        stats_sum[key] = stats_sum.get(key, 0.0) + value
                    n_minibatches += 1
                if cfg.target_kl is not None and stats["approx_kl"].item() > cfg.target_kl:
                    break
            counters["update"] += 1
            _sync(device)
            t2 = time.perf_counter()
            counters["time_acting"] += t1 - t0
            counters["time_learning"] += t2 - t1

            # 4. Check the stop condition on the moving-average return of the last episodes
            #    (the lecture's "until moving-average return >= R_target"), evaluate greedily
            #    now and then if asked, log, checkpoint.
            episodes.drain()
            at_target = (cfg.target_return is not None and len(episodes.recent_returns) == episodes.recent_returns.maxlen
                         and episodes.mean_return() >= cfg.target_return)
            if at_target and counters["time_to_target"] is None:
                counters["time_to_target"] = run.elapsed()
                counters["steps_to_target"] = counters["step"]
            reached = False
            if at_target and cfg.stop_at_target:
                # The sampling policy is there; check that its greedy version is too, on many
                # fresh episodes, before stopping (a stochastic policy can balance better than its mode).
                t_check = time.perf_counter()
                returns = evaluate(CONFIRM_EPISODES, seed=cfg.seed + 104_729 + counters["update"])
                counters["time_evaluating"] += time.perf_counter() - t_check
                reached = sum(returns) / len(returns) >= cfg.target_return
            evaluate_if_due(cfg, counters, evaluate)

            explained_var = 1 - (b_targets - b_values).var() / (b_targets.var() + 1e-8)
            row = {
                "step": counters["step"], "update": counters["update"], "wall_time": run.elapsed(),
                "episode_return": episodes.mean_return(), "episode_length": episodes.mean_length(),
                "episodes": episodes.episodes, "eval_return": counters["last_eval"], "lr": lr, "clip_eps": clip_eps,
                **{k: (v / n_minibatches).item() for k, v in stats_sum.items()},
                "explained_variance": explained_var.item(),
                "steps_per_second": (counters["step"] - steps_at_start) / (time.perf_counter() - loop_start),
            }
            run.log(row)
            if callback is not None:
                callback(row)
            bar.update(counters["step"], ret=row["episode_return"], eval=counters["last_eval"])

            if counters["step"] // cfg.checkpoint_every > (counters["step"] - T * B) // cfg.checkpoint_every or reached:
                run.save(checkpoint_state())
            run.stop_if_interrupted(checkpoint_state, counters["step"])
            if reached:
                break
        bar.close()
        train_seconds = time.perf_counter() - loop_start

        # Final evaluation: greedy policy, fresh seeds, one episode per environment.
        t_eval = time.perf_counter()
        eval_returns = evaluate(cfg.eval_episodes, seed=cfg.seed)
        counters["time_evaluating"] += time.perf_counter() - t_eval
        run.save(checkpoint_state())
        envs.close()
        summary = run.standard_summary(cfg, counters, episodes, eval_returns, counters["step"] - steps_at_start,
                                       train_seconds, device)
        return run.finish({**summary, "updates": counters["update"]})
