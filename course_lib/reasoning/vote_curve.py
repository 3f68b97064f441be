"""Measure greedy accuracy and majority-vote accuracy over K sampled paths of a trained reasoner.

    python -m course_lib.reasoning.vote_curve RUN_DIR [--n 200] [--temperature 0.8] [--seeds 0 1 2] [--k 40]

Samples K_max paths per held-out problem once per seed and scores the vote of the first K paths for
K = 1, 2, 5, 10, 20, 40 (a simple local majority; ties go to the answer reached first; paths without
an answer do not vote). Prints a JSON line per seed and the mean / min / max over seeds.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import torch

from course_lib.agents import load_agent
from course_lib.agents.reasoner import answer_of
from course_lib.reasoning.decoding import greedy_paths, sample_paths
from course_lib.reasoning.tasks import held_out_problems, tokenizer


def vote(answers):
    counts = Counter(a for a in answers if a is not None)
    return counts.most_common(1)[0][0] if counts else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10, 20, 40])
    args = ap.parse_args()
    torch.set_num_threads(1)
    agent = load_agent(args.run)
    model, tok = agent.model, tokenizer()
    problems = held_out_problems(agent.config.task, args.n)
    questions = [p.question for p in problems]
    t0 = time.perf_counter()
    greedy = greedy_paths(model, tok, questions)
    greedy_acc = sum(answer_of(g) == p.answer for g, p in zip(greedy, problems)) / len(problems)
    print(json.dumps({"greedy": greedy_acc, "seconds": time.perf_counter() - t0}), flush=True)
    kmax = max(args.ks)
    curves = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        paths = sample_paths(model, tok, questions, kmax, temperature=args.temperature, top_k=args.top_k,
                             top_p=args.top_p, seed=seed)
        answers = [[answer_of(t) for t in row] for row in paths]
        curve = {k: sum(vote(a[:k]) == p.answer for a, p in zip(answers, problems)) / len(problems) for k in args.ks}
        single = sum(a == p.answer for row, p in zip(answers, problems) for a in row) / (len(problems) * kmax)
        curves.append(curve)
        print(json.dumps({"seed": seed, "curve": curve, "mean_path_accuracy": single,
                          "seconds": time.perf_counter() - t0}), flush=True)
    summary = {k: {"mean": sum(c[k] for c in curves) / len(curves), "min": min(c[k] for c in curves),
                   "max": max(c[k] for c in curves)} for k in args.ks}
    print(json.dumps({"greedy": greedy_acc, "temperature": args.temperature, "n": args.n, "vote": summary}))


if __name__ == "__main__":
    main()
