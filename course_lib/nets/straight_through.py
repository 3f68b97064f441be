r"""A one-hot categorical whose samples carry gradients: the straight-through estimator.

DreamerV2/V3's latent state is a vector of categorical variables (32 of 32 classes), and TWM
and STORM sample theirs the same way. A sample is a one-hot vector, which has no gradient with
respect to the logits; the straight-through estimator (Bengio et al., 2013) uses the sample in
the forward pass and the gradient of the probabilities in the backward pass:

.. math:: \tilde z = z + \big(p - \mathrm{sg}(p)\big), \qquad z \sim \mathrm{OneHot}(p),

whose value is exactly :math:`z` (the bracket is zero) and whose Jacobian with respect to the
logits is that of :math:`p` (``sg`` stops the gradient). Dreamer V3 also mixes 1% of the
uniform distribution into :math:`p` ("unimix") so that no class's probability reaches 0 and the
KL terms between prior and posterior stay finite.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["OneHotCategorical"]


class OneHotCategorical:
    r"""A batch of categorical distributions over ``K`` classes from logits ``[..., K]``, sampled as one-hot vectors.

    :math:`p = (1 - u)\,\mathrm{softmax}(\text{logits}) + u / K` with ``unimix`` :math:`u`
    (0: none; Dreamer V3 uses 0.01). ``sample()`` and ``mode()`` return ``[..., K]`` one-hot
    vectors with straight-through gradients; ``log_prob(z)`` takes such a vector.
    """

    def __init__(self, logits: torch.Tensor, unimix: float = 0.0):
        if not 0.0 <= unimix < 1.0:
            raise ValueError(f"unimix must be in [0, 1) (Dreamer V3 uses 0.01); got {unimix}")
        if logits.dim() < 1 or logits.shape[-1] < 1:
            raise ValueError(f"logits must have shape [..., K] with K >= 1 classes; got {tuple(logits.shape)}")
        self.num_classes = logits.shape[-1]
        if unimix > 0:
            self.probs = (1 - unimix) * torch.softmax(logits, dim=-1) + unimix / self.num_classes
            self.log_probs = torch.log(self.probs)
        else:
            self.log_probs = torch.log_softmax(logits, dim=-1)
            self.probs = self.log_probs.exp()

    def _straight_through(self, index: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(index, self.num_classes).to(self.probs.dtype)
        # (p - sg(p)) is exactly 0 forward, so the value stays exactly one-hot; backward it is p's gradient.
        return one_hot + (self.probs - self.probs.detach())

    def sample(self) -> torch.Tensor:
        """``[..., K]`` one-hot samples with the gradient of the probabilities."""
        # Gumbel-max, written as argmax_k p_k / E_k with E_k ~ Exp(1) (see nets.Categorical.sample).
        noise = torch.empty_like(self.probs).exponential_()
        return self._straight_through((self.probs.detach() / noise).argmax(dim=-1))

    def mode(self) -> torch.Tensor:
        """``[..., K]`` one-hot of the most likely class, with the gradient of the probabilities."""
        return self._straight_through(self.probs.detach().argmax(dim=-1))

    def log_prob(self, one_hot: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(z) = \sum_k z_k \log p_k` for one-hot ``[..., K]`` -> ``[...]``."""
        return (one_hot * self.log_probs).sum(-1)

    def entropy(self) -> torch.Tensor:
        r""":math:`\mathcal H = -\sum_k p_k \log p_k`, ``[...]``."""
        return -(self.probs * self.log_probs).sum(-1)

    def kl(self, other: "OneHotCategorical") -> torch.Tensor:
        r""":math:`\mathrm{KL}(p\,\|\,q) = \sum_k p_k(\log p_k - \log q_k)` with ``other`` as :math:`q`, ``[...]``."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"KL between distributions over {self.num_classes} and {other.num_classes} classes")
        return (self.probs * (self.log_probs - other.log_probs)).sum(-1)
