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

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core import Callback, ConfigError, EpisodeTracker, Run, option
from ..core.loop import Counters, MeanStats, Stopwatch, TargetTracker
from ..envs import SpaceInfo, env_spaces, make_vector_env
from ..evaluation import evaluate_policy
from ..nets import ActorCritic
from ..normalization import RewardScaler
from ..returns import gae_advantages
from ..rollout import RolloutStorage, collect_rollout
from .base import ReturnConfig

__all__ = ["PPOConfig", "ActorCritic", "clipped_surrogate_objective", "clipped_value_loss", "ppo_loss",
           "build_networks", "train", "BENCHMARKS"]


@dataclass
class PPOConfig(ReturnConfig):
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

    def validate(self) -> None:
        super().validate()
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                f"num_envs × num_steps = {self.batch_size} must divide into num_minibatches = "
                f"{self.num_minibatches} equal minibatches; accepted: a divisor of {self.batch_size}")

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
def build_networks(cfg: PPOConfig, spaces: SpaceInfo | None = None) -> dict[str, nn.Module]:
    """PPO's networks for ``spaces``: ``{"agent": ActorCritic}`` (what a checkpoint's ``agent`` holds)."""
    spaces = spaces if spaces is not None else env_spaces(cfg.env, cfg.env_backend)
    return {"agent": ActorCritic(spaces, cfg.hidden_size, cfg.hidden_layers, cfg.activation)}


def train(config: PPOConfig | None = None, out: str | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True, callback: Callback | None = None) -> dict[str, Any]:
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
    run = Run(out, "ppo", cfg, resume=resume, overwrite=overwrite, progress=progress, callback=callback)
    device = run.device
    envs = make_vector_env(cfg.env, cfg.num_envs, seed=cfg.seed, device=device, backend=cfg.env_backend)
    agent = build_networks(cfg, envs.spaces)["agent"].to(device)
    # Fused Adam updates all parameters in one kernel (CPU and CUDA): fewer tiny ops per step.
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5,
                                 fused=device.type in ("cpu", "cuda"))
    episodes = EpisodeTracker(cfg.num_envs, device)
    reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma, device) if cfg.normalize_rewards else None
    storage = RolloutStorage.for_env(envs, cfg.num_steps, device)  # [T, B, ...], allocated once
    counters, stats = Counters(), MeanStats()
    clock = Stopwatch(counters, device)
    target = TargetTracker(cfg, counters, run.elapsed, episodes=episodes, evaluate=lambda n, seed: evaluate_policy(
        agent.greedy, cfg.env, episodes=n, seed=seed, device=device, backend=cfg.env_backend))
    saved = run.restore(agent=agent, optimizer=optimizer, envs=envs, episodes=episodes, counters=counters,
                        target=target, reward_scaler=reward_scaler)
    next_obs = saved["next_obs"].to(device) if saved else envs.reset()

    # Whole rollouts only, never more steps than asked for (at least one rollout).
    num_updates = max(1, cfg.total_steps // cfg.batch_size)
    with run.loop(num_updates * cfg.batch_size, counters, f"ppo {cfg.env}"):
        while counters.iteration < num_updates:
            frac = 1.0 - counters.iteration / num_updates
            lr = cfg.learning_rate * (frac if cfg.anneal_lr else 1.0)
            clip_eps = cfg.clip_eps * (frac if cfg.anneal_clip else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr
            previous_step = counters.step

            with clock("acting"), torch.no_grad():
                # 1. Collect a rollout with the current policy (pi_theta_old).
                batch, next_obs = collect_rollout(envs, agent, next_obs, cfg.num_steps, storage=storage,
                                                  episodes=episodes, reward_fn=reward_scaler)
                # V(s_{t+1}) of the observation each action led to: at an episode's end that is
                # its final observation, so truncated episodes bootstrap correctly.
                next_values = agent.value(batch.final_obs.flatten(0, 1)).view_as(batch.values)
                # 2. Advantages with GAE-lambda; the critic's targets are A + V.
                advantages = gae_advantages(batch.rewards, batch.values, next_values, batch.terminated,
                                            batch.truncated, cfg.gamma, cfg.gae_lambda)
                targets = advantages + batch.values
                counters.step += cfg.batch_size

            with clock("learning"):
                # 3. Optimise the PPO loss for K epochs over shuffled minibatches.
                b_obs, b_actions = batch.obs.flatten(0, 1), batch.actions.flatten(0, 1)
                b_log_probs, b_values = batch.log_probs.flatten(), batch.values.flatten()
                b_advantages, b_targets = advantages.flatten(), targets.flatten()
                for _epoch in range(cfg.num_epochs):
                    for idx in torch.randperm(cfg.batch_size, device=device).split(cfg.minibatch_size):
                        loss, parts = ppo_loss(
                            agent, b_obs[idx], b_actions[idx], b_log_probs[idx], b_advantages[idx], b_values[idx],
                            b_targets[idx], clip_eps=clip_eps, value_coef=cfg.value_coef,
                            entropy_coef=cfg.entropy_coef, clip_value=cfg.clip_value_loss,
                            normalize_advantages=cfg.normalize_advantages)
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm, foreach=True)
                        optimizer.step()
                        stats.add(parts)
                        counters.updates += 1
                    if cfg.target_kl is not None and parts["approx_kl"].item() > cfg.target_kl:
                        break
                counters.iteration += 1

            # 4. The lecture's stop rule ("until the moving-average return >= R_target", confirmed
            #    greedily), periodic evaluations, then log, checkpoint, Ctrl-C.
            episodes.drain()
            reached = target.update(previous_step)
            explained_var = 1 - (b_targets - b_values).var() / (b_targets.var() + 1e-8)
            row = {"step": counters.step, "update": counters.iteration, "wall_time": run.elapsed(),
                   "episode_return": episodes.mean_return(), "episode_length": episodes.mean_length(),
                   "episodes": episodes.episodes, "eval_return": target.last_eval, "lr": lr, "clip_eps": clip_eps,
                   **stats.pop(), "explained_variance": explained_var.item(),
                   "steps_per_second": run.steps_per_second()}
            if run.end_iteration(counters.step, previous_step, row, stop=reached,
                                 postfix={"ret": row["episode_return"], "eval": target.last_eval},
                                 extra=lambda: {"next_obs": next_obs}):
                break

    # Final evaluation: greedy policy, fresh seeds, one episode per environment.
    eval_returns = target.final()
    run.save({"next_obs": next_obs})
    envs.close()
    return run.finish(run.summary(counters, episodes=episodes, eval_returns=eval_returns, target=target))
