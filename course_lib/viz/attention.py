r"""The attention-map explorer: where each token looks, in every layer and head of a transformer.

The lecture's picture of a transformer reading a sequence: tokens along the horizontal axis,
layers up the vertical axis (row 0 = the inputs, row ``l`` = the output of layer ``l``), and
a link from token ``i`` of row ``l + 1`` down to token ``j`` of row ``l`` as strong as the
attention weight :math:`\alpha_{ij}` of layer ``l + 1``. This module draws it from the
attention weights of **one** sequence:

* ``weights``: ``[L, H, T, S]`` (layers, heads, queries, keys), a tensor or array, or the list of
  ``L`` tensors ``[H, T, S]`` a model returns per layer (batch index already taken). Each row
  sums to 1 over the ``S`` keys (a softmax); masked entries are 0; a row of zeros (a query with
  no allowed key, as :func:`course_lib.nets.transformer.scaled_dot_product_attention` returns it)
  is accepted and attends nowhere. Usually ``S == T``; when ``S > T`` the first ``S - T`` keys
  are memory (Transformer-XL) or cached tokens, labelled by ``key_tokens``.
* ``tokens``: ``T`` labels of the queries; ``key_tokens``: ``S`` labels of the keys (default:
  the tokens, with ``"m0", "m1", ..`` for the memory); ``groups``: an optional group per token
  (``"state"``, ``"action"``, ``"reward"`` in a world model) that colours it.

Pure functions, tested without a browser:

* :func:`check_attention_weights`: the one-line errors on bad input, and the ``[L, H, T, S]`` tensor.
* :func:`attention_rollout` (Abnar & Zuidema 2020) and :func:`attention_flow` (where one token's
  top-layer output reads from, through attention alone).
* :func:`tokens_layers_svg` (the picture), :func:`head_layer_grid` (a heads x layers grid of
  ``[T, S]`` heat-maps), :func:`cls_attention_maps`, :func:`cls_rollout_maps` and
  :func:`vit_attention_html` (a ViT's [CLS] attention and rollout laid over the image).

and two front-ends: :func:`attention_page` (the static explorable page of the book:
``data-explorer="attention"``, a slider over the head, ``"mean"`` first, and every drawn token
clickable) and :func:`attention_explorer` (that page together with live ipywidgets controls).

Long sequences: the tokens x layers picture draws a window of at most :data:`MAX_TOKENS` (48)
key positions (``window=(start, stop)``; default the first 48, or with a memory the last 48, so
that the current tokens show); links under :data:`MIN_WEIGHT` (0.02) are left out. The heat-maps
and the token panels always cover the whole sequence (a map longer than 96 pixels is averaged over
blocks). The page stores every distinct piece once: for L = H = 4 and T = 32 (random causal
weights) it is about 0.5 MB, for a full window of 48 tokens 0.6 to 0.95 MB; trained attention, which
is peakier, draws fewer links. Raise ``min_weight`` or narrow ``window`` to make it smaller.

Example (a notebook cell)::

    logits, weights = gpt(idx, need_weights=True)          # weights: L tensors [B, H, T, T]
    attention_explorer([w[0] for w in weights], [itos[i] for i in idx[0].tolist()])
"""
from __future__ import annotations

import base64
import html as _html
import io
import math
from typing import Sequence

import numpy as np
import torch

from .boards import MUTED, TEXT
from .live import LiveAndStatic
from .page import Frame, Slider, explorable_page

__all__ = ["MAX_TOKENS", "MIN_WEIGHT", "AttentionExplorerWidget", "attention_explorer", "attention_flow",
           "attention_page", "attention_rollout", "check_attention_weights", "cls_attention_maps",
           "cls_rollout_maps", "head_layer_grid", "tokens_layers_svg", "vit_attention_html"]

MAX_TOKENS = 48          # key positions drawn in the tokens x layers picture (the page's size grows with it)
MIN_WEIGHT = 0.02        # links weaker than this are not drawn (most of a softmax's entries are tiny)

# Drawing constants (pixels) and colours.
DX = 22                  # distance between neighbouring tokens
LEFT = 54                # room for the row names ("layer 3")
LABELS = 62              # room for the slanted token labels, above and below the rows
PAD = 10
LINK = "#3c4043"         # every link of the head (or of the mean)
OWN = "#1a73e8"          # the selected token's own links, in every layer
FLOW = "#e8710a"         # the chain of what the selected token reads (attention flow)
MEMORY = "#9aa0a6"       # memory / cached keys
GROUP_COLOURS = ("#1a73e8", "#188038", "#e8710a", "#9334e6", "#d93025", "#12b5cb", "#b06000", "#5f6368")
HEAT = np.array([23, 78, 166], dtype=np.float64)     # the darkest colour of a heat-map cell (weight 1)
# Heat-map colours: index v in 0..255 (v = 255 sqrt(weight)) from white to HEAT.
_HEAT_PALETTE = np.rint(255 + np.outer(np.arange(256) / 255, HEAT - 255)).astype(np.uint8).reshape(-1).tolist()
MAX_MAP_PIXELS = 96      # a heat-map longer than this is averaged over blocks
OVERLAY = np.array([255, 80, 0], dtype=np.float64)   # the colour laid over a ViT's image
_BUCKETS = 10            # link strengths are rounded up to tenths: one <path> per strength keeps the SVG small
_DISC_SIZES = (8, 12, 16, 20)   # diameters of the discs that show the flow's mass
_FONT = "font-family='sans-serif'"
_CSS = (".attx [data-click]:hover rect.hit{fill-opacity:.06}"
        ".attx [data-selected] rect.hit{fill-opacity:.12}.attx [data-selected] text{fill:#1a73e8;font-weight:bold}"
        ".attx table.attk td,.attx table.attk th{padding:1px 5px;text-align:left;vertical-align:top}"
        ".attx .attn{color:#5f6368}.attx table.attg td{padding:1px}.attx table.attg th{font-weight:normal;"
        "padding:1px 4px}.attx span.attc{cursor:pointer;padding:0 2px;border-radius:3px}"
        ".attx span.attc[data-selected]{background:#e8f0fe;font-weight:bold}")


# ------------------------------------------------------------------------------ the input
def _tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (str, bytes)) or x is None:
        raise ValueError(f"{name} must be a tensor or array of attention weights; got {type(x).__name__}")
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{name} must be a tensor or array of attention weights; got {type(x).__name__} "
                         f"({error})") from None


def check_attention_weights(weights) -> torch.Tensor:
    """The attention weights of one sequence as one ``[L, H, T, S]`` float tensor, checked.

    Args:
      weights: ``[L, H, T, S]`` (tensor or array), or a list of ``L`` tensors ``[H, T, S]`` (what a
        model returns per layer, batch index taken: ``[w[b] for w in weights]``).

    Returns:
      ``[L, H, T, S]``, float32 (float64 stays float64), on the input's device.

    Raises one-line ``ValueError`` s for: a batch (pick one sequence first), another rank, an
    empty dimension, ``S < T``, values that are not finite, negative, or rows that do not sum
    to 1 over the keys (within 1e-3; 1e-2 for half precision). A row of zeros is accepted: a
    query with no allowed key attends nowhere.
    """
    if isinstance(weights, (list, tuple)):
        if not weights:
            raise ValueError("weights is an empty list; expected one [H, T, S] tensor per layer")
        layers = [_tensor(w, f"weights[{i}]") for i, w in enumerate(weights)]
        for i, w in enumerate(layers):
            if w.dim() == 4:
                raise ValueError(f"weights[{i}] is [B, H, T, S] = {tuple(w.shape)}, a batch; the explorer shows one "
                                 f"sequence: pick it first, [w[b] for w in weights]")
            if w.dim() != 3:
                raise ValueError(f"each layer's weights must be [H, T, S]; weights[{i}] has shape {tuple(w.shape)}")
            if w.shape != layers[0].shape:
                raise ValueError(f"every layer must have the same [H, T, S]; weights[0] is {tuple(layers[0].shape)}, "
                                 f"weights[{i}] is {tuple(w.shape)}")
        w = torch.stack(layers)
    else:
        w = _tensor(weights, "weights")
        if w.dim() == 5:
            raise ValueError(f"weights is [B, L, H, T, S] = {tuple(w.shape)}, a batch; the explorer shows one "
                             f"sequence: pick it first (weights[b])")
        if w.dim() != 4:
            hint = " (one layer [H, T, S]? pass [weights])" if w.dim() == 3 else ""
            raise ValueError(f"weights must be [L, H, T, S] or a list of L tensors [H, T, S]; got shape "
                             f"{tuple(w.shape)}{hint}")
    L, H, T, S = w.shape
    if min(L, H, T, S) == 0:
        raise ValueError(f"weights [L, H, T, S] has an empty dimension: {tuple(w.shape)}")
    if S < T:
        raise ValueError(f"weights [L, H, T, S] needs S >= T (the keys are S - T memory tokens, then the T tokens); "
                         f"got T = {T}, S = {S}")
    half = w.dtype in (torch.float16, torch.bfloat16)
    if w.dtype != torch.float64:
        w = w.float()
    if not bool(torch.isfinite(w).all()):
        at = torch.nonzero(~torch.isfinite(w))[0].tolist()
        raise ValueError(f"attention weights must be finite; layer {at[0]}, head {at[1]}, query {at[2]}, key {at[3]} "
                         f"is {w[tuple(at)].item()} (a fully masked row gives NaN after a softmax: zero it)")
    if bool((w < -1e-6).any()):
        at = torch.nonzero(w < -1e-6)[0].tolist()
        raise ValueError(f"attention weights must be >= 0 (softmax outputs); layer {at[0]}, head {at[1]}, "
                         f"query {at[2]}, key {at[3]} is {w[tuple(at)].item():.4g}")
    sums = w.sum(-1)
    tolerance = 1e-2 if half else 1e-3
    bad = ((sums - 1).abs() > tolerance) & (sums.abs() > tolerance)
    if bool(bad.any()):
        at = torch.nonzero(bad)[0].tolist()
        raise ValueError(f"each row of attention weights must sum to 1 over the keys (a softmax over the last axis); "
                         f"layer {at[0]}, head {at[1]}, query {at[2]} sums to {sums[tuple(at)].item():.4g} "
                         f"(logits instead of weights?)")
    return w


def _head_index(head, H: int):
    """None for the mean over heads, else the head's index (a clear error otherwise)."""
    if head is None or head == "mean":
        return None
    if isinstance(head, (int, np.integer)) and not isinstance(head, bool) and 0 <= head < H:
        return int(head)
    raise ValueError(f"head must be 'mean' or an integer in [0, {H - 1}]; got {head!r}")


def _labels(tokens, key_tokens, groups, T: int, S: int, patch_grid=None):
    """(query labels [T], key labels [S], group per key position [S] or None), checked against T and S."""
    if tokens is None:
        if patch_grid is not None:
            gh, gw = patch_grid
            tokens = ["[CLS]"] + [f"{r},{c}" for r in range(gh) for c in range(gw)]
        else:
            tokens = [str(i) for i in range(T)]
    if isinstance(tokens, str) or not hasattr(tokens, "__len__"):
        raise ValueError(f"tokens must be a list of T = {T} strings; got {type(tokens).__name__}")
    tokens = [str(t) for t in tokens]
    if len(tokens) != T:
        raise ValueError(f"tokens has {len(tokens)} labels but the weights have T = {T} queries ([L, H, T, S])")
    if key_tokens is None:
        key_tokens = [f"m{i}" for i in range(S - T)] + tokens
    if isinstance(key_tokens, str) or not hasattr(key_tokens, "__len__"):
        raise ValueError(f"key_tokens must be a list of S = {S} strings; got {type(key_tokens).__name__}")
    key_tokens = [str(t) for t in key_tokens]
    if len(key_tokens) != S:
        raise ValueError(f"key_tokens has {len(key_tokens)} labels but the weights have S = {S} keys ([L, H, T, S])")
    if groups is not None:
        if isinstance(groups, str) or not hasattr(groups, "__len__"):
            raise ValueError(f"groups must be a list of T = {T} (or S = {S}) names; got {type(groups).__name__}")
        groups = [None if g is None else str(g) for g in groups]
        if len(groups) == T:
            groups = [None] * (S - T) + groups
        elif len(groups) != S:
            raise ValueError(f"groups has {len(groups)} entries; expected one per token (T = {T}) or per key (S = {S})")
    return tokens, key_tokens, groups


def _window(window, T: int, S: int) -> tuple[int, int]:
    """The key positions ``[start, stop)`` drawn, at most MAX_TOKENS of them."""
    if window is None:
        if S == T:
            return 0, min(S, MAX_TOKENS)
        return max(0, S - MAX_TOKENS), S
    try:
        start, stop = (int(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (start, stop), key positions in [0, {S}]; got {window!r}") from None
    if not 0 <= start < stop <= S or stop - start > MAX_TOKENS:
        raise ValueError(f"window must be (start, stop) with 0 <= start < stop <= S = {S} and at most {MAX_TOKENS} "
                         f"positions; got {window!r}")
    if stop <= S - T:
        raise ValueError(f"window {window!r} holds only memory keys (the tokens are positions {S - T} .. {S - 1})")
    return start, stop


# ------------------------------------------------------------------------ pure functions
def attention_rollout(weights, residual: bool = True):
    r"""Attention rollout (Abnar & Zuidema 2020): how much each input token feeds each layer's output.

    With :math:`\bar A_l` the attention of layer ``l`` averaged over heads,

    .. math::
        \hat A_l = \mathrm{rownorm}\big(\tfrac12 \bar A_l + \tfrac12 I\big), \qquad
        \tilde A_l = \hat A_l \, \hat A_{l-1} \cdots \hat A_1,

    the identity standing for the residual connection (``residual=False`` leaves it out:
    :math:`\hat A_l = \bar A_l`). Row ``i`` of :math:`\tilde A_l` is a distribution over the inputs.

    With a memory (``S > T``), the ``S - T`` memory keys are inputs that every layer reads but no
    layer changes (rows of the identity), so the result is over all ``S`` keys.

    Args:
      weights: ``[L, H, T, S]`` or a list of ``L`` tensors ``[H, T, S]`` (see :func:`check_attention_weights`).
      residual: add the identity for the residual stream (the paper's rollout).

    Returns:
      ``[L, T, S]``: entry ``[l, i, j]`` is the share of input ``j`` in token ``i`` after layer
      ``l + 1``; a NumPy array for a NumPy input, else a tensor on the input's device.
    """
    w = check_attention_weights(weights)
    L, H, T, S = w.shape
    memory = S - T
    eye = torch.eye(S, dtype=torch.float64, device=w.device)
    steps = eye.repeat(L, 1, 1)                                     # [L, S, S]: memory rows stay identity
    steps[:, memory:, :] = w.double().mean(1)
    if residual:
        steps = 0.5 * steps + 0.5 * eye
    sums = steps.sum(-1, keepdim=True)
    steps = torch.where(sums > 0, steps / sums.clamp_min(1e-300), steps)   # a fully masked row stays zero
    out, total = [], eye
    for layer in range(L):
        total = steps[layer] @ total
        out.append(total[memory:])
    rollout = torch.stack(out).to(w.dtype)
    return rollout.cpu().numpy() if isinstance(weights, np.ndarray) else rollout


def _as_numpy(weights) -> np.ndarray:
    return check_attention_weights(weights).cpu().double().numpy()


def _mean_or_head(w: np.ndarray, head) -> np.ndarray:
    """``[L, T, S]``: one head's weights, or the mean over heads (head None)."""
    return w.mean(1) if head is None else w[:, head]


def _flow(a: np.ndarray, token: int) -> np.ndarray:
    """:func:`attention_flow` on ``a [L, T, S]`` (one head or the mean)."""
    L, T, S = a.shape
    memory = S - T
    mass = np.zeros((L + 1, S))
    mass[L, memory + token] = 1.0
    for layer in range(L, 0, -1):
        mass[layer - 1] = mass[layer, memory:] @ a[layer - 1]
    return mass


def attention_flow(weights, token: int, head="mean") -> np.ndarray:
    r"""Where token ``token`` of the top layer reads from, row by row, through attention alone.

    The chain of the tokens x layers picture: start with all the mass on the token at the top
    (row ``L``) and pass it down each layer's attention,
    :math:`m_{l-1}[j] = \sum_k m_l[k]\, \alpha^{(l)}_{kj}` over the current tokens ``k`` (mass that
    reaches a memory key stops there). Without memory, ``m_0`` equals row ``token`` of
    :func:`attention_rollout` with ``residual=False`` (for ``head="mean"``).

    Args:
      weights: ``[L, H, T, S]`` or a list of ``L`` tensors ``[H, T, S]``.
      token: the query, in ``[0, T)``.
      head: ``"mean"`` (the mean over heads) or a head's index.

    Returns:
      ``[L + 1, S]`` NumPy: ``[l, p]`` is the mass at key position ``p`` of row ``l`` (row 0 = inputs).
    """
    w = _as_numpy(weights)
    L, H, T, S = w.shape
    if not isinstance(token, (int, np.integer)) or isinstance(token, bool) or not 0 <= token < T:
        raise ValueError(f"token must be an integer in [0, {T - 1}]; got {token!r}")
    return _flow(_mean_or_head(w, _head_index(head, H)), int(token))


def _check_grid(patch_grid, T: int, S: int) -> tuple[int, int]:
    try:
        gh, gw = (int(v) for v in patch_grid)
        ok = gh >= 1 and gw >= 1 and (gh, gw) == tuple(patch_grid)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"patch_grid must be (gh, gw), two integers >= 1 (patches per column and per row); "
                         f"got {patch_grid!r}")
    if T != 1 + gh * gw or S != T:
        raise ValueError(f"patch_grid {(gh, gw)} needs T = S = 1 + {gh} * {gw} = {1 + gh * gw} tokens ([CLS] first, "
                         f"then the patches row by row); the weights have T = {T}, S = {S}")
    return gh, gw


def cls_attention_maps(weights, patch_grid: tuple[int, int], head="mean") -> np.ndarray:
    """A ViT's attention of [CLS] (token 0) to the patches, per layer, on the patch grid.

    Args:
      weights: ``[L, H, 1 + gh*gw, 1 + gh*gw]`` (or a list of layers), [CLS] first, then the
        patches row by row (the order of a conv patch embedding flattened).
      patch_grid: ``(gh, gw)``, patches per column and per row.
      head: ``"mean"`` or a head's index.

    Returns:
      ``[L, gh, gw]`` NumPy (the share [CLS] leaves to itself is not on the grid).
    """
    w = _as_numpy(weights)
    L, H, T, S = w.shape
    gh, gw = _check_grid(patch_grid, T, S)
    return _mean_or_head(w, _head_index(head, H))[:, 0, 1:].reshape(L, gh, gw)


def cls_rollout_maps(weights, patch_grid: tuple[int, int], residual: bool = True) -> np.ndarray:
    """:func:`attention_rollout` from [CLS] to the patches after each layer: ``[L, gh, gw]`` NumPy."""
    w = _as_numpy(weights)
    L, H, T, S = w.shape
    gh, gw = _check_grid(patch_grid, T, S)
    return attention_rollout(w, residual)[:, 0, 1:].reshape(L, gh, gw)


# ---------------------------------------------------------------------------- drawing
def _esc(text) -> str:
    return _html.escape(str(text), quote=True)


def _shown(token: str, limit: int = 8) -> str:
    """A token as a label: whitespace made visible, long ones cut."""
    text = token.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u21e5") or "\u2205"
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _png_uri(pixels: np.ndarray, palette: list[int] | None = None) -> str:
    """A uint8 ``[H, W]``, ``[H, W, 3]`` or ``[H, W, 4]`` array as a data: URI of a PNG; with ``palette``
    (768 numbers, RGB of each index) the ``[H, W]`` values are indices into it."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels))
    if palette is not None:
        image = image.convert("P")
        image.putpalette(palette)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _strength(w: float) -> int:
    """A link's strength, rounded up to 1 .. _BUCKETS (tenths)."""
    return max(1, min(_BUCKETS, math.ceil(w * _BUCKETS - 1e-9)))


# The look of links and discs, by class: a page holds thousands of paths, so each carries a class
# name, not its style. Rules under "svg.attx-svg" so that they style nothing else on the page.
_SVG_STYLE = ("<style>svg.attx-svg path{fill:none;vector-effect:non-scaling-stroke}"
              "svg.attx-svg path.d{stroke-linecap:round;stroke-opacity:.35}"
              + "".join(f"svg.attx-svg .s{k}{{stroke-opacity:{0.08 + 0.92 * k / _BUCKETS:.2f};"
                        f"stroke-width:{0.5 + 3 * k / _BUCKETS:.2f}px}}" for k in range(1, _BUCKETS + 1))
              # a selected token's links (group "h") keep a floor of opacity: the chain's weak links still show
              + "".join(f"svg.attx-svg g.h .s{k}{{stroke-opacity:{0.3 + 0.7 * k / _BUCKETS:.2f}}}"
                        for k in range(1, _BUCKETS + 1))
              + "".join(f"svg.attx-svg .r{k}{{stroke-width:{k}px}}" for k in _DISC_SIZES)
              + "</style>")


def _links(segments: dict[int, list[str]], colour: str, css_class: str = "") -> str:
    """One ``<path>`` per strength (class ``s<k>``): opacity and width grow with the attention weight.

    The segments are in grid units (see ``_Attention.svg_pieces``); the stroke is not scaled with them.
    """
    if not segments:
        return ""
    return (f"<g stroke='{colour}'" + (f" class='{css_class}'" if css_class else "") + ">"
            + "".join(f"<path class='s{k}' d='{''.join(segments[k])}'/>" for k in sorted(segments)) + "</g>")


def _discs(dots: dict[int, list[str]], colour: str) -> str:
    """Discs drawn as zero-length round-capped strokes (a few characters each), one path per size."""
    if not dots:
        return ""
    return (f"<g stroke='{colour}'>" + "".join(f"<path class='d r{k}' d='{''.join(dots[k])}'/>"
                                               for k in sorted(dots)) + "</g>")


def _disc_size(mass: float) -> int:
    """The diameter (pixels) of a disc for ``mass`` in (0, 1]: area grows with the mass, in a few sizes."""
    return min(_DISC_SIZES, key=lambda d: abs(d - (6 + 14 * math.sqrt(mass))))


class _Attention:
    """One sequence's attention, checked once, and every drawing of it (shared by the page and the widget)."""

    def __init__(self, weights, tokens=None, *, key_tokens=None, groups=None, image=None, patch_grid=None,
                 window=None, min_weight: float = MIN_WEIGHT):
        self.w = _as_numpy(weights)                                        # [L, H, T, S] float64
        self.L, self.H, self.T, self.S = self.w.shape
        self.memory = self.S - self.T
        if patch_grid is not None:
            self.grid = _check_grid(patch_grid, self.T, self.S)
        elif image is not None:
            raise ValueError("image needs patch_grid=(gh, gw): the ViT's patches per column and per row")
        else:
            self.grid = None
        self.image = None if image is None else _image_pixels(image)
        self.tokens, self.key_tokens, self.groups = _labels(tokens, key_tokens, groups, self.T, self.S, self.grid)
        self.start, self.stop = _window(window, self.T, self.S)
        if not isinstance(min_weight, (int, float)) or not 0 <= min_weight < 1:
            raise ValueError(f"min_weight must be in [0, 1); got {min_weight!r}")
        self.min_weight = float(min_weight)
        names = list(dict.fromkeys(g for g in (self.groups or []) if g is not None))
        self.group_colours = {g: GROUP_COLOURS[i % len(GROUP_COLOURS)] for i, g in enumerate(names)}
        self.rollout = attention_rollout(self.w)                           # [L, T, S]
        self._cache: dict = {}

    # -- small helpers
    def heads(self) -> list:
        """The head choices, in slider order: "mean", then 0 .. H-1."""
        return ["mean"] + list(range(self.H))

    def a(self, head) -> np.ndarray:
        return _mean_or_head(self.w, _head_index(head, self.H))

    def drawn_tokens(self) -> list[int]:
        """The query tokens whose positions lie in the window (the clickable ones)."""
        return [p - self.memory for p in range(max(self.start, self.memory), self.stop)]

    def x(self, position: int) -> int:
        return LEFT + (position - self.start) * DX + DX // 2

    def y(self, row: int) -> int:
        return LABELS + PAD + (self.L - row) * self.dy

    @property
    def dy(self) -> int:
        return max(34, min(64, 320 // self.L))

    def colour(self, position: int) -> str:
        group = self.groups[position] if self.groups else None
        if group is not None:
            return self.group_colours[group]
        return MEMORY if position < self.memory else TEXT

    def label(self, position: int) -> str:
        return self.key_tokens[position] if position < self.memory else self.tokens[position - self.memory]

    # -- the tokens x layers picture, in pieces (the page stores each distinct piece once)
    def svg_pieces(self, head, token: int | None) -> list[str]:
        """The picture as pieces: the links of ``head`` (faded when a token is selected), the selected
        token's links, then the frame of dots and labels.

        Links are drawn in grid units, inside one group scaled to pixels: x = key position - window
        start, y = row (0 = inputs), i.e. ``M3 2L1 1`` runs from position 3 of row 2 down to position
        1 of row 1; that halves the size of the page's many link paths.
        """
        key = ("svg", head, token)
        if key not in self._cache:
            width = LEFT + (self.stop - self.start) * DX + PAD
            height = 2 * LABELS + 2 * PAD + self.L * self.dy
            pieces = [f"<svg xmlns='http://www.w3.org/2000/svg' class='attx-svg' width='{width}' height='{height}' "
                      f"viewBox='0 0 {width} {height}' {_FONT} font-size='11'>{_SVG_STYLE}",
                      f"<g transform='translate({self.x(self.start)} {self.y(0)}) scale({DX} {-self.dy})'>"]
            if token is None:
                pieces.append(self._all_links(head))
            else:
                pieces += ["<g opacity='0.15'>", self._all_links(head), "</g>", self._selected_links(head, token)]
            top = self.memory + token if token is not None else None
            pieces += ["</g>", self._frame()]
            if token is not None:
                pieces.append(f"<circle cx='{self.x(top)}' cy='{self.y(self.L)}' r='8' fill='none' stroke='{OWN}' "
                              f"stroke-width='2'/>")
            pieces.append("</svg>")
            self._cache[key] = pieces
        return self._cache[key]

    def _segment(self, p: int, layer: int, j: int) -> str:
        """The link from query position ``p`` in row ``layer + 1`` to key position ``j`` in row ``layer``."""
        return f"M{p - self.start} {layer + 1}L{j - self.start} {layer}"

    def _all_links(self, head) -> str:
        key = ("links", head)
        if key not in self._cache:
            a, segments = self.a(head), {}
            for layer in range(self.L):
                for p in range(max(self.start, self.memory), self.stop):
                    row = a[layer, p - self.memory]
                    for j in range(self.start, self.stop):
                        if row[j] >= self.min_weight and row[j] > 0:
                            segments.setdefault(_strength(row[j]), []).append(self._segment(p, layer, j))
            self._cache[key] = _links(segments, LINK)
        return self._cache[key]

    def _selected_links(self, head, token: int) -> str:
        """The token's own links in every layer (blue) over the chain of what it reads (orange), and the
        chain's mass at every position (orange discs, area ∝ mass)."""
        a = self.a(head)
        mass = _flow(a, token)
        flow, own, dots = {}, {}, {}
        inside = range(self.start, self.stop)
        for layer in range(self.L):
            for p in range(max(self.start, self.memory), self.stop):
                reaching = mass[layer + 1, p]
                if reaching <= 0:
                    continue
                for j in inside:
                    w = reaching * a[layer, p - self.memory, j]
                    if w >= self.min_weight and w > 0:
                        flow.setdefault(_strength(w), []).append(self._segment(p, layer, j))
            row = a[layer, token]
            for j in inside:
                if row[j] >= self.min_weight and row[j] > 0:
                    own.setdefault(_strength(row[j]), []).append(self._segment(self.memory + token, layer, j))
            for j in inside:
                if mass[layer, j] >= self.min_weight:
                    dots.setdefault(_disc_size(mass[layer, j]), []).append(
                        f"M{j - self.start} {layer}h0")
        return _discs(dots, FLOW) + _links(flow, FLOW, "h") + _links(own, OWN, "h")

    def _frame(self) -> str:
        """Row names, token dots and labels, and the clickable columns: the same for every head and selection."""
        if "frame" in self._cache:
            return self._cache["frame"]
        parts = []
        for row in range(self.L + 1):
            name = "inputs" if row == 0 else f"layer {row}"
            parts.append(f"<text x='4' y='{self.y(row) + 4}' fill='{MUTED}'>{name}</text>")
        for p in range(self.start, self.stop):
            colour, x = self.colour(p), self.x(p)
            rows = range(self.L) if p < self.memory else range(self.L + 1)     # memory: keys only
            for row in rows:
                parts.append(f"<circle cx='{x}' cy='{self.y(row)}' r='3.5' fill='{colour}'/>")
        bottom, top = self.y(0) + 12, self.y(self.L) - 12
        for p in range(self.start, self.stop):
            label, x, colour = _esc(_shown(self.label(p))), self.x(p), self.colour(p)
            below = (f"<text transform='translate({x + 4} {bottom}) rotate(-55)' text-anchor='end' "
                     f"fill='{colour}'>{label}</text>")
            if p < self.memory:                       # a memory key: no query, nothing to click
                parts.append(f"<g><title>memory key {p}: {_esc(self.label(p))}</title>{below}</g>")
                continue
            t = p - self.memory
            group = f" ({_esc(self.groups[p])})" if self.groups and self.groups[p] else ""
            parts.append(f"<g data-click='t{t}'><title>token {t}: {_esc(self.tokens[t])}{group}</title>"
                         f"<rect class='hit' fill='{OWN}' fill-opacity='0' x='{x - DX // 2}' y='{top - 8}' "
                         f"width='{DX}' height='{bottom - top + 16}'/>{below}"
                         f"<text transform='translate({x - 4} {top}) rotate(-55)' fill='{colour}'>{label}</text></g>")
        self._cache["frame"] = "".join(parts)
        return self._cache["frame"]

    # -- the panel beside the picture
    def _top_keys(self, row: np.ndarray, k: int = 4) -> str:
        order = [j for j in np.argsort(-row, kind="stable")[:k] if row[j] > 0]
        return " · ".join(f"<b>{_esc(_shown(self.key_tokens[j], 12))}</b> {row[j]:.2f}" for j in order) or "—"

    def panel(self, head, token: int | None) -> list[str]:
        """The panel beside the picture, as pieces: what the picture shows, or the selected token's top
        keys in each layer, where its chain of reading ends, and its rollout."""
        key = ("panel", head, token)
        if key in self._cache:
            return self._cache[key]
        which = "the mean over heads" if _head_index(head, self.H) is None else f"head {head}"
        if token is None:
            legend = "".join(f"<span style='color:{c}'>● {_esc(g)}</span> " for g, c in self.group_colours.items())
            shown = f"tokens {self.start - self.memory} .. {self.stop - self.memory - 1}" if self.memory == 0 else \
                f"key positions {self.start} .. {self.stop - 1} (the first {self.memory} are memory)"
            pieces = [f"<div><b>Attention of {which}</b>, {self.L} layers x {self.H} heads, T = {self.T}"
                      + (f", S = {self.S}" if self.memory else "") + ".</div>",
                      f"<div class='attn'>A link from a token of row l + 1 down to a token of row l is as strong as "
                      f"the attention weight of layer l + 1 (weights under {self.min_weight:g} not drawn). "
                      f"Drawn: {shown}. Click a token to see where it attends in every layer.</div>"
                      + (f"<div>{legend}</div>" if legend else "")]
        else:
            a, mass = self.a(head), _flow(self.a(head), token)
            ends = mass[0].copy()                      # where the chain stops: the inputs, or a memory key
            ends[:self.memory] += mass[1:self.L, :self.memory].sum(0)
            outside = ends.sum() - ends[self.start:self.stop].sum()
            in_memory = ends[:self.memory].sum()
            group = self.groups[self.memory + token] if self.groups else None
            if ("rollout", token) not in self._cache:     # the same for every head
                self._cache[("rollout", token)] = (f"<tr><th>rollout</th><td>{self._top_keys(self.rollout[-1, token])}"
                                                   f"</td></tr></table>")
            pieces = [f"<div><b>token {token}: {_esc(_shown(self.tokens[token], 24))}</b>"
                      + (f" ({_esc(group)})" if group else "") + f", {which}</div><table class='attk'>"]
            pieces += [f"<tr><th>layer {layer + 1}</th><td>{self._top_keys(a[layer, token])}</td></tr>"
                       for layer in range(self.L - 1, -1, -1)]
            pieces += [f"<tr><th>reads (flow)</th><td>{self._top_keys(ends)}</td></tr>",
                       self._cache[("rollout", token)],
                       f"<div class='attn'><span style='color:{OWN}'>blue</span>: where it attends in each layer; "
                       f"<span style='color:{FLOW}'>orange</span>: the chain of what it reads (attention flow)",
                       (f", {100 * outside:.0f}% of it outside the drawn window" if outside > 0.005 else "")
                       + (f", {100 * in_memory:.0f}% ends in memory" if in_memory > 0.005 else ""),
                       ". Rollout: heads averaged, residual added (Abnar &amp; Zuidema 2020).</div>"]
        self._cache[key] = pieces
        return pieces

    # -- heat-maps
    def _cell(self, a: np.ndarray, size: int) -> str:
        """One ``[T, S]`` map as a PNG: white = 0, dark blue = 1 (square-root scale, so small weights show).

        A map longer than ``MAX_MAP_PIXELS`` is averaged over square blocks first (a reasoning trace of
        hundreds of tokens stays a small picture); the colours are a palette of 256 steps (one byte a pixel).
        """
        factor = math.ceil(max(self.T, self.S) / MAX_MAP_PIXELS)
        if factor > 1:
            rows, cols = math.ceil(self.T / factor) * factor, math.ceil(self.S / factor) * factor
            padded = np.full((rows, cols), np.nan)
            padded[:self.T, :self.S] = a
            a = np.nanmean(padded.reshape(rows // factor, factor, cols // factor, factor), axis=(1, 3))
        pixels = np.rint(255 * np.sqrt(np.clip(a, 0, 1))).astype(np.uint8)
        scale = size / max(self.T, self.S)
        return (f"<img width='{max(1, round(self.S * scale))}' height='{max(1, round(self.T * scale))}' "
                f"style='image-rendering:pixelated;border:1px solid #dadce0' alt='attention map' "
                f"src='{_png_uri(pixels, _HEAT_PALETTE)}'>")

    def grid_pieces(self, head, cell: int = 72) -> list[str]:
        """The heads x layers grid (rows: the mean, then each head; columns: layers), ``head``'s row marked."""
        chosen = _head_index(head, self.H)
        pieces = [f"<table class='attg'><tr><th></th>"
                  + "".join(f"<th>layer {layer + 1}</th>" for layer in range(self.L)) + "</tr>"]
        for h in self.heads():
            index = _head_index(h, self.H)
            mark = "background:#e8f0fe;font-weight:bold" if index == chosen else ""
            pieces.append(f"<tr><th style='{mark}'>{'mean' if index is None else f'head {index}'}</th>")
            for layer in range(self.L):
                key = ("cell", index, layer, cell)
                if key not in self._cache:
                    self._cache[key] = f"<td>{self._cell(self.a(h)[layer], cell)}</td>"
                pieces.append(self._cache[key])
            pieces.append("</tr>")
        pieces.append(f"</table><div class='attn'>rows: queries, columns: keys; darker = more attention</div>")
        return pieces

    # -- ViT
    def image_pieces(self, head, size: int = 112) -> list[str]:
        """The image, then [CLS]'s attention in each layer (``head``) and the rollout laid over it."""
        if self.grid is None:
            return []
        gh, gw = self.grid
        h, w = self.image.shape[:2]
        width, height = (size, max(1, round(size * h / w))) if w >= h else (max(1, round(size * w / h)), size)
        if ("image", size) not in self._cache:            # one <img> of the image, shared by every picture
            self._cache[("image", size)] = (f"<img width='{width}' height='{height}' alt='image' "
                                            f"style='display:block;image-rendering:pixelated' "
                                            f"src='{_png_uri(self.image)}'>")
        image = self._cache[("image", size)]
        box = (f"<div style='display:inline-block;margin:0 6px 4px 0;text-align:center'>"
               f"<div style='position:relative;width:{width}px;height:{height}px'>")
        maps = _mean_or_head(self.w, _head_index(head, self.H))[:, 0, 1:].reshape(self.L, gh, gw)
        rollout = self.rollout[:, 0, 1:].reshape(self.L, gh, gw)
        which = "mean over heads" if _head_index(head, self.H) is None else f"head {head}"
        pieces = [f"<div><b>[CLS] → patches</b> ({which})</div><div>", box, image, "</div>image</div>"]
        for name, heat in [(f"layer {layer + 1}", maps[layer]) for layer in range(self.L)] + [("rollout", rollout[-1])]:
            pieces += [box, image, _overlay(heat, width, height), f"</div>{name}</div>"]
        pieces.append("</div><div class='attn'>each map scaled to its own maximum; rollout: all layers, heads "
                      "averaged, residual added</div>")
        return pieces

    # -- the live view's big map of one layer and head, labelled
    def heatmap_svg(self, head, layer: int, cell: int = 12) -> str:
        a = self.a(head)[layer]
        queries = range(max(self.start, self.memory) - self.memory, self.stop - self.memory)
        keys = range(self.start, self.stop)
        left, top = 64, 64
        parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + cell * len(keys) + 4}' "
                 f"height='{top + cell * len(queries) + 4}' {_FONT} font-size='10'>"]
        for c, j in enumerate(keys):
            parts.append(f"<text transform='translate({left + c * cell + cell - 2} {top - 4}) rotate(-60)'>"
                         f"{_esc(_shown(self.key_tokens[j]))}</text>")
        for r, t in enumerate(queries):
            y = top + r * cell
            parts.append(f"<text x='{left - 4}' y='{y + cell - 2}' text-anchor='end'>{_esc(_shown(self.tokens[t]))}"
                         f"</text>")
            for c, j in enumerate(keys):
                v = math.sqrt(min(1.0, max(0.0, a[t, j])))
                rgb = np.rint(255 * (1 - v) + HEAT * v).astype(int)
                parts.append(f"<rect x='{left + c * cell}' y='{y}' width='{cell}' height='{cell}' "
                             f"fill='rgb({rgb[0]},{rgb[1]},{rgb[2]})'><title>{_esc(self.tokens[t])} → "
                             f"{_esc(self.key_tokens[j])}: {a[t, j]:.3f}</title></rect>")
        parts.append("</svg>")
        return "".join(parts)


def _image_pixels(image) -> np.ndarray:
    """An image ``[H, W]`` or ``[H, W, C]`` (C = 1, 3 or 4) as uint8 grey or RGB, its range stretched to 0..255."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3):
        raise ValueError(f"image must be [H, W] or [H, W, C]; got {tuple(array.shape)}, channels first? "
                         f"(pass image.permute(1, 2, 0))")
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array[..., 0] if array.shape[-1] == 1 else array[..., :3]
    if array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"image must be [H, W] or [H, W, C] with C = 1, 3 or 4; got shape {tuple(array.shape)}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError("image must be finite (no NaN or inf)")
    low, high = array.min(), array.max()
    array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return np.rint(255 * array).astype(np.uint8)


def _overlay(heat: np.ndarray, width: int, height: int) -> str:
    """``heat [gh, gw]`` as a see-through orange PNG over a ``width`` x ``height`` box (opacity ∝ heat / max)."""
    top = heat.max()
    alpha = heat / top if top > 0 else np.zeros_like(heat)
    pixels = np.zeros(heat.shape + (4,), dtype=np.uint8)
    pixels[..., :3] = OVERLAY.astype(np.uint8)
    pixels[..., 3] = np.rint(180 * np.clip(alpha, 0, 1)).astype(np.uint8)
    return (f"<img width='{width}' height='{height}' alt='attention' style='position:absolute;left:0;top:0;"
            f"image-rendering:pixelated' src='{_png_uri(pixels)}'>")


# --------------------------------------------------------------------- public drawings
def tokens_layers_svg(weights, tokens: Sequence[str] | None = None, *, head="mean", selected: int | None = None,
                      key_tokens: Sequence[str] | None = None, groups: Sequence[str] | None = None,
                      window: tuple[int, int] | None = None, min_weight: float = MIN_WEIGHT) -> str:
    """The tokens x layers picture as one SVG (see the module's docstring).

    Args:
      weights: ``[L, H, T, S]`` or a list of ``L`` tensors ``[H, T, S]``.
      tokens, key_tokens, groups: the labels (see the module's docstring).
      head: ``"mean"`` or a head's index.
      selected: a token whose own links (blue) and chain of reading (orange, :func:`attention_flow`)
        are drawn over the faded links of the head; None: all links.
      window: ``(start, stop)`` key positions drawn, at most :data:`MAX_TOKENS`.
      min_weight: links under this weight are not drawn.

    Every drawn query token is a ``<g data-click="t<index>">`` (its column and labels).
    """
    view = _Attention(weights, tokens, key_tokens=key_tokens, groups=groups, window=window, min_weight=min_weight)
    if selected is not None and selected not in view.drawn_tokens():
        raise ValueError(f"selected must be a drawn token ({view.drawn_tokens()[0]} .. {view.drawn_tokens()[-1]}) "
                         f"or None; got {selected!r}")
    _head_index(head, view.H)
    return "".join(view.svg_pieces(head, selected))


def head_layer_grid(weights, *, head="mean", cell: int = 72) -> str:
    """A table of ``[T, S]`` heat-maps: a row for the mean over heads and one per head, a column per layer.

    Each map is a PNG ``cell`` pixels on its longer side; the row of ``head`` is marked.
    """
    view = _Attention(weights)
    _head_index(head, view.H)
    if not isinstance(cell, int) or cell < 8:
        raise ValueError(f"cell must be an integer >= 8 (pixels); got {cell!r}")
    return "".join(view.grid_pieces(head, cell))


def vit_attention_html(image, weights, patch_grid: tuple[int, int], *, head="mean", size: int = 112) -> str:
    """A ViT's image, then [CLS]'s attention to the patches in each layer and the rollout laid over it.

    Args:
      image: ``[H, W]`` or ``[H, W, C]`` (tensor or array, any range: it is stretched to 0..1).
      weights: ``[L, H, 1 + gh*gw, 1 + gh*gw]`` or a list of layers, [CLS] first.
      patch_grid: ``(gh, gw)``.
      head: ``"mean"`` or a head's index (the rollout always averages the heads).
      size: pixels of each picture's longer side.
    """
    view = _Attention(weights, image=image, patch_grid=patch_grid)
    _head_index(head, view.H)
    return "".join(view.image_pieces(head, size))


# ------------------------------------------------------------------------ front-ends
def _body(with_image: bool) -> str:
    return ("<div data-view='graph' style='overflow-x:auto;max-width:100%'>$graph</div>"
            "<div style='display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start;margin-top:6px'>"
            "<div style='flex:0 1 360px'><div data-view='tokens' style='margin-bottom:6px'>$tokens</div>"
            "<div data-view='panel'>$panel</div></div>"
            + ("<div data-view='image' style='flex:0 1 auto'>$image</div>" if with_image else "")
            + "<div data-view='grid' style='flex:0 1 auto;overflow-x:auto'>$grid</div></div>")


def _token_chips(view: _Attention) -> str:
    """Every drawn token as a clickable word (the same ``data-click`` as its column in the picture)."""
    return "".join(f"<span class='attc' data-click='t{t}' style='color:{view.colour(view.memory + t)}'>"
                   f"{_esc(_shown(view.tokens[t], 16))}</span> " for t in view.drawn_tokens())


def _page(view: _Attention, title: str | None) -> str:
    frames = []
    chips = _token_chips(view)
    for head in view.heads():
        views = {"graph": view.svg_pieces(head, None), "panel": view.panel(head, None), "tokens": chips,
                 "grid": view.grid_pieces(head)}
        if view.grid is not None:
            views["image"] = view.image_pieces(head)
        clicks = {f"t{t}": {"graph": view.svg_pieces(head, t), "panel": view.panel(head, t)}
                  for t in view.drawn_tokens()}
        frames.append(Frame(views, clicks))
    heads = view.heads()
    slider = Slider("head", heads, texts=["head: mean of all" if h == "mean" else f"head: {h}" for h in heads])
    return explorable_page(frames, [slider], kind="attention", body=_body(view.grid is not None), title=title,
                           hint="click a token to see where it attends in every layer (again to clear)",
                           css=_CSS, css_class="attx", id_prefix="attx",
                           meta={"L": view.L, "H": view.H, "T": view.T, "S": view.S,
                                 "window": [view.start, view.stop], "tokens": view.tokens})


def attention_page(weights, tokens: Sequence[str] | None = None, *, key_tokens: Sequence[str] | None = None,
                   groups: Sequence[str] | None = None, image=None, patch_grid: tuple[int, int] | None = None,
                   title: str | None = None, window: tuple[int, int] | None = None,
                   min_weight: float = MIN_WEIGHT) -> str:
    """The static explorable page (``data-explorer="attention"``), self-contained, for the book.

    A slider over the head (``"mean"``, then ``0 .. H-1``); for each head the tokens x layers
    picture, the token list, a panel, the heads x layers grid of heat-maps and, with an image,
    the ViT views. Clicking a drawn token (its column in the picture or its word in the list,
    ``data-click="t<index>"``) shows its own links and its chain of reading, and its panel (top
    keys per layer, flow and rollout); clicking it again clears. Shared pieces (the token frame,
    heat-maps, the image) are stored once.

    Args: as :func:`attention_explorer`.
    """
    view = _Attention(weights, tokens, key_tokens=key_tokens, groups=groups, image=image, patch_grid=patch_grid,
                      window=window, min_weight=min_weight)
    return _page(view, title)


class AttentionExplorerWidget:
    """The live front-end (ipywidgets 7 and 8): the same drawings as the page, redrawn in the kernel.

    Takes the arguments of :func:`attention_explorer` (less ``live``). Attributes: ``head``
    (ToggleButtons: "mean", 0 .. H-1), ``layer`` (IntSlider 1 .. L: the layer of the big labelled
    heat-map, hover a cell for its weight), ``token`` (Dropdown: none or a drawn token, whose links
    and panel show), ``view`` (HTML) and ``container`` (the VBox to display).
    """

    def __init__(self, weights, tokens: Sequence[str] | None = None, *, key_tokens: Sequence[str] | None = None,
                 groups: Sequence[str] | None = None, image=None, patch_grid: tuple[int, int] | None = None,
                 title: str | None = None, window: tuple[int, int] | None = None, min_weight: float = MIN_WEIGHT):
        self._build(_Attention(weights, tokens, key_tokens=key_tokens, groups=groups, image=image,
                               patch_grid=patch_grid, window=window, min_weight=min_weight), title)

    @classmethod
    def _of(cls, view: _Attention, title: str | None) -> "AttentionExplorerWidget":
        self = cls.__new__(cls)
        self._build(view, title)
        return self

    def _build(self, view: _Attention, title: str | None) -> None:
        import ipywidgets as widgets

        self._view = view
        self.head = widgets.ToggleButtons(options=[("mean", "mean")] + [(str(h), h) for h in range(view.H)],
                                          value="mean", description="head")
        self.head.style.button_width = "48px"
        self.layer = widgets.IntSlider(value=view.L, min=1, max=view.L, description="layer")
        self.token = widgets.Dropdown(options=[("none", None)] + [(f"{t}: {_shown(view.tokens[t], 16)}", t)
                                                                  for t in view.drawn_tokens()],
                                      value=None, description="token")
        self.view = widgets.HTML()
        for control in (self.head, self.layer, self.token):
            control.observe(lambda _change: self.refresh(), names="value")
        heading = [widgets.HTML(f"<b>{_esc(title)}</b>")] if title else []
        self.container = widgets.VBox(heading + [self.head, widgets.HBox([self.layer, self.token]), self.view])
        self.refresh()

    def refresh(self) -> None:
        """Redraw for the current head, layer and token."""
        v, head, token = self._view, self.head.value, self.token.value
        side = (f"<div><b>layer {self.layer.value}</b>, {'mean' if head == 'mean' else f'head {head}'}</div>"
                + v.heatmap_svg(head, self.layer.value - 1))
        image = "".join(v.image_pieces(head))
        self.view.value = (f"<style>{_CSS}</style><div class='attx' style='font:12px/1.35 sans-serif;color:{TEXT}'>"
                           f"<div style='overflow-x:auto'>{''.join(v.svg_pieces(head, token))}</div>"
                           f"<div style='display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start'>"
                           f"<div style='flex:0 1 360px'>{''.join(v.panel(head, token))}</div><div>{side}</div>"
                           + (f"<div>{image}</div>" if image else "")
                           + f"<div>{''.join(v.grid_pieces(head))}</div></div></div>")


def attention_explorer(weights, tokens: Sequence[str] | None = None, *, key_tokens: Sequence[str] | None = None,
                       groups: Sequence[str] | None = None, image=None, patch_grid: tuple[int, int] | None = None,
                       title: str | None = None, live: bool = True, window: tuple[int, int] | None = None,
                       min_weight: float = MIN_WEIGHT) -> LiveAndStatic:
    """Explore one sequence's attention: live ipywidgets controls in a kernel, the static page in the book.

    Args:
      weights: ``[L, H, T, S]`` or a list of ``L`` tensors ``[H, T, S]`` (one sequence; see
        :func:`check_attention_weights`).
      tokens: ``T`` query labels (default ``"0", "1", ..``; with ``patch_grid``: ``"[CLS]"`` and ``"row,col"``).
      key_tokens: ``S`` key labels (default: ``"m0", .., "m<S-T-1>"`` for the memory, then ``tokens``).
      groups: a group name per token (``T``) or per key (``S``), colouring it; None: no groups.
      image: a ViT's input ``[H, W]`` or ``[H, W, C]``, with ``patch_grid``: adds [CLS]'s attention
        per layer and the rollout over the image.
      patch_grid: ``(gh, gw)`` of the ViT's patches ([CLS] first, then the patches row by row).
      title: a caption.
      live: build the ipywidgets front-end (False, or ipywidgets missing: the page alone).
      window: the key positions ``(start, stop)`` the picture draws (at most :data:`MAX_TOKENS`).
      min_weight: links under this weight are not drawn.

    Returns:
      A :class:`~course_lib.viz.live.LiveAndStatic`: ``.widget`` the live VBox (or None), ``.html``
      the page of :func:`attention_page`; the last expression of a cell displays it.
    """
    view = _Attention(weights, tokens, key_tokens=key_tokens, groups=groups, image=image, patch_grid=patch_grid,
                      window=window, min_weight=min_weight)
    page = _page(view, title)
    widget = None
    if live:
        try:
            widget = AttentionExplorerWidget._of(view, title).container
        except ImportError:              # no ipywidgets: the static page still works in any notebook
            widget = None
    return LiveAndStatic(widget, page, text=f"<attention explorer: {view.L} layers x {view.H} heads, T = {view.T}"
                                            + (f", S = {view.S}" if view.memory else "") + ">")
