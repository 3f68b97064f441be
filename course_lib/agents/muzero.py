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

import functools
import math
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..core import Callback, ConfigError, EpisodeTracker, Run, option
from ..core.loop import Counters, MeanStats, Stopwatch, TargetTracker, crossed
from ..envs import make_vector_env
from ..evaluation import evaluate_policy
from ..games import GAMES as BOARD_GAMES
from ..games import BoardGame, make_game, permute, permute_moves
from ..games.players import PerfectPlayer, RandomPlayer, evaluate_players
# phi, phi^-1 and the two-hot support live in nets/ (Dreamer, TWM and STORM use them too); they stay
# importable from here, where the chapter 02 notebook and the muzero_targets assignment import them.
from ..nets import from_support, mlp, scale_value, to_support, unscale_value
from ..replay import SequenceReplay
from ..search import PolicyOutput, RecurrentOutput, RootOutput, make_policy, root_value
from .base import ReturnConfig

__all__ = ["MuZeroConfig", "MuZeroNet", "scale_value", "unscale_value", "to_support", "from_support",
           "n_step_value_targets", "muzero_loss", "latent_root", "latent_recurrent_fn", "MuZeroSearchPlayer",
           "replay_fields", "unroll_batch", "augment_unrolls", "build_networks", "evaluate_muzero", "export_network",
           "load_network", "train", "BENCHMARKS"]


@dataclass
class MuZeroConfig(ReturnConfig):
    """MuZero's hyper-parameters. Defaults: CartPole-v1 on the batched tensor env."""

    env: str = option("CartPole-v1", "CartPole-v1 (single agent) or a board game: " + ", ".join(BOARD_GAMES))
    env_backend: str = option("tensor", "gymnasium envs, or batched tensor envs (single-agent envs only)",
                              choices=("gymnasium", "tensor"))
    total_steps: int = option(100_000, "environment steps (board games: moves) to train for", low=1)
    num_envs: int = option(16, "environments (or self-play games) played at once", low=1)
    num_simulations: int = option(32, "MCTS simulations per move", low=1)
    gamma: float = option(0.997, "discount γ (single agent; board games use -1 between the players)", low=0.0,
                          high=1.0)
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
    temperatures: tuple[float, ...] = option((1.0, 0.5, 0.25), "visit-count temperatures for the first half, "
                                                               "the third quarter and the last quarter of training",
                                             low=0.0)
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
    target_return: float | None = option(475.0, "single agent: the return that counts as solved (judged on the "
                                                "periodic greedy searches when eval_every > 0)")
    stop_at_target: bool = option(True, "single agent: stop once target_return is reached (no target: never)")
    log_every: int = option(2_000, "write a metrics row every this many steps", low=1)
    checkpoint_every: int = option(20_000, "checkpoint every this many steps (and at the end)", low=1)

    def check_env(self) -> None:
        if self.env not in BOARD_GAMES:
            super().check_env()

    def validate(self) -> None:
        super().validate()
        if len(self.temperatures) != 3:
            raise ConfigError(f"MuZeroConfig.temperatures = {self.temperatures!r}; accepted: three numbers >= 0")

    @property
    def board_game(self) -> bool:
        return self.env in BOARD_GAMES


MuZeroConfig.renamed = {"discount": "gamma"}
MuZeroConfig.stop_needs_target = False


MuZeroConfig.presets = {
    # Tic-tac-toe: two players, targets are the game outcome (n spans the game), values in [-1, 1].
    # The learned model needs width (512 hidden units) to predict wins and blocks, and the
    # board's symmetries (augment, on by default) to learn them in positions self-play rarely
    # reaches; 64 simulations; AlphaZero's opening exploration (τ = 1 for 4 moves, then the
    # most visited).
    "tictactoe": {"env": "tictactoe", "total_steps": 150_000, "num_envs": 128, "num_simulations": 64,
                  "hidden_size": 512, "td_steps": 10, "unroll_steps": 5, "value_support": 1, "reward_support": 1,
                  "updates_per_iteration": 16, "value_coef": 1.0, "learning_starts": 2_000, "replay_size": 50_000,
                  "dirichlet_alpha": 1.0, "temperatures": (1.0, 1.0, 1.0), "temperature_moves": 4, "eval_every": 0,
                  "eval_episodes": 100, "target_return": None},
}

BENCHMARKS = {
    "cartpole": (None, {}),
    "tictactoe": ("tictactoe", {}),
}


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


def _model_policy(policy_fn, net: MuZeroNet, obs: torch.Tensor, legal: torch.Tensor, discount: float,
                  **kwargs) -> PolicyOutput:
    """``policy_fn`` (:func:`~course_lib.search.make_policy`) searching in latent space from observations ``obs``
    (:func:`latent_root`, :func:`latent_recurrent_fn`); ``kwargs``: its ``temperature`` and ``explore``."""
    return policy_fn(latent_root(net, obs), latent_recurrent_fn(net, discount), legal, **kwargs)


class MuZeroSearchPlayer:
    """Plays a board game with MuZero's search (legal moves at the root only): the most visited
    move, or with ``selection="gumbel"`` the survivor of sequential halving."""

    def __init__(self, game: BoardGame, net: MuZeroNet, num_simulations: int, selection: str = "puct",
                 max_considered: int = 16):
        self.game, self.net, self.num_simulations = game, net, num_simulations
        self.selection, self.max_considered = selection, max_considered

    @torch.no_grad()
    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        policy = make_policy(self.selection, self.num_simulations, max_considered=self.max_considered, gumbel_scale=0.0)
        return _model_policy(policy, self.net, self.game.observation(states), self.game.legal(states), -1.0,
                             temperature=0).action


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
        self.discount, self.qtransform = cfg.gamma, "minmax"
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
def export_network(run_dir: str | Path, path: str | Path) -> Path:
    """Write the network of the MuZero run in ``run_dir`` to ``path``: its config and weights only
    (about 100 kB for CartPole, where the run's ``checkpoint.pt`` with its replay takes about 20 MB)."""
    from . import export_agent

    return export_agent(run_dir, path)


def load_network(path: str | Path, device: str | torch.device = "cpu") -> tuple[MuZeroConfig, MuZeroNet]:
    """The config and the trained network stored by :func:`export_network` (or a run's ``checkpoint.pt``)."""
    from . import load_agent

    agent = load_agent(path, device)
    return agent.config, agent.net


# --------------------------------------------------------------------------- replay
def replay_fields(obs_dim: int, num_actions: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """What MuZero keeps of every played position (a :class:`~course_lib.replay.SequenceReplay` step):
    the observation, the action taken, the reward it brought, the n-step value target and the search policy."""
    return {"obs": ((obs_dim,), torch.float32), "action": ((), torch.long), "reward": ((), torch.float32),
            "value_target": ((), torch.float32), "policy": ((num_actions,), torch.float32)}


def unroll_batch(replay: SequenceReplay, batch: int, unroll: int, window: int,
                 generator: torch.Generator | None = None):
    """Targets for ``batch`` positions and the K = ``unroll`` steps after each (see :func:`muzero_loss`).

    A window of K + 1 steps from each sampled position ``t``: past the end of its episode the
    value target is 0 (and trained on only if the episode terminated: an absorbing state is
    worth 0, a cut episode's future is unknown), the reward of the step into it 0, the policy
    target empty, and the action random (the model still unrolls).

    Returns:
      ``obs [B, obs_dim]``, ``actions [B, K]``, ``value [B, K+1]``, ``reward [B, K+1]`` (``reward[:, k]``
      is the reward of the step from ``t+k-1`` to ``t+k``, 0 for k = 0), ``policy [B, K+1, A]``,
      ``value_mask [B, K+1]``, ``policy_mask [B, K+1]``.
    """
    w = replay.sample(batch, unroll + 1, window, generator)
    inside = w["mask"]
    value = torch.where(inside, w["value_target"], 0.0)
    reward = torch.zeros_like(value)
    reward[:, 1:] = torch.where(inside[:, :unroll], w["reward"][:, :unroll], 0.0)
    value_mask = (inside | w["terminal"].unsqueeze(1)).float()
    policy = torch.where(inside.unsqueeze(-1), w["policy"], 0.0)
    random_actions = torch.randint(w["policy"].shape[-1], (batch, unroll), device=value.device, generator=generator)
    actions = torch.where(inside[:, :unroll], w["action"][:, :unroll], random_actions)
    return w["obs"][:, 0], actions, value, reward, policy, value_mask, inside.float()


def augment_unrolls(game: BoardGame, obs, actions, value, reward, policy, value_mask, policy_mask):
    """An :func:`unroll_batch` with each unroll turned by a random symmetry of the board.

    The observation's planes, the actions along the unroll and the policy targets turn
    together; values and rewards do not change when the board turns, so the model learns
    the same game from up to 8 views of every position it has seen.
    """
    cells, moves = game.random_symmetries(obs.shape[0], device=obs.device)
    planes = permute(obs.view(obs.shape[0], -1, game.num_cells), cells).flatten(1)
    return (planes, permute_moves(actions, moves), value, reward, permute(policy, moves), value_mask, policy_mask)


# --------------------------------------------------------------------------- training
def evaluate_muzero(cfg: MuZeroConfig, net: MuZeroNet, env: Any, n: int, seed: int) -> Any:
    """The search without noise (the most visited move, or Gumbel's survivor) on ``n`` fresh episodes
    (a list of returns), or for a board game ``n`` games per side against the reference players."""
    net.eval()
    device = next(net.parameters()).device
    if cfg.board_game:
        game = env.game
        player = MuZeroSearchPlayer(game, net, cfg.num_simulations, cfg.selection, cfg.max_considered)
        opponents = {"random": RandomPlayer(game, seed)}
        if game.name == "tictactoe":
            opponents = {"perfect": PerfectPlayer(game, seed), **opponents}
        return {name: {"search": evaluate_players(game, player, opp, n, seed=seed, device=device)}
                for name, opp in opponents.items()}

    # The search without root noise.
    greedy_policy = make_policy(cfg.selection, cfg.num_simulations, qtransform=env.qtransform,
                                max_considered=cfg.max_considered, gumbel_scale=0.0)

    def greedy_search(obs: torch.Tensor) -> torch.Tensor:
        legal = torch.ones(obs.shape[0], env.num_actions, dtype=torch.bool, device=obs.device)
        return _model_policy(greedy_policy, net, obs.flatten(1).float(), legal, env.discount, temperature=0).action

    return evaluate_policy(greedy_search, cfg.env, episodes=n, seed=seed, device=device, backend=cfg.env_backend)


def _env(cfg: MuZeroConfig, device: torch.device):
    return _SelfPlay(cfg, device) if cfg.board_game else _SingleAgent(cfg, device)


def build_networks(cfg: MuZeroConfig, obs_dim: int | None = None, num_actions: int | None = None
                   ) -> dict[str, nn.Module]:
    """MuZero's h, g and f in one module: ``{"net": MuZeroNet}`` (sizes from ``cfg.env`` unless given)."""
    if obs_dim is None or num_actions is None:
        env = _env(cfg, torch.device("cpu"))
        obs_dim, num_actions = env.obs_dim, env.num_actions
    return {"net": MuZeroNet(obs_dim, num_actions, cfg.latent_size, cfg.hidden_size, cfg.value_support,
                             cfg.reward_support)}


def train(config: MuZeroConfig | None = None, out: str | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True, callback: Callback | None = None) -> dict[str, Any]:
    """Train MuZero; returns the summary (also written to ``out/summary.json``).

    Single-agent envs report ``eval_return`` (greedy search, ``eval_episodes`` fresh
    episodes); board games report ``evaluation``: wins/draws/losses of the search against
    the reference players from both sides. Args: as :func:`course_lib.agents.ppo.train`.
    """
    cfg = config if config is not None else MuZeroConfig()
    run = Run(out, "muzero", cfg, resume=resume, overwrite=overwrite, progress=progress, callback=callback)
    device = run.device
    env = _env(cfg, device)
    N, A = cfg.num_envs, env.num_actions
    net = build_networks(cfg, env.obs_dim, A)["net"].to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    replay = SequenceReplay(cfg.total_steps + N * (env.max_length + 1), replay_fields(env.obs_dim, A), device)
    L = env.max_length + 1
    # The episode each environment is playing: observations, actions, rewards, search values and policies.
    playing = {"obs": torch.zeros(N, L, env.obs_dim, device=device),
               "action": torch.zeros(N, L, dtype=torch.long, device=device),
               "reward": torch.zeros(N, L, device=device), "value": torch.zeros(N, L, device=device),
               "policy": torch.zeros(N, L, A, device=device), "len": torch.zeros(N, dtype=torch.long, device=device)}
    ep_len = playing["len"]
    episodes = EpisodeTracker(0, device)
    counters, stats = Counters(), MeanStats(device)
    clock = Stopwatch(counters, device)

    evaluate = functools.partial(evaluate_muzero, cfg, net, env)
    # Self-play's search: PUCT with Dirichlet root noise, or Gumbel with Gumbel root noise.
    policy_fn = make_policy(cfg.selection, cfg.num_simulations, qtransform=env.qtransform,
                            dirichlet_alpha=cfg.dirichlet_alpha, noise_fraction=cfg.noise_fraction,
                            max_considered=cfg.max_considered)
    # Single-agent tasks: greedy searches every eval_every steps, stopping at the target; board games
    # are evaluated at the end only.
    target = TargetTracker(cfg, counters, run.elapsed, evaluate, episodes=episodes,
                           every=0 if cfg.board_game else cfg.eval_every)
    if cfg.board_game:
        target.target = None
    saved = run.restore(net=net, optimizer=optimizer, replay=replay, env=env, episodes=episodes, counters=counters,
                        target=target, stats=stats)
    if saved:
        for name, t in playing.items():
            t.copy_(saved[name])

    def finish_episodes(done: torch.Tensor, terminated: torch.Tensor, final_obs: torch.Tensor) -> None:
        idx = done.nonzero().flatten()
        if idx.numel() == 0:
            return
        with torch.no_grad():
            _, v_logits = net.predict(net.represent(final_obs[idx]))
            bootstrap = from_support(v_logits, cfg.value_support)
        n_steps = cfg.td_steps if not cfg.board_game else env.max_length + 1
        longest = int(ep_len[idx].max())
        targets = n_step_value_targets(playing["reward"][idx, :longest], playing["value"][idx, :longest],
                                       ep_len[idx], terminated[idx], bootstrap, env.discount, n_steps)
        for j, e in enumerate(idx.tolist()):
            n = int(ep_len[e])
            replay.add_episode(bool(terminated[e]), obs=playing["obs"][e, :n], action=playing["action"][e, :n],
                               reward=playing["reward"][e, :n], value_target=targets[j, :n],
                               policy=playing["policy"][e, :n])
            if not cfg.board_game:
                episodes.record([float(playing["reward"][e, :n].sum())], [n])
        ep_len[idx] = 0

    num_iterations = max(1, cfg.total_steps // N)
    with run.loop(num_iterations * N, counters, f"muzero {cfg.env}"):
        while counters.iteration < num_iterations and not target.reached:
            previous_step = counters.step
            frac = counters.iteration / num_iterations
            temperature = cfg.temperatures[0] if frac < 0.5 else cfg.temperatures[1] if frac < 0.75 else cfg.temperatures[2]
            net.eval()
            with clock("acting"), torch.no_grad():
                # 1. Act: search from every environment's observation, play a ~ π^(1/τ).
                obs, legal = env.observe()
                # PUCT: π = visit counts, the move drawn from π^(1/τ); on a board with temperature_moves,
                # AlphaZero's schedule instead (τ = 1 in the opening, then the most visited move).
                # Gumbel: the noise picks the root moves to consider, sequential halving the move,
                # and π is the improved policy (τ unused).
                opening = cfg.board_game and cfg.temperature_moves
                action, pi, tree = _model_policy(policy_fn, net, obs, legal, env.discount,
                                                 temperature=1.0 if opening else temperature,
                                                 explore=ep_len < cfg.temperature_moves if opening else None)
                rows = torch.arange(N, device=device)
                playing["obs"][rows, ep_len], playing["action"][rows, ep_len] = obs, action
                playing["value"][rows, ep_len], playing["policy"][rows, ep_len] = root_value(tree), pi
                reward, terminated, truncated, final_obs = env.step(action)
                playing["reward"][rows, ep_len] = reward
                ep_len += 1
                finish_episodes(terminated | truncated | (ep_len >= L), terminated, final_obs)
                counters.step += N
                counters.iteration += 1

            with clock("learning"):
                # 2. Learn: unroll the model along replayed positions.
                net.train()
                for _ in range(cfg.updates_per_iteration if len(replay) >= cfg.learning_starts else 0):
                    batch = unroll_batch(replay, cfg.batch_size, cfg.unroll_steps, cfg.replay_size)
                    if cfg.board_game and cfg.augment:
                        batch = augment_unrolls(env.game, *batch)
                    loss, parts = muzero_loss(net, *batch, value_coef=cfg.value_coef)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    counters.updates += 1
                    stats.add(parts)

            # 3. Evaluate now and then (single agent: stop at the target), log, checkpoint.
            reached = target.update(previous_step)
            row = None
            if crossed(counters.step, previous_step, cfg.log_every) or counters.iteration == num_iterations or reached:
                row = {"step": counters.step, "updates": counters.updates, "wall_time": run.elapsed(),
                       "episodes": replay.episodes, "replay": len(replay), "temperature": temperature,
                       "episode_return": episodes.mean_return() if episodes.recent_returns else None,
                       "eval_return": target.last_eval, **stats.pop(),
                       "steps_per_second": run.steps_per_second()}
            run.end_iteration(counters.step, previous_step, row, extra=playing,
                              postfix={"ret": row["episode_return"], "eval": target.last_eval} if row else None)

    with clock("evaluating"):
        result = evaluate(cfg.eval_episodes, cfg.seed)
    run.save(playing)
    if cfg.board_game:
        return run.finish(run.summary(counters, evaluation=result, games=replay.episodes))
    return run.finish(run.summary(counters, episodes=episodes, eval_returns=result, target=target))
