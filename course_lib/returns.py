r"""Return estimators: pure, batched functions of time-major tensors.

The module has two layers: a **core** on per-step float discounts and per-step λ
(the ``*_from_discounts`` functions, in the style of DeepMind's rlax), and the
**episode-mask** functions that agents call with ``terminated``/``truncated`` flags, which
build discounts and λ from the masks and call the core.

Episode masks
-------------
The mask functions take a rollout of ``T`` steps from ``B`` parallel environments,
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

Float discounts (the core)
--------------------------
The core takes ``[T, ...]`` tensors (time first, any batch dimensions after it) and
replaces the two masks by two per-step numbers:

* ``discounts[t]`` — :math:`\gamma_t = \gamma\,c_t`, the discount of everything after
  step :math:`t`. :math:`c_t` is the probability that the episode goes on past
  :math:`s_{t+1}`: 0 at a termination, 1 where it surely goes on, and a *predicted*
  continuation probability in :math:`[0, 1]` where a world model imagines the future
  (Dreamer, TWM and STORM read it off a learned "continue" head, so their discounts are
  floats, not masks). A two-player game with rewards for the player to move uses
  :math:`\gamma_t = -\gamma`.
* ``lambda_`` — :math:`\lambda_t` (a float, or a ``[T, ...]`` tensor for one per step):
  how much the target of step :math:`t` trusts the rest of the rollout rather than
  :math:`V(s_{t+1})`,

  .. math:: G_t = r_t + \gamma_t\big[(1-\lambda_t)\,V(s_{t+1}) + \lambda_t\,G_{t+1}\big],

  with :math:`G_T` replaced by :math:`V(s_T)` = ``next_values[T-1]`` at the end of the
  rollout. :math:`\lambda_t = 0` *cuts* the rollout after step :math:`t`: nothing past
  :math:`s_{t+1}` counts. That is how a truncation inside the rollout is said to the core.

The mask functions are the special case

.. math:: \gamma_t = \gamma\,(1 - \text{terminated}_t), \qquad
          \lambda_t = \lambda\,(1 - \text{done}_t), \quad
          \text{done}_t = \text{terminated}_t \lor \text{truncated}_t ,

and :func:`discounted_returns` is the λ = 1 case of :func:`lambda_returns`. The core
does not check that discounts lie in :math:`[-1, 1]` or λ in :math:`[0, 1]` when they
are tensors (that would wait for the device); Python floats are checked.

All functions are differentiable where it makes sense, run on any device, and loop
over ``T`` only (each step is one batched operation over the batch dimensions).
"""
from __future__ import annotations

from typing import NamedTuple, Union

import torch

__all__ = ["td_errors_from_discounts", "lambda_returns_from_discounts", "n_step_returns_from_discounts",
           "gae_from_discounts", "vtrace_from_discounts", "returns_to_go", "group_relative_advantages",
           "discounted_returns", "n_step_targets", "gae_advantages", "lambda_returns", "td_errors",
           "vtrace", "VTraceReturns"]

PerStep = Union[float, torch.Tensor]


# ------------------------------------------------------------------------ input checks
def _check(name_to_tensor: dict[str, torch.Tensor], gamma: float, lam: float | None = None) -> None:
    """The mask functions' check: ``[T, B]`` tensors of one shape, gamma and lambda in [0, 1]."""
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


def _check_core(name_to_tensor: dict[str, torch.Tensor]) -> torch.Size:
    """The core's check: tensors of one shape ``[T, ...]`` with ``T >= 1``; returns that shape."""
    shape = None
    first = None
    for name, x in name_to_tensor.items():
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[0] < 1:
            raise ValueError(f"{name} must have shape [T, ...] with T >= 1 (time first); got {tuple(x.shape)}")
        if shape is None:
            shape, first = x.shape, name
        elif x.shape != shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but {first} has {tuple(shape)}; "
                             "the core needs one shape [T, ...] for all per-step inputs")
    return shape


def _per_step(x: PerStep, like: torch.Tensor, name: str, low: float, high: float) -> torch.Tensor:
    """A float (the same for every step) or a ``[T, ...]`` tensor shaped like ``like``, as a tensor."""
    if isinstance(x, torch.Tensor):
        if x.shape != like.shape:
            raise ValueError(f"{name} must be a float or a tensor of shape {tuple(like.shape)} (one per step); "
                             f"got {tuple(x.shape)}")
        # Masks (bool) become numbers; floating tensors are used as given, so no rounding is added.
        return x if x.is_floating_point() else x.to(like.dtype)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a float or a torch.Tensor, got {type(x).__name__}")
    if not low <= x <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}]; got {x}")
    return torch.full_like(like, float(x))


def _masks(terminated: torch.Tensor, truncated: torch.Tensor, dtype: torch.dtype):
    """(not_terminated, continues): 1 where the value of s_{t+1} counts / the episode goes on."""
    terminated = terminated.to(torch.bool)
    truncated = truncated.to(torch.bool)
    not_terminated = (~terminated).to(dtype)
    continues = (~(terminated | truncated)).to(dtype)
    return not_terminated, continues


def _reverse_scan(x: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    r""":math:`y_t = x_t + \text{decay}_t\, y_{t+1}` backwards over ``[T, ...]``, with :math:`y_T = 0`."""
    out = torch.empty_like(x)
    running = torch.zeros_like(x[0])
    for t in reversed(range(x.shape[0])):
        running = x[t] + decay[t] * running
        out[t] = running
    return out


# ------------------------------------------------------------------------------ the core
def td_errors_from_discounts(
    rewards: torch.Tensor, discounts: PerStep, values: torch.Tensor, next_values: torch.Tensor,
) -> torch.Tensor:
    r"""One-step temporal-difference errors with per-step discounts.

    .. math:: \delta_t = r_t + \gamma_t\,V(s_{t+1}) - V(s_t)

    Args:
      rewards: ``[T, ...]`` rewards :math:`r_t`.
      discounts: ``[T, ...]`` :math:`\gamma_t` (or one float for all steps).
      values: ``[T, ...]`` :math:`V(s_t)`.
      next_values: ``[T, ...]`` :math:`V(s_{t+1})`.

    Returns:
      ``[T, ...]`` TD errors :math:`\delta_t`.
    """
    _check_core({"rewards": rewards, "values": values, "next_values": next_values})
    discounts = _per_step(discounts, rewards, "discounts", -1.0, 1.0)
    return rewards + discounts * next_values - values


def lambda_returns_from_discounts(
    rewards: torch.Tensor, discounts: PerStep, next_values: torch.Tensor, lambda_: PerStep = 1.0,
) -> torch.Tensor:
    r"""λ-returns with per-step discounts and per-step λ (TD(λ) critics, Dreamer's actor-critic).

    .. math::
        G^\lambda_t = r_t + \gamma_t\big[(1-\lambda_t)\,V(s_{t+1}) + \lambda_t\,G^\lambda_{t+1}\big],
        \qquad G^\lambda_T \equiv V(s_T)

    :math:`\lambda_t = 0` everywhere gives the one-step targets :math:`r_t + \gamma_t V(s_{t+1})`;
    :math:`\lambda_t = 1` everywhere the bootstrapped discounted return
    :math:`\sum_{k=t}^{T-1} \big(\prod_{j=t}^{k-1}\gamma_j\big) r_k + \big(\prod_{j=t}^{T-1}\gamma_j\big) V(s_T)`.

    Args:
      rewards: ``[T, ...]`` rewards :math:`r_t`.
      discounts: ``[T, ...]`` :math:`\gamma_t = \gamma c_t` (or one float).
      next_values: ``[T, ...]`` :math:`V(s_{t+1})`.
      lambda_: :math:`\lambda_t`, a float or ``[T, ...]``.

    Returns:
      ``[T, ...]`` λ-returns :math:`G^\lambda_t`.
    """
    _check_core({"rewards": rewards, "next_values": next_values})
    discounts = _per_step(discounts, rewards, "discounts", -1.0, 1.0)
    lambdas = _per_step(lambda_, rewards, "lambda_", 0.0, 1.0)
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    future = next_values[-1]
    for t in reversed(range(T)):
        if t == T - 1:
            blended = next_values[t]   # the rollout ends: G_T is V(s_T)
        else:
            blended = (1 - lambdas[t]) * next_values[t] + lambdas[t] * future
        out[t] = rewards[t] + discounts[t] * blended
        future = out[t]
    return out


def n_step_returns_from_discounts(
    rewards: torch.Tensor, discounts: PerStep, next_values: torch.Tensor, n: int, lambda_: PerStep = 1.0,
) -> torch.Tensor:
    r"""n-step bootstrapped returns with per-step discounts (and λ, as in rlax).

    .. math::
        G^{(n)}_t = r_t + \gamma_t\big[(1-\lambda_t)\,V(s_{t+1}) + \lambda_t\,G^{(n-1)}_{t+1}\big],
        \qquad G^{(0)}_{t} \equiv V(s_{t}),

    and :math:`G^{(k)}_T \equiv V(s_T)` at the end of the rollout. With
    :math:`\lambda_t = 1` this is :math:`\sum_{k=0}^{m-1} \big(\prod_{j<k}\gamma_{t+j}\big) r_{t+k}
    + \big(\prod_{j<m}\gamma_{t+j}\big) V(s_{t+m})`, :math:`m = \min(n, T-t)`; a
    :math:`\lambda_t = 0` closes the window early (a cut). ``n = 1`` gives the one-step
    targets; ``n >= T`` gives :func:`lambda_returns_from_discounts`.

    Args:
      rewards: ``[T, ...]`` rewards :math:`r_t`.
      discounts: ``[T, ...]`` :math:`\gamma_t` (or one float).
      next_values: ``[T, ...]`` :math:`V(s_{t+1})`.
      n: number of reward steps :math:`n \ge 1`.
      lambda_: :math:`\lambda_t`, a float or ``[T, ...]``.

    Returns:
      ``[T, ...]`` targets :math:`G^{(n)}_t`.
    """
    _check_core({"rewards": rewards, "next_values": next_values})
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n}")
    discounts = _per_step(discounts, rewards, "discounts", -1.0, 1.0)
    lambdas = _per_step(lambda_, rewards, "lambda_", 0.0, 1.0)
    T = rewards.shape[0]
    targets = torch.zeros_like(rewards)
    alive = torch.ones_like(rewards)     # prod_{j<k} lambda_{t+j}: the weight of the window starting at t at step t+k
    discount = torch.ones_like(rewards)  # prod_{j<k} gamma_{t+j}
    for k in range(min(int(n), T)):
        span = T - k                     # windows t = 0 .. T-k-1 reach step t+k inside the rollout
        r, g, nv, lam = rewards[k:], discounts[k:], next_values[k:], lambdas[k:]
        # Step t+k bootstraps from V(s_{t+k+1}) with weight 1 - lambda; fully after the n-th
        # reward and at the rollout's last step, where the window must close.
        stops = torch.ones_like(r) if k == n - 1 else 1 - lam
        stops[-1] = 1
        a, d = alive[:span], discount[:span]
        targets[:span] += a * d * (r + g * stops * nv)
        alive[:span] = a * lam
        discount[:span] = d * g
    return targets


def gae_from_discounts(
    rewards: torch.Tensor, discounts: PerStep, values: torch.Tensor, next_values: torch.Tensor,
    lambda_: PerStep,
) -> torch.Tensor:
    r"""Truncated generalised advantage estimation with per-step discounts and λ.

    .. math::
        \delta_t = r_t + \gamma_t V(s_{t+1}) - V(s_t), \qquad
        \hat A_t = \delta_t + \gamma_t \lambda_t\, \hat A_{t+1}, \qquad \hat A_T = 0 .

    When ``next_values[t] == values[t+1]`` wherever :math:`\gamma_t\lambda_t \ne 0`, this is
    :func:`lambda_returns_from_discounts` minus ``values``.

    Args:
      rewards: ``[T, ...]`` rewards :math:`r_t`.
      discounts: ``[T, ...]`` :math:`\gamma_t` (or one float).
      values: ``[T, ...]`` :math:`V(s_t)`.
      next_values: ``[T, ...]`` :math:`V(s_{t+1})`.
      lambda_: :math:`\lambda_t`, a float or ``[T, ...]``.

    Returns:
      ``[T, ...]`` advantages :math:`\hat A_t`.
    """
    _check_core({"rewards": rewards, "values": values, "next_values": next_values})
    discounts = _per_step(discounts, rewards, "discounts", -1.0, 1.0)
    deltas = td_errors_from_discounts(rewards, discounts, values, next_values)
    lambdas = _per_step(lambda_, rewards, "lambda_", 0.0, 1.0)
    return _reverse_scan(deltas, discounts * lambdas)


class VTraceReturns(NamedTuple):
    vs: torch.Tensor             # [T, ...] V-trace value targets v_s
    pg_advantages: torch.Tensor  # [T, ...] rho_t (r_t + gamma v_{t+1} - V(x_t)), the policy-gradient weights
    rhos: torch.Tensor           # [T, ...] clipped importance weights rho_t


def vtrace_from_discounts(
    rewards: torch.Tensor, discounts: PerStep, values: torch.Tensor, next_values: torch.Tensor,
    log_rhos: torch.Tensor, lambda_: PerStep = 1.0, rho_bar: float = 1.0, c_bar: float = 1.0,
    pg_rho_bar: float | None = None, pg_lambda: PerStep | None = None,
) -> VTraceReturns:
    r"""V-trace targets and policy-gradient advantages with per-step discounts and λ.

    With the ratios :math:`\pi(a_t|x_t)/\mu(a_t|x_t)` truncated as
    :math:`\rho_t = \min(\bar\rho, \cdot)` and :math:`c_t = \lambda_t \min(\bar c, \cdot)`,

    .. math::
        v_t - V(x_t) = \rho_t\big(r_t + \gamma_t V(x_{t+1}) - V(x_t)\big)
                       + \gamma_t\, c_t\,\big(v_{t+1} - V(x_{t+1})\big), \qquad v_T - V(x_T) = 0,

    and the advantage :math:`A_t = \rho^{pg}_t\big(r_t + \gamma_t \hat v_{t+1} - V(x_t)\big)` with
    :math:`\hat v_{t+1} = \kappa_t\,v_{t+1} + (1-\kappa_t)\,V(x_{t+1})` (:math:`\hat v_T = V(x_T)`),
    where :math:`\kappa_t` is ``pg_lambda`` (default :math:`\lambda_t`: then with :math:`\pi = \mu`
    the advantage is GAE's; the paper's advantage uses :math:`v_{t+1}` itself, :math:`\kappa_t = 1`).
    The recursion takes :math:`V(x_{t+1})` from ``next_values[t]`` in :math:`\delta_t` and from
    ``values[t+1]`` in the trace: the two must agree wherever :math:`\gamma_t c_t \ne 0`. With
    :math:`\pi = \mu` (``log_rhos = 0``) and :math:`\bar\rho, \bar c \ge 1`, :math:`v_t` is the
    λ-return (:func:`lambda_returns_from_discounts`).

    Args:
      rewards: ``[T, ...]`` rewards :math:`r_t`.
      discounts: ``[T, ...]`` :math:`\gamma_t` (or one float).
      values: ``[T, ...]`` :math:`V(x_t)`.
      next_values: ``[T, ...]`` :math:`V(x_{t+1})`.
      log_rhos: ``[T, ...]`` :math:`\log\pi(a_t|x_t) - \log\mu(a_t|x_t)`.
      lambda_: :math:`\lambda_t` in the traces, a float or ``[T, ...]``.
      rho_bar: truncation :math:`\bar\rho` of :math:`\rho_t` in the value target.
      c_bar: truncation :math:`\bar c` of the traces.
      pg_rho_bar: truncation of :math:`\rho_t` in ``pg_advantages`` (default: ``rho_bar``).
      pg_lambda: :math:`\kappa_t`, a float or ``[T, ...]`` (default: ``lambda_``).

    Returns:
      :class:`VTraceReturns` ``(vs, pg_advantages, rhos)``, each ``[T, ...]``, without gradient.
    """
    _check_core({"rewards": rewards, "values": values, "next_values": next_values, "log_rhos": log_rhos})
    if not rho_bar >= c_bar > 0:
        raise ValueError(f"need rho_bar >= c_bar > 0; got rho_bar={rho_bar}, c_bar={c_bar}")
    with torch.no_grad():
        discounts = _per_step(discounts, rewards, "discounts", -1.0, 1.0)
        lambdas = _per_step(lambda_, rewards, "lambda_", 0.0, 1.0)
        kappas = lambdas if pg_lambda is None else _per_step(pg_lambda, rewards, "pg_lambda", 0.0, 1.0)
        ratios = torch.exp(log_rhos.to(rewards.dtype))
        rhos = ratios.clamp(max=rho_bar)
        cs = lambdas * ratios.clamp(max=c_bar)
        deltas = rhos * td_errors_from_discounts(rewards, discounts, values, next_values)
        vs = values + _reverse_scan(deltas, discounts * cs)
        vs_next = next_values.clone()
        vs_next[:-1] = kappas[:-1] * vs[1:] + (1 - kappas[:-1]) * next_values[:-1]
        pg_rhos = ratios.clamp(max=rho_bar if pg_rho_bar is None else pg_rho_bar)
        pg_advantages = pg_rhos * td_errors_from_discounts(rewards, discounts, values, vs_next)
    return VTraceReturns(vs, pg_advantages, rhos)


def returns_to_go(rewards: torch.Tensor, discounts: PerStep = 1.0) -> torch.Tensor:
    r"""Returns-to-go :math:`\hat R_t = r_t + \gamma_t \hat R_{t+1}`, :math:`\hat R_T = 0` (Decision Transformer).

    With the default ``discounts = 1`` this is the undiscounted sum of the rewards still to
    come, :math:`\hat R_t = \sum_{k=t}^{T-1} r_k`, the return the Decision Transformer is
    conditioned on. Episodes padded with zero rewards past their end need no mask; several
    episodes one after another in one column are kept apart by ``discounts[t] = 0`` at each
    episode's last step.

    Args:
      rewards: ``[T, ...]`` rewards :math:`r_t`.
      discounts: :math:`\gamma_t`, a float or ``[T, ...]``.

    Returns:
      ``[T, ...]`` :math:`\hat R_t`.
    """
    _check_core({"rewards": rewards})
    return _reverse_scan(rewards, _per_step(discounts, rewards, "discounts", -1.0, 1.0))


def group_relative_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    r"""GRPO's advantages: each reward standardised within its group (Shao et al., 2024).

    .. math:: \hat A_i = \frac{r_i - \operatorname{mean}(r_1..r_K)}{\operatorname{std}(r_1..r_K) + \epsilon}

    A group is the ``K`` answers sampled for one prompt: the group's mean replaces a learned
    critic as the baseline. ``std`` is the population standard deviation of the group (divided
    by ``K``), so a group whose answers all score the same gets advantages 0.

    Args:
      rewards: ``[..., K]`` rewards, the last dimension the members of a group.
      eps: added to the standard deviation.

    Returns:
      ``[..., K]`` advantages.
    """
    if not isinstance(rewards, torch.Tensor):
        raise TypeError(f"rewards must be a torch.Tensor, got {type(rewards).__name__}")
    if rewards.dim() < 1 or rewards.shape[-1] < 1:
        raise ValueError(f"rewards must have shape [..., K] with K >= 1 answers per group; got {tuple(rewards.shape)}")
    if not rewards.is_floating_point():
        rewards = rewards.float()
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, correction=0, keepdim=True)
    return (rewards - mean) / (std + eps)


# -------------------------------------------------- episode masks: wrappers of the core
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
    return td_errors_from_discounts(rewards, gamma * not_terminated, values, next_values)


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
    :math:`G_t = \sum_{k \ge 0} \gamma^k r_{t+k}`. It is the λ = 1 case of
    :func:`lambda_returns`: :func:`lambda_returns_from_discounts` with
    :math:`\gamma_t = \gamma(1-\text{terminated}_t)` and :math:`\lambda_t = c_t`.

    Args:
      rewards, terminated, truncated, next_values: ``[T, B]`` (see the module docstring).
      gamma: discount :math:`\gamma`.

    Returns:
      ``[T, B]`` returns :math:`G_t`.
    """
    _check({"rewards": rewards, "terminated": terminated, "truncated": truncated, "next_values": next_values}, gamma)
    not_terminated, continues = _masks(terminated, truncated, rewards.dtype)
    return lambda_returns_from_discounts(rewards, gamma * not_terminated, next_values, continues)


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
    (:func:`n_step_returns_from_discounts` with :math:`\lambda_t = 1 - \text{done}_t`.)

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
    return n_step_returns_from_discounts(rewards, gamma * not_terminated, next_values, n, continues)


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
    (:func:`gae_from_discounts` with :math:`\gamma_t = \gamma(1-\text{terminated}_t)` and
    :math:`\lambda_t = \lambda(1-\text{done}_t)`.)

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
    deltas = td_errors_from_discounts(rewards, gamma * not_terminated, values, next_values)
    # gae_from_discounts would multiply gamma_t by lambda_t in the tensor's precision; the
    # product gamma*lam is rounded once here, as PPO's advantages always were (bit for bit).
    return _reverse_scan(deltas, gamma * lam * continues)


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
    and :math:`\lambda = 1` the discounted return. (:func:`lambda_returns_from_discounts`
    with :math:`\gamma_t = \gamma(1-\text{terminated}_t)` and :math:`\lambda_t = \lambda(1-\text{done}_t)`.)

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
    return lambda_returns_from_discounts(rewards, gamma * not_terminated, next_values, continues * lam)


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
    (:func:`vtrace_from_discounts` with :math:`\gamma_t = \gamma(1-\text{terminated}_t)`,
    :math:`\lambda_t = \lambda(1-\text{done}_t)` and ``pg_lambda`` :math:`= 1-\text{done}_t`.)

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
    not_terminated, continues = _masks(terminated, truncated, rewards.dtype)
    # lambda_t = lam * continues cuts the trace at episode ends; the advantage uses v_{t+1}
    # itself wherever the episode goes on (pg_lambda = continues), as the paper does.
    return vtrace_from_discounts(rewards, gamma * not_terminated, values, next_values, log_rhos,
                                 lambda_=continues * lam, rho_bar=rho_bar, c_bar=c_bar, pg_rho_bar=pg_rho_bar,
                                 pg_lambda=continues)
