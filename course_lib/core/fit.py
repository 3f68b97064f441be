"""``fit``: the supervised minibatch loop every model without an environment shares.

AlphaGo's policy and value networks learn from fixed data sets; so will the Vision
Transformer, the reasoning GPT's pre-training, DPO, the Decision Transformer and the
reconstruction of a world model's frames. The loop is the same each time::

    for step in 1..steps:
        idx  <- a random minibatch of indices into the data set
        loss <- loss_fn(idx)              (the model's own loss on those items)
        one optimiser step on loss

:func:`fit` runs it with a progress bar and returns the loss curve; the caller's
``loss_fn`` holds everything specific (the data, augmentation, the loss itself).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .metrics import ProgressBar

__all__ = ["fit", "warmup_cosine", "weight_decay_groups"]


def fit(net: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], n: int, steps: int, batch_size: int, *,
        optimizer: torch.optim.Optimizer | None = None, learning_rate: float = 1e-3, weight_decay: float = 0.0,
        seed: int = 0, max_grad_norm: float | None = None, desc: str = "fit", progress: bool = True,
        log_every: int = 50, evaluate: Callable[[], Mapping[str, float]] | None = None, eval_every: int = 0,
        callback: Callable[[Mapping[str, Any]], None] | None = None,
        after_step: Callable[[], Any] | None = None) -> list[dict[str, float]]:
    """Minibatch gradient descent on ``loss_fn(indices)`` over a data set of ``n`` items.

    Args:
      net: the model (put in train mode for the loop and in eval mode after it).
      loss_fn: ``loss_fn(idx [batch]) -> scalar loss`` on the items ``idx``.
      n: data set size; minibatches are ``min(batch_size, n)`` indices drawn uniformly with
        replacement by a generator seeded with ``seed`` on the model's device.
      steps: gradient steps.
      optimizer: default Adam(``learning_rate``, ``weight_decay``) over ``net``'s parameters.
      max_grad_norm: clip the gradient's global norm (None: no clipping).
      log_every: steps between rows of the returned curve (and progress-bar updates).
      evaluate: optional ``evaluate() -> {name: value}`` (e.g. a held-out loss), run every
        ``eval_every`` steps and at the end, its values added to that row.
      callback: called with every row.
      after_step: called after every optimiser step (e.g. a learning-rate scheduler's ``step``).

    Returns:
      The loss curve: rows ``{"step", "loss", ...evaluate's values}``.
    """
    if n < 1 or steps < 0 or batch_size < 1:
        raise ValueError(f"fit needs n >= 1, steps >= 0 and batch_size >= 1; got n={n}, steps={steps}, "
                         f"batch_size={batch_size}")
    device = next(net.parameters()).device
    if optimizer is None:
        optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    generator = torch.Generator(device=device).manual_seed(seed)
    bar = ProgressBar(steps, desc, enabled=progress)
    history: list[dict[str, float]] = []
    net.train()
    for step in range(1, steps + 1):
        idx = torch.randint(n, (min(batch_size, n),), generator=generator, device=device)
        loss = loss_fn(idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
        optimizer.step()
        if after_step is not None:
            after_step()
        last = step == steps
        if step % log_every == 0 or last or (eval_every and step % eval_every == 0):
            row = {"step": step, "loss": loss.item()}
            if evaluate is not None and (last or (eval_every and step % eval_every == 0)):
                net.eval()
                with torch.no_grad():
                    row.update(evaluate())
                net.train()
            history.append(row)
            if callback is not None:
                callback(row)
            bar.update(step, loss=row["loss"])
    bar.close()
    net.eval()
    return history


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    r"""The learning-rate factor at gradient step ``step`` (0-based): :math:`(s+1)/w` during the ``warmup`` steps,
    then :math:`\tfrac12(1 + \cos(\pi\,\frac{s - w}{T - w}))` down to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def weight_decay_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups that decay the matrices only: biases, LayerNorm gains, a class token and a
    parameter named ``positions`` (a position table) keep their scale (decaying them only pulls them to zero)."""
    decay, keep = [], []
    for name, p in net.named_parameters():
        (decay if p.dim() >= 2 and not name.endswith("positions") else keep).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]
