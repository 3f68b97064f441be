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

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..core import (ConfigError, EpisodeTracker, ProgressBar, Run, option, resolve_device,
                    seed_everything)
from ..core.run import to_cpu
from ..envs import GYM_ENV_IDS, MUJOCO_ENV_IDS, SpaceInfo, make_vector_env
from ..evaluation import evaluate_policy
from ..nets import EnsembleMLP, mlp
from .base import RunConfig, evaluate_if_due

__all__ = ["SACConfig", "ReplayBuffer", "SquashedGaussianActor", "TwinQ", "soft_bellman_target",
           "tanh_gaussian_log_prob", "polyak_update", "train", "BENCHMARKS"]

_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


@dataclass
class SACConfig(RunConfig):
    """SAC's hyper-parameters. Defaults reach a greedy return of about -150 on Pendulum-v1 in 20k steps."""

    env: str = option("Pendulum-v1", "environment id (continuous actions)")
    total_steps: int = option(20_000, "environment steps to train for", low=1)
    num_envs: int = option(1, "parallel environments (each loop iteration steps all of them)", low=1)
    buffer_size: int = option(1_000_000, "replay buffer capacity in transitions", low=1)
    learning_starts: int = option(1_000, "uniformly random actions and no learning for this many steps", low=1)
    batch_size: int = option(256, "minibatch size of each update", low=1)
    updates_per_step: int = option(1, "critic updates per loop iteration (one iteration = num_envs env steps)",
                                   low=1)
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
    eval_episodes: int = option(20, "greedy evaluation episodes at the end", low=1)
    eval_every: int = option(0, "also evaluate greedily every this many steps, for the curves (0: only at the end)",
                             low=0)
    target_return: float | None = option(None, "greedy (if eval_every) or else moving-average training return "
                                               "that counts as solved (the time and steps to reach it are reported)")
    checkpoint_every: int = option(50_000, "checkpoint every this many steps (and at the end)", low=1)

    def validate(self) -> None:
        super().validate()
        if _is_discrete(self.env, self.env_backend):
            continuous = [e for e in GYM_ENV_IDS if not _is_discrete(e, "gymnasium")] + list(MUJOCO_ENV_IDS)
            raise ConfigError(f"SAC needs continuous actions but {self.env!r} has discrete ones; accepted: "
                              + ", ".join(continuous))
        if self.buffer_size < self.num_envs:
            raise ConfigError(f"buffer_size = {self.buffer_size} must hold one step of all num_envs = "
                              f"{self.num_envs} environments; accepted: buffer_size >= {self.num_envs}")


def _is_discrete(env_id: str, backend: str) -> bool:
    env = make_vector_env(env_id, 1, seed=0, backend=backend)
    try:
        return env.spaces.discrete
    finally:
        env.close()


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
class ReplayBuffer:
    """A circular buffer of transitions ``(s, a, r, s', terminated)`` kept as tensors on ``device``.

    ``add`` writes a batch of ``B`` transitions (one per environment) at the write position,
    wrapping around and overwriting the oldest once ``capacity`` is reached. ``sample``
    draws indices with ``torch.randint`` on the device, so a minibatch never leaves it.
    ``state_dict`` holds the filled rows, so a resumed run gets its buffer back.

    All fields are columns of one ``[capacity, width]`` tensor (``obs``, ``actions``, ... are
    views of it), so drawing a minibatch is a single gather rather than one per field.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_dim: int,
                 device: torch.device | str = "cpu"):
        self.capacity, self.device = int(capacity), torch.device(device)
        self.obs_shape, self.action_dim = tuple(obs_shape), int(action_dim)
        obs_size = math.prod(self.obs_shape)
        # Column layout of a row: obs | action | reward | next obs | terminated.
        self._columns = {"obs": (0, obs_size), "actions": (obs_size, obs_size + action_dim),
                         "rewards": (obs_size + action_dim, None),
                         "next_obs": (obs_size + action_dim + 1, 2 * obs_size + action_dim + 1),
                         "terminated": (2 * obs_size + action_dim + 1, None)}
        self.data = torch.zeros((self.capacity, 2 * obs_size + action_dim + 2), device=self.device)
        self.obs, self.actions, self.rewards, self.next_obs, self.terminated = self._split(self.data)
        self.pos = 0   # next row to write
        self.size = 0  # rows filled

    def _split(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Views of the five fields of ``rows [N, width]``."""
        views = []
        for name, (start, stop) in self._columns.items():
            if stop is None:
                views.append(rows[:, start])
            else:
                view = rows[:, start:stop]
                views.append(view.unflatten(1, self.obs_shape) if "obs" in name else view)
        return tuple(views)

    def _fields(self) -> dict[str, torch.Tensor]:
        return {"obs": self.obs, "actions": self.actions, "rewards": self.rewards, "next_obs": self.next_obs,
                "terminated": self.terminated}

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor,
            terminated: torch.Tensor) -> None:
        """Store ``B`` transitions: ``obs [B, *obs_shape]``, ``actions [B, d]``, ``rewards [B]``,
        ``next_obs [B, *obs_shape]`` (the *final* observation where an episode ended), ``terminated [B]``."""
        b = obs.shape[0]
        if b > self.capacity:
            raise ValueError(f"cannot add {b} transitions to a buffer of capacity {self.capacity}")
        if self.pos + b <= self.capacity:
            rows = slice(self.pos, self.pos + b)
        else:  # wraps around the end
            rows = torch.arange(self.pos, self.pos + b, device=self.device) % self.capacity
        self.obs[rows] = obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.next_obs[rows] = next_obs
        self.terminated[rows] = terminated.to(self.terminated.dtype)
        self.pos = (self.pos + b) % self.capacity
        self.size = min(self.size + b, self.capacity)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement (fields as in :meth:`add`)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device)
        return dict(zip(self._columns, self._split(self.data[idx])))

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "pos": self.pos, "size": self.size,
                **{name: field[:self.size].cpu() for name, field in self._fields().items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay buffer capacity {state['capacity']} in the state, {self.capacity} here")
        self.pos, self.size = state["pos"], state["size"]
        for name, field in self._fields().items():
            field[:self.size] = state[name].to(self.device)


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
def train(
    config: SACConfig | None = None,
    out: str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train SAC; returns the summary (also written to ``out/summary.json``).

    Args:
      config: hyper-parameters (defaults: :class:`SACConfig()`).
      out: run directory for ``metrics.jsonl``, ``checkpoint.pt`` (with the replay buffer)
        and ``summary.json``; None keeps everything in memory.
      resume: continue the run checkpointed in ``out``.
      overwrite: replace a run already in ``out``.
      progress: show a progress bar.
      callback: called with every metrics row (e.g. a :class:`~course_lib.viz.LiveCurve`).
    """
    cfg = config if config is not None else SACConfig()
    run = Run(out, "sac", cfg, resume=resume, overwrite=overwrite)
    device = resolve_device(cfg.device)
    if cfg.precision == "bfloat16" and device.type not in ("cpu", "cuda"):
        raise ConfigError(f"precision bfloat16 needs a cpu or cuda device, not {device.type}; accepted: float32")
    seed_everything(cfg.seed, cfg.deterministic)

    envs = make_vector_env(cfg.env, cfg.num_envs, seed=cfg.seed, device=device, backend=cfg.env_backend)
    spaces = envs.spaces
    actor = SquashedGaussianActor(spaces, cfg.hidden_size, cfg.hidden_layers, cfg.activation).to(device)
    critic = TwinQ(spaces, cfg.hidden_size, cfg.hidden_layers, cfg.activation).to(device)
    critic_target = TwinQ(spaces, cfg.hidden_size, cfg.hidden_layers, cfg.activation).to(device)
    critic_target.load_state_dict(critic.state_dict())
    critic_target.requires_grad_(False)
    log_alpha = torch.tensor(math.log(cfg.alpha), device=device, requires_grad=cfg.autotune)
    target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -float(spaces.action_dim)
    # One Adam for critics, actor and temperature (each group with its own step size), fused:
    # one kernel updates all parameters (CPU and CUDA). Parameters without a gradient in a
    # step (the actor's, between its delayed updates) are left alone by Adam.
    groups = [{"params": list(critic.parameters()), "lr": cfg.critic_lr},
              {"params": list(actor.parameters()), "lr": cfg.actor_lr}]
    if cfg.autotune:
        groups.append({"params": [log_alpha], "lr": cfg.alpha_lr})
    optimizer = torch.optim.Adam(groups, fused=device.type in ("cpu", "cuda"))
    buffer = ReplayBuffer(cfg.buffer_size, spaces.obs_shape, spaces.action_dim, device)
    episodes = EpisodeTracker(cfg.num_envs, device)

    # Sums of per-update diagnostics between two metrics rows, kept on the device (no sync per step):
    # critic: [critic_loss, mean Q]; actor: [actor_loss, alpha_loss, entropy estimate -log pi, alpha].
    # learning_steps / learning_seconds: env steps taken once updates began, and the wall time
    # of those loop iterations (acting, updating, logging; not evaluating): the learning speed.
    counters = dict(step=0, iteration=0, updates=0, actor_updates=0, evals=0, time_acting=0.0,
                    time_learning=0.0, time_evaluating=0.0, learning_steps=0, learning_seconds=0.0, time_to_target=None, steps_to_target=None,
                    last_eval=None, critic_sum=torch.zeros(2, device=device), critic_n=0,
                    actor_sum=torch.zeros(4, device=device), actor_n=0)
    if run.restored is not None:
        saved = run.restored
        actor.load_state_dict(saved["actor"])
        critic.load_state_dict(saved["critic"])
        critic_target.load_state_dict(saved["critic_target"])
        with torch.no_grad():
            log_alpha.copy_(saved["log_alpha"])
        optimizer.load_state_dict(saved["optimizer"])
        buffer.load_state_dict(saved["buffer"])
        envs.load_state_dict(saved["envs"])
        episodes.load_state_dict(saved["episodes"])
        counters.update(saved["counters"])
        counters["critic_sum"] = counters["critic_sum"].to(device)
        counters["actor_sum"] = counters["actor_sum"].to(device)
        next_obs = saved["next_obs"].to(device)
    else:
        next_obs = envs.reset()
    run.restore_rng()

    def checkpoint_state() -> dict[str, Any]:
        return {"actor": actor.state_dict(), "critic": critic.state_dict(),
                "critic_target": critic_target.state_dict(), "log_alpha": log_alpha.detach().cpu(),
                "optimizer": optimizer.state_dict(),
                "buffer": buffer.state_dict(), "envs": envs.state_dict(), "episodes": episodes.state_dict(),
                "counters": to_cpu(dict(counters)), "next_obs": to_cpu(next_obs)}

    def evaluate(episodes_n: int, seed: int) -> list[float]:
        return evaluate_policy(actor.greedy, cfg.env, episodes=episodes_n, seed=seed, device=device,
                               backend=cfg.env_backend)

    def mixed_precision() -> torch.autocast:
        """Hidden-layer matmuls in bfloat16 when cfg.precision asks for it (a no-op otherwise)."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bfloat16")

    def update() -> None:
        """One gradient step of the critics; every policy_frequency-th also of actor and α."""
        batch = buffer.sample(cfg.batch_size)
        alpha = log_alpha.detach().exp()
        # Critics: regress both Q_k(s, a) on the soft Bellman target of the target critics.
        with torch.no_grad():
            with mixed_precision():
                next_action, next_log_prob = actor.sample(batch["next_obs"])
                next_q = critic_target(batch["next_obs"], next_action)  # [2, B]
            target = soft_bellman_target(batch["rewards"], next_q, next_log_prob, batch["terminated"],
                                         cfg.gamma, alpha)
        with mixed_precision():
            q = critic(batch["obs"], batch["actions"])  # [2, B], float32 (the output layer is)
        critic_loss = 0.5 * (q - target).square().mean(dim=1).sum()
        loss = critic_loss
        counters["updates"] += 1
        counters["critic_sum"] += torch.stack([critic_loss.detach(), q.detach().mean()])
        counters["critic_n"] += 1

        actor_step = counters["updates"] % cfg.policy_frequency == 0
        if actor_step:
            # Actor: maximise E[min_k Q_k(s, a~) - α log π(a~|s)] through the reparameterised a~.
            # The critics enter frozen: this loss moves the actor only (and skips the
            # critics' weight gradients), while critic_loss moves the critics only.
            with mixed_precision():
                action, log_prob = actor.sample(batch["obs"])
                q_pi = critic(batch["obs"], action, frozen=True).min(dim=0).values
            actor_loss = (alpha * log_prob - q_pi).mean()
            # Temperature: raise α when the entropy -log π is below the target, lower it above.
            alpha_loss = -(log_alpha * (log_prob.detach() + target_entropy)).mean()
            loss = loss + actor_loss + (alpha_loss if cfg.autotune else 0.0)
            counters["actor_updates"] += 1
            counters["actor_sum"] += torch.stack([actor_loss.detach(), alpha_loss.detach(),
                                                  -log_prob.detach().mean(), alpha])
            counters["actor_n"] += 1
        # The three losses touch disjoint parameters, so one backward pass and one step
        # give each its own gradient.
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        if counters["updates"] % cfg.target_frequency == 0:
            polyak_update(critic_target, critic, cfg.tau)

    def log_row() -> dict[str, Any]:
        critic_avg = (counters["critic_sum"] / max(counters["critic_n"], 1)).tolist()
        actor_avg = (counters["actor_sum"] / max(counters["actor_n"], 1)).tolist()
        learning = counters["critic_n"] > 0
        counters["critic_sum"].zero_()
        counters["actor_sum"].zero_()
        counters["critic_n"] = counters["actor_n"] = 0
        elapsed = time.perf_counter() - loop_start
        return {
            "step": counters["step"], "updates": counters["updates"], "wall_time": run.elapsed(),
            "episode_return": episodes.mean_return(), "episode_length": episodes.mean_length(),
            "episodes": episodes.episodes, "eval_return": counters["last_eval"],
            "critic_loss": critic_avg[0] if learning else None, "q_mean": critic_avg[1] if learning else None,
            "actor_loss": actor_avg[0] if learning else None, "alpha_loss": actor_avg[1] if learning else None,
            "entropy": actor_avg[2] if learning else None, "alpha": log_alpha.exp().item(),
            "steps_per_second": (counters["step"] - steps_at_start) / elapsed,
            "updates_per_second": (counters["updates"] - updates_at_start) / elapsed,
        }

    # Whole iterations only (num_envs steps each), never more steps than asked for (at least one).
    num_iterations = max(1, cfg.total_steps // cfg.num_envs)
    bar = ProgressBar(num_iterations * cfg.num_envs, f"sac {cfg.env}", initial=counters["step"], enabled=progress)
    loop_start = time.perf_counter()
    steps_at_start, updates_at_start = counters["step"], counters["updates"]
    with run:
        while counters["iteration"] < num_iterations:
            # 1. Act: uniformly random actions until learning starts, then a ~ π(.|s); store the transition.
            t0 = time.perf_counter()
            with torch.no_grad():
                if counters["step"] < cfg.learning_starts:
                    action = torch.rand((cfg.num_envs, spaces.action_dim), device=device) * 2 - 1
                else:
                    action = actor.act(next_obs)
                step = envs.step(actor.env_action(action))
            # s' is the observation the action led to: the final one where an episode ended,
            # so truncated episodes bootstrap from it; only `terminated` stops the bootstrap.
            buffer.add(next_obs, action, step.reward, step.final_obs, step.terminated)
            episodes.step(step.reward, step.terminated | step.truncated)
            next_obs = step.obs
            counters["step"] += cfg.num_envs
            counters["iteration"] += 1
            t1 = time.perf_counter()

            # 2. Learn: critic (and every few steps actor, α) updates on replayed minibatches.
            learning = counters["step"] >= cfg.learning_starts
            if learning:
                for _ in range(cfg.updates_per_step):
                    update()
            t2 = time.perf_counter()
            counters["time_acting"] += t1 - t0
            counters["time_learning"] += t2 - t1

            # 3. Now and then: evaluate greedily, log, check the target, checkpoint.
            prev = counters["step"] - cfg.num_envs
            last = counters["iteration"] == num_iterations
            eval_seconds = evaluate_if_due(cfg, counters, evaluate)
            if counters["step"] // cfg.log_every > prev // cfg.log_every or last:
                episodes.drain()
                if cfg.target_return is not None and counters["time_to_target"] is None:
                    # With periodic greedy evaluations, the target is judged on them; otherwise
                    # on the moving-average training return.
                    score = counters["last_eval"] if cfg.eval_every else (
                        episodes.mean_return() if episodes.recent_returns else None)
                    if score is not None and score >= cfg.target_return:
                        counters["time_to_target"] = run.elapsed() - counters["time_evaluating"]
                        counters["steps_to_target"] = counters["step"]
                row = log_row()
                run.log(row)
                if callback is not None:
                    callback(row)
                bar.update(counters["step"], ret=row["episode_return"], eval=counters["last_eval"])
            if learning:
                counters["learning_steps"] += cfg.num_envs
                counters["learning_seconds"] += time.perf_counter() - t0 - eval_seconds
            if counters["step"] // cfg.checkpoint_every > prev // cfg.checkpoint_every:
                run.save(checkpoint_state())
            run.stop_if_interrupted(checkpoint_state, counters["step"])
        bar.close()
        train_seconds = time.perf_counter() - loop_start

        # Final evaluation: greedy policy tanh(mu), fresh seeds, one episode per environment.
        t_eval = time.perf_counter()
        eval_returns = evaluate(cfg.eval_episodes, seed=cfg.seed)
        counters["time_evaluating"] += time.perf_counter() - t_eval
        run.save(checkpoint_state())
        envs.close()
        updates = counters["updates"] - updates_at_start
        summary = run.standard_summary(cfg, counters, episodes, eval_returns, counters["step"] - steps_at_start,
                                       train_seconds, device)
        return run.finish({
            **summary,
            "updates": counters["updates"],
            "actor_updates": counters["actor_updates"],
            "alpha": log_alpha.exp().item(),
            "updates_per_second": updates / train_seconds if train_seconds > 0 else None,
            # One env step and updates_per_step critic updates each, per second of those steps.
            "learning_steps_per_second": (counters["learning_steps"] / counters["learning_seconds"]
                                          if counters["learning_seconds"] > 0 else None),
        })
