r"""Decoding reasoning paths from a GPT: greedy, and K sampled paths per prompt in one batch.

Self-consistency's second step ("sample K paths") is :func:`sample_paths`: each prompt is
repeated K times and the copies are decoded together through the key/value cache
(:meth:`~course_lib.nets.transformer.GPT.generate`), so K paths cost K rows of one batch rather
than K separate decodes. Prompts of the same token length share a batch too (a learned position
table needs no padding then); decoding stops as soon as every row has written ``<eos>``.

A path is the text the model wrote after its prompt, up to (not including) ``<eos>``; a path
that never ends is returned as far as it got, for the answer extractor to judge.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch

from ..language import CharTokenizer
from ..nets.transformer import GPT

__all__ = ["encode_prompt", "sample_paths", "greedy_paths"]


def encode_prompt(tokenizer: CharTokenizer, prompt: str) -> torch.Tensor:
    """``<bos>`` (when the tokenizer has it) and the prompt's characters: ``[1 + len(prompt)]`` long."""
    ids = tokenizer.encode(prompt)
    if "<bos>" in tokenizer.specials:
        ids = torch.cat((torch.tensor([tokenizer.id("<bos>")]), ids))
    return ids


@torch.no_grad()
def sample_paths(model: GPT, tokenizer: CharTokenizer, prompts: Sequence[str], k: int = 1, *,
                 temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                 max_new_tokens: int | None = None, max_rows: int = 2048) -> list[list[str]]:
    """``k`` continuations of each prompt: ``paths[i][j]`` is the ``j``-th path of ``prompts[i]``.

    The ``k`` copies of every prompt are decoded as rows of one batch with the key/value cache
    (prompts of equal length together, at most ``max_rows`` rows a batch), sampled from
    softmax(logits / ``temperature``) restricted to ``top_k`` / nucleus ``top_p``;
    ``temperature=0`` is greedy (then the ``k`` paths are equal). ``seed`` fixes the samples.
    Each row stops at ``<eos>``; ``max_new_tokens`` (default: what the position table leaves)
    bounds a path's length.
    """
    if k < 1 or max_rows < 1:
        raise ValueError(f"need k >= 1 and max_rows >= 1; got k={k}, max_rows={max_rows}")
    stop = tokenizer.id("<eos>")
    device = next(model.parameters()).device
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(encoded):
        by_length[len(ids)].append(i)
    paths: list[list[str]] = [[] for _ in prompts]
    generator = torch.Generator(device=device).manual_seed(seed)
    per_batch = max(1, max_rows // k)
    for length in sorted(by_length):
        room = model.cfg.max_len - length if model.positions is not None else None
        new = max_new_tokens if max_new_tokens is not None else room
        if new is None:
            raise ValueError("max_new_tokens is needed for a model without a learned position table")
        if room is not None:
            new = min(new, room)
        group = by_length[length]
        for start in range(0, len(group), per_batch):
            rows = group[start:start + per_batch]
            idx = torch.stack([encoded[i] for i in rows]).repeat_interleave(k, dim=0).to(device)  # [len(rows)*k, T]
            out = model.generate(idx, new, temperature=temperature, top_k=top_k, top_p=top_p,
                                 generator=generator, stop_token=stop)[:, length:].tolist()
            for r, i in enumerate(rows):
                for tokens in out[r * k:(r + 1) * k]:
                    if stop in tokens:
                        tokens = tokens[:tokens.index(stop)]
                    paths[i].append(tokenizer.decode(tokens))
    return paths


def greedy_paths(model: GPT, tokenizer: CharTokenizer, prompts: Sequence[str], *,
                 max_new_tokens: int | None = None, max_rows: int = 2048) -> list[str]:
    """The greedy (most probable token at every step) continuation of each prompt, batched."""
    paths = sample_paths(model, tokenizer, prompts, 1, temperature=0.0, max_new_tokens=max_new_tokens,
                         max_rows=max_rows)
    return [p[0] for p in paths]
