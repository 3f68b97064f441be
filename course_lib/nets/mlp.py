"""Multi-layer perceptrons with orthogonal initialisation."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU, "elu": nn.ELU}


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights scaled by ``gain``, constant bias.

    Orthogonal initialisation keeps the scale of activations and gradients roughly
    constant through depth (Saxe et al., 2014). PPO implementations use gain √2 for
    hidden layers, 0.01 for the policy's output (so the first policy is near uniform and
    ratios start near 1) and 1 for the value output (Andrychowicz et al., 2021).
    """
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "tanh",
        out_gain: float = 1.0) -> nn.Sequential:
    """``in_dim -> hidden[0] -> ... -> out_dim`` with ``activation`` between layers (none after the last)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; accepted: {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [layer_init(nn.Linear(a, b)), ACTIVATIONS[activation]()]
    layers.append(layer_init(nn.Linear(dims[-1], out_dim), gain=out_gain))
    return nn.Sequential(*layers)


class EnsembleMLP(nn.Module):
    """``members`` independent MLPs evaluated together: one batched matmul per layer.

    Layer ``l`` holds weights ``[E, in, out]`` and biases ``[E, 1, out]``; an input ``[N, in_dim]``
    shared by every member (or ``[E, N, in_dim]``, one per member) gives outputs
    ``[E, N, out_dim]``. Each member is initialised like :func:`mlp` (orthogonal, gain √2 for
    hidden layers and ``out_gain`` for the last), independently. SAC's twin critics are
    an ensemble of two: one ``torch.baddbmm`` per layer instead of two ``nn.Linear`` calls.
    """

    def __init__(self, members: int, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "relu",
                 out_gain: float = 1.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; accepted: {', '.join(ACTIVATIONS)}")
        self.members = members
        self.activation = ACTIVATIONS[activation]()
        dims = [in_dim, *hidden, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            gain = out_gain if i == len(dims) - 2 else math.sqrt(2)
            # Each member as nn.Linear's [out, in] weight would be initialised, stored transposed.
            weight = torch.stack([nn.init.orthogonal_(torch.empty(b, a), gain).T for _ in range(members)])
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(members, 1, b)))

    # Layers with fewer outputs than this multiply and sum instead of calling baddbmm: CPU
    # batched-matmul kernels are several times slower than that for a few output columns
    # (a critic's single Q value), forward and backward.
    NARROW = 8

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """``[N, in_dim]`` or ``[E, N, in_dim]`` -> ``[E, N, out_dim]``.

        ``frozen=True`` uses the parameters as constants: gradients still flow to ``x`` but
        not into the weights (the ensemble is a fixed function of its input).
        """
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if frozen:
                weight, bias = weight.detach(), bias.detach()
            if weight.shape[-1] < self.NARROW:
                # [E, N, in, 1] * [E, 1, in, out] summed over in; in float32 even under autocast.
                x = bias + (x.unsqueeze(-1) * weight.unsqueeze(1)).sum(-2)
            else:
                x = torch.baddbmm(bias, x, weight)
            if i < last:
                x = self.activation(x)
        return x
