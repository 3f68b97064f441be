r"""Return estimators: pure, batched functions of ``[T, B]`` tensors.

Every function here takes a rollout of ``T`` steps from ``B`` parallel environments,
laid out time-major:

* ``rewards[t, b]`` — the reward :math:`r_t` received after action :math:`a_t`;
* ``terminated[t, b]`` — the episode *ended* at :math:`s_{t+1}` (pole fell, game over):
  nothing follows, so the value of :math:`s_{t+1}` is zero by definition;
* ``truncated[t, b]`` — the episode was *cut* at :math:`s_{t+1}` (time limit, end of
  data) though it could have gone on: we bootstrap from :math:`V(s_{t+1})`;
* ``next_values[t, b]`` — :math:`V(s_{t+1})`, the value of the observation that followed
  :math:`a_t`. When an episode ended at step ``t`` this is the value of its *final*
  observation, not of the first observation of the next episode;
* ``values[t, b]`` — :math:`V(s_t)` where an estimator needs it.

The recursion of every estimator stops at an episode end (``terminated | truncated``)
and at the end of the rollout (``t = T-1``), where it bootstraps from ``next_values``;
a terminated step bootstraps from zero instead. This is what lets one rollout hold
pieces of many episodes, and what makes truncation (a time limit) differ from
termination (a real ending): treating a time limit as death teaches the agent that
states near step 500 are worthless.

All functions are differentiable where it makes sense, run on any device, and loop
over ``T`` only (each step is one batched operation over ``B``).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["discounted_returns", "n_step_targets", "gae_advantages", "lambda_returns", "td_errors",
           "vtrace", "VTraceReturns"]


def _check(name_to_tensor: dict[str, torch.Tensor], gamma: float, lam: float | None = None) -> None:
    shape = None
    for name, x in name_to_tensor.items():
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2:
            raise ValueError(f"{name} must have shape [T, B]; got {tuple(x.shape)}")
        if shape is None:
            shape = x.shape
        elif x.shape != shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but the others have {tuple(shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1]; got {gamma}")
    if lam is not None and not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1]; got {lam}")


def _masks(terminated: torch.Tensor, truncated: torch.Tensor, dtype: torch.dtype):
    """(not_terminated, continues): 1 where the value of s_{t+1} counts / the episode goes on."""
    terminated = terminated.to(torch.bool)
    truncated = truncated.to(torch.bool)
    not_terminated = (~terminated).to(dtype)
    continues = (~(terminated | truncated)).to(dtype)
    return not_terminated, continues


def td_errors(
    rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
    terminated: torch.Tensor, gamma: float,
) -> torch.Tensor:
    r"""One-step temporal-difference errors.

    .. math:: \delta_t = r_t + \gamma\,(1 - \text{terminated}_t)\,V(s_{t+1}) - V(s_t)

    Args:
      rewards: ``[T, B]`` rewards :math:`r_t`.
      values: ``[T, B]`` :math:`V(s_t)`.
      next_values: ``[T, B]`` :math:`V(s_{t+1})` (final observation's value at episode ends).
      terminated: ``[T, B]`` bool, true where :math:`s_{t+1}` is terminal.
      gamma: discount :math:`\gamma`.

    Returns:
      ``[T, B]`` TD errors :math:`\delta_t`.
    """
    _check({"rewards": rewards, "values": values, "next_values": next_values, "terminated": terminated}, gamma)
    not_terminated = (~terminated.to(torch.bool)).to(rewards.dtype)
    return rewards + gamma * not_terminated * next_values - values


def discounted_returns(
    rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
    next_values: torch.Tensor, gamma: float,
) -> torch.Tensor:
    r"""Discounted returns, bootstrapped where an episode is cut.

    .. math::
        G_t = r_t + \gamma\,(1-\text{terminated}_t)\,\big[\,c_t\,G_{t+1} + (1-c_t)\,V(s_{t+1})\,\big]

    where :math:`c_t = 1` while the episode goes on past :math:`t` inside the rollout and
    :math:`c_t = 0` at a truncation or at :math:`t = T-1`. Within an episode and with
    zero ``next_values`` this is the Monte-Carlo return
    :math:`G_t = \sum_{k \ge 0} \gamma^k r_{t+k}`.

    Args:
      rewards, terminated, truncated, next_values: ``[T, B]`` (see the module docstring).
      gamma: discount :math:`\gamma`.

    Returns:
      ``[T, B]`` returns :math:`G_t`.
    """
    _check({"rewards": rewards, "terminated": terminated, "truncated": truncated, "next_values": next_values}, gamma)
    not_terminated, continues = _masks(terminated, truncated, rewards.dtype)
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    future = next_values[-1]
    for t in reversed(range(T)):
        # Where the episode continues inside the rollout, the future is G_{t+1};
        # where it was cut (or the rollout ends), it is the bootstrap V(s_{t+1}).
        future = continues[t] * future + (1 - continues[t]) * next_values[t] if t < T - 1 else next_values[t]
        out[t] = rewards[t] + gamma * not_terminated[t] * future
        future = out[t]
    return out


def n_step_targets(
    rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
    next_values: torch.Tensor, gamma: float, n: int,
) -> torch.Tensor:
    r"""n-step bootstrapped TD targets.

    .. math::
        G^{(n)}_t = \sum_{k=0}^{m-1} \gamma^k r_{t+k} + \gamma^m\,V(s_{t+m}),
        \qquad m = \min(n,\ \text{steps to the episode's end},\ T - t)

    The sum stops early at an episode end or at the end of the rollout. At a
    termination the bootstrap :math:`V(s_{t+m})` is zero; at a truncation or the
    rollout's end it is ``next_values[t+m-1]``. ``n = 1`` gives the one-step target
    :math:`r_t + \gamma V(s_{t+1})`; ``n >= T`` gives :func:`discounted_returns`.

    Args:
      rewards, terminated, truncated, next_values: ``[T, B]`` (see the module docstring).
      gamma: discount :math:`\gamma`.
      n: number of reward steps :math:`n \ge 1`.

    Returns:
      ``[T, B]`` targets :math:`G^{(n)}_t`.
    """
    _check({"rewards": rewards, "terminated": terminated, "truncated": truncated, "next_values": next_values}, gamma)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n}")
    not_terminated, continues = _masks(terminated, truncated, rewards.dtype)
    T = rewards.shape[0]
    targets = torch.zeros_like(rewards)
    alive = torch.ones_like(rewards)     # the window starting at t is still open at step t+k
    discount = torch.ones_like(rewards)  # gamma^k
    for k in range(min(int(n), T)):
        span = T - k                     # windows t = 0 .. T-k-1 reach step t+k inside the rollout
        r, nt, nv = rewards[k:], not_terminated[k:], next_values[k:]
        # The window closes after step t+k at an episode end, after the n-th reward,
        # or at the rollout's last step; it then adds its bootstrap gamma^(k+1) V(s_{t+k+1}).
        stops = torch.ones_like(r) if k == n - 1 else 1 - continues[k:]
        stops[-1] = 1
        a, d = alive[:span], discount[:span]
        targets[:span] += a * d * (r + gamma * stops * nt * nv)
        alive[:span] = a * (1 - stops)
        discount[:span] = d * gamma
    return targets


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
    terminated: torch.Tensor, truncated: torch.Tensor, gamma: float, lam: float,
) -> torch.Tensor:
    r"""Generalised advantage estimation, GAE-λ (Schulman et al., 2016).

    .. math::
        \delta_t &= r_t + \gamma\,(1-\text{terminated}_t)\,V(s_{t+1}) - V(s_t) \\
        \hat A_t &= \sum_{l \ge 0} (\gamma\lambda)^l\,\delta_{t+l}
                  = \delta_t + \gamma\lambda\,(1-\text{done}_t)\,\hat A_{t+1}

    with :math:`\text{done}_t = \text{terminated}_t \lor \text{truncated}_t` and
    :math:`\hat A_T = 0`. A truncated step keeps its bootstrap
    :math:`\gamma V(s_{t+1})` (the final observation's value) but stops the sum; a
    terminated one drops both. :math:`\lambda = 0` gives :math:`\delta_t`;
    :math:`\lambda = 1` gives the discounted return minus :math:`V(s_t)`. The critic's
    target is :math:`\hat V^{\text{target}}_t = \hat A_t + V(s_t)`.

    Args:
      rewards: ``[T, B]`` rewards :math:`r_t`.
      values: ``[T, B]`` :math:`V(s_t)`.
      next_values: ``[T, B]`` :math:`V(s_{t+1})` (final observation's value at episode ends).
      terminated, truncated: ``[T, B]`` bool episode-end flags at :math:`s_{t+1}`.
      gamma: discount :math:`\gamma`.
      lam: GAE :math:`\lambda`.

    Returns:
      ``[T, B]`` advantages :math:`\hat A_t`.
    """
    _check({"rewards": rewards, "values": values, "next_values": next_values,
            "terminated": terminated, "truncated": truncated}, gamma, lam)
    not_terminated, continues = _masks(terminated, truncated, rewards.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    decay = gamma * lam * continues
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + decay[t] * running
        advantages[t] = running
    return advantages


def lambda_returns(
    rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
    next_values: torch.Tensor, gamma: float, lam: float,
) -> torch.Tensor:
    r"""λ-returns, the recursive form used by TD(λ) critics and Dreamer's actor-critic.

    .. math::
        G^\lambda_t = r_t + \gamma\,(1-\text{terminated}_t)\,
            \big[(1-\lambda)\,V(s_{t+1}) + \lambda\,G^\lambda_{t+1}\big]

    with :math:`G^\lambda_{t+1}` replaced by :math:`V(s_{t+1})` where the episode is cut
    or the rollout ends. When ``next_values[t] == values[t+1]`` inside episodes this
    equals ``gae_advantages(...) + values``; :math:`\lambda = 0` is the one-step target
    and :math:`\lambda = 1` the discounted return.

    Args:
      rewards, terminated, truncated, next_values: ``[T, B]`` (see the module docstring).
      gamma: discount :math:`\gamma`.
      lam: :math:`\lambda`.

    Returns:
      ``[T, B]`` λ-returns :math:`G^\lambda_t`.
    """
    _check({"rewards": rewards, "terminated": terminated, "truncated": truncated, "next_values": next_values},
           gamma, lam)
    not_terminated, continues = _masks(terminated, truncated, rewards.dtype)
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    future = next_values[-1]
    for t in reversed(range(T)):
        if t == T - 1:
            blended = next_values[t]
        else:
            c = continues[t] * lam
            blended = (1 - c) * next_values[t] + c * future
        out[t] = rewards[t] + gamma * not_terminated[t] * blended
        future = out[t]
    return out


class VTraceReturns(NamedTuple):
    vs: torch.Tensor             # [T, B] V-trace value targets v_s
    pg_advantages: torch.Tensor  # [T, B] rho_t (r_t + gamma v_{t+1} - V(x_t)), the policy-gradient weights
    rhos: torch.Tensor           # [T, B] clipped importance weights rho_t


def vtrace(
    rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
    terminated: torch.Tensor, truncated: torch.Tensor, log_rhos: torch.Tensor, gamma: float,
    rho_bar: float = 1.0, c_bar: float = 1.0, pg_rho_bar: float | None = None, lam: float = 1.0,
) -> VTraceReturns:
    r"""V-trace off-policy value targets and policy-gradient advantages (Espeholt et al., 2018).

    Actors act with a behaviour policy :math:`\mu` that lags the learner's :math:`\pi`. With
    truncated importance weights

    .. math::
        \rho_t = \min\Big(\bar\rho, \frac{\pi(a_t|x_t)}{\mu(a_t|x_t)}\Big), \qquad
        c_t = \lambda \min\Big(\bar c, \frac{\pi(a_t|x_t)}{\mu(a_t|x_t)}\Big), \qquad \bar\rho \ge \bar c,

    the value target of each step is

    .. math::
        \delta^V_t = \rho_t\big(r_t + \gamma V(x_{t+1}) - V(x_t)\big), \qquad
        v_s = V(x_s) + \sum_{t=s}^{s+n-1} \gamma^{t-s} \Big(\prod_{i=s}^{t-1} c_i\Big)\, \delta^V_t ,

    computed backwards as :math:`v_s - V(x_s) = \delta^V_s + \gamma c_s (v_{s+1} - V(x_{s+1}))`,
    and the policy gradient uses the advantage

    .. math:: A^{\text{V-trace}}_t = r_t + \gamma v_{t+1} - V(x_t), \qquad
              \nabla_\theta J \propto \rho_t \nabla_\theta \log\pi_\theta(a_t|x_t)\, A^{\text{V-trace}}_t .

    Episode ends inside the unroll stop the sum as in the other estimators: a termination
    bootstraps from 0, a truncation from ``next_values`` (the final observation's value), and
    :math:`v_{t+1}` in the advantage is replaced by that bootstrap where the episode ended or
    the unroll ends. With :math:`\pi = \mu` (``log_rhos = 0``), :math:`\bar\rho, \bar c \ge 1`
    and :math:`\lambda = 1`, :math:`v_s` is the on-policy bootstrapped return
    (:func:`discounted_returns`); with :math:`\lambda < 1` it is the λ-return.

    Args:
      rewards, values, next_values, terminated, truncated: ``[T, B]`` (see the module docstring).
      log_rhos: ``[T, B]`` :math:`\log\pi(a_t|x_t) - \log\mu(a_t|x_t)`.
      gamma: discount :math:`\gamma`.
      rho_bar: truncation :math:`\bar\rho` of :math:`\rho_t` in the value target.
      c_bar: truncation :math:`\bar c` of the trace :math:`c_t`.
      pg_rho_bar: truncation of :math:`\rho_t` in ``pg_advantages`` (default: ``rho_bar``).
      lam: :math:`\lambda` mixing into the traces (1 in the paper's main experiments).

    Returns:
      :class:`VTraceReturns` ``(vs, pg_advantages, rhos)``, each ``[T, B]``, without gradient.
    """
    _check({"rewards": rewards, "values": values, "next_values": next_values, "terminated": terminated,
            "truncated": truncated, "log_rhos": log_rhos}, gamma, lam)
    if not rho_bar >= c_bar > 0:
        raise ValueError(f"need rho_bar >= c_bar > 0; got rho_bar={rho_bar}, c_bar={c_bar}")
    with torch.no_grad():
        not_terminated, continues = _masks(terminated, truncated, rewards.dtype)
        ratios = torch.exp(log_rhos.to(rewards.dtype))
        rhos = ratios.clamp(max=rho_bar)
        cs = lam * ratios.clamp(max=c_bar)
        deltas = rhos * (rewards + gamma * not_terminated * next_values - values)
        T = rewards.shape[0]
        vs_minus_v = torch.empty_like(rewards)
        running = torch.zeros_like(rewards[0])
        for t in reversed(range(T)):
            running = deltas[t] + gamma * continues[t] * cs[t] * running
            vs_minus_v[t] = running
        vs = values + vs_minus_v
        # v_{t+1} where the episode goes on inside the unroll; the bootstrap V(x_{t+1}) elsewhere.
        vs_next = next_values.clone()
        vs_next[:-1] = torch.where(continues[:-1].bool(), vs[1:], next_values[:-1])
        pg_rhos = ratios.clamp(max=rho_bar if pg_rho_bar is None else pg_rho_bar)
        pg_advantages = pg_rhos * (rewards + gamma * not_terminated * vs_next - values)
    return VTraceReturns(vs, pg_advantages, rhos)
