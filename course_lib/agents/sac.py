r"""Soft Actor-Critic (Haarnoja et al., 2018a; 2018b), complete and readable top to bottom.

SAC learns a stochastic policy that maximises reward *and* entropy. Its critics learn
the soft Bellman backup of the lecture,

.. math::
    Q_{\text{soft}}(s,a) = r(s,a) + \gamma\,\mathbb E_{s'\sim P}\big[V_{\text{soft}}(s')\big], \qquad
    V_{\text{soft}}(s) = \mathbb E_{a'\sim\pi(\cdot|s)}\big[Q_{\text{soft}}(s,a') - \alpha\log\pi(a'|s)\big],

and the policy is pulled toward :math:`\exp(Q/\alpha)`. The loop::

    repeat
        act a ~ pi(.|s) (uniformly at random before learning_starts); store (s, a, r, s', terminated)
        sample a minibatch from the replay buffer
        critics:  minimise 1/2 sum_k (Q_k(s,a) - y)^2 with y = soft_bellman_target(...)     (twin Q)
        actor:    minimise E[alpha log pi(a~|s) - min_k Q_k(s,a~)],  a~ = tanh(u), u ~ N(mu, sigma)
        alpha:    minimise E[-log alpha (log pi(a~|s) + H_target)]                          (autotune)
        targets:  theta_targ <- (1 - tau) theta_targ + tau theta                             (Polyak)
    until total steps reached

The details that make it work: twin critics with a min over their targets (Fujimoto et
al., 2018), target networks updated by Polyak averaging, a tanh-squashed Gaussian policy
whose log-probability carries the change-of-variables correction
(:func:`tanh_gaussian_log_prob`), and a temperature tuned so that the policy's entropy
stays near :math:`-\dim\mathcal A`.

Actions live in :math:`[-1, 1]^d` everywhere inside SAC (policy, replay buffer, critics);
they are rescaled to the environment's bounds only when sent to it.

For speed the twin critics are one :class:`~course_lib.nets.EnsembleMLP` (one batched
matmul per layer); critics, actor and temperature are updated by one backward pass and
one fused Adam step (on the steps where the actor learns, its loss sees the critics as
frozen functions of the action, as in the original implementation, where all losses are
computed from the same parameters and applied together); minibatches are drawn with
``torch.randint`` on the device from a replay buffer that lives there; nothing in the
loop waits for the device (no ``.item()``) except when a metrics row is written; and
``precision="bfloat16"`` (the ``speed`` preset) runs the hidden layers under autocast.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core import Callback, ConfigError, EpisodeTracker, Run, option
from ..core.loop import Counters, MeanStats, Stopwatch, TargetTracker, crossed
from ..envs import SpaceInfo, continuous_env_ids, env_spaces, is_discrete, make_vector_env
from ..evaluation import evaluate_policy
from ..nets import EnsembleMLP, mlp
from ..replay import ReplayBuffer
from .base import ReturnConfig

__all__ = ["SACConfig", "transition_fields", "SquashedGaussianActor", "TwinQ", "soft_bellman_target",
           "tanh_gaussian_log_prob", "polyak_update", "Temperature", "build_networks", "train", "BENCHMARKS"]

_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


@dataclass
class SACConfig(ReturnConfig):
    """SAC's hyper-parameters. Defaults reach a greedy return of about -150 on Pendulum-v1 in 20k steps."""

    env: str = option("Pendulum-v1", "environment id (continuous actions)")
    total_steps: int = option(20_000, "environment steps to train for", low=1)
    num_envs: int = option(1, "parallel environments (each loop iteration steps all of them)", low=1)
    replay_size: int = option(1_000_000, "replay buffer capacity in transitions", low=1)
    learning_starts: int = option(1_000, "uniformly random actions and no learning for this many steps", low=1)
    batch_size: int = option(256, "minibatch size of each update", low=1)
    updates_per_iteration: int = option(1, "critic updates per loop iteration (one iteration = num_envs env "
                                           "steps)", low=1)
    policy_frequency: int = option(2, "update actor and temperature once every this many critic updates "
                                      "(delayed policy updates, as in TD3)", low=1)
    target_frequency: int = option(1, "Polyak-update the target critics every this many critic updates", low=1)
    gamma: float = option(0.99, "discount factor γ", low=0.0, high=1.0)
    tau: float = option(0.005, "Polyak coefficient τ of the target critics", low=0.0, high=1.0, low_open=True)
    actor_lr: float = option(1e-3, "Adam step size of the policy", low=0.0, low_open=True)
    critic_lr: float = option(1e-3, "Adam step size of the critics", low=0.0, low_open=True)
    alpha_lr: float = option(1e-3, "Adam step size of log α (autotune)", low=0.0, low_open=True)
    alpha: float = option(1.0, "temperature α (the initial value when autotune is on)", low=0.0, low_open=True)
    autotune: bool = option(True, "tune α toward the target entropy")
    target_entropy: float | None = option(None, "entropy the temperature aims at (none: -action_dim)")
    hidden_size: int = option(256, "units per hidden layer (actor and critics)", low=1)
    hidden_layers: int = option(2, "hidden layers (actor and critics)", low=1)
    activation: str = option("relu", "hidden activation", choices=("relu", "tanh", "silu", "elu"))
    precision: str = option("float32", "precision of the networks' hidden layers in updates: bfloat16 runs them "
                                       "under autocast (about twice the matmul speed on CPUs with AVX-512 BF16 "
                                       "and on GPUs); outputs, losses and optimiser state stay float32",
                            choices=("float32", "bfloat16"))
    log_every: int = option(1_000, "write a metrics row every this many environment steps", low=1)

    def validate(self) -> None:
        super().validate()
        if is_discrete(self.env):
            raise ConfigError(f"SAC needs continuous actions but {self.env!r} has discrete ones; accepted: "
                              + ", ".join(continuous_env_ids(self.env_backend)))
        if self.replay_size < self.num_envs:
            raise ConfigError(f"replay_size = {self.replay_size} must hold one step of all num_envs = "
                              f"{self.num_envs} environments; accepted: replay_size >= {self.num_envs}")


# Named configurations; command-line options override them.
SACConfig.presets = {
    # Wall-clock speed on a CPU with the same networks, batch and update schedule as the
    # defaults: the hidden-layer matmuls in bfloat16 (autocast), everything else float32.
    "speed": dict(precision="bfloat16"),
}

# What `python -m course_lib bench sac` runs: (preset or None for defaults, extra options).
BENCHMARKS = {
    "default": (None, {"target_return": -200.0, "eval_every": 1_000}),
    "speed": ("speed", {"target_return": -200.0, "eval_every": 1_000}),
}


# ------------------------------------------------------------------- pure functions
def soft_bellman_target(
    reward: torch.Tensor, next_q: torch.Tensor, next_log_prob: torch.Tensor, terminated: torch.Tensor,
    gamma: float, alpha: float | torch.Tensor,
) -> torch.Tensor:
    r"""The soft Bellman target :math:`y` that SAC's critics regress on.

    .. math::
        y = r + \gamma\,(1 - d)\,\Big(\min_k Q^{\text{targ}}_k(s', a') - \alpha\log\pi(a'|s')\Big),
        \qquad a' \sim \pi(\cdot\mid s')

    a one-sample estimate of :math:`Q_{\text{soft}}(s,a) = r + \gamma\,\mathbb E[V_{\text{soft}}(s')]` with
    :math:`V_{\text{soft}}(s') = \mathbb E_{a'\sim\pi}[Q(s',a') - \alpha\log\pi(a'|s')]`. The min over
    the target critics counters the overestimation a max-like backup brings (double Q).
    :math:`d` is 1 only where the episode *terminated*: a time-limit truncation is not a
    terminal state, so there ``s'`` is the true final observation and the target still
    bootstraps from it.

    Args:
      reward: ``[N]`` :math:`r`.
      next_q: ``[K, N]`` :math:`Q^{\text{targ}}_k(s', a')` of the K target critics (K = 2 for twin Q).
      next_log_prob: ``[N]`` :math:`\log\pi(a'|s')` of the same next actions.
      terminated: ``[N]`` bool or float :math:`d`: 1 where :math:`s'` is terminal.
      gamma: discount :math:`\gamma`.
      alpha: temperature :math:`\alpha` (a float or a 0-d tensor).

    Returns:
      ``[N]`` targets :math:`y`.
    """
    if next_q.dim() != 2:
        raise ValueError(f"next_q must be [K, N] (one row per target critic); got shape {tuple(next_q.shape)}")
    n = next_q.shape[1]
    for name, t in (("reward", reward), ("next_log_prob", next_log_prob), ("terminated", terminated)):
        if t.shape != (n,):
            raise ValueError(f"{name} must be [N] = [{n}] like next_q's second dimension; got {tuple(t.shape)}")
    next_v = next_q.min(dim=0).values - alpha * next_log_prob
    return reward + gamma * (1.0 - terminated.to(reward.dtype)) * next_v


def tanh_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\pi(a)` of the squashed action :math:`a = \tanh(u)`, :math:`u \sim \mathcal N(\mu, \mathrm{diag}\,\sigma^2)`.

    By the change of variables :math:`\pi(a) = \mathcal N(u)\,\big|\det \tfrac{da}{du}\big|^{-1}` with
    :math:`\tfrac{d}{du}\tanh u = 1 - \tanh^2 u`:

    .. math::
        \log\pi(a) = \sum_i \Big[\log\mathcal N(u_i;\mu_i,\sigma_i) - \log\big(1 - \tanh^2 u_i\big)\Big]

    :math:`1 - \tanh^2 u` underflows to 0 for :math:`|u| \gtrsim 9` in float32, so the
    correction is computed in the stable form
    :math:`\log(1 - \tanh^2 u) = 2\,\big(\log 2 - u - \operatorname{softplus}(-2u)\big)`.

    Args:
      u: ``[N, d]`` pre-squash samples.
      mean: ``[N, d]`` :math:`\mu`.
      log_std: ``[N, d]`` (or broadcastable) :math:`\log\sigma`.

    Returns:
      ``[N]`` :math:`\log\pi(\tanh u)`, summed over the action dimensions.
    """
    z = (u - mean) * torch.exp(-log_std)
    gaussian = -0.5 * z.square() - log_std - 0.5 * _LOG_2PI
    log_det = 2.0 * (_LOG_2 - u - nn.functional.softplus(-2.0 * u))
    return (gaussian - log_det).sum(-1)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    r"""Move the target network toward the online one: :math:`\bar\theta \leftarrow (1-\tau)\bar\theta + \tau\theta`.

    One fused ``lerp`` over all parameters (no Python loop of small ops).
    """
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


# --------------------------------------------------------------------- replay buffer
def transition_fields(obs_shape: tuple[int, ...], action_dim: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The fields of SAC's replay rows ``(s, a, r, s', terminated)`` (a :class:`~course_lib.replay.ReplayBuffer`):
    ``next_obs`` is the *final* observation where an episode ended."""
    f32 = torch.float32
    return {"obs": (tuple(obs_shape), f32), "actions": ((action_dim,), f32), "rewards": ((), f32),
            "next_obs": (tuple(obs_shape), f32), "terminated": ((), f32)}


# -------------------------------------------------------------------------- networks
class SquashedGaussianActor(nn.Module):
    r"""The policy :math:`a = \tanh(u)`, :math:`u \sim \mathcal N(\mu_\theta(s), \sigma_\theta(s)^2)`, in :math:`[-1, 1]^d`.

    One MLP outputs :math:`\mu` and :math:`\log\sigma` (clamped to ``[LOG_STD_MIN, LOG_STD_MAX]``);
    ``env_action`` rescales :math:`[-1, 1]` to the environment's bounds.
    """

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0

    def __init__(self, spaces: SpaceInfo, hidden_size: int = 256, hidden_layers: int = 2, activation: str = "relu"):
        super().__init__()
        self.action_dim = spaces.action_dim
        self.net = mlp(math.prod(spaces.obs_shape), [hidden_size] * hidden_layers, 2 * spaces.action_dim,
                       activation, out_gain=0.01)
        low = torch.tensor(spaces.action_low, dtype=torch.float32)
        high = torch.tensor(spaces.action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`\\mu` and :math:`\\log\\sigma`, each ``[N, d]``."""
        # .float(): under bfloat16 autocast the head's output is cast back, so the sampling and
        # the log-probability below are always computed in float32.
        mean, log_std = self.net(obs.flatten(1)).float().chunk(2, dim=-1)
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample :math:`a = \\tanh(\\mu + \\sigma\\epsilon)` ``[N, d]`` and its :math:`\\log\\pi(a|s)` ``[N]``."""
        mean, log_std = self(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """A sample :math:`a = \\tanh(u)` ``[N, d]`` without its log-probability (acting needs none)."""
        mean, log_std = self(obs)
        return torch.tanh(mean + log_std.exp() * torch.randn_like(mean))

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """:math:`\\tanh(\\mu(s))`, in the environment's bounds (evaluation)."""
        return self.env_action(torch.tanh(self(obs)[0]))

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """:math:`[-1, 1]^d` -> the environment's bounds."""
        return action * self.action_scale + self.action_bias


class TwinQ(nn.Module):
    """Two critics :math:`Q_1, Q_2` over ``(s, a)`` as one ensemble; returns ``[2, N]``."""

    def __init__(self, spaces: SpaceInfo, hidden_size: int = 256, hidden_layers: int = 2, activation: str = "relu"):
        super().__init__()
        in_dim = math.prod(spaces.obs_shape) + spaces.action_dim
        self.net = EnsembleMLP(2, in_dim, [hidden_size] * hidden_layers, 1, activation, out_gain=1.0)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """``[2, N]``; ``frozen=True``: gradients reach ``action`` but not the critics' weights."""
        return self.net(torch.cat([obs.flatten(1), action], dim=-1), frozen=frozen).squeeze(-1)


# ---------------------------------------------------------------------------- training
def build_networks(cfg: SACConfig, spaces: SpaceInfo | None = None) -> dict[str, nn.Module]:
    """SAC's networks for ``spaces``: the policy, the twin critics, their target copy and the temperature."""
    spaces = spaces if spaces is not None else env_spaces(cfg.env, cfg.env_backend)
    args = (spaces, cfg.hidden_size, cfg.hidden_layers, cfg.activation)
    nets = {"actor": SquashedGaussianActor(*args), "critic": TwinQ(*args), "critic_target": TwinQ(*args),
            "temperature": Temperature(cfg.alpha, learnable=cfg.autotune)}
    nets["critic_target"].load_state_dict(nets["critic"].state_dict())  # starts as a copy, moved only by Polyak
    nets["critic_target"].requires_grad_(False)
    return nets


class Temperature(nn.Module):
    r"""The entropy temperature :math:`\alpha`, kept as :math:`\log\alpha` (positive whatever the step)."""

    def __init__(self, alpha: float = 1.0, learnable: bool = True):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)), requires_grad=learnable)

    def forward(self) -> torch.Tensor:
        r""":math:`\alpha`, detached: the losses of critics and actor treat it as a constant."""
        return self.log_alpha.detach().exp()


@dataclasses.dataclass
class SACCounters(Counters):
    """SAC's counters: besides the shared ones, actor updates, and the env steps taken once
    learning began with the seconds of those iterations (evaluations excluded): the learning speed."""

    actor_updates: int = 0
    learning_steps: int = 0
    learning_seconds: float = 0.0


def train(config: SACConfig | None = None, out: str | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True, callback: Callback | None = None) -> dict[str, Any]:
    """Train SAC; returns the summary. Args: as :func:`course_lib.agents.ppo.train` (checkpoints hold the replay)."""
    cfg = config if config is not None else SACConfig()
    run = Run(out, "sac", cfg, resume=resume, overwrite=overwrite, progress=progress, callback=callback)
    device = run.device
    if cfg.precision == "bfloat16" and device.type not in ("cpu", "cuda"):
        raise ConfigError(f"precision bfloat16 needs a cpu or cuda device, not {device.type}; accepted: float32")
    envs = make_vector_env(cfg.env, cfg.num_envs, seed=cfg.seed, device=device, backend=cfg.env_backend)
    spaces = envs.spaces
    nets = build_networks(cfg, spaces)
    actor, critic, critic_target, temperature = (nets[k].to(device) for k in nets)
    target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -float(spaces.action_dim)
    # One fused Adam for critics, actor and temperature, each group with its own step size.
    # Parameters without a gradient in a step (the actor's, between its delayed updates) are left alone.
    groups = [{"params": list(critic.parameters()), "lr": cfg.critic_lr},
              {"params": list(actor.parameters()), "lr": cfg.actor_lr},
              {"params": [temperature.log_alpha] if cfg.autotune else [], "lr": cfg.alpha_lr}]
    optimizer = torch.optim.Adam(groups, fused=device.type in ("cpu", "cuda"))
    buffer = ReplayBuffer(cfg.replay_size, transition_fields(spaces.obs_shape, spaces.action_dim), device)
    episodes = EpisodeTracker(cfg.num_envs, device)
    counters, stats = SACCounters(), MeanStats(device)
    clock = Stopwatch(counters, device)
    target = TargetTracker(cfg, counters, run.elapsed, episodes=episodes, evaluate=lambda n, seed: evaluate_policy(
        actor.greedy, cfg.env, episodes=n, seed=seed, device=device, backend=cfg.env_backend))
    saved = run.restore(**nets, optimizer=optimizer, buffer=buffer, envs=envs, episodes=episodes, counters=counters,
                        target=target, stats=stats)
    next_obs = saved["next_obs"].to(device) if saved else envs.reset()
    bf16 = cfg.precision == "bfloat16"  # the hidden layers' matmuls under autocast (a no-op otherwise)

    def update() -> None:
        """One gradient step of the critics; every policy_frequency-th also of actor and α."""
        batch = buffer.sample(cfg.batch_size)
        alpha = temperature()
        # Critics: regress both Q_k(s, a) on the soft Bellman target of the target critics.
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            next_action, next_log_prob = actor.sample(batch["next_obs"])
            next_q = critic_target(batch["next_obs"], next_action)  # [2, B]
        target_q = soft_bellman_target(batch["rewards"], next_q, next_log_prob, batch["terminated"], cfg.gamma, alpha)
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            q = critic(batch["obs"], batch["actions"])  # [2, B], float32 (the output layer is)
        loss = critic_loss = 0.5 * (q - target_q).square().mean(dim=1).sum()
        counters.updates += 1
        stats.add({"critic_loss": critic_loss, "q_mean": q.detach().mean()})
        if counters.updates % cfg.policy_frequency == 0:
            # Actor: maximise E[min_k Q_k(s, a~) - α log π(a~|s)] through the reparameterised a~.
            # The critics enter frozen: this loss moves the actor only (and skips the
            # critics' weight gradients), while critic_loss moves the critics only.
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                action, log_prob = actor.sample(batch["obs"])
                q_pi = critic(batch["obs"], action, frozen=True).min(dim=0).values
            actor_loss = (alpha * log_prob - q_pi).mean()
            # Temperature: raise α when the entropy -log π is below the target, lower it above.
            alpha_loss = -(temperature.log_alpha * (log_prob.detach() + target_entropy)).mean()
            loss = loss + actor_loss + (alpha_loss if cfg.autotune else 0.0)
            counters.actor_updates += 1
            stats.add({"actor_loss": actor_loss, "alpha_loss": alpha_loss, "entropy": -log_prob.mean()})
        # The losses touch disjoint parameters: one backward pass and one step give each its own gradient.
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if counters.updates % cfg.target_frequency == 0:
            polyak_update(critic_target, critic, cfg.tau)

    # Whole iterations only (num_envs steps each), never more steps than asked for (at least one).
    num_iterations = max(1, cfg.total_steps // cfg.num_envs)
    with run.loop(num_iterations * cfg.num_envs, counters, f"sac {cfg.env}"):
        while counters.iteration < num_iterations:
            t0, evaluating_before, previous_step = time.perf_counter(), counters.time_evaluating, counters.step
            with clock("acting"), torch.no_grad():
                # 1. Act: uniformly random actions until learning starts, then a ~ π(.|s); store the transition.
                if counters.step < cfg.learning_starts:
                    action = torch.rand((cfg.num_envs, spaces.action_dim), device=device) * 2 - 1
                else:
                    action = actor.act(next_obs)
                step = envs.step(actor.env_action(action))
                # s' is the observation the action led to: the final one where an episode ended,
                # so truncated episodes bootstrap from it; only `terminated` stops the bootstrap.
                buffer.add(obs=next_obs, actions=action, rewards=step.reward, next_obs=step.final_obs,
                           terminated=step.terminated)
                episodes.step(step.reward, step.terminated | step.truncated)
                next_obs = step.obs
                counters.step += cfg.num_envs
                counters.iteration += 1

            with clock("learning"):
                # 2. Learn: critic (and every few steps actor, α) updates on replayed minibatches.
                learning = counters.step >= cfg.learning_starts
                for _ in range(cfg.updates_per_iteration if learning else 0):
                    update()

            # 3. Evaluate when due, log now and then, checkpoint, Ctrl-C.
            log_now = crossed(counters.step, previous_step, cfg.log_every) or counters.iteration == num_iterations
            if log_now:
                episodes.drain()
            reached = target.update(previous_step)
            row = None
            if log_now:
                means = stats.pop()
                row = {"step": counters.step, "updates": counters.updates, "wall_time": run.elapsed(),
                       "episode_return": episodes.mean_return(), "episode_length": episodes.mean_length(),
                       "episodes": episodes.episodes, "eval_return": target.last_eval,
                       **{k: means.get(k) for k in ("critic_loss", "q_mean", "actor_loss", "alpha_loss", "entropy")},
                       "alpha": temperature().item(),
                       "steps_per_second": run.steps_per_second(), "updates_per_second": run.updates_per_second()}
            if learning:
                counters.learning_steps += cfg.num_envs
                counters.learning_seconds += time.perf_counter() - t0 - (counters.time_evaluating - evaluating_before)
            if run.end_iteration(counters.step, previous_step, row, stop=reached,
                                 postfix={"ret": episodes.mean_return(), "eval": target.last_eval} if row else None,
                                 extra=lambda: {"next_obs": next_obs}):
                break

    # Final evaluation: greedy policy tanh(mu), fresh seeds, one episode per environment.
    eval_returns = target.final()
    run.save({"next_obs": next_obs})
    envs.close()
    # Learning speed: one env step and updates_per_iteration critic updates each, per second of those steps.
    learning_speed = counters.learning_steps / counters.learning_seconds if counters.learning_seconds > 0 else None
    return run.finish(run.summary(counters, episodes=episodes, eval_returns=eval_returns, target=target,
                                  actor_updates=counters.actor_updates, alpha=temperature().item(),
                                  learning_steps_per_second=learning_speed))
