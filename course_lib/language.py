r"""Language modelling with the course transformer: tokens, the autoregressive factorisation, GPT training,
BERT's masked modelling.

An autoregressive model factorises the probability of a sequence into next-token predictions,

.. math::
    p(x_{1:T}) = \prod_{t=1}^{T} p(x_t \mid x_{1:t-1}),

so one causal pass of a :class:`~course_lib.nets.transformer.GPT` over ``[BOS, x_1 .. x_{T-1}]``
gives every factor at once (:func:`sequence_log_prob`), and training is next-token prediction
through a softmax over the vocabulary (:func:`next_token_loss`). BERT instead sees the whole
sequence (no causal mask) and predicts tokens hidden by :func:`bert_mask`.

Everything here runs offline: the corpus (:func:`python_docs_corpus`) is the reference
documentation that ships inside every CPython (``pydoc_data``), and the tokenizer is a
character table (:class:`CharTokenizer`).
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from .core.fit import fit
from .nets.transformer import GPT

__all__ = ["CharTokenizer", "python_docs_corpus", "next_token_loss", "sequence_log_prob", "all_sequences",
           "bert_mask", "train_gpt", "sample_text"]


class CharTokenizer:
    """Characters to token ids and back: one id per special token, then one per character.

    ``CharTokenizer.from_text(text, specials=("<bos>",))`` builds the table from a corpus;
    unknown characters raise (say which), so nothing is silently dropped.
    """

    def __init__(self, chars: Iterable[str], specials: Sequence[str] = ()):
        chars = list(dict.fromkeys(chars))
        if any(len(c) != 1 for c in chars) or len(set(specials)) != len(specials):
            raise ValueError("chars must be single characters and specials distinct")
        self.specials = tuple(specials)
        self.vocab = list(self.specials) + chars
        self.ids = {tok: i for i, tok in enumerate(self.vocab)}

    @classmethod
    def from_text(cls, text: str, specials: Sequence[str] = ()) -> "CharTokenizer":
        return cls(sorted(set(text)), specials)

    def __len__(self) -> int:
        return len(self.vocab)

    def id(self, token: str) -> int:
        """The id of a special token or a character."""
        if token not in self.ids:
            raise KeyError(f"{token!r} is not in the vocabulary (specials: {', '.join(self.specials) or 'none'})")
        return self.ids[token]

    def encode(self, text: str) -> torch.Tensor:
        """``str -> [len(text)]`` long."""
        try:
            return torch.tensor([self.ids[c] for c in text], dtype=torch.long)
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the tokenizer's {len(self)} tokens") from None

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_specials: bool = True) -> str:
        """Token ids back to text (special tokens left out unless ``skip_specials=False``)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        n = len(self.specials)
        return "".join(self.vocab[i] for i in ids if not (skip_specials and i < n))


def python_docs_corpus(max_chars: int | None = None) -> str:
    """English prose about Python that ships with CPython (``pydoc_data.topics``: the language
    reference's sections, about 430k characters), with runs of spaces collapsed; nothing is downloaded."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    lines = (" ".join(line.split()) for line in text.splitlines())
    text = "\n".join(line for line in lines if line and not set(line) <= set("*=-^~"))
    return text[:max_chars] if max_chars else text


def next_token_loss(model: GPT, idx: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    r"""Next-token prediction, the GPT objective: the mean over ``t`` of :math:`-\log p(x_{t+1} \mid x_{1..t})`
    for token windows ``idx [B, T+1]`` (the model reads ``idx[:, :-1]`` and predicts ``idx[:, 1:]``).

    ``causal=False`` trains the same model without the causal mask: each position can then
    read the very token it has to predict (the "cheating" of the chapter).
    """
    logits = model(idx[:, :-1], causal=causal)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1))


@torch.no_grad()
def sequence_log_prob(model: GPT, seqs: torch.Tensor, bos: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``log p(x_1..x_T)`` of each sequence ``seqs [B, T]`` and its factors, from ONE causal pass.

    The model reads ``[BOS, x_1 .. x_{T-1}]``; position ``t`` gives :math:`p(\cdot \mid x_{1:t-1})`, and
    the factor is its entry at :math:`x_t`. Returns ``(log_p [B], log_factors [B, T])`` with
    ``log_p = log_factors.sum(-1)``.
    """
    if seqs.dim() != 2 or seqs.dtype != torch.long:
        raise ValueError(f"seqs must be long [B, T]; got {seqs.dtype} {tuple(seqs.shape)}")
    inputs = torch.cat((torch.full_like(seqs[:, :1], bos), seqs[:, :-1]), dim=1)
    log_probs = model(inputs).log_softmax(-1)                                     # [B, T, V]
    factors = log_probs.gather(-1, seqs.unsqueeze(-1)).squeeze(-1)                # [B, T]
    return factors.sum(-1), factors


def all_sequences(tokens: Sequence[int], length: int) -> torch.Tensor:
    """Every sequence of ``length`` tokens drawn from ``tokens``: ``[len(tokens) ** length, length]`` long."""
    if length < 1 or not tokens:
        raise ValueError(f"need length >= 1 and at least one token; got {length}, {list(tokens)}")
    return torch.tensor(list(itertools.product(tokens, repeat=length)), dtype=torch.long)


def bert_mask(tokens: torch.Tensor, *, mask_id: int, vocab_size: int, p: float = 0.15,
              replace: Sequence[int] | None = None, protected: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""BERT's masked-modelling corruption (Devlin et al., 2019).

    Each token is selected with probability ``p`` (15 %); of the selected, 80 % are replaced by
    ``[MASK]``, 10 % by a random token and 10 % kept. The model must predict every selected token
    from the corrupted sequence, seeing both sides (no causal mask). Random and kept tokens make
    it predict real inputs too, since ``[MASK]`` never appears once the model is used.

    Args:
      tokens: ``[..., T]`` long token ids.
      mask_id: the id of ``[MASK]``.
      vocab_size: random replacements are drawn uniformly from ``replace`` (default: every id
        below ``vocab_size`` except ``mask_id``).
      protected: bool like ``tokens``, positions never selected (``[CLS]``, ``[SEP]``, padding).

    Returns:
      ``(inputs, targets, selected)``: the corrupted tokens; the originals where selected and
      -100 elsewhere (ignored by ``F.cross_entropy``); the bool selection.
    """
    if not 0 <= p <= 1 or not 0 <= mask_id < vocab_size:
        raise ValueError(f"need 0 <= p <= 1 and 0 <= mask_id < vocab_size; got p={p}, mask_id={mask_id}, "
                         f"vocab_size={vocab_size}")
    device = tokens.device
    u = torch.rand(tokens.shape + (2,), generator=generator, device=device)
    selected = u[..., 0] < p
    if protected is not None:
        selected &= ~protected
    pool = torch.tensor([i for i in range(vocab_size) if i != mask_id] if replace is None else list(replace),
                        dtype=torch.long, device=device)
    random_tokens = pool[torch.randint(len(pool), tokens.shape, generator=generator, device=device)]
    how = u[..., 1]
    inputs = torch.where(selected & (how < 0.8), torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(selected & (how >= 0.8) & (how < 0.9), random_tokens, inputs)
    targets = torch.where(selected, tokens, torch.full_like(tokens, -100))
    return inputs, targets, selected


def train_gpt(model: GPT, data: torch.Tensor, *, steps: int, batch_size: int = 32, seq_len: int = 64,
              learning_rate: float = 3e-3, causal: bool = True, seed: int = 0, progress: bool = True,
              callback: Callable[[Mapping[str, Any]], None] | None = None, log_every: int = 25,
              evaluate: Callable[[], Mapping[str, float]] | None = None, eval_every: int = 0) -> list[dict]:
    """Next-token training of ``model`` on random windows of the token stream ``data [N]``.

    Each step draws ``batch_size`` windows of ``seq_len + 1`` tokens and takes one AdamW step on
    :func:`next_token_loss` (through :func:`~course_lib.core.fit.fit`, which returns the loss curve).
    """
    if data.dim() != 1 or data.numel() <= seq_len + 1:
        raise ValueError(f"data must be a 1-D token stream longer than seq_len + 1 = {seq_len + 1}; got "
                         f"{tuple(data.shape)}")
    device = next(model.parameters()).device
    data = data.to(device)
    offsets = torch.arange(seq_len + 1, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=max(steps, 1),
                                                    pct_start=0.1)

    def loss_fn(starts: torch.Tensor) -> torch.Tensor:
        return next_token_loss(model, data[starts.unsqueeze(1) + offsets], causal=causal)

    return fit(model, loss_fn, data.numel() - seq_len - 1, steps, batch_size, optimizer=optimizer, seed=seed,
                  max_grad_norm=1.0, desc="GPT" if causal else "GPT, no causal mask", progress=progress,
               log_every=log_every, evaluate=evaluate, eval_every=eval_every, callback=callback,
               after_step=scheduler.step)


@torch.no_grad()
def sample_text(model: GPT, tokenizer: CharTokenizer, prompt: str, new_tokens: int, *, temperature: float = 0.8,
                top_k: int | None = None, seed: int = 0) -> str:
    """``prompt`` continued by ``new_tokens`` sampled characters (key/value cache; seeded)."""
    device = next(model.parameters()).device
    idx = tokenizer.encode(prompt).to(device).unsqueeze(0)
    room = model.cfg.max_len - idx.shape[1] if model.positions is not None else new_tokens
    g = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(idx, min(new_tokens, room), temperature=temperature, top_k=top_k, generator=g)
    return tokenizer.decode(out[0])
