r"""Training the chapter's small reasoning model: a GPT that writes worked arithmetic steps.

``python -m course_lib train reasoner --seed 0 --out DIR`` trains the course
:class:`~course_lib.nets.transformer.GPT` by next-token prediction on the traces of
:mod:`course_lib.reasoning.tasks` (``Q:37+48-19*2+6=?`` then ``19*2=38;37+48=85;...;answer:53``),
and scores greedy decoding on the fixed held-out problems. The loop, in plain sight in :func:`train`::

    for each step:
        draw batch_size fresh problems (seeded by seed and step; never a held-out question)
        tokens = <bos> question trace <eos>, padded with <pad>
        loss = cross-entropy of each next token, over the trace, the answer and <eos> only
               (the question is given, not predicted: its tokens are masked out of the loss)
        one AdamW step; learning rate: linear warm-up, then cosine decay to 0
    every eval_every steps: greedy accuracy on the held-out problems

The summary (``summary.json``) has ``greedy_accuracy`` on ``eval_problems`` held-out problems,
``train_seconds`` and the model's size. Presets: the defaults (``full``: 4 one-digit terms, a
quarter of them products, D = 128, 4 blocks, 1,000 steps of 64 problems: 69.0 % greedy accuracy on
the 200 held-out problems after 313 s on one thread of the 2-core Xeon, seed 0, where a majority
vote over 40 sampled paths at temperature 0.8 scores 82.7 %; 1,500 steps reach 87.5 % greedy, too
close to the ceiling for voting to gain much) and ``quick`` (the notebooks' and tests' run, a few
seconds, accuracy near 0). Two-digit operands are much harder for this budget: 4 % greedy with 3
terms, 0 % with 4 after 750 of 1,500 steps.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..core import Counters, Run, Stopwatch, TrainConfig, option
from ..core.config import ConfigError
from ..core.fit import warmup_cosine, weight_decay_groups
from ..nets.transformer import GPT, TransformerConfig
from ..reasoning.decoding import greedy_paths
from ..reasoning.voting import extract_answer
from ..reasoning.tasks import ArithmeticTask, Problem, held_out_problems, tokenizer

__all__ = ["ReasonerConfig", "build_networks", "train", "make_batch", "greedy_accuracy", "BENCHMARKS"]


@dataclass
class ReasonerConfig(TrainConfig):
    """The task's difficulty, the GPT's size and its training. Presets: ``full`` (the defaults) and ``quick``."""

    terms: int = option(4, "operands per problem (terms - 1 combining steps, plus one step per product)", low=2)
    digits: int = option(1, "digits of each operand", low=1, high=4)
    products: float = option(0.25, "chance that a term after the first is a product with a one-digit factor",
                             low=0.0, high=1.0)
    minus: float = option(0.4, "chance that a term after the first is subtracted", low=0.0, high=1.0)
    order: str = option("random", "how traces combine the terms: random order (many correct traces per problem) "
                                  "or left to right (one)", choices=("random", "left"))
    d_model: int = option(128, "token width C", low=1)
    n_heads: int = option(4, "attention heads (d_model must divide by it)", low=1)
    n_layers: int = option(4, "transformer blocks", low=1)
    d_ff: int = option(0, "hidden width of each block's MLP (0: 4 * d_model)", low=0)
    dropout: float = option(0.0, "dropout on embeddings, attention weights and residual branches", low=0.0,
                            high=1.0, high_open=True)
    positions: str = option("learned", "position embedding of the GPT", choices=("learned", "relative"))
    mask_question: bool = option(True, "leave the question's tokens out of the loss (the model is given them)")
    steps: int = option(1000, "gradient steps", low=1)
    batch_size: int = option(64, "problems per gradient step", low=1)
    learning_rate: float = option(2e-3, "AdamW's peak step size", low=0.0, low_open=True)
    weight_decay: float = option(0.1, "AdamW's decoupled weight decay (matrices only)", low=0.0)
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up before the cosine decay", low=0)
    eval_problems: int = option(200, "held-out problems scored by greedy decoding", low=1)
    eval_every: int = option(500, "steps between held-out accuracy rows in metrics.jsonl (0: only at the end)",
                             low=0)
    log_every: int = option(25, "steps between loss rows in metrics.jsonl", low=1)
    checkpoint_every: int = option(500, "steps between checkpoints (0: only at the end)", low=0)

    def validate(self) -> None:
        super().validate()
        if self.d_model % self.n_heads:
            raise ConfigError(f"ReasonerConfig.d_model = {self.d_model} must divide by n_heads = {self.n_heads}")

    @property
    def task(self) -> ArithmeticTask:
        return ArithmeticTask(self.terms, self.digits, self.products, self.minus, self.order)

    @property
    def transformer(self) -> TransformerConfig:
        return TransformerConfig(d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff,
                                 dropout=self.dropout, positions=self.positions, max_len=self.task.max_length())


ReasonerConfig.presets = {
    "full": {},
    # The notebooks' and tests' run: a tiny GPT on easy problems for a few seconds (accuracy near 0).
    "quick": {"terms": 2, "d_model": 32, "n_layers": 1, "n_heads": 2, "steps": 60, "batch_size": 32,
              "warmup_steps": 10, "eval_problems": 20, "eval_every": 0, "checkpoint_every": 0, "log_every": 10},
}

BENCHMARKS = {"full": (None, {})}


def build_networks(cfg: ReasonerConfig) -> dict[str, nn.Module]:
    """``{"model": GPT}`` over the task family's character vocabulary."""
    return {"model": GPT(cfg.transformer, len(tokenizer()))}


def make_batch(problems: list[Problem], mask_question: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs [B, L], targets [B, L])`` for next-token training on ``<bos> question trace <eos>``.

    ``targets[b, t]`` is the token after ``inputs[b, t]``, or -100 (ignored by the loss) past the
    end and, with ``mask_question``, where the next token is still part of the question.
    """
    tok = tokenizer()
    pad, bos, eos = tok.id("<pad>"), tok.id("<bos>"), tok.id("<eos>")
    seqs = [torch.cat((torch.tensor([bos]), tok.encode(p.text), torch.tensor([eos]))) for p in problems]
    L = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), L), pad, dtype=torch.long)
    targets = torch.full((len(seqs), L), -100, dtype=torch.long)
    for b, (s, p) in enumerate(zip(seqs, problems)):
        n = len(s) - 1
        inputs[b, :n], targets[b, :n] = s[:-1], s[1:]
        if mask_question:
            targets[b, :len(p.question)] = -100          # positions 0..|q|-1 predict the question's characters
    return inputs, targets


def greedy_accuracy(model: GPT, problems: list[Problem], max_rows: int = 1024) -> float:
    """The fraction of ``problems`` whose greedy path ends in the right ``answer:N``."""
    paths = greedy_paths(model, tokenizer(), [p.question for p in problems], max_rows=max_rows)
    return sum(extract_answer(t) == p.answer for t, p in zip(paths, problems)) / max(1, len(problems))


@dataclass
class ReasonerCounters(Counters):
    """``step`` and ``updates``: gradient steps; ``problems``: training problems seen."""
    problems: int = 0


def train(config: ReasonerConfig | None = None, out: str | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True,
          callback: Callable[[Mapping[str, Any]], None] | None = None, keep_network: bool = False) -> dict[str, Any]:
    """Train the reasoner and score greedy decoding on the held-out problems; returns the summary
    (``greedy_accuracy``, ``train_seconds``, ``parameters``, ...; with ``keep_network`` also ``model``)."""
    cfg = config if config is not None else ReasonerConfig()
    task = cfg.task
    held_out = held_out_problems(task, cfg.eval_problems)
    # The training stream skips a larger held-out set than the one scored, so --eval_problems can grow.
    excluded = {p.question for p in held_out_problems(task, max(cfg.eval_problems, 1000))}
    run = Run(out, "reasoner", cfg, resume=resume, overwrite=overwrite, progress=progress, callback=callback)
    device = run.device
    counters = ReasonerCounters()
    clock = Stopwatch(counters, device)
    model = build_networks(cfg)["model"].to(device)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay), lr=cfg.learning_rate,
                                  betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps))
    run.restore(model=model, optimizer=optimizer, scheduler=scheduler, counters=counters)

    def evaluate() -> float:
        with clock("evaluating"):
            return greedy_accuracy(model, held_out)

    loss_sum, tokens_sum = 0.0, 0
    with run.loop(cfg.steps, counters, f"reasoner {cfg.terms} terms"):
        while counters.step < cfg.steps:
            model.train()
            with clock("learning"):
                # Seeded by (seed, step): a resumed run draws the same problems as an uninterrupted one.
                rng = random.Random(cfg.seed * 10_000_019 + counters.step)
                problems = task.problems(cfg.batch_size, rng.getrandbits(62), exclude=excluded)
                inputs, targets = make_batch(problems, cfg.mask_question)
                inputs, targets = inputs.to(device), targets.to(device)
                logits = model(inputs)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
            counters.step += 1
            counters.updates += 1
            counters.problems += cfg.batch_size
            loss_sum += loss.item()
            tokens_sum += 1
            row = None
            if counters.step % cfg.log_every == 0 or counters.step == cfg.steps:
                row = {"step": counters.step, "loss": loss_sum / tokens_sum, "learning_rate": scheduler.get_last_lr()[0],
                       "wall_time": run.elapsed()}
                loss_sum, tokens_sum = 0.0, 0
                if cfg.eval_every and counters.step % cfg.eval_every == 0 and counters.step < cfg.steps:
                    row["greedy_accuracy"] = evaluate()
            postfix = {"loss": f"{row['loss']:.3f}"} if row else None
            run.end_iteration(counters.step, counters.step - 1, row, postfix=postfix)

    accuracy = evaluate()
    run.log({"step": counters.step, "greedy_accuracy": accuracy, "wall_time": run.elapsed()})
    run.save()
    summary = run.finish(run.summary(
        counters, greedy_accuracy=accuracy, eval_problems=len(held_out), train_seconds=counters.time_learning,
        eval_seconds=counters.time_evaluating, problems_seen=counters.problems,
        parameters=sum(p.numel() for p in model.parameters()), task=task.__dict__.copy()))
    return {**summary, "model": model} if keep_network else summary
