"""The "votes per K" explorer: how the histogram of sampled answers, and the voted answer, change as K grows.

For each problem, the answers of its sampled paths in the order they were drawn; the frame for
``K`` counts the first ``K`` of them (as if only ``K`` had been sampled), draws one bar per answer,
marks the majority-vote winner and the correct answer, and says whether the vote is right.
Live with a kernel (a slider over every K), and in the book as precomputed frames over the
chosen K values (:func:`~course_lib.viz.figures.figure_explorer`).

Example::

    votes_explorer({"problem 3": [47, 47, 12, None, 47]}, {"problem 3": 47}, ks=(1, 2, 5))
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..reasoning.voting import Answer, majority_vote
from .figures import figure_explorer
from .live import LiveAndStatic
from .page import Slider

__all__ = ["votes_figure", "votes_explorer"]

NO_ANSWER = "no answer"


def _label(a: Answer | None) -> str:
    return NO_ANSWER if a is None else f"{a:g}" if isinstance(a, float) else str(a)


def votes_figure(answers: Sequence[Answer | None], k: int, correct: Answer | None = None, title: str | None = None,
                 max_bars: int = 12):
    """Bar chart of the first ``k`` answers (most frequent first, at most ``max_bars`` bars, the rest
    summed as "other"); the winner of the majority vote in orange, the correct answer outlined."""
    import matplotlib.pyplot as plt

    if not 1 <= k <= len(answers):
        raise ValueError(f"k must be between 1 and the {len(answers)} answers; got {k}")
    first = list(answers[:k])
    vote = majority_vote(first)
    counts: dict[str, int] = {}
    for a in first:
        counts[_label(a)] = counts.get(_label(a), 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    if len(ordered) > max_bars:
        ordered = ordered[:max_bars - 1] + [("other", sum(c for _, c in ordered[max_bars - 1:]))]
    labels = [name for name, _ in ordered]
    fig, ax = plt.subplots(figsize=(6, 3))
    winner, right = _label(vote.answer), _label(correct) if correct is not None else None
    colors = ["tab:orange" if name == winner else "#bbbbbb" if name == NO_ANSWER else "tab:blue" for name in labels]
    bars = ax.bar(range(len(labels)), [c for _, c in ordered], color=colors)
    for bar, name in zip(bars, labels):
        if name == right:
            bar.set_edgecolor("black")
            bar.set_linewidth(2.5)
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0)
    ax.set_ylabel("paths")
    verdict = "no answer" if vote.answer is None else (
        "right" if correct is not None and vote.answer == correct else "wrong" if correct is not None else "")
    ax.set_title(title or f"K = {k}: voted {winner} ({vote.share:.0%} of the answers) {verdict}".rstrip())
    fig.tight_layout()
    return fig


def votes_explorer(answers: Mapping[str, Sequence[Answer | None]], correct: Mapping[str, Answer] | None = None, *,
                   ks: Sequence[int] = (1, 2, 5, 10, 20, 40), live: bool = True) -> LiveAndStatic:
    """Sliders for the problem and for K over :func:`votes_figure`.

    Args:
      answers: ``{problem label: its paths' answers in sampling order}`` (every problem with at
        least ``max(ks)`` answers).
      correct: ``{problem label: the right answer}`` (optional).
      ks: the K values of the book's static frames (the live slider takes every K).
    """
    if not answers:
        raise ValueError("answers needs at least one problem")
    shortest = min(len(v) for v in answers.values())
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1 or ks[-1] > shortest:
        raise ValueError(f"ks must lie in 1..{shortest} (the fewest answers of a problem); got {ks}")
    correct = dict(correct or {})
    names = list(answers)

    def draw(problem: str, K: int):
        return votes_figure(answers[problem], K, correct.get(problem))

    sliders = [Slider("problem", names, label="problem", texts=names), Slider("K", ks, label="K", start=-1)]
    controls = None
    if live:
        import ipywidgets as widgets

        controls = {"problem": widgets.Dropdown(options=names, value=names[0]),
                    "K": widgets.IntSlider(min=1, max=shortest, value=ks[-1])}
    return figure_explorer(draw, sliders, kind="votes", live=controls, title="Self-consistency: votes per K")
