r"""MuZero (Schrittwieser et al., 2020): planning with a learned model, in latent space.

AlphaZero searched the true rules. MuZero learns three functions and searches with them:

* representation :math:`s^0 = h_\theta(o_t)`: an observation to a latent state;
* dynamics :math:`s^{k}, r^{k} = g_\theta(s^{k-1}, a^{k})`: the next latent state and reward;
* prediction :math:`p^k, v^k = f_\theta(s^k)`: policy prior and value.

The latent states are not asked to reconstruct anything: they only have to make the
rewards, values and policies along an unroll right. Training samples a position
:math:`t` from a replay buffer of played games, unrolls the model :math:`K` steps along
the actions actually taken, and minimises

.. math::
    \mathcal L = \sum_{k=0}^{K} \Big[\ell^v\big(z_{t+k}, v^k\big) + \ell^r\big(u_{t+k}, r^k\big)
                 + \ell^p\big(\pi_{t+k}, p^k\big)\Big]

with the search's visit distribution :math:`\pi` as policy target, the observed reward
:math:`u` (no reward term at :math:`k = 0`) and the **n-step bootstrapped** value target
(:func:`n_step_value_targets`)

.. math::  z_t = u_{t+1} + \gamma u_{t+2} + \dots + \gamma^{n-1} u_{t+n} + \gamma^n \nu_{t+n}

where :math:`\nu` is the search's root value when that position was played. For a
two-player game :math:`\gamma = -1` between the players' turns and :math:`n` spans the
game, so :math:`z_t` is the outcome for the player to move.

Indices follow the paper (its Eq. 1 and the target above): the move played at position
:math:`t` is :math:`a_{t+1}` and :math:`u_{t+1}` is the reward it earned, so the model's
:math:`k`-th step from :math:`t` takes :math:`a^k = a_{t+k}` and its :math:`r^k` predicts
:math:`u_{t+k}`. The arrays count from 0 by position: row :math:`t` of an episode holds
:math:`o_t`, the move played there (:math:`a_{t+1}`), the reward that move earned
(:math:`u_{t+1}`), :math:`\nu_t` and :math:`\pi_t`.

The details that make it work, all here: values and rewards predicted as categorical
distributions over a support after the invertible scaling
:math:`\phi(x) = \mathrm{sign}(x)(\sqrt{|x|+1}-1) + \epsilon x` (:func:`scale_value`,
:func:`to_support`); latent states min–max normalised to [0, 1]; the gradient into the
dynamics halved at every unroll step and each unrolled step's loss divided by K; the
search's Q rescaled by the min and max seen in the tree (rewards of any scale); Dirichlet
noise at the root and a visit-count temperature that falls as training goes on. Board
games also train on the board's symmetries (:func:`augment_unrolls`): every sampled
unroll is turned by a random rotation or reflection, as AlphaZero does with its positions,
which shows the model each position it learns from in up to 8 orientations.
``selection="gumbel"`` trains Gumbel MuZero (Danihelka et al., 2022) with the same search
option as AlphaZero's (:func:`~course_lib.search.gumbel_policy`).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..core import ConfigError, ProgressBar, Run, option, resolve_device, seed_everything
from ..core.run import to_cpu
from ..envs import make_vector_env
from ..evaluation import evaluate_policy
from ..games import GAMES as BOARD_GAMES
from ..games import BoardGame, make_game, permute, permute_moves
from ..games.players import PerfectPlayer, RandomPlayer, evaluate_players
from ..nets import mlp
from ..search import (RecurrentOutput, RootOutput, dirichlet_noise, gumbel_noise, gumbel_policy, root_value,
                      sample_action, search, search_move, visit_policy)
from .base import RunConfig

__all__ = ["MuZeroConfig", "MuZeroNet", "scale_value", "unscale_value", "to_support", "from_support",
           "n_step_value_targets", "muzero_loss", "latent_root", "latent_recurrent_fn", "MuZeroSearchPlayer",
           "augment_unrolls", "export_network", "load_network", "train", "BENCHMARKS"]


@dataclass
class MuZeroConfig(RunConfig):
    """MuZero's hyper-parameters. Defaults: CartPole-v1 on the batched tensor env."""

    env: str = option("CartPole-v1", "CartPole-v1 (single agent) or a board game: " + ", ".join(BOARD_GAMES))
    env_backend: str = option("tensor", "gymnasium envs, or batched tensor envs (single-agent envs only)",
                              choices=("gymnasium", "tensor"))
    total_steps: int = option(100_000, "environment steps (board games: moves) to train for", low=1)
    num_envs: int = option(16, "environments (or self-play games) played at once", low=1)
    num_simulations: int = option(32, "MCTS simulations per move", low=1)
    discount: float = option(0.997, "γ (single agent; board games use -1 between the players)", low=0.0, high=1.0)
    td_steps: int = option(50, "n of the n-step value targets", low=1)
    unroll_steps: int = option(5, "K, model steps unrolled in training", low=1)
    latent_size: int = option(64, "size of the latent state", low=1)
    hidden_size: int = option(64, "units of the hidden layer of h, g and f", low=1)
    value_support: int = option(20, "categorical support of the (scaled) value: -S..S", low=1)
    reward_support: int = option(5, "categorical support of the (scaled) reward: -S..S", low=1)
    batch_size: int = option(256, "positions per training batch", low=1)
    updates_per_iteration: int = option(4, "gradient steps after each move of all environments", low=0)
    learning_starts: int = option(1_000, "positions in the replay buffer before training starts", low=1)
    replay_size: int = option(100_000, "train on the latest this many positions", low=1)
    learning_rate: float = option(3e-3, "Adam step size", low=0.0, low_open=True)
    weight_decay: float = option(1e-4, "L2 penalty", low=0.0)
    value_coef: float = option(0.25, "weight of the value loss", low=0.0)
    max_grad_norm: float = option(5.0, "gradient-norm clip", low=0.0, low_open=True)
    dirichlet_alpha: float = option(0.25, "Dirichlet α of the root noise", low=0.0, low_open=True)
    noise_fraction: float = option(0.25, "weight of the root noise", low=0.0, high=1.0)
    temperatures: str = option("1.0,0.5,0.25", "visit-count temperatures for the first half, the third quarter "
                                               "and the last quarter of training")
    augment: bool = option(True, "board games: turn each sampled unroll (observation, actions, policies) by a "
                                 "random symmetry of the board")
    selection: str = option("puct", "search: puct (MuZero) or gumbel (Gumbel MuZero: Gumbel noise and sequential "
                                    "halving at the root, the improved policy as target; dirichlet_alpha, "
                                    "noise_fraction and the temperatures unused)", choices=("puct", "gumbel"))
    max_considered: int = option(16, "gumbel: root moves sequential halving starts from", low=1)
    temperature_moves: int = option(0, "board games: the first this many moves of each game are sampled with "
                                       "τ = 1 and later ones take the most visited action (0: use temperatures)",
                                    low=0)
    eval_episodes: int = option(20, "greedy evaluation episodes at the end (board games: games per side "
                                    "against each reference player)", low=1)
    eval_every: int = option(10_000, "also evaluate every this many steps (0: only at the end)", low=0)
    target_return: float | None = option(475.0, "single agent: stop once a periodic evaluation reaches it")
    log_every: int = option(2_000, "write a metrics row every this many steps", low=1)
    checkpoint_every: int = option(20_000, "checkpoint every this many steps (and at the end)", low=1)

    def validate(self) -> None:
        if self.env in BOARD_GAMES:
            self.validate_device()
        else:
            super().validate()
        try:
            temps = [float(t) for t in self.temperatures.split(",")]
        except ValueError:
            temps = []
        if len(temps) != 3 or min(temps) < 0:
            raise ConfigError(f"temperatures = {self.temperatures!r}; accepted: three comma-separated numbers >= 0")

    @property
    def board_game(self) -> bool:
        return self.env in BOARD_GAMES


MuZeroConfig.presets = {
    # Tic-tac-toe: two players, targets are the game outcome (n spans the game), values in [-1, 1].
    # The learned model needs width (512 hidden units) to predict wins and blocks, and the
    # board's symmetries (augment, on by default) to learn them in positions self-play rarely
    # reaches; 64 simulations; AlphaZero's opening exploration (τ = 1 for 4 moves, then the
    # most visited).
    "tictactoe": {"env": "tictactoe", "total_steps": 150_000, "num_envs": 128, "num_simulations": 64,
                  "hidden_size": 512, "td_steps": 10, "unroll_steps": 5, "value_support": 1, "reward_support": 1,
                  "updates_per_iteration": 16, "value_coef": 1.0, "learning_starts": 2_000, "replay_size": 50_000,
                  "dirichlet_alpha": 1.0, "temperatures": "1.0,1.0,1.0", "temperature_moves": 4, "eval_every": 0,
                  "eval_episodes": 100, "target_return": None},
}

BENCHMARKS = {
    "cartpole": (None, {}),
    "tictactoe": ("tictactoe", {}),
}


# ------------------------------------------------------------------ value scaling
def scale_value(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    r""":math:`\phi(x) = \mathrm{sign}(x)\,(\sqrt{|x| + 1} - 1) + \epsilon x`: compresses large values (MuZero, App. F)."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1) - 1) + eps * x


def unscale_value(y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    r""":math:`\phi^{-1}(y) = \mathrm{sign}(y)\Big(\Big(\frac{\sqrt{1 + 4\epsilon(|y| + 1 + \epsilon)} - 1}{2\epsilon}\Big)^2 - 1\Big)`."""
    return torch.sign(y) * (((torch.sqrt(1 + 4 * eps * (y.abs() + 1 + eps)) - 1) / (2 * eps)).square() - 1)


def to_support(x: torch.Tensor, size: int) -> torch.Tensor:
    r"""``[...]`` scalars -> ``[..., 2·size + 1]`` "two-hot" distributions over the support :math:`-S..S` of :math:`\phi(x)`.

    :math:`\phi(x)` is clipped to the support and split between the two integers around
    it, so that the distribution's mean is exactly :math:`\phi(x)`.
    """
    y = scale_value(x if x.is_floating_point() else x.float()).clamp(-size, size)
    low = y.floor()
    frac = y - low
    out = torch.zeros(*x.shape, 2 * size + 1, device=x.device,
                      dtype=x.dtype if x.is_floating_point() else torch.float32)
    idx = (low + size).long()
    out.scatter_(-1, idx.unsqueeze(-1), (1 - frac).unsqueeze(-1))
    out.scatter_add_(-1, (idx + 1).clamp(max=2 * size).unsqueeze(-1), frac.unsqueeze(-1))
    return out


def from_support(logits: torch.Tensor, size: int) -> torch.Tensor:
    r""":math:`\phi^{-1}\big(\mathbb E[y]\big)` of a categorical distribution over :math:`-S..S` given by ``logits [..., 2S+1]``."""
    support = torch.arange(-size, size + 1, device=logits.device, dtype=torch.float32)
    return unscale_value((torch.softmax(logits.float(), dim=-1) * support).sum(-1))


# -------------------------------------------------------------------------- targets
def n_step_value_targets(rewards: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor,
                         terminated: torch.Tensor, bootstrap: torch.Tensor, gamma: float, n: int) -> torch.Tensor:
    r"""MuZero's value targets for whole episodes, ``[E, T]`` padded, episode ``e`` of ``lengths[e]`` steps.

    .. math::
        z_t = \sum_{i=1}^{m} \gamma^{i-1} u_{t+i} + \gamma^{m} B_{t},\qquad m = \min(n, L - t)

    with :math:`B_t = \nu_{t+n}` (the search value of position :math:`t+n`) when
    :math:`t + n < L`; past the end of the episode, :math:`B_t = 0` if it *terminated*
    (nothing follows a terminal state) and the value of its final observation ``bootstrap``
    if it was *truncated* (a time limit). A two-player game uses :math:`\gamma = -1`.

    Args:
      rewards: ``[E, T]``; column :math:`t` holds :math:`u_{t+1}`, the reward of the move
        played at position :math:`t` (the paper's indexing, see the module docstring).
      values: ``[E, T]`` :math:`\nu_t`, root values of the searches.
      lengths: ``[E]`` :math:`L`.
      terminated: ``[E]`` bool.
      bootstrap: ``[E]`` value of the observation after the last step (used if not terminated).
      gamma: discount.
      n: number of steps before bootstrapping.

    Returns:
      ``[E, T]`` :math:`z_t` (0 past each episode's end).
    """
    E, T = rewards.shape
    t = torch.arange(T, device=rewards.device)
    inside = t.unsqueeze(0) < lengths.unsqueeze(1)
    target = torch.zeros_like(rewards)
    discount = 1.0
    for i in range(n):
        idx = (t + i).clamp(max=T - 1)
        valid = ((t + i).unsqueeze(0) < lengths.unsqueeze(1)) & inside
        target += discount * torch.where(valid, rewards[:, idx], 0.0)
        discount *= gamma
    # Bootstrap: ν_{t+n} inside the episode, else 0 / the final observation's value, discounted by γ^m.
    end_value = torch.where(terminated, 0.0, bootstrap).unsqueeze(1)
    within = (t + n).unsqueeze(0) < lengths.unsqueeze(1)
    steps_left = (lengths.unsqueeze(1) - t.unsqueeze(0)).clamp(min=0)
    boot = torch.where(within, values[:, (t + n).clamp(max=T - 1)], end_value)
    power = torch.where(within, torch.full_like(steps_left, n), steps_left)
    target += boot * torch.pow(torch.tensor(gamma, device=rewards.device, dtype=rewards.dtype), power.to(rewards.dtype))
    return torch.where(inside, target, 0.0)


# -------------------------------------------------------------------------- network
class MuZeroNet(nn.Module):
    """:math:`h`, :math:`g` and :math:`f` as small MLPs (for vector observations and board planes).

    Latent states are min–max normalised to [0, 1] per sample after :math:`h` and every
    :math:`g` step, so they stay on one scale however long the unroll.
    """

    def __init__(self, obs_dim: int, num_actions: int, latent: int = 64, hidden: int = 64,
                 value_support: int = 20, reward_support: int = 5):
        super().__init__()
        self.num_actions, self.value_support, self.reward_support = num_actions, value_support, reward_support
        self.representation = mlp(obs_dim, [hidden], latent, "elu")
        self.dynamics = mlp(latent + num_actions, [hidden], latent, "elu")
        self.reward = mlp(latent + num_actions, [hidden], 2 * reward_support + 1, "elu", out_gain=0.01)
        self.policy = mlp(latent, [hidden], num_actions, "elu", out_gain=0.01)
        self.value = mlp(latent, [hidden], 2 * value_support + 1, "elu", out_gain=0.01)

    @staticmethod
    def _normalise(s: torch.Tensor) -> torch.Tensor:
        low = s.min(dim=-1, keepdim=True).values
        high = s.max(dim=-1, keepdim=True).values
        return (s - low) / (high - low).clamp(min=1e-5)

    def represent(self, obs: torch.Tensor) -> torch.Tensor:
        """:math:`s^0 = h(o)`."""
        return self._normalise(self.representation(obs.flatten(1)))

    def predict(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`f(s)`: policy logits ``[B, A]`` and value logits ``[B, 2S+1]``."""
        return self.policy(latent), self.value(latent)

    def step(self, latent: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`g(s, a)`: next latent state and reward logits ``[B, 2R+1]``."""
        x = torch.cat([latent, F.one_hot(action, self.num_actions).to(latent.dtype)], dim=-1)
        return self._normalise(self.dynamics(x)), self.reward(x)


def muzero_loss(net: MuZeroNet, obs: torch.Tensor, actions: torch.Tensor, target_value: torch.Tensor,
                target_reward: torch.Tensor, target_policy: torch.Tensor, value_mask: torch.Tensor,
                policy_mask: torch.Tensor, value_coef: float = 0.25) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""The unrolled loss :math:`\sum_k \ell^v + \ell^r + \ell^p` for a batch of B positions.

    Args:
      obs: ``[B, ...]`` observations :math:`o_t`.
      actions: ``[B, K]`` :math:`a_{t+1}..a_{t+K}`, the moves played from position :math:`t` on;
        step :math:`k` of the unroll takes :math:`a^k = a_{t+k}`.
      target_value: ``[B, K+1]`` :math:`z_{t+k}`. ``target_reward``: ``[B, K+1]`` :math:`u_{t+k}`,
        the reward :math:`a_{t+k}` earned, the target of :math:`r^k` (column 0 unused: :math:`s^0`
        comes from an observation, not a move). ``target_policy``: ``[B, K+1, A]`` :math:`\pi_{t+k}`.
      value_mask: ``[B, K+1]`` 1 where the value and reward targets count (inside the
        episode, or past a *terminal* end, where both are 0). ``policy_mask``: ``[B, K+1]``
        1 inside the episode.

    Each step's loss is a cross-entropy (value and reward against :func:`to_support`
    targets). Steps ``k >= 1`` are scaled by 1/K, and the gradient entering the dynamics
    is halved at every step (MuZero's scaling, which keeps the unroll's gradient stable).
    """
    K = actions.shape[1]
    latent = net.represent(obs)
    value_target = to_support(target_value, net.value_support)
    reward_target = to_support(target_reward, net.reward_support)
    total = obs.new_zeros(())
    parts = {name: obs.new_zeros(()) for name in ("value_loss", "reward_loss", "policy_loss")}
    for k in range(K + 1):
        if k > 0:
            latent, reward_logits = net.step(latent, actions[:, k - 1])
            latent = 0.5 * latent + 0.5 * latent.detach()          # halve the gradient into g
            reward_loss = -(reward_target[:, k] * F.log_softmax(reward_logits, -1)).sum(-1)
        else:
            reward_loss = torch.zeros_like(target_value[:, 0])
        policy_logits, value_logits = net.predict(latent)
        value_loss = -(value_target[:, k] * F.log_softmax(value_logits, -1)).sum(-1)
        policy_loss = -(target_policy[:, k] * F.log_softmax(policy_logits, -1)).sum(-1)
        scale = 1.0 if k == 0 else 1.0 / K
        step = (value_mask[:, k] * (value_coef * value_loss + reward_loss) + policy_mask[:, k] * policy_loss).mean()
        total = total + scale * step
        with torch.no_grad():
            parts["value_loss"] += (value_mask[:, k] * value_loss).mean() / (K + 1)
            parts["reward_loss"] += (value_mask[:, k] * reward_loss).mean() / K
            parts["policy_loss"] += (policy_mask[:, k] * policy_loss).mean() / (K + 1)
    return total, parts


# --------------------------------------------------------------------------- search
@torch.no_grad()
def latent_root(net: MuZeroNet, obs: torch.Tensor) -> RootOutput:
    """The root of a search in latent space: :math:`s^0 = h(o)`, then :math:`f(s^0)` for the prior and the value."""
    latent = net.represent(obs)
    policy_logits, value_logits = net.predict(latent)
    return RootOutput(policy_logits, from_support(value_logits, net.value_support), latent)


def latent_recurrent_fn(net: MuZeroNet, discount: float) -> Callable[[torch.Tensor, torch.Tensor], RecurrentOutput]:
    """The search's step in latent space: :math:`g` for the next state and reward, :math:`f` for prior and value.

    The model knows no rules: every action is legal and no state is terminal inside the
    tree (only the root's legal moves come from the environment).
    """
    @torch.no_grad()
    def recurrent(latent: torch.Tensor, action: torch.Tensor) -> RecurrentOutput:
        nxt, reward_logits = net.step(latent, action)
        policy_logits, value_logits = net.predict(nxt)
        reward = from_support(reward_logits, net.reward_support)
        return RecurrentOutput(reward, torch.full_like(reward, discount), policy_logits,
                               from_support(value_logits, net.value_support), nxt)
    return recurrent


def _model_search(net: MuZeroNet, obs: torch.Tensor, legal: torch.Tensor, num_simulations: int, discount: float,
                  qtransform: str, noise: torch.Tensor | None = None, noise_fraction: float = 0.25, **gumbel):
    """Search in latent space from observations ``obs`` (:func:`latent_root`, :func:`latent_recurrent_fn`);
    ``gumbel``: ``selection``, ``gumbel`` and ``max_considered`` for a Gumbel search (see :func:`search`)."""
    return search(latent_root(net, obs), latent_recurrent_fn(net, discount), num_simulations, root_legal=legal,
                  root_noise=noise, noise_fraction=noise_fraction, qtransform=qtransform, **gumbel)


class MuZeroSearchPlayer:
    """Plays a board game with MuZero's search (legal moves at the root only): the most visited
    move, or with ``selection="gumbel"`` the survivor of sequential halving."""

    def __init__(self, game: BoardGame, net: MuZeroNet, num_simulations: int, selection: str = "puct",
                 max_considered: int = 16):
        self.game, self.net, self.num_simulations = game, net, num_simulations
        self.selection, self.max_considered = selection, max_considered

    @torch.no_grad()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        tree = _model_search(self.net, self.game.observation(states), self.game.legal(states), self.num_simulations,
                             -1.0, "none", selection=self.selection, max_considered=self.max_considered)
        return search_move(tree)


# ---------------------------------------------------------------------- environments
class _SingleAgent:
    """A vector env seen by the MuZero loop: observations, all actions legal, discount γ."""

    def __init__(self, cfg: MuZeroConfig, device: torch.device):
        self.env = make_vector_env(cfg.env, cfg.num_envs, seed=cfg.seed, device=device, backend=cfg.env_backend)
        if not self.env.spaces.discrete:
            raise ConfigError(f"MuZero here plans over discrete actions; {cfg.env} has continuous ones")
        self.num_actions = self.env.spaces.num_actions
        self.obs_dim = math.prod(self.env.spaces.obs_shape)
        self.obs = self.env.reset()
        self.discount, self.qtransform = cfg.discount, "minmax"
        self.max_length = 10_000

    def observe(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.obs.flatten(1).float(), torch.ones(self.obs.shape[0], self.num_actions, dtype=torch.bool,
                                                        device=self.obs.device)

    def step(self, action: torch.Tensor):
        r = self.env.step(action)
        self.obs = r.obs
        return r.reward.float(), r.terminated, r.truncated, r.final_obs.flatten(1).float()

    def state_dict(self) -> dict:
        return {"env": self.env.state_dict(), "obs": self.obs}

    def load_state_dict(self, state: dict) -> None:
        self.env.load_state_dict(state["env"])
        self.obs = state["obs"].to(self.obs.device)


class _SelfPlay:
    """G board games played by the agent against itself; a finished game restarts at once."""

    def __init__(self, cfg: MuZeroConfig, device: torch.device):
        self.game = make_game(cfg.env)
        self.num_actions = self.game.num_actions
        self.obs_dim = math.prod(self.game.obs_shape)
        self.device = device
        self.states = self.game.initial(cfg.num_envs, device)
        self.discount, self.qtransform = -1.0, "none"
        self.max_length = self.game.num_cells

    def observe(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.game.observation(self.states).flatten(1), self.game.legal(self.states)

    def step(self, action: torch.Tensor):
        nxt, reward, done = self.game.step(self.states, action)
        final = self.game.observation(nxt).flatten(1)
        self.states = torch.where(done.unsqueeze(1), self.game.initial(nxt.shape[0], self.device), nxt)
        return reward, done, torch.zeros_like(done), final

    def state_dict(self) -> dict:
        return {"states": self.states}

    def load_state_dict(self, state: dict) -> None:
        self.states = state["states"].to(self.device)


# --------------------------------------------------------------------------- shipped networks
def _sizes(cfg: MuZeroConfig) -> tuple[int, int]:
    """(observation size, number of actions) of the environment ``cfg`` trains on."""
    if cfg.board_game:
        game = make_game(cfg.env)
        return math.prod(game.obs_shape), game.num_actions
    env = make_vector_env(cfg.env, 1, seed=0, backend=cfg.env_backend)
    env.close()
    return math.prod(env.spaces.obs_shape), env.spaces.num_actions


def export_network(run_dir: str | Path, path: str | Path) -> Path:
    """Write the network of the MuZero run in ``run_dir`` to ``path``: its config and weights only.

    About 100 kB for CartPole, where the run's ``checkpoint.pt`` (replay buffer, optimiser)
    takes about 20 MB. :func:`load_network` reads it back.
    """
    state = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=False)
    if state.get("algo") != "muzero":
        raise ValueError(f"{run_dir} holds a {state.get('algo')!r} run, not a muzero one")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"algo": "muzero", "config": state["config"], "net": state["net"],
                "steps": state["counters"]["step"]}, path)
    return path


def load_network(path: str | Path, device: str | torch.device = "cpu") -> tuple[MuZeroConfig, MuZeroNet]:
    """The config and the trained network stored by :func:`export_network` (or a run's ``checkpoint.pt``)."""
    state = torch.load(Path(path), map_location=device, weights_only=False)
    cfg = MuZeroConfig.from_dict(state["config"])
    net = MuZeroNet(*_sizes(cfg), cfg.latent_size, cfg.hidden_size, cfg.value_support, cfg.reward_support)
    net.load_state_dict(state["net"])
    return cfg, net.to(device).eval()


# --------------------------------------------------------------------------- replay
class GameReplay:
    """Finished episodes, position after position, with their training targets.

    Positions of one episode are contiguous; ``end[i]`` is one past the last position of
    ``i``'s episode and ``absorbing[i]`` says whether it terminated (then values and rewards
    past its end are 0) or was cut (then nothing past its end is trained on). The buffer
    keeps everything it is given (``capacity`` = the run's step budget plus one episode per
    environment); sampling draws from the latest ``window`` positions.
    """

    def __init__(self, capacity: int, obs_dim: int, num_actions: int, device: torch.device):
        self.capacity, self.size = capacity, 0
        self.obs = torch.zeros(capacity, obs_dim, device=device)
        self.action = torch.zeros(capacity, dtype=torch.long, device=device)
        self.reward = torch.zeros(capacity, device=device)
        self.value_target = torch.zeros(capacity, device=device)
        self.policy = torch.zeros(capacity, num_actions, device=device)
        self.end = torch.zeros(capacity, dtype=torch.long, device=device)
        self.absorbing = torch.zeros(capacity, dtype=torch.bool, device=device)

    def add_episode(self, obs, action, reward, value_target, policy, terminated: bool) -> None:
        n = obs.shape[0]
        if self.size + n > self.capacity:
            raise RuntimeError("replay buffer full")   # sized for the whole run; not reached
        sl = slice(self.size, self.size + n)
        self.obs[sl], self.action[sl], self.reward[sl] = obs, action, reward
        self.value_target[sl], self.policy[sl] = value_target, policy
        self.end[sl] = self.size + n
        self.absorbing[sl] = terminated
        self.size += n

    def sample(self, batch: int, unroll: int, window: int, generator: torch.Generator | None = None):
        """Targets for ``batch`` positions and the K = ``unroll`` steps after each (see :func:`muzero_loss`)."""
        device = self.obs.device
        low = max(0, self.size - window)
        t = torch.randint(low, self.size, (batch,), device=device, generator=generator)
        k = torch.arange(unroll + 1, device=device)
        idx = t.unsqueeze(1) + k                                            # [B, K+1]
        end = self.end[t].unsqueeze(1)
        inside = idx < end
        safe = idx.clamp(max=self.size - 1)
        absorbing = self.absorbing[t].unsqueeze(1)
        value = torch.where(inside, self.value_target[safe], 0.0)
        prev_inside = (idx - 1) < end
        reward = torch.where(prev_inside & (k > 0), self.reward[(idx - 1).clamp(min=0, max=self.size - 1)], 0.0)
        value_mask = (inside | absorbing).float()
        policy = torch.where(inside.unsqueeze(-1), self.policy[safe], 0.0)
        random_actions = torch.randint(self.policy.shape[1], (batch, unroll), device=device, generator=generator)
        actions = torch.where(inside[:, :unroll], self.action[safe[:, :unroll]], random_actions)
        return self.obs[t], actions, value, reward, policy, value_mask, inside.float()

    def state_dict(self) -> dict:
        n = self.size
        return {"size": n, **{name: getattr(self, name)[:n] for name in
                              ("obs", "action", "reward", "value_target", "policy", "end", "absorbing")}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        n = self.size = state["size"]
        for name in ("obs", "action", "reward", "value_target", "policy", "end", "absorbing"):
            getattr(self, name)[:n] = state[name].to(self.obs.device)


def augment_unrolls(game: BoardGame, obs, actions, value, reward, policy, value_mask, policy_mask):
    """A :meth:`GameReplay.sample` batch with each unroll turned by a random symmetry of the board.

    The observation's planes, the actions along the unroll and the policy targets turn
    together; values and rewards do not change when the board turns, so the model learns
    the same game from up to 8 views of every position it has seen.
    """
    cells, moves = game.random_symmetries(obs.shape[0], device=obs.device)
    planes = permute(obs.view(obs.shape[0], -1, game.num_cells), cells).flatten(1)
    return (planes, permute_moves(actions, moves), value, reward, permute(policy, moves), value_mask, policy_mask)


# --------------------------------------------------------------------------- training
def train(
    config: MuZeroConfig | None = None,
    out: str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train MuZero; returns the summary (also written to ``out/summary.json``).

    Single-agent envs report ``eval_return`` (greedy search, ``eval_episodes`` fresh
    episodes); board games report ``evaluation``: wins/draws/losses of the search against
    the reference players from both sides. Args: as the other agents' ``train``.
    """
    cfg = config if config is not None else MuZeroConfig()
    run = Run(out, "muzero", cfg, resume=resume, overwrite=overwrite)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    env = _SelfPlay(cfg, device) if cfg.board_game else _SingleAgent(cfg, device)
    N, A = cfg.num_envs, env.num_actions
    net = MuZeroNet(env.obs_dim, A, cfg.latent_size, cfg.hidden_size, cfg.value_support, cfg.reward_support).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    replay = GameReplay(cfg.total_steps + N * (env.max_length + 1), env.obs_dim, A, device)
    L = env.max_length + 1
    # The episode each environment is playing: observations, actions, rewards, search values and policies.
    ep_obs = torch.zeros(N, L, env.obs_dim, device=device)
    ep_action = torch.zeros(N, L, dtype=torch.long, device=device)
    ep_reward = torch.zeros(N, L, device=device)
    ep_value = torch.zeros(N, L, device=device)
    ep_policy = torch.zeros(N, L, A, device=device)
    ep_len = torch.zeros(N, dtype=torch.long, device=device)
    temps = [float(t) for t in cfg.temperatures.split(",")]
    counters = dict(step=0, iteration=0, updates=0, episodes=0, evals=0, time_acting=0.0, time_learning=0.0,
                    time_evaluating=0.0, time_to_target=None, steps_to_target=None, last_eval=None,
                    recent_returns=[], stopped=False)
    if run.restored is not None:
        saved = run.restored
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        replay.load_state_dict(saved["replay"])
        env.load_state_dict(saved["env"])
        for name, t in (("obs", ep_obs), ("action", ep_action), ("reward", ep_reward), ("value", ep_value),
                        ("policy", ep_policy), ("len", ep_len)):
            t.copy_(saved["episodes"][name])
        counters.update(saved["counters"])
    run.restore_rng()

    def checkpoint_state() -> dict[str, Any]:
        return {"net": net.state_dict(), "optimizer": optimizer.state_dict(), "replay": to_cpu(replay.state_dict()),
                "env": to_cpu(env.state_dict()), "counters": dict(counters),
                "episodes": to_cpu({"obs": ep_obs, "action": ep_action, "reward": ep_reward, "value": ep_value,
                                    "policy": ep_policy, "len": ep_len})}

    def greedy_search(obs: torch.Tensor) -> torch.Tensor:
        legal = torch.ones(obs.shape[0], A, dtype=torch.bool, device=obs.device)
        tree = _model_search(net, obs.flatten(1).float(), legal, cfg.num_simulations, env.discount, env.qtransform,
                             selection=cfg.selection, max_considered=cfg.max_considered)
        return search_move(tree)

    def evaluate(episodes: int, seed: int) -> Any:
        net.eval()
        if cfg.board_game:
            game = env.game
            player = MuZeroSearchPlayer(game, net, cfg.num_simulations, cfg.selection, cfg.max_considered)
            opponents = {"random": RandomPlayer(game, seed)}
            if game.name == "tictactoe":
                opponents = {"perfect": PerfectPlayer(game, seed), **opponents}
            return {name: {"search": evaluate_players(game, player, opp, episodes, seed=seed, device=device)}
                    for name, opp in opponents.items()}
        return evaluate_policy(greedy_search, cfg.env, episodes=episodes, seed=seed, device=device,
                               backend=cfg.env_backend)

    def finish_episodes(done: torch.Tensor, terminated: torch.Tensor, final_obs: torch.Tensor) -> None:
        idx = done.nonzero().flatten()
        if idx.numel() == 0:
            return
        with torch.no_grad():
            _, v_logits = net.predict(net.represent(final_obs[idx]))
            bootstrap = from_support(v_logits, cfg.value_support)
        n_steps = cfg.td_steps if not cfg.board_game else env.max_length + 1
        longest = int(ep_len[idx].max())
        targets = n_step_value_targets(ep_reward[idx, :longest], ep_value[idx, :longest], ep_len[idx],
                                       terminated[idx], bootstrap, env.discount, n_steps)
        for j, e in enumerate(idx.tolist()):
            n = int(ep_len[e])
            replay.add_episode(ep_obs[e, :n], ep_action[e, :n], ep_reward[e, :n], targets[j, :n], ep_policy[e, :n],
                               bool(terminated[e]))
            if not cfg.board_game:
                counters["recent_returns"] = (counters["recent_returns"] + [float(ep_reward[e, :n].sum())])[-20:]
        counters["episodes"] += idx.numel()
        ep_len[idx] = 0

    stats_sum: dict[str, float] = {}
    stats_n = 0
    num_iterations = max(1, cfg.total_steps // N)
    bar = ProgressBar(num_iterations * N, f"muzero {cfg.env}", initial=counters["step"], enabled=progress)
    loop_start, steps_at_start = time.perf_counter(), counters["step"]
    with run:
        while counters["iteration"] < num_iterations and not counters["stopped"]:
            # 1. Act: search from every environment's observation, play a ~ π^(1/τ).
            t0 = time.perf_counter()
            frac = counters["iteration"] / num_iterations
            temperature = temps[0] if frac < 0.5 else temps[1] if frac < 0.75 else temps[2]
            net.eval()
            with torch.no_grad():
                obs, legal = env.observe()
                if cfg.selection == "gumbel":
                    # Gumbel MuZero: the noise picks the root moves to consider, sequential halving
                    # the move to play, and the policy target is the improved policy.
                    tree = _model_search(net, obs, legal, cfg.num_simulations, env.discount, env.qtransform,
                                         selection="gumbel", gumbel=gumbel_noise((N, A), device=device),
                                         max_considered=cfg.max_considered)
                    action, pi = gumbel_policy(tree)
                else:
                    tree = _model_search(net, obs, legal, cfg.num_simulations, env.discount, env.qtransform,
                                         dirichlet_noise(legal, cfg.dirichlet_alpha), cfg.noise_fraction)
                    pi = visit_policy(tree, 1.0)
                    if cfg.board_game and cfg.temperature_moves:
                        # AlphaZero's schedule: explore the opening, then play the most visited move.
                        action = torch.where(ep_len < cfg.temperature_moves, sample_action(pi), pi.argmax(-1))
                    else:
                        action = (sample_action(visit_policy(tree, temperature)) if temperature > 0
                                  else pi.argmax(-1))
                rows = torch.arange(N, device=device)
                ep_obs[rows, ep_len], ep_action[rows, ep_len] = obs, action
                ep_value[rows, ep_len], ep_policy[rows, ep_len] = root_value(tree), pi
                reward, terminated, truncated, final_obs = env.step(action)
                ep_reward[rows, ep_len] = reward
                ep_len += 1
                finish_episodes(terminated | truncated | (ep_len >= L), terminated, final_obs)
            counters["step"] += N
            counters["iteration"] += 1
            t1 = time.perf_counter()

            # 2. Learn: unroll the model along replayed positions.
            if replay.size >= cfg.learning_starts:
                net.train()
                for _ in range(cfg.updates_per_iteration):
                    batch = replay.sample(cfg.batch_size, cfg.unroll_steps, cfg.replay_size)
                    if cfg.board_game and cfg.augment:
                        batch = augment_unrolls(env.game, *batch)
                    loss, parts = muzero_loss(net, *batch, value_coef=cfg.value_coef)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    counters["updates"] += 1
                    for key, v in parts.items():
                        stats_sum[key] = stats_sum.get(key, 0.0) + float(v)
                    stats_n += 1
            t2 = time.perf_counter()
            counters["time_acting"] += t1 - t0
            counters["time_learning"] += t2 - t1

            # 3. Evaluate now and then (single agent: stop at the target), log, checkpoint.
            prev = counters["step"] - N
            if (cfg.eval_every and counters["step"] // cfg.eval_every > prev // cfg.eval_every
                    and not cfg.board_game):
                t_eval = time.perf_counter()
                returns = evaluate(cfg.eval_episodes, cfg.seed + 7919 * (counters["evals"] + 1))
                counters["evals"] += 1
                counters["last_eval"] = sum(returns) / len(returns)
                counters["time_evaluating"] += time.perf_counter() - t_eval
                if cfg.target_return is not None and counters["last_eval"] >= cfg.target_return:
                    if counters["time_to_target"] is None:
                        counters["time_to_target"] = run.elapsed() - counters["time_evaluating"]
                        counters["steps_to_target"] = counters["step"]
                    counters["stopped"] = True
            last = counters["iteration"] == num_iterations or counters["stopped"]
            if counters["step"] // cfg.log_every > prev // cfg.log_every or last:
                recent = counters["recent_returns"]
                row = {"step": counters["step"], "updates": counters["updates"], "wall_time": run.elapsed(),
                       "episodes": counters["episodes"], "replay": replay.size, "temperature": temperature,
                       "episode_return": sum(recent) / len(recent) if recent else None,
                       "eval_return": counters["last_eval"],
                       **{k: v / max(stats_n, 1) for k, v in stats_sum.items()},
                       "steps_per_second": (counters["step"] - steps_at_start) / (time.perf_counter() - loop_start)}
                stats_sum.clear()
                stats_n = 0
                run.log(row)
                if callback is not None:
                    callback(row)
                bar.update(counters["step"], ret=row["episode_return"], eval=counters["last_eval"])
            if counters["step"] // cfg.checkpoint_every > prev // cfg.checkpoint_every:
                run.save(checkpoint_state())
            run.stop_if_interrupted(checkpoint_state, counters["step"])
        bar.close()
        train_seconds = time.perf_counter() - loop_start

        t_eval = time.perf_counter()
        result = evaluate(cfg.eval_episodes, cfg.seed)
        counters["time_evaluating"] += time.perf_counter() - t_eval
        run.save(checkpoint_state())
        summary = {"env": cfg.env, "seed": cfg.seed, "total_steps": counters["step"], "episodes": counters["episodes"],
                   "updates": counters["updates"],
                   "steps_per_second": (counters["step"] - steps_at_start) / train_seconds if train_seconds else None,
                   "wall_seconds": run.elapsed(), "train_seconds": run.elapsed() - counters["time_evaluating"],
                   "time_acting": counters["time_acting"], "time_learning": counters["time_learning"],
                   "time_evaluating": counters["time_evaluating"], "device": str(device)}
        if cfg.board_game:
            summary.update(games=counters["episodes"], evaluation=result)
        else:
            recent = counters["recent_returns"]
            summary.update(eval_return=sum(result) / len(result), eval_returns=result,
                           train_return=sum(recent) / len(recent) if recent else None,
                           target_return=cfg.target_return, time_to_target=counters["time_to_target"],
                           steps_to_target=counters["steps_to_target"], env_backend=cfg.env_backend)
        return run.finish(summary)
