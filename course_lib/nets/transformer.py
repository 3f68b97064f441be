r"""The course transformer: one compact implementation for GPT, BERT, ViT, TWM, STORM and the Decision Transformer.

A stack of pre-norm blocks, each

.. code-block:: text

    x <- x + Attention(LayerNorm(x))        multi-head self-attention, softmax(Q Kᵀ / √d_k) V
    x <- x + MLP(LayerNorm(x))              Linear(C, d_ff) -> GELU -> Linear(d_ff, C)

followed by a final LayerNorm. What later chapters need beyond nanoGPT's model, all here:

* **masks** (bool, ``True`` = *may attend*): causal, bidirectional (no mask), padding
  (``padding [B, S]``, ``True`` = a real token) and any block mask (``mask [T, S]`` or
  ``[B, T, S]``, e.g. :func:`block_causal_mask` for interleaved state/action/reward tokens),
  combined with AND;
* **attention weights on request** (``need_weights=True``): an explicit softmax whose weights
  are returned per layer as ``[B, H, T, S]``; otherwise the fast path through
  :func:`torch.nn.functional.scaled_dot_product_attention`. Both give the same output;
* **a key/value cache** (:class:`KVCache`) for incremental decoding: each new token attends to
  the stored keys and values instead of recomputing the whole context;
* **Transformer-XL relative positions and memory** (``positions="relative"``): the score of
  query *i* and key *j* is :math:`(q_i + u)^\top k_j + (q_i + v)^\top W_R R_{i-j}` with
  sinusoidal :math:`R` of the distance (Dai et al., 2019), so keys stay valid when the window
  slides, and ``memory`` carries each layer's inputs of the previous segment (no gradient)
  as extra context.

Shapes: ``B`` batch, ``T`` new tokens (queries), ``S`` keys (memory + cached + new tokens),
``C = d_model``, ``H = n_heads``, ``d = C / H``. The new tokens are the *last* ``T`` of the
``S`` positions, so a causal mask lets query ``i`` see keys ``j <= S - T + i``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import Config, ConfigError, option

__all__ = ["TransformerConfig", "scaled_dot_product_attention", "split_heads", "merge_heads", "multi_head_attention",
           "causal_mask", "block_causal_mask", "padding_mask", "KVCache", "MultiHeadAttention", "Block", "Transformer",
           "TransformerOutput", "GPT", "sample_next_token", "sinusoidal_embedding"]


@dataclass
class TransformerConfig(Config):
    """Size and position scheme of a transformer stack (validated on construction)."""

    d_model: int = option(128, "width C of every token's vector", low=1)
    n_heads: int = option(4, "attention heads H (d_model must divide by it)", low=1)
    n_layers: int = option(2, "blocks L", low=1)
    d_ff: int = option(0, "hidden width of each block's MLP (0: 4 * d_model)", low=0)
    dropout: float = option(0.0, "dropout on attention weights and on each residual branch", low=0.0, high=1.0,
                            high_open=True)
    positions: str = option("learned", "position scheme: learned absolute table (GPT, ViT), Transformer-XL "
                                       "relative, or none", choices=("learned", "relative", "none"))
    max_len: int = option(256, "length of the learned position table (most tokens one sequence can have)", low=1)
    memory: int = option(0, "Transformer-XL memory: tokens of past segments kept per layer (relative positions)",
                         low=0)
    bias: bool = option(True, "biases in the linear layers")

    def validate(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"TransformerConfig.d_model = {self.d_model} must divide by n_heads = {self.n_heads}")
        if self.memory and self.positions != "relative":
            raise ConfigError("TransformerConfig.memory needs positions='relative' (Transformer-XL): learned absolute "
                              f"positions cannot tell memory from the current segment; got {self.positions!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def hidden(self) -> int:
        return self.d_ff or 4 * self.d_model


# --------------------------------------------------------------------------- attention, the function
def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                                 *, bias: torch.Tensor | None = None, causal: bool = False, dropout: float = 0.0,
                                 need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Attention of ``T`` queries over ``S`` keys:

    .. math::
        \mathrm{Attn}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_k}} + b\Big) V,

    the softmax over keys allowed by the mask (others get weight 0).

    Args:
      q: ``[..., T, d_k]`` queries; k: ``[..., S, d_k]`` keys; v: ``[..., S, d_v]`` values.
      mask: bool, broadcastable to ``[..., T, S]``; ``True`` = query may attend to key.
        A query with no allowed key gets zero weights and a zero output.
      bias: optional float ``[..., T, S]`` added to the scaled scores (relative positions).
      causal: also mask keys after the query (query ``i`` sees keys ``j <= S - T + i``).
      dropout: dropout probability on the weights (pass 0 in eval mode).
      need_weights: compute the weights explicitly and return them; otherwise use
        :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels) and return None.

    Returns:
      ``(out [..., T, d_v], weights [..., T, S] or None)``.
    """
    if q.dim() < 2 or k.dim() != q.dim() or v.dim() != q.dim():
        raise ValueError(f"q, k, v need the same rank >= 2 ([..., T, d]); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"q and k need the same d_k and k, v the same S; got q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    T, S = q.shape[-2], k.shape[-2]
    if causal and mask is None and bias is None and T == S and not need_weights:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True), None
    if causal:
        cm = causal_mask(T, S, device=q.device)
        mask = cm if mask is None else mask & cm
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool (True = may attend); got {mask.dtype}")
    if need_weights:
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])                  # [..., T, S]
        if bias is not None:
            scores = scores + bias
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if mask is not None:                                   # a row with no allowed key: 0, not NaN
            weights = weights.masked_fill(~mask.any(-1, keepdim=True), 0.0)
        shown = F.dropout(weights, dropout) if dropout else weights
        return shown @ v, weights
    if mask is None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
        return out, None
    allowed = mask.any(-1, keepdim=True)                                             # [..., T, 1]
    safe = mask | ~allowed                    # let empty rows attend anywhere, then zero their output
    attn = safe if bias is None else bias.masked_fill(~safe, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn, dropout_p=dropout)
    return out.masked_fill(~allowed, 0.0), None


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[B, T, C] -> [B, H, T, C/H]``: each head gets its own slice of every token's vector."""
    B, T, C = x.shape
    if C % n_heads:
        raise ValueError(f"width {C} does not divide into {n_heads} heads")
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, d] -> [B, T, H * d]``, the inverse of :func:`split_heads`."""
    B, H, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d)


def multi_head_attention(x: torch.Tensor, qkv_weight: torch.Tensor, qkv_bias: torch.Tensor | None,
                         out_weight: torch.Tensor, out_bias: torch.Tensor | None, n_heads: int,
                         mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head self-attention as a function of its weights (what :class:`MultiHeadAttention` computes
    without a cache, memory or relative positions; the `attention` assignment asks for it).

    ``x [B, T, C]``; ``qkv_weight [3C, C]`` and ``qkv_bias [3C]`` (or None) project to Q, K, V stacked in that
    order (the layout of ``MultiHeadAttention.qkv`` and of ``torch.nn.MultiheadAttention.in_proj_weight``);
    ``out_weight [C, C]``, ``out_bias [C]`` (or None) mix the merged heads; ``mask`` bool, broadcastable to
    ``[B, H, T, T]``, ``True`` = may attend. Returns ``(y [B, T, C], weights [B, H, T, T])``.
    """
    q, k, v = F.linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1)
    q, k, v = split_heads(q, n_heads), split_heads(k, n_heads), split_heads(v, n_heads)     # [B, H, T, d]
    y, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    return F.linear(merge_heads(y), out_weight, out_bias), weights


# --------------------------------------------------------------------------- masks
def causal_mask(T: int, S: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """``[T, S]`` bool: the ``T`` queries are the last ``T`` of ``S`` positions and see only keys up to their own."""
    S = T if S is None else S
    if S < T:
        raise ValueError(f"causal mask needs at least as many keys as queries; got T={T}, S={S}")
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(S - T)


def block_causal_mask(blocks: torch.Tensor) -> torch.Tensor:
    """``[..., S, S]`` bool from block ids ``blocks [..., S]`` (non-decreasing): token ``i`` sees token ``j``
    iff ``blocks[j] <= blocks[i]``, i.e. everything in its own block and in earlier ones.

    With one block per time step (e.g. the tokens of one frame, or a step's state, action and
    reward), tokens see their whole step but nothing of the future; one block per token is
    the causal mask.
    """
    return blocks.unsqueeze(-2) <= blocks.unsqueeze(-1)


def padding_mask(lengths: torch.Tensor, S: int) -> torch.Tensor:
    """``[B, S]`` bool, ``True`` for the first ``lengths[b]`` tokens of each sequence (the real ones)."""
    return torch.arange(S, device=lengths.device) < lengths.unsqueeze(-1)


def sinusoidal_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    r"""``[N] -> [N, dim]``: :math:`(\sin(p\,\omega_i), \cos(p\,\omega_i))` with :math:`\omega_i = 10000^{-2i/dim}`."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angle = positions.float().unsqueeze(-1) * freq
    emb = torch.cat((angle.sin(), angle.cos()), dim=-1)
    return F.pad(emb, (0, dim - 2 * half))


# --------------------------------------------------------------------------- the cache
class KVCache:
    """Keys and values of the tokens seen so far, per layer, for incremental decoding.

    ``cache.length`` counts every token fed through (the position of the next one);
    ``cache.size`` is how many are kept. With ``max_size`` the oldest are dropped (a sliding
    window: valid with relative positions, whose keys carry no absolute position).
    """

    def __init__(self, n_layers: int, max_size: int | None = None):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers
        self.max_size, self.length = max_size, 0

    @property
    def size(self) -> int:
        first = self.layers[0]
        return 0 if first is None else first[0].shape[-2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v [B, H, T, d]`` after the layer's earlier ones; returns all kept keys and values."""
        old = self.layers[layer]
        if old is not None:
            k, v = torch.cat((old[0], k), dim=-2), torch.cat((old[1], v), dim=-2)
        if self.max_size is not None and k.shape[-2] > self.max_size:
            k, v = k[..., -self.max_size:, :], v[..., -self.max_size:, :]
        self.layers[layer] = (k, v)
        return k, v

    def select(self, index: torch.Tensor) -> None:
        """Keep the batch rows ``index`` (e.g. the surviving beams of a search)."""
        self.layers = [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.layers]


# --------------------------------------------------------------------------- modules
class MultiHeadAttention(nn.Module):
    """H heads of :func:`scaled_dot_product_attention` with learned Q, K, V and output projections."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg, C = cfg, cfg.d_model
        self.qkv = nn.Linear(C, 3 * C, bias=cfg.bias)          # the three projections as one matmul
        self.out = nn.Linear(C, C, bias=cfg.bias)
        if cfg.positions == "relative":
            self.pos = nn.Linear(C, C, bias=False)               # W_R
            self.u = nn.Parameter(torch.zeros(cfg.n_heads, 1, cfg.head_dim))   # content bias
            self.v = nn.Parameter(torch.zeros(cfg.n_heads, 1, cfg.head_dim))   # position bias

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, *, mask: torch.Tensor | None = None,
                causal: bool = False, cache: KVCache | None = None, layer: int = 0,
                rel: torch.Tensor | None = None, need_weights: bool = False):
        """``x [B, T, C]`` attends to ``context [B, M, C]`` (memory, optional), the cache's keys and itself.

        ``rel [T + S - 1, C]``: sinusoids of the distances ``S - 1 .. 1 - T`` (relative positions).
        Returns ``(y [B, T, C], weights [B, H, T, S] or None)``.
        """
        H = self.cfg.n_heads
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = split_heads(q, H), split_heads(k, H), split_heads(v, H)                # [B, H, T, d]
        if context is not None:
            km, vm = self.qkv(context)[..., self.cfg.d_model:].chunk(2, dim=-1)
            k, v = torch.cat((split_heads(km, H), k), dim=-2), torch.cat((split_heads(vm, H), v), dim=-2)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        bias = None
        if rel is not None:
            T, S = q.shape[-2], k.shape[-2]
            r = split_heads(self.pos(rel[-(T + S - 1):]).unsqueeze(0), H)                # [1, H, T+S-1, d]
            scores = (q + self.v) @ r.transpose(-2, -1)                                  # [B, H, T, T+S-1]
            # query i, key j sit at distance S - T + i - j, stored at column (S - 1) - (S - T + i - j) + (T - 1)
            i = torch.arange(T, device=x.device).unsqueeze(1)
            j = torch.arange(S, device=x.device)
            column = (T - 1 - i + j).expand(q.shape[0], H, T, S)
            bias = scores.gather(-1, column) / math.sqrt(self.cfg.head_dim)
            q = q + self.u
        y, weights = scaled_dot_product_attention(q, k, v, mask, bias=bias, causal=causal,
                                                  dropout=self.cfg.dropout if self.training else 0.0,
                                                  need_weights=need_weights)
        return self.out(merge_heads(y)), weights


class Block(nn.Module):
    """Pre-norm block: ``x + Attention(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.hidden, bias=cfg.bias), nn.GELU(),
                                 nn.Linear(cfg.hidden, cfg.d_model, bias=cfg.bias))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, **attention):
        context = self.ln1(memory) if memory is not None else None
        a, weights = self.attn(self.ln1(x), context, **attention)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x))), weights


@dataclass
class TransformerOutput:
    """What :class:`Transformer` returns: ``hidden [B, T, C]``; ``weights``: per layer ``[B, H, T, S]``
    (with ``need_weights``); ``memory``: per layer ``[B, M, C]`` for the next segment (with memory)."""

    hidden: torch.Tensor
    weights: list[torch.Tensor] | None = None
    memory: list[torch.Tensor] | None = None


class Transformer(nn.Module):
    """The stack: L pre-norm blocks and a final LayerNorm, over token vectors ``x [B, T, C]``.

    Positions: with ``positions="relative"`` the stack adds them (Transformer-XL); with
    ``"learned"`` the model embedding the tokens adds them (see :class:`GPT`, the ViT).
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, *, causal: bool = False, mask: torch.Tensor | None = None,
                padding: torch.Tensor | None = None, memory: list[torch.Tensor] | None = None,
                cache: KVCache | None = None, need_weights: bool = False) -> TransformerOutput:
        """Run the blocks over ``x [B, T, C]``.

        Args:
          causal: each token sees only earlier ones (GPT, world models); False: bidirectional.
          mask: bool ``[T, S]`` or ``[B, T, S]``, ``True`` = may attend (a block mask), combined
            with ``causal`` and ``padding``.
          padding: bool ``[B, S]`` (or ``[B, T]``: the new tokens only), ``True`` = a real token.
          memory: Transformer-XL memory from the previous segment's output (``None`` at the start);
            needs ``positions="relative"`` and ``cfg.memory > 0``.
          cache: a :class:`KVCache`, extended in place with the new tokens' keys and values.
          need_weights: return every layer's attention weights (explicit softmax path).
        """
        if x.dim() != 3 or x.shape[-1] != self.cfg.d_model:
            raise ValueError(f"x must be [B, T, {self.cfg.d_model}]; got {tuple(x.shape)}")
        if memory is not None and cache is not None:
            raise ValueError("pass memory or cache, not both (to decode after a memory, feed the memory's segment "
                             "through the cache first)")
        if memory is not None and (self.cfg.memory == 0 or len(memory) != len(self.blocks)):
            raise ValueError(f"memory needs TransformerConfig.memory > 0 and one tensor per layer ({len(self.blocks)}); "
                             f"memory = {self.cfg.memory}, got {len(memory)} tensors")
        B, T, _ = x.shape
        M = memory[0].shape[1] if memory is not None else (cache.size if cache is not None else 0)
        S = M + T
        if cache is not None and cache.max_size is not None:
            S = min(S, cache.max_size)
        keep = S - T                   # earlier keys each query can see (cache size after appending)
        full = self._mask(B, T, S, keep, causal, mask, padding, x.device)
        rel = None
        if self.cfg.positions == "relative":
            rel = sinusoidal_embedding(torch.arange(S - 1, -T, -1, device=x.device), self.cfg.d_model).to(x.dtype)
        weights, new_memory = [] if need_weights else None, [] if self.cfg.memory else None
        attention = dict(mask=full, causal=causal and full is None and T > 1, cache=cache, rel=rel,
                         need_weights=need_weights)
        for i, block in enumerate(self.blocks):
            mem = memory[i] if memory is not None else None
            if new_memory is not None:
                new_memory.append((x if mem is None else torch.cat((mem, x), 1))[:, -self.cfg.memory:].detach())
            x, w = block(x, mem, layer=i, **attention)
            if need_weights:
                weights.append(w)
        if cache is not None:
            cache.length += T
        return TransformerOutput(self.ln(x), weights, new_memory)

    @staticmethod
    def _mask(B, T, S, keep, causal, mask, padding, device) -> torch.Tensor | None:
        """One bool mask ``[T, S]`` or ``[B, 1, T, S]`` from the causal flag, a block mask and padding, or None
        when plain causal attention over S == T keys (the fused kernel's own flag) is all there is."""
        out = None
        if mask is not None:
            if mask.dtype != torch.bool or mask.shape[-2:] != (T, S) or mask.dim() not in (2, 3):
                raise ValueError(f"mask must be bool [T, S] or [B, T, S] with T={T}, S={S}; got {mask.dtype} "
                                 f"{tuple(mask.shape)}")
            out = mask if mask.dim() == 2 else mask.unsqueeze(1)
        if padding is not None:
            if padding.dtype != torch.bool or padding.dim() != 2 or padding.shape[0] != B \
                    or padding.shape[1] not in (T, S):
                raise ValueError(f"padding must be bool [B, S] or [B, T] with B={B}, T={T}, S={S}; got "
                                 f"{padding.dtype} {tuple(padding.shape)}")
            if padding.shape[1] != S:                               # earlier keys are real tokens
                padding = F.pad(padding, (S - T, 0), value=True)
            pad = padding[:, None, None, :]
            out = pad if out is None else out & pad
        if causal and (out is not None or (keep > 0 and T > 1)):      # one new token sees every key anyway
            cm = causal_mask(T, S, device)
            out = cm if out is None else out & cm
        return out


class GPT(nn.Module):
    """A decoder-only language model: token (+ learned position) embeddings, a causal :class:`Transformer`,
    and a linear head over the vocabulary tied to the token embedding.

    ``gpt(idx [B, T]) -> logits [B, T, V]``, with ``logits[:, t]`` the model's
    :math:`\\log p(x_{t+1} | x_{1..t})` up to a constant. ``causal=False`` makes it a
    bidirectional (BERT-style) encoder with the same weights.
    """

    def __init__(self, cfg: TransformerConfig, vocab_size: int):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1; got {vocab_size}")
        self.cfg, self.vocab_size = cfg, vocab_size
        self.tokens = nn.Embedding(vocab_size, cfg.d_model)
        self.positions = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.positions == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.transformer = Transformer(cfg)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.head.weight = self.tokens.weight                    # weight tying, as in GPT-2
        self.apply(_init_weights)

    def forward(self, idx: torch.Tensor, *, causal: bool = True, mask: torch.Tensor | None = None,
                padding: torch.Tensor | None = None, cache: KVCache | None = None, need_weights: bool = False):
        """``idx [B, T]`` long -> ``logits [B, T, V]``; with ``need_weights``, ``(logits, weights)``
        (per layer ``[B, H, T, S]``). With a ``cache`` the tokens continue the cached ones."""
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be long [B, T]; got {idx.dtype} {tuple(idx.shape)}")
        start = cache.length if cache is not None else 0
        x = self.tokens(idx)
        if self.positions is not None:
            if start + idx.shape[1] > self.cfg.max_len:
                raise ValueError(f"sequence of {start + idx.shape[1]} tokens is longer than max_len = "
                                 f"{self.cfg.max_len} (the learned position table)")
            x = x + self.positions(torch.arange(start, start + idx.shape[1], device=idx.device))
        out = self.transformer(self.drop(x), causal=causal, mask=mask, padding=padding, cache=cache,
                               need_weights=need_weights)
        logits = self.head(out.hidden)
        return (logits, out.weights) if need_weights else logits

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.n_layers, max_size=self.cfg.memory or None)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True, stop_token: int | None = None) -> torch.Tensor:
        """``idx [B, T]`` continued by ``new_tokens`` sampled tokens -> ``[B, T + new_tokens]``.

        ``temperature=0`` is greedy decoding. With ``use_cache`` the prompt is read once and
        each new token costs one token's forward pass; without it the whole context is
        recomputed every step (same tokens, slower: the benchmark compares the two).

        ``stop_token``: a row that has produced it keeps producing it (it is padding from then on),
        and decoding ends as soon as every row has, so the result may be shorter than
        ``T + new_tokens`` (``[B, T + n]``, ``n <= new_tokens``). None (the default) always decodes
        ``new_tokens``.
        """
        was_training = self.training
        self.eval()
        cache = self.new_cache() if use_cache else None
        out, step_input = idx, idx
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        for _ in range(new_tokens):
            if stop_token is not None and bool(done.all()):
                break
            context = step_input if use_cache else out
            if not use_cache and self.positions is not None:
                context = context[:, -self.cfg.max_len:]
            logits = self(context, cache=cache)[:, -1]
            nxt = sample_next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            if stop_token is not None:
                nxt = nxt.masked_fill(done, stop_token)          # finished rows only pad
                done |= nxt == stop_token
            out = torch.cat((out, nxt.unsqueeze(1)), dim=1)
            step_input = nxt.unsqueeze(1)
        self.train(was_training)
        return out


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


def sample_next_token(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of ``logits [B, V]``: greedy (``temperature=0``), or a sample of
    softmax(logits / temperature) restricted to the ``top_k`` most probable tokens and/or the
    smallest set whose probability reaches ``top_p`` (nucleus sampling). Returns ``[B]`` long."""
    if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError(f"need temperature >= 0, top_k >= 1, 0 < top_p <= 1; got {temperature}, {top_k}, {top_p}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p          # tokens after the nucleus is already full
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
