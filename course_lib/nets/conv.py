"""Convolutional encoders and decoders for pixel observations (MinAtar, Atari frames).

The shape world models use (World Models, Dreamer, TWM, STORM): each encoder stage halves
the image with a stride-2 convolution and doubles the channels; the decoder mirrors it with
stride-2 transposed convolutions. A ``[B, C, H, W]`` image becomes a ``[B, features]``
vector and back. Sizes must halve evenly ``stages`` times (64×64 with 4 stages → 4×4;
MinAtar's 10×10 with 1 stage → 5×5).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ConvEncoder", "ConvDecoder"]

_ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "elu": nn.ELU}


def _check(image_shape: tuple[int, int, int], stages: int, activation: str) -> tuple[int, int, int]:
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (channels, height, width); got {tuple(image_shape)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; accepted: {', '.join(_ACTIVATIONS)}")
    c, h, w = image_shape
    if stages < 1 or h % 2 ** stages or w % 2 ** stages:
        raise ValueError(f"a {h}×{w} image cannot be halved {stages} times evenly; accepted: stages >= 1 with "
                         f"height and width multiples of 2**stages")
    return c, h, w


class ConvEncoder(nn.Module):
    """``[B, C, H, W]`` images (floats, e.g. in [0, 1] or centred) -> ``[B, out_features]``.

    ``stages`` blocks of (4×4 conv with stride 2, one-group GroupNorm (a LayerNorm over the map),
    activation); channels ``depth, 2·depth, 4·depth, ...``; then the flattened map.
    """

    def __init__(self, image_shape: tuple[int, int, int], depth: int = 32, stages: int = 4,
                 activation: str = "silu"):
        super().__init__()
        c, h, w = _check(image_shape, stages, activation)
        layers, channels = [], c
        for i in range(stages):
            out = depth * 2 ** i
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.GroupNorm(1, out),
                       _ACTIVATIONS[activation]()]
            channels = out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.image_shape = (c, h, w)
        self.map_shape = (channels, h // 2 ** stages, w // 2 ** stages)
        self.out_features = math.prod(self.map_shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-3:] != self.image_shape:
            raise ValueError(f"expected images [..., {', '.join(map(str, self.image_shape))}]; "
                             f"got {tuple(images.shape)}")
        lead = images.shape[:-3]
        return self.net(images.reshape(-1, *self.image_shape)).reshape(*lead, self.out_features)


class ConvDecoder(nn.Module):
    """``[B, in_features]`` -> ``[B, C, H, W]`` images: a linear layer to the encoder's last map,
    then ``stages`` stride-2 transposed convolutions (the last without norm or activation)."""

    def __init__(self, in_features: int, image_shape: tuple[int, int, int], depth: int = 32, stages: int = 4,
                 activation: str = "silu"):
        super().__init__()
        c, h, w = _check(image_shape, stages, activation)
        channels = depth * 2 ** (stages - 1)
        self.map_shape = (channels, h // 2 ** stages, w // 2 ** stages)
        self.linear = nn.Linear(in_features, math.prod(self.map_shape))
        layers = []
        for i in reversed(range(stages)):
            out = c if i == 0 else depth * 2 ** (i - 1)
            layers.append(nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1))
            if i:
                layers += [nn.GroupNorm(1, out), _ACTIVATIONS[activation]()]
            channels = out
        self.net = nn.Sequential(*layers)
        self.image_shape = (c, h, w)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        x = self.linear(features.reshape(-1, features.shape[-1])).view(-1, *self.map_shape)
        return self.net(x).reshape(*lead, *self.image_shape)
