"""Self-consistency as the lecture's four steps, and its accuracy as K grows.

1. prompt: the problem's question;
2. sample K reasoning paths (one batch through the key/value cache: :func:`~course_lib.reasoning.decoding.sample_paths`);
3. extract each path's final answer (:func:`~course_lib.reasoning.voting.extract_answer`; malformed: no answer);
4. aggregate (:func:`~course_lib.reasoning.voting.majority_vote`, or a weighted or tolerance vote).

    python -m course_lib.reasoning.self_consistency RUN_DIR [--n 200] [--temperature 0.8] [--seeds 0 1 2]

measures a trained reasoner (``train reasoner``): greedy accuracy on the held-out problems, and the
accuracy of the vote over the first K of K_max sampled paths for K = 1, 2, 5, 10, 20, 40, per sampling
seed, with the mean, min and max over seeds (one JSON line each).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Callable, Sequence

import torch

from ..language import CharTokenizer
from ..nets.transformer import GPT
from .decoding import greedy_paths, sample_paths
from .voting import Answer, Vote, extract_answer, majority_vote

__all__ = ["self_consistency", "vote_curve"]


def self_consistency(model: GPT, tok: CharTokenizer, questions: Sequence[str], k: int, *, temperature: float = 0.8,
                     top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                     vote: Callable[[Sequence[Answer | None]], Vote] = majority_vote) -> tuple[list[Vote], list[list[str]]]:
    """The four steps for each question: ``(votes, paths)``, one :class:`Vote` and K paths per question."""
    paths = sample_paths(model, tok, list(questions), k, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    return [vote([extract_answer(p) for p in row]) for row in paths], paths


def vote_curve(model: GPT, tok: CharTokenizer, questions: Sequence[str], answers: Sequence[Answer], *,
               ks: Sequence[int] = (1, 2, 5, 10, 20, 40), seeds: Sequence[int] = (0, 1, 2), temperature: float = 0.8,
               top_k: int | None = None, top_p: float | None = None) -> dict:
    """Greedy accuracy, and majority-vote accuracy over the first K of ``max(ks)`` paths for every K and seed.

    Returns ``{"greedy", "curves": [{K: accuracy} per seed], "mean"/"min"/"max": {K: ...},
    "path_accuracy": [share of single paths right, per seed], "seconds": [sampling time per seed]}``.
    """
    n, kmax = len(questions), max(ks)
    greedy = [extract_answer(p) for p in greedy_paths(model, tok, list(questions))]
    right = lambda got, want: got is not None and got == want                     # no answer is never right
    out = {"greedy": sum(right(g, a) for g, a in zip(greedy, answers)) / n, "curves": [], "path_accuracy": [],
           "seconds": []}
    for seed in seeds:
        start = time.perf_counter()
        paths = sample_paths(model, tok, list(questions), kmax, temperature=temperature, top_k=top_k, top_p=top_p,
                             seed=seed)
        out["seconds"].append(time.perf_counter() - start)
        read = [[extract_answer(p) for p in row] for row in paths]
        out["curves"].append({k: sum(right(majority_vote(r[:k]).answer, a) for r, a in zip(read, answers)) / n
                              for k in ks})
        out["path_accuracy"].append(sum(right(x, a) for r, a in zip(read, answers) for x in r) / (n * kmax))
    for name, fn in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
        out[name] = {k: fn([c[k] for c in out["curves"]]) for k in ks}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    from ..agents import load_agent
    from .tasks import held_out_problems, tokenizer

    ap = argparse.ArgumentParser(prog="python -m course_lib.reasoning.self_consistency")
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10, 20, 40])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    agent = load_agent(args.run)
    problems = held_out_problems(agent.config.task, args.n)
    result = vote_curve(agent.model, tokenizer(), [p.question for p in problems], [p.answer for p in problems],
                        ks=args.ks, seeds=args.seeds, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p)
    print(json.dumps({"run": args.run, "n": args.n, "temperature": args.temperature, **result}))


if __name__ == "__main__":
    main()
