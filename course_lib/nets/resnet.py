"""The residual tower of AlphaZero-style networks (He et al., 2016; Silver et al., 2017):
3×3 convolutions with batch norm, and blocks whose output is ``relu(x + F(x))``."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ResidualBlock", "conv_stem", "residual_tower"]


class ResidualBlock(nn.Module):
    """``relu(x + bn(conv(relu(bn(conv(x))))))`` with 3×3 convolutions; ``x: [B, C, H, W]`` -> same shape."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


def conv_stem(in_channels: int, channels: int) -> nn.Sequential:
    """The tower's entry: a 3×3 convolution to ``channels``, batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU())


def residual_tower(channels: int, blocks: int) -> nn.Sequential:
    """``blocks`` :class:`ResidualBlock` of ``channels`` channels in a row (an empty tower for 0)."""
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
