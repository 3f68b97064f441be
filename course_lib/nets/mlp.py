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
