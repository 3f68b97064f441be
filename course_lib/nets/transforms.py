r"""Value transforms and categorical value heads: scalars of any size as distributions over bins.

Returns in Atari run from 0 to tens of thousands; a network regressing them with a squared
error gets gradients of that size. Two remedies, used together by MuZero and Dreamer V3:

1. squash the scalar with an invertible transform before learning it: MuZero's
   :math:`\phi` (:func:`scale_value`, inverse :func:`unscale_value`) or Dreamer V3's
   :math:`\mathrm{symlog}` (:func:`symlog`, inverse :func:`symexp`);
2. predict a categorical distribution over fixed *bins* instead of a number, trained with a
   cross-entropy against a **two-hot** target: the two bins around the scalar share its weight
   so that the target's mean is exactly the scalar, and the prediction is read back as the
   mean of the predicted distribution.

MuZero's bins are the integers :math:`-S..S` on the scale of :math:`\phi`
(:func:`to_support`, :func:`from_support`); Dreamer V3's are 255 bins evenly spaced in symlog
space (:func:`symexp_bins`), for which :func:`two_hot` and :func:`from_two_hot` take any
ascending bin vector.
"""
from __future__ import annotations

import torch

__all__ = ["scale_value", "unscale_value", "symlog", "symexp", "to_support", "from_support", "two_hot",
           "from_two_hot", "symexp_bins"]


# ------------------------------------------------------------------ MuZero's phi
def scale_value(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    r""":math:`\phi(x) = \mathrm{sign}(x)\,(\sqrt{|x| + 1} - 1) + \epsilon x`: compresses large values (MuZero, App. F)."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1) - 1) + eps * x


def unscale_value(y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    r""":math:`\phi^{-1}(y) = \mathrm{sign}(y)\Big(\Big(\frac{\sqrt{1 + 4\epsilon(|y| + 1 + \epsilon)} - 1}{2\epsilon}\Big)^2 - 1\Big)`."""
    return torch.sign(y) * (((torch.sqrt(1 + 4 * eps * (y.abs() + 1 + eps)) - 1) / (2 * eps)).square() - 1)


# ------------------------------------------------------------- Dreamer V3's symlog
def symlog(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{symlog}(x) = \mathrm{sign}(x)\,\ln(1 + |x|)` (Hafner et al., 2023): the identity near 0, a logarithm far out."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(y: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{symexp}(y) = \mathrm{sign}(y)\,(e^{|y|} - 1)`, the inverse of :func:`symlog`."""
    return torch.sign(y) * torch.expm1(y.abs())


# ------------------------------------------------------------------- two-hot heads
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


def _check_bins(bins: torch.Tensor) -> None:
    if not isinstance(bins, torch.Tensor):
        raise TypeError(f"bins must be a torch.Tensor, got {type(bins).__name__}")
    if bins.dim() != 1 or bins.numel() < 2:
        raise ValueError(f"bins must be a 1-d tensor of at least 2 ascending values; got shape {tuple(bins.shape)}")


def two_hot(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    r"""``[...]`` scalars -> ``[..., K]`` two-hot distributions over ascending ``bins [K]``.

    With :math:`b_k \le x < b_{k+1}` the weight goes to those two bins in proportion to
    closeness,

    .. math:: p_k = \frac{b_{k+1} - x}{b_{k+1} - b_k}, \qquad p_{k+1} = \frac{x - b_k}{b_{k+1} - b_k},

    so that :math:`\sum_i p_i b_i = x`; a scalar outside :math:`[b_0, b_{K-1}]` is clipped to the
    nearest end. Dreamer V3 encodes :math:`\mathrm{symlog}(y)` over bins evenly spaced in
    :math:`[-20, 20]` (``two_hot(symlog(y), torch.linspace(-20, 20, 255))``, read back with
    ``symexp(from_two_hot(logits, bins))``); equivalently its paper writes ``two_hot(y, symexp_bins())``
    read back with :func:`from_two_hot` directly. The bins must be strictly ascending (not checked:
    that would wait for the device).

    Args:
      x: ``[...]`` scalars.
      bins: ``[K]`` ascending bin positions, ``K >= 2``.

    Returns:
      ``[..., K]`` distributions, in ``x``'s floating dtype (float32 for integer ``x``).
    """
    _check_bins(bins)
    x = x if x.is_floating_point() else x.float()
    bins = bins.to(device=x.device, dtype=x.dtype)
    K = bins.shape[0]
    y = torch.clamp(x, bins[0], bins[-1])
    # Index k of the bin at or below y; the top end belongs to the last interval [b_{K-2}, b_{K-1}].
    k = (torch.searchsorted(bins, y.contiguous(), right=True) - 1).clamp(0, K - 2)
    low, high = bins[k], bins[k + 1]
    upper = (y - low) / (high - low)
    out = torch.zeros(*x.shape, K, device=x.device, dtype=x.dtype)
    out.scatter_(-1, k.unsqueeze(-1), (1 - upper).unsqueeze(-1))
    out.scatter_add_(-1, (k + 1).unsqueeze(-1), upper.unsqueeze(-1))
    return out


def from_two_hot(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathbb E[b] = \sum_i \mathrm{softmax}(\text{logits})_i\, b_i` of ``logits [..., K]`` over ``bins [K]``.

    Returns ``[...]``, computed in at least float32 (a bfloat16 softmax is too coarse to read a
    value from).
    """
    _check_bins(bins)
    if logits.shape[-1] != bins.shape[0]:
        raise ValueError(f"logits have {logits.shape[-1]} classes in their last dimension but there are "
                         f"{bins.shape[0]} bins")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return (torch.softmax(logits.to(dtype), dim=-1) * bins.to(device=logits.device, dtype=dtype)).sum(-1)


def symexp_bins(num_bins: int = 255, limit: float = 20.0, device: torch.device | str | None = None) -> torch.Tensor:
    r"""Dreamer V3's bins :math:`\mathrm{symexp}(\mathrm{linspace}(-L, L, K))`: ``[K]``, even in symlog space.

    Dense near 0 and sparse far out: :math:`L = 20` reaches :math:`\pm 4.85 \cdot 10^8`.
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be at least 2; got {num_bins}")
    if not limit > 0:
        raise ValueError(f"limit must be positive; got {limit}")
    grid = torch.linspace(-limit, limit, num_bins, device=device)
    # linspace's middle value is off zero by rounding; made exactly antisymmetric, an odd number
    # of bins has a bin at exactly 0, so that a zero reward is encoded as one bin.
    return symexp((grid - grid.flip(0)) / 2)
