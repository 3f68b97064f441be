r"""Action distributions, written out so the formulas are visible.

Both classes share one small interface: ``sample()``, ``mode()`` (the greedy action),
``log_prob(a)`` and ``entropy()``, each batched over the leading dimension.
"""
from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2 * math.pi)


class Categorical:
    r"""A batch of categorical distributions over ``A`` actions, from logits ``[..., A]``.

    :math:`\pi(a) = \mathrm{softmax}(\text{logits})_a`, entropy
    :math:`\mathcal H = -\sum_a \pi(a)\log\pi(a)`.
    """

    def __init__(self, logits: torch.Tensor):
        self.log_probs = torch.log_softmax(logits, dim=-1)

    @property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    def sample(self) -> torch.Tensor:
        # Gumbel-max trick: argmax_a (log pi(a) + G_a) with G_a ~ Gumbel(0, 1) samples pi.
        # Written as argmax_a pi(a) / E_a with E_a ~ Exp(1): -log E is Gumbel-distributed.
        noise = torch.empty_like(self.log_probs).exponential_()
        return (self.probs / noise).argmax(dim=-1)

    def mode(self) -> torch.Tensor:
        return self.log_probs.argmax(dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self.log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.log_probs).sum(-1)


class DiagGaussian:
    r"""A batch of diagonal Gaussians :math:`\mathcal N(\mu, \mathrm{diag}(\sigma^2))` over ``[..., d]`` actions.

    :math:`\log\pi(a) = \sum_i -\tfrac12\big(\tfrac{a_i-\mu_i}{\sigma_i}\big)^2 - \log\sigma_i - \tfrac12\log 2\pi`,
    entropy :math:`\mathcal H = \sum_i \log\sigma_i + \tfrac12(1 + \log 2\pi)`.
    """

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self) -> torch.Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.square() - self.log_std - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 * (1 + _LOG_2PI)).sum(-1)
