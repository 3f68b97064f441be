"""Learning curves: plot a run's metrics, smooth them, and redraw a curve live while a notebook trains.

Example::

    from course_lib.viz import LiveCurve, plot_learning_curve
    curve = LiveCurve(target=475)
    run = train(config, out="runs/ppo", callback=curve)
    curve.close()
    plot_learning_curve({"PPO": "runs/ppo"}, target=475)
"""
from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.metrics import in_notebook, read_metrics

__all__ = ["LiveCurve", "plot_learning_curve", "smooth"]


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (shorter at the start), for noisy curves."""
    out, acc, buf = [], 0.0, deque()
    for v in values:
        buf.append(v)
        acc += v
        if len(buf) > window:
            acc -= buf.popleft()
        out.append(acc / len(buf))
    return out


def plot_learning_curve(
    runs: str | os.PathLike | Iterable | Mapping[str, Any],
    y: str = "episode_return",
    x: str = "step",
    target: float | None = None,
    smooth_window: int = 1,
    ax=None,
    title: str | None = None,
):
    """Plot ``y`` against ``x`` for one or several runs; returns the matplotlib Axes.

    ``runs`` is a run directory or ``metrics.jsonl`` path, a list of them, a list of
    metric rows, or a mapping from a label to any of these.
    """
    import matplotlib.pyplot as plt

    if isinstance(runs, Mapping):
        labelled = list(runs.items())
    elif isinstance(runs, (str, os.PathLike)):
        labelled = [(Path(runs).name, runs)]
    else:
        runs = list(runs)
        if runs and isinstance(runs[0], Mapping):
            labelled = [(None, runs)]
        else:
            labelled = [(Path(r).name, r) for r in runs]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, run in labelled:
        rows = run if isinstance(run, list) else read_metrics(run)
        pts = [(r[x], r[y]) for r in rows if r.get(y) is not None and r.get(x) is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, smooth(list(ys), smooth_window), label=label)
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    if title:
        ax.set_title(title)
    if any(label for label, _ in labelled) or target is not None:
        ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


class LiveCurve:
    """A learning curve that redraws in place while a notebook trains.

    Pass it as ``callback=`` to a ``train`` function: it is called with each metrics row
    and redraws at most every ``every`` seconds (and once more on ``close()``).
    Outside a notebook it only collects the rows.
    """

    def __init__(self, y: str = "episode_return", x: str = "step", target: float | None = None,
                 every: float = 2.0, title: str | None = None):
        self.rows: list[dict[str, Any]] = []
        self.y, self.x, self.target, self.every, self.title = y, x, target, every, title
        self._handle = None
        self._last = 0.0

    def __call__(self, row: Mapping[str, Any]) -> None:
        self.rows.append(dict(row))
        if time.perf_counter() - self._last >= self.every:
            self.draw()

    def draw(self) -> None:
        if not in_notebook():
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig, ax = plt.subplots(figsize=(6, 3.5))
        plot_learning_curve(self.rows, y=self.y, x=self.x, target=self.target, ax=ax, title=self.title)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)
        self._last = time.perf_counter()

    def close(self) -> None:
        self.draw()
