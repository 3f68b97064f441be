r"""The Vision Transformer (Dosovitskiy et al., 2021): an image read as a sequence of patches.

The lecture's pipeline, one piece per function or module:

.. code-block:: text

    image [C, H, W]  --patchify-->  N = HW / P² patches x_i, each a vector of C·P² pixels
    z_i^0 = W_E x_i + b_E                      linear patch embedding (= a P×P convolution with stride P)
    z^0 = [z_cls; z_1^0; ...; z_N^0] + E_pos   prepend the class token, add learnable positions
    z^L = Transformer(z^0)                     L pre-norm blocks, bidirectional attention, final LayerNorm
    logits = W_head z^L_cls                    the head reads the class token

:func:`patchify` and :func:`embed_patches` are pure functions (the ``attention`` assignment
compares students' code with them); :class:`ViT` holds the parameters and runs the course
:class:`~course_lib.nets.transformer.Transformer` on the tokens. No second attention is
written here: the stack is the one GPT and the world models use.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..nets.transformer import Transformer, TransformerConfig

__all__ = ["patchify", "unpatchify", "embed_patches", "PatchEmbedding", "ViT"]


def _grid(height: int, width: int, patch: int) -> tuple[int, int]:
    """The ``(H/P, W/P)`` grid of patches, or a ValueError naming what divides."""
    if not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch size must be an integer >= 1; got {patch!r}")
    if height % patch or width % patch:
        raise ValueError(f"a {height}×{width} image does not split into {patch}×{patch} patches; accepted: a patch "
                         f"size that divides both height and width")
    return height // patch, width // patch


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    r"""Cut images into non-overlapping ``patch``×``patch`` squares, each flattened to one vector.

    Args:
      images: ``[B, C, H, W]``, ``H`` and ``W`` multiples of ``patch`` (``H != W`` is fine).
      patch: the side :math:`P` of a square patch.

    Returns:
      ``[B, N, C·P·P]`` with :math:`N = HW/P^2`: the patches in row-major order over the
      ``H/P × W/P`` grid (patch ``i`` is at grid row ``i // (W/P)``, column ``i % (W/P)``), each
      flattened in ``(C, P, P)`` order. That order is the one of a ``nn.Conv2d(C, D, P, stride=P)``
      kernel, so ``patchify(x, P) @ conv.weight.view(D, -1).T + conv.bias`` equals
      ``conv(x)`` flattened over the grid.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W]; got shape {tuple(images.shape)}")
    B, C, H, W = images.shape
    gh, gw = _grid(H, W, patch)
    x = images.reshape(B, C, gh, patch, gw, patch)                     # split each axis into (grid, within)
    x = x.permute(0, 2, 4, 1, 3, 5)                                    # [B, gh, gw, C, P, P]
    return x.reshape(B, gh * gw, C * patch * patch)


def unpatchify(patches: torch.Tensor, patch: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`patchify`: ``[B, N, C·P·P] -> [B, C, H, W]`` (e.g. to draw patches or a map over them)."""
    if patches.dim() != 3:
        raise ValueError(f"patches must be [B, N, C*P*P]; got shape {tuple(patches.shape)}")
    gh, gw = _grid(height, width, patch)
    B, N, F_ = patches.shape
    if N != gh * gw or F_ % (patch * patch):
        raise ValueError(f"{N} patches of {F_} values do not tile a {height}×{width} image with patch {patch}; "
                         f"accepted: N = {gh * gw} and C·{patch * patch} values per patch")
    C = F_ // (patch * patch)
    x = patches.reshape(B, gh, gw, C, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(B, C, height, width)


def embed_patches(images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cls: torch.Tensor,
                  positions: torch.Tensor | None, patch: int) -> torch.Tensor:
    r"""The ViT's input tokens: embedded patches after a class token, plus positions.

    .. math::
        z_i^0 = W_E\, x_i + b_E \quad (i = 1..N), \qquad
        z^0 = [\,z_{\mathrm{cls}};\ z_1^0;\ \dots;\ z_N^0\,] + E_{\mathrm{pos}}

    with :math:`x_i` the patches of :func:`patchify` and :math:`N = HW/P^2`.

    Args:
      images: ``[B, C, H, W]``.
      weight: :math:`W_E` ``[D, C·P·P]`` (a ``nn.Linear`` weight: one row per output feature).
      bias: :math:`b_E` ``[D]``.
      cls: the learnable class token :math:`z_{\mathrm{cls}}` ``[D]``, the same for every image.
      positions: :math:`E_{\mathrm{pos}}` ``[N + 1, D]`` (row 0 for the class token), or None for
        no position information (the ablation: the tokens are then a *set* of patches).
      patch: the patch side :math:`P`.

    Returns:
      ``[B, N + 1, D]``: token 0 is the class token, tokens ``1..N`` the patches in row-major order.
    """
    # 1. Patchify: N = HW/P² patches of C·P·P numbers each
    x = patchify(images, patch)                                               # [B, N, C·P·P]
    B, N, F_ = x.shape
    if weight.dim() != 2 or weight.shape[1] != F_:
        raise ValueError(f"weight must be [D, {F_}] (C·P·P = {F_} for these images and patch {patch}); got "
                         f"{tuple(weight.shape)}")
    D = weight.shape[0]
    if bias.shape != (D,) or cls.shape != (D,):
        raise ValueError(f"bias and cls must be [{D}]; got {tuple(bias.shape)} and {tuple(cls.shape)}")
    if positions is not None and positions.shape != (N + 1, D):
        raise ValueError(f"positions must be [N + 1, D] = [{N + 1}, {D}] for {N} patches; got "
                         f"{tuple(positions.shape)}")
    # 2. Linear patch embedding (a convolution with kernel and stride P)
    z = x @ weight.T + bias                                                   # z_i^0 = W_E x_i + b_E: [B, N, D]
    # 3. Class token first, then learnable positions
    z = torch.cat((cls.expand(B, 1, D), z), dim=1)                            # [B, N + 1, D]
    return z if positions is None else z + positions


class PatchEmbedding(nn.Module):
    r"""The parameters of :func:`embed_patches`: :math:`W_E` ``[D, C·P·P]``, :math:`b_E` ``[D]``, the class
    token ``[D]`` and the position table ``[N + 1, D]`` (absent with ``positions=False``).

    ``forward(images [B, C, H, W]) -> [B, N + 1, D]``. Images must have the ``image_shape``
    ``(C, H, W)`` it was built for (the position table has one row per patch of that grid).
    """

    def __init__(self, image_shape: tuple[int, int, int], patch: int, d_model: int, positions: bool = True):
        super().__init__()
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width); got {tuple(image_shape)}")
        C, H, W = image_shape
        self.image_shape, self.patch = (C, H, W), patch
        self.grid = _grid(H, W, patch)
        self.num_patches = self.grid[0] * self.grid[1]
        fan_in = C * patch * patch
        # The initialisation of nn.Conv2d(C, D, P, stride=P), whose weights these are, flattened.
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(d_model, fan_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(d_model).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02)
        self.positions = nn.Parameter(torch.randn(self.num_patches + 1, d_model) * 0.02) if positions else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"images must be [B, {', '.join(map(str, self.image_shape))}]; got "
                             f"{tuple(images.shape)}")
        return embed_patches(images, self.weight, self.bias, self.cls, self.positions, self.patch)


class ViT(nn.Module):
    r"""A Vision Transformer classifier: patch embedding, the course transformer, a head on [CLS].

    .. math::
        z^0 = [z_{\mathrm{cls}};\ W_E x_1 + b_E;\ \dots;\ W_E x_N + b_E] + E_{\mathrm{pos}},\qquad
        z^\ell = \mathrm{Block}_\ell(z^{\ell-1}),\qquad
        y = W_{\mathrm{head}}\, \mathrm{LN}(z^L)_{\mathrm{cls}} + b_{\mathrm{head}}

    Args:
      image_shape: ``(C, H, W)`` of the images.
      num_classes: outputs of the head.
      patch: patch side :math:`P` (divides ``H`` and ``W``); :math:`N = HW/P^2` tokens plus [CLS].
      cfg: the :class:`~course_lib.nets.transformer.TransformerConfig` of the stack (width
        ``d_model`` = :math:`D`, ``n_heads``, ``n_layers`` = :math:`L`, ``d_ff``, ``dropout``).
        Its ``positions`` says what the ViT adds to the tokens: ``"learned"`` a learnable
        table :math:`E_{\mathrm{pos}}` ``[N + 1, D]`` (the ViT's own; the stack itself adds nothing),
        ``"none"`` nothing (the ablation: attention then sees a set of patches, not a grid).
        ``max_len`` does not limit the ViT (its table has ``N + 1`` rows).
      pool: ``"cls"`` (the head reads the class token's final vector) or ``"mean"`` (the
        mean of the patch tokens' final vectors).

    ``forward(images [B, C, H, W]) -> logits [B, num_classes]``; with ``need_weights=True``
    ``(logits, weights)``, ``weights`` one ``[B, heads, N + 1, N + 1]`` tensor per layer (row
    ``q``: how query token ``q`` spreads its attention over the tokens; token 0 is [CLS]).
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, patch: int, cfg: TransformerConfig,
                 pool: str = "cls"):
        super().__init__()
        if cfg.positions not in ("learned", "none"):
            raise ValueError(f"a ViT adds learned absolute positions or none; got TransformerConfig.positions = "
                             f"{cfg.positions!r}; accepted: learned, none")
        if pool not in ("cls", "mean"):
            raise ValueError(f"unknown pool {pool!r}; accepted: cls, mean")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}")
        self.cfg, self.pool, self.num_classes = cfg, pool, num_classes
        self.embed = PatchEmbedding(image_shape, patch, cfg.d_model, positions=cfg.positions == "learned")
        self.drop = nn.Dropout(cfg.dropout)
        self.transformer = Transformer(cfg)            # bidirectional blocks and the final LayerNorm
        self.head = nn.Linear(cfg.d_model, num_classes)

    @property
    def grid(self) -> tuple[int, int]:
        """``(H/P, W/P)``: the patch grid (token ``1 + r·W/P + c`` is the patch at row ``r``, column ``c``)."""
        return self.embed.grid

    @property
    def patch(self) -> int:
        return self.embed.patch

    def forward(self, images: torch.Tensor, need_weights: bool = False):
        z = self.drop(self.embed(images))                                     # [B, N + 1, D]: steps 1-3
        # 4. Encoder stack: L blocks of multi-head self-attention and MLP, residuals and LayerNorm
        out = self.transformer(z, need_weights=need_weights)                  # bidirectional: no mask
        h = out.hidden                                                        # [B, N + 1, D], after the final LN
        # 5. Prediction head on the final [CLS] (or the mean of the patch tokens)
        pooled = h[:, 0] if self.pool == "cls" else h[:, 1:].mean(dim=1)     # [B, D]
        logits = self.head(pooled)
        return (logits, out.weights) if need_weights else logits
