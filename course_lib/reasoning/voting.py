r"""Self-consistency's last two steps: read each sampled path's final answer, then aggregate.

Self-consistency (Wang et al., 2023) replaces the one greedy chain of thought by K sampled
ones and keeps the answer most of them reach,

.. math::
    \hat a = \arg\max_a \sum_{k=1}^{K} w_k\, \mathbb 1[a_k = a],

with :math:`w_k = 1` (majority vote) or a verifier's score of path :math:`k` (weighted vote).
Paths whose answer cannot be read count for nothing: a malformed path is "no answer"
(``None``), never a guess.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, NamedTuple, Sequence, Union

__all__ = ["Answer", "Vote", "extract_answer", "majority_vote", "weighted_vote", "consensus_vote"]

Answer = Union[int, float]

# "answer:" then one number, alone on its line (end of text, newline or an end token may follow).
_ANSWER = re.compile(r"answer:[ \t]*([+-]?[0-9]{1,18}(?:\.[0-9]{1,12})?)[ \t]*(?:$|\n|<eos>|\.$|\.\n)")
_MARKER = re.compile(r"answer:")


def extract_answer(path: str) -> Answer | None:
    """The number on the first ``answer:`` line of a generated path, or None ("no answer").

    A path is read up to its first ``answer:``; the answer is one integer or decimal number
    (sign allowed, at most 18 digits), alone on the rest of that line. Anything else is no
    answer: no marker, no number, a number followed by other text (``answer: 12x``,
    ``answer: 3 or 4``), a bare sign, a marker that is cut off. Integers come back as
    ``int``, decimals as ``float``.
    """
    if not isinstance(path, str):
        raise TypeError(f"path must be a str; got {type(path).__name__}")
    first = _MARKER.search(path)
    if first is None:
        return None
    match = _ANSWER.match(path, first.start())
    if match is None:
        return None
    text = match.group(1)
    return float(text) if "." in text else int(text)


class Vote(NamedTuple):
    """An aggregate of K answers: the ``answer`` chosen (None when no path had one), its ``support``
    (votes or summed weight), the ``share`` of the total, and every answer's ``tally``."""

    answer: Answer | None
    support: float
    share: float
    tally: dict


def _check(answers: Sequence[Answer | None]) -> None:
    for a in answers:
        if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a)):
            raise ValueError(f"answers must be finite numbers or None; got {a!r}")


def _winner(tally: dict, order: list) -> Vote:
    total = sum(tally.values())
    if not tally or total <= 0:
        return Vote(None, 0.0, 0.0, dict(tally))
    best = max(tally.values())
    answer = next(a for a in order if tally.get(a) == best)        # ties: the answer sampled first
    return Vote(answer, float(best), best / total, dict(tally))


def majority_vote(answers: Sequence[Answer | None]) -> Vote:
    """The answer most paths reach (``None`` answers do not vote; ties go to the one sampled first)."""
    _check(answers)
    votes = [a for a in answers if a is not None]
    return _winner(Counter(votes), list(dict.fromkeys(votes)))


def weighted_vote(answers: Sequence[Answer | None], weights: Iterable[float]) -> Vote:
    """Each path votes with its weight (e.g. a verifier's probability that the path is right)."""
    _check(answers)
    weights = [float(w) for w in weights]
    if len(weights) != len(answers):
        raise ValueError(f"need one weight per answer; got {len(weights)} weights for {len(answers)} answers")
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError("weights must be finite and >= 0")
    tally: dict = {}
    for a, w in zip(answers, weights):
        if a is not None:
            tally[a] = tally.get(a, 0.0) + w
    return _winner(tally, [a for a in dict.fromkeys(answers) if a is not None])


def consensus_vote(answers: Sequence[Answer | None], *, rel_tol: float = 1e-6, abs_tol: float = 1e-9,
                   min_share: float = 0.5) -> tuple[Vote, bool]:
    """Majority vote in which answers within ``rel_tol``/``abs_tol`` of each other count as one
    (``0.5`` and ``0.4999999``), and whether the winner holds at least ``min_share`` of the paths that
    gave an answer: ``(vote, agreed)``. A consensus below ``min_share`` is a signal to check
    further (a tool, a verifier) rather than to trust the vote."""
    _check(answers)
    groups: list[list[Answer]] = []
    for a in answers:
        if a is None:
            continue
        for group in groups:
            if math.isclose(a, group[0], rel_tol=rel_tol, abs_tol=abs_tol):
                group.append(a)
                break
        else:
            groups.append([a])
    tally = {g[0]: float(len(g)) for g in groups}
    vote = _winner(tally, [g[0] for g in groups])
    return vote, vote.answer is not None and vote.share >= min_share
