"""How fast the course transformer trains and samples.

    python -m course_lib transformer-speed [--device auto] [--d-model 128] [--layers 4] [--heads 4]
                                           [--batch 16] [--seq 128] [--context 256] [--new-tokens 32]

Two measurements, each the best of ``repeats`` timed runs after a warm-up:

* **training tokens/s**: forward + backward + Adam step of the course :class:`Transformer` and of
  ``torch.nn.TransformerEncoder`` of the same size (pre-norm layers, GELU MLP of ``4 d_model``,
  no dropout, a final LayerNorm: the same parameters) under the same causal mask, on
  ``[batch, seq, d_model]`` inputs. The ratio is ours / torch's.
* **sampling tokens/s**: a :class:`GPT` continues a ``context``-token prompt by ``new_tokens``
  tokens, once with the key/value cache (each step feeds one token) and once recomputing the whole
  context every step. Both sample the same tokens; the ratio is cached / recomputed.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from ..core.device import resolve_device, synchronize
from .transformer import GPT, Transformer, TransformerConfig

__all__ = ["training_speed", "sampling_speed", "measure"]


def _best_seconds(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    fn()                                                     # warm-up (allocations, kernel selection)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def torch_encoder(cfg: TransformerConfig) -> nn.TransformerEncoder:
    """``nn.TransformerEncoder`` with the course transformer's block layout and parameter count."""
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.hidden, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, cfg.n_layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False)


def training_speed(cfg: TransformerConfig, batch: int, seq: int, device: torch.device, steps: int = 5,
                   repeats: int = 3) -> dict[str, float]:
    """Training tokens/s of the course stack and of ``nn.TransformerEncoder``, causal mask, same size."""
    torch.manual_seed(0)
    x = torch.randn(batch, seq, cfg.d_model, device=device)
    ours, ref = Transformer(cfg).to(device), torch_encoder(cfg).to(device)
    mask = nn.Transformer.generate_square_subsequent_mask(seq, device=device)
    runs = {"ours": (ours, lambda: ours(x, causal=True).hidden),
            "torch": (ref, lambda: ref(x, mask=mask, is_causal=True))}
    out = {"parameters": sum(p.numel() for p in ours.parameters()),
           "torch_parameters": sum(p.numel() for p in ref.parameters())}
    for name, (model, forward) in runs.items():
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def train_steps():
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                forward().square().mean().backward()
                opt.step()
        out[f"{name}_tokens_per_second"] = batch * seq * steps / _best_seconds(train_steps, repeats, device)
    out["ratio"] = out["ours_tokens_per_second"] / out["torch_tokens_per_second"]
    return out


def sampling_speed(cfg: TransformerConfig, vocab: int, batch: int, context: int, new_tokens: int,
                   device: torch.device, repeats: int = 3) -> dict[str, float]:
    """New tokens/s of :meth:`GPT.generate` from a ``context``-token prompt, with and without the cache."""
    torch.manual_seed(0)
    model = GPT(cfg.replace(max_len=max(cfg.max_len, context + new_tokens)), vocab).to(device).eval()
    prompt = torch.randint(vocab, (batch, context), device=device)
    out, tokens = {}, {}
    for name, cached in (("cached", True), ("recomputed", False)):
        def sample():
            g = torch.Generator(device=device).manual_seed(0)
            tokens[name] = model.generate(prompt, new_tokens, generator=g, use_cache=cached)
        out[f"{name}_tokens_per_second"] = batch * new_tokens / _best_seconds(sample, repeats, device)
    out["same_tokens"] = bool(torch.equal(tokens["cached"], tokens["recomputed"]))
    out["ratio"] = out["cached_tokens_per_second"] / out["recomputed_tokens_per_second"]
    return out


def measure(device: str | torch.device = "auto", d_model: int = 128, layers: int = 4, heads: int = 4,
            batch: int = 16, seq: int = 128, context: int = 256, new_tokens: int = 32, sample_batch: int = 1,
            vocab: int = 64, repeats: int = 3) -> dict[str, Any]:
    """Both measurements at one size; returns one flat dict (what the command prints and writes)."""
    device = resolve_device(device)
    cfg = TransformerConfig(d_model=d_model, n_heads=heads, n_layers=layers, positions="none", max_len=seq)
    row: dict[str, Any] = {"device": str(device), "d_model": d_model, "layers": layers, "heads": heads,
                           "batch": batch, "seq": seq, "context": context, "new_tokens": new_tokens,
                           "sample_batch": sample_batch, "threads": torch.get_num_threads()}
    row.update({f"train_{k}": v for k, v in training_speed(cfg, batch, seq, device, repeats=repeats).items()})
    learned = cfg.replace(positions="learned", max_len=context + new_tokens)
    row.update({f"sample_{k}": v for k, v in
                sampling_speed(learned, vocab, sample_batch, context, new_tokens, device, repeats).items()})
    return row
