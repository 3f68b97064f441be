"""Metrics: a JSONL log per run, a progress bar and episode bookkeeping (curves: :mod:`course_lib.viz.curves`)."""
from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

# Keys whose values depend on the machine's speed, not on the run's arithmetic. A resumed
# run matches an uninterrupted one in everything else.
TIMING_KEYS = frozenset({"wall_time", "steps_per_second", "time_acting", "time_learning"})


class MetricsLogger:
    """Appends one JSON object per line to ``path``.

    ``position()`` is the byte offset after the last complete line; a checkpoint stores
    it and a resumed run passes it back as ``truncate_to`` so that lines written after
    the checkpoint (which the resumed run will write again) are dropped first.
    """

    def __init__(self, path: str | os.PathLike, truncate_to: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_to is None:
            self._file = open(self.path, "w", encoding="utf-8")
        else:
            self._file = open(self.path, "a+", encoding="utf-8")
            self._file.truncate(truncate_to)
            self._file.seek(truncate_to)

    def log(self, row: Mapping[str, Any]) -> None:
        self._file.write(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n")
        self._file.flush()

    def position(self) -> int:
        self._file.flush()
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


def _plain(value: Any) -> Any:
    """JSON-friendly scalars: tensors and NumPy numbers become Python numbers, NaN becomes null."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file (a run directory works too)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class EpisodeTracker:
    """Running returns of N parallel environments, kept on their device.

    ``step(reward, done)`` adds each reward to its environment's running return and
    records the returns (and lengths) of the episodes that ended. Nothing leaves the
    device until ``drain()``, so a GPU rollout needs one transfer per rollout, not
    one per step. ``recent`` keeps the last ``window`` finished episodes.
    """

    def __init__(self, num_envs: int, device: torch.device, window: int = 20):
        self.returns = torch.zeros(num_envs, device=device)
        self.lengths = torch.zeros(num_envs, dtype=torch.long, device=device)
        self._done_returns: list[torch.Tensor] = []
        self._done_lengths: list[torch.Tensor] = []
        self.recent_returns: deque[float] = deque(maxlen=window)
        self.recent_lengths: deque[int] = deque(maxlen=window)
        self.episodes = 0

    def step(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        self.returns += reward
        self.lengths += 1
        # Keep the full vectors and the mask; select on drain (selection needs a sync).
        self._done_returns.append(torch.where(done, self.returns, torch.nan))
        self._done_lengths.append(torch.where(done, self.lengths, -1))
        keep = ~done
        self.returns *= keep
        self.lengths *= keep

    def drain(self, with_lengths: bool = False) -> list[float] | tuple[list[float], list[int]]:
        """Move finished episodes to ``recent``; return their returns in the order they ended
        (and their lengths, with ``with_lengths``)."""
        if not self._done_returns:
            return ([], []) if with_lengths else []
        rets = torch.stack(self._done_returns).cpu()
        lens = torch.stack(self._done_lengths).cpu()
        self._done_returns.clear()
        self._done_lengths.clear()
        mask = ~torch.isnan(rets)
        finished, lengths = rets[mask].tolist(), lens[mask].tolist()
        self.recent_returns.extend(finished)
        self.recent_lengths.extend(lengths)
        self.episodes += len(finished)
        return (finished, lengths) if with_lengths else finished

    def record(self, returns: Iterable[float], lengths: Iterable[int]) -> None:
        """Add episodes that finished elsewhere (IMPALA's actors track their own and send the results)."""
        returns, lengths = list(returns), list(lengths)
        self.recent_returns.extend(returns)
        self.recent_lengths.extend(lengths)
        self.episodes += len(returns)

    def mean_return(self) -> float:
        return sum(self.recent_returns) / len(self.recent_returns) if self.recent_returns else float("nan")

    def mean_length(self) -> float:
        return sum(self.recent_lengths) / len(self.recent_lengths) if self.recent_lengths else float("nan")

    def state_dict(self) -> dict[str, Any]:
        self.drain()
        return {
            "returns": self.returns.cpu(), "lengths": self.lengths.cpu(),
            "recent_returns": list(self.recent_returns), "recent_lengths": list(self.recent_lengths),
            "episodes": self.episodes,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.returns.copy_(state["returns"])
        self.lengths.copy_(state["lengths"])
        self.recent_returns.clear()
        self.recent_returns.extend(state["recent_returns"])
        self.recent_lengths.clear()
        self.recent_lengths.extend(state["recent_lengths"])
        self.episodes = state["episodes"]


def in_notebook() -> bool:
    """True inside a Jupyter (or Colab) kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ in ("ZMQInteractiveShell", "Shell")


class ProgressBar:
    """A tqdm bar over environment steps showing recent return and steps/s.

    In a terminal it is tqdm's text bar. In Jupyter (and Colab) it is tqdm's notebook widget,
    displayed as one output whose MIME bundle carries, besides the widget view, a static copy
    of the bar (``text/html`` and ``text/plain``) that :meth:`close` rewrites with the final
    state: a widget needs a running kernel, so a saved notebook, and the book built from it
    (which prefers ``text/html`` to a widget view, see ``_config.yml``), show that copy.
    ``enabled=False`` makes every call a no-op (tests, benchmarks).
    """

    def __init__(self, total: int, desc: str, initial: int = 0, enabled: bool = True):
        self._bar = None
        self._handle = None  # the notebook output holding the widget and its static copy
        self._last = initial
        self._t0 = time.perf_counter()
        self._start_step = initial
        if not enabled:
            return
        options = dict(total=total, initial=initial, desc=desc, unit="step", unit_scale=True,
                       dynamic_ncols=True, mininterval=0.5)
        if in_notebook():
            try:
                from tqdm.notebook import tqdm as notebook_tqdm
                self._bar = notebook_tqdm(**options, display=False)  # displayed below, with its copy
            except ImportError:  # ipywidgets missing (tqdm raises on construction): the text bar
                self._bar = None
            else:
                from IPython.display import display
                self._handle = display(self._mime_bundle(), raw=True, display_id=True)
                return
        from tqdm import tqdm
        self._bar = tqdm(**options)

    def update(self, step: int, **postfix: float) -> None:
        if self._bar is None:
            return
        self._bar.update(step - self._last)
        self._last = step
        elapsed = time.perf_counter() - self._t0
        shown = {"steps/s": f"{(step - self._start_step) / max(elapsed, 1e-9):,.0f}"}
        for key, value in postfix.items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                shown[key] = f"{value:.1f}" if isinstance(value, float) else value
        self._bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        """Close the bar; a run that stopped early (target reached) shows as complete, not failed."""
        if self._bar is None:
            return
        if self._bar.total and self._bar.n < self._bar.total:
            self._bar.total = self._bar.n
            container = getattr(self._bar, "container", None)  # tqdm.notebook's widget box
            if container is not None:
                container.children[1].max = self._bar.n
            self._bar.refresh()
        self._bar.close()
        if self._handle is not None:
            self._handle.update(self._mime_bundle(), raw=True)
            self._handle = None

    def _mime_bundle(self) -> dict[str, Any]:
        """The notebook output: the widget's view, then a static copy drawn from the widget's state."""
        left, bar, right = self._bar.container.children  # tqdm.notebook: description, bar, statistics
        fraction = min(max(bar.value / bar.max, 0.0), 1.0) if bar.max else 1.0
        colour = _BAR_COLOURS.get(bar.bar_style, _BAR_COLOURS[""])
        # left.value and right.value are already HTML-escaped by tqdm (they are HTML widgets).
        # The bar keeps its width; the statistics wrap under it when the line is too narrow.
        html = (f"<div class='course-progress' style='display:flex;flex-wrap:wrap;align-items:center;"
                f"column-gap:8px;margin:2px 0;font-variant-numeric:tabular-nums'>"
                f"<span style='white-space:pre'>{left.value}</span>"
                f"<div role='progressbar' aria-valuemin='0' aria-valuemax='{bar.max:g}' aria-valuenow='{bar.value:g}' "
                f"style='flex:0 0 240px;height:14px;background:#e0e0e0;border-radius:2px;overflow:hidden'>"
                f"<div style='width:{100 * fraction:.1f}%;height:100%;background:{colour}'></div></div>"
                f"<span style='white-space:pre'>{right.value}</span></div>")
        text = self._bar.format_meter(**{**self._bar.format_dict, "ncols": 100})
        view = {"version_major": 2, "version_minor": 0, "model_id": self._bar.container.model_id}
        return {"application/vnd.jupyter.widget-view+json": view, "text/html": html, "text/plain": text}


# ipywidgets' colours for a bar's bar_style ("" while running, "success" when closed, "danger" on error)
_BAR_COLOURS = {"": "#2196f3", "success": "#4caf50", "danger": "#f44336", "info": "#00bcd4", "warning": "#ff9800"}

