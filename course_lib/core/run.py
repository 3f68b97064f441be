"""A training run's files, clock and bookkeeping: the part every algorithm shares.

An algorithm's ``train`` function keeps its loop in plain sight and hands the
bookkeeping to :class:`Run` (and the helpers of :mod:`course_lib.core.loop`):

* ``DIR/metrics.jsonl`` — one row per update (:class:`~course_lib.core.metrics.MetricsLogger`);
* ``DIR/checkpoint.pt`` — written atomically every ``checkpoint_every`` steps and at the end,
  with the algorithm's state plus RNG states, the metrics log's position and the clock;
* ``DIR/summary.json`` — the final numbers, in one schema for every agent (:meth:`Run.summary`).

The shape of every ``train()``::

    run = Run(out, "ppo", cfg, resume=resume, overwrite=overwrite, progress=progress, callback=callback)
    ... build envs, networks, optimiser on run.device ...
    saved = run.restore(agent=agent, optimizer=optimizer, counters=counters, ...)  # None unless resuming
    with run.loop(total_steps, counters.step):
        while ...:
            ... act, compute targets, optimise ...
            run.end_iteration(counters.step, previous_step, row, extra=...)  # log, callback, bar, checkpoint, Ctrl-C
    ... final evaluation ...
    return run.finish(run.summary(counters, ...))

``Run(out, ..., resume=True)`` reads the checkpoint back, and :meth:`Run.restore` loads it into
the objects it is given and puts every RNG back. Ctrl-C (SIGINT) is held until the current
update finishes, then a checkpoint is written and :class:`KeyboardInterrupt` raised, so an
interrupted run loses nothing.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, ConfigError
from .device import resolve_device, rng_state, seed_everything, set_rng_state
from .loop import crossed
from .metrics import MetricsLogger, ProgressBar, read_metrics

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
# Settings a resumed run may change: where it runs, and how long it goes on.
RESUMABLE_CHANGES = ("device", "total_steps")


class RunExists(FileExistsError):
    """The output directory already holds a run and neither resume nor overwrite was asked for."""


def stored_config(out: str | os.PathLike) -> dict[str, Any]:
    """The config dict saved in ``out``'s checkpoint (for resuming from the command line)."""
    return load_checkpoint(Path(out) / CHECKPOINT)["config"]


class Run:
    """Files, clock, progress and interrupt handling of one training run (see the module docstring).

    Building a ``Run`` also resolves ``config.device`` (:attr:`device`) and seeds every
    generator with ``config.seed`` (deterministic kernels with ``config.deterministic``).

    Args:
      out: run directory, or None to keep metrics in memory only (no files, no resume).
      algo: algorithm name, stored in the checkpoint and summary.
      config: the run's validated config.
      resume: continue from ``out/checkpoint.pt``.
      overwrite: start afresh even if ``out`` already holds a run.
      progress: show a progress bar while the loop runs.
      callback: called with every metrics row (e.g. a :class:`~course_lib.viz.LiveCurve`).
      checkpoint_every: steps between checkpoints (default: ``config.checkpoint_every``).
    """

    def __init__(self, out: str | os.PathLike | None, algo: str, config: Config,
                 resume: bool = False, overwrite: bool = False, progress: bool = True,
                 callback: Callable[[Mapping[str, Any]], None] | None = None,
                 checkpoint_every: int | None = None):
        self.algo = algo
        self.config = config
        self.out = Path(out) if out is not None else None
        self.progress, self.callback = progress, callback
        self.checkpoint_every = (checkpoint_every if checkpoint_every is not None
                                 else getattr(config, "checkpoint_every", 0))
        self.rows: list[dict[str, Any]] = []
        self.restored: dict[str, Any] | None = None
        self._tracked: dict[str, Any] = {}
        self._elapsed_before = 0.0
        self._t0 = time.perf_counter()
        self._stop_requested = False
        self._bar: ProgressBar | None = None
        self._loop_start: float | None = None
        self._loop_seconds = 0.0
        self._steps_at_start = self._updates_at_start = 0
        self._counters: Any = None
        self.resumes = 0
        self._open(resume, overwrite)
        self.device = resolve_device(getattr(config, "device", "auto"))
        if hasattr(config, "seed"):
            seed_everything(config.seed, getattr(config, "deterministic", False))

    def _open(self, resume: bool, overwrite: bool) -> None:
        if self.out is None:
            if resume:
                raise ValueError("resume needs an output directory")
            self.logger = None
            return
        ckpt = self.out / CHECKPOINT
        for stale in self.out.glob(CHECKPOINT + ".*.tmp"):  # left by a kill during a save
            stale.unlink(missing_ok=True)
        if resume:
            if not ckpt.is_file():
                raise FileNotFoundError(f"no checkpoint to resume from in {self.out}")
            self.restored = load_checkpoint(ckpt)
            self._check_resumable(self.restored)
            self._elapsed_before = self.restored["elapsed"]
            self.resumes = self.restored["resumes"] + 1
            self.logger = MetricsLogger(self.out / METRICS, truncate_to=self.restored["metrics_position"])
            self.rows = read_metrics(self.out / METRICS)
        else:
            if ckpt.is_file() and not overwrite:
                raise RunExists(f"{self.out} already holds a run; pass --resume to continue it, "
                                "--overwrite to start again, or another --out")
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / SUMMARY).unlink(missing_ok=True)
            self.logger = MetricsLogger(self.out / METRICS)

    def _check_resumable(self, state: Mapping[str, Any]) -> None:
        if state["algo"] != self.algo:
            raise ConfigError(f"{self.out} holds a {state['algo']} run, not {self.algo}")
        stored, given = state["config"], self.config.to_dict()
        differ = [f"{k} (stored {stored[k]!r}, given {given[k]!r})" for k in stored
                  if k not in RESUMABLE_CHANGES and stored.get(k) != given.get(k)]
        if differ:
            raise ConfigError("a resumed run keeps its settings; these differ: " + "; ".join(differ))

    # ------------------------------------------------------------------ clock
    def elapsed(self) -> float:
        """Seconds this run has trained, summed over every process that worked on it."""
        return self._elapsed_before + time.perf_counter() - self._t0

    # ---------------------------------------------------------- save/restore
    def restore(self, **objects: Any) -> dict[str, Any] | None:
        """Name the objects a checkpoint holds, and load them when resuming.

        Each object has ``state_dict``/``load_state_dict`` (modules, optimisers, envs,
        counters, trackers, buffers) or is None (saved as None, skipped on load). Every later
        :meth:`save` stores them all. When resuming, each is loaded from the checkpoint and
        then every RNG is put back as it was (so call this after building everything whose
        construction draws random numbers). Returns the checkpoint's other entries (the
        ``extra`` of :meth:`save`, e.g. the current observations), or None on a fresh run.
        """
        self._tracked.update(objects)
        if self.restored is None:
            return None
        for name, obj in objects.items():
            if obj is not None:
                obj.load_state_dict(self.restored[name])
        set_rng_state(self.restored["rng"])
        return {k: v for k, v in self.restored.get("extra", {}).items()}

    def save(self, extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None) -> None:
        """Checkpoint every object named in :meth:`restore`, plus ``extra`` (a mapping or a
        function returning one, of tensors and plain values), with the run's own state
        (no-op without ``out``)."""
        if self.out is None:
            return
        if callable(extra):
            extra = extra()
        state = {name: (obj.state_dict() if obj is not None else None) for name, obj in self._tracked.items()}
        save_checkpoint(self.out / CHECKPOINT, {
            **to_cpu(state),
            "extra": to_cpu(dict(extra or {})),
            "algo": self.algo,
            "config": self.config.to_dict(),
            "rng": rng_state(),
            "elapsed": self.elapsed(),
            "resumes": self.resumes,
            "metrics_position": self.logger.position(),
        })

    # ------------------------------------------------------------------ loop
    @contextmanager
    def loop(self, total: int, counters: Any, desc: str | None = None) -> Iterator["Run"]:
        """The training loop's context: a progress bar from ``counters.step`` to ``total``, the
        loop clock (for steps and updates per second of this process), and Ctrl-C held until
        :meth:`end_iteration`. ``counters`` is the run's :class:`~course_lib.core.loop.Counters`
        (or just the step count the loop starts from)."""
        self._counters = counters if hasattr(counters, "step") else None
        step = counters.step if self._counters is not None else int(counters)
        self._bar = ProgressBar(total, desc or f"{self.algo} {getattr(self.config, 'env', '')}".strip(),
                                initial=step, enabled=self.progress)
        self._loop_start, self._steps_at_start = time.perf_counter(), step
        self._updates_at_start = getattr(self._counters, "updates", 0)
        with self:
            try:
                yield self
            finally:
                self._loop_seconds = time.perf_counter() - self._loop_start
                self._bar.close()

    def loop_seconds(self) -> float:
        """Seconds of this process's training loop so far (all of it once it ended)."""
        if self._loop_start is None:
            return 0.0
        return self._loop_seconds or (time.perf_counter() - self._loop_start)

    def steps_per_second(self, step: int | None = None) -> float | None:
        """Steps per second of this process's loop so far (or of the whole loop once it ended)."""
        step = self._counters.step if step is None else step
        seconds = self.loop_seconds()
        return (step - self._steps_at_start) / seconds if seconds > 0 else None

    def updates_per_second(self) -> float | None:
        """Gradient steps per second of this process's loop so far (or of the whole loop)."""
        seconds = self.loop_seconds()
        if self._counters is None or seconds <= 0:
            return None
        return (self._counters.updates - self._updates_at_start) / seconds

    def log(self, row: Mapping[str, Any]) -> None:
        row = dict(row)
        self.rows.append(row)
        if self.logger is not None:
            self.logger.log(row)

    def end_iteration(self, step: int, previous_step: int, row: Mapping[str, Any] | None = None, *,
                      postfix: Mapping[str, Any] | None = None,
                      extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
                      stop: bool = False) -> bool:
        """The tail of every loop iteration, in order: log ``row`` (if any), pass it to the
        callback, move the progress bar (showing ``postfix``), checkpoint when ``step`` crossed
        a multiple of ``checkpoint_every`` or the loop is to ``stop`` here (its target reached),
        and after a Ctrl-C checkpoint and raise :class:`KeyboardInterrupt`. Returns ``stop``,
        so a loop ends with ``if run.end_iteration(..., stop=reached): break``."""
        if row is not None:
            self.log(row)
            if self.callback is not None:
                self.callback(row)
        if self._bar is not None and (row is not None or postfix):
            self._bar.update(step, **dict(postfix or {}))
        if stop or crossed(step, previous_step, self.checkpoint_every):
            self.save(extra)
        if self._stop_requested:
            self.save(extra)
            where = f"; continue with --resume --out {self.out}" if self.out else ""
            raise KeyboardInterrupt(f"interrupted at step {step:,}{where}")
        return stop

    # ------------------------------------------------------------- interrupts
    def __enter__(self) -> "Run":
        self._previous_handler = None
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self._stop_requested = True

    # ---------------------------------------------------------------- summary
    def summary(self, counters: Any, *, episodes: Any = None, eval_returns: list[float] | None = None,
                evaluation: Any = None, target: Any = None, **extra: Any) -> dict[str, Any]:
        """The summary every agent reports, in one schema (fields that do not apply are None).

        ``counters`` is the run's :class:`~course_lib.core.loop.Counters`; ``episodes`` its
        :class:`~course_lib.core.metrics.EpisodeTracker` (training returns); ``eval_returns``
        the final greedy evaluation's returns (single-agent envs) or ``evaluation`` its
        result (board games: wins/draws/losses); ``target`` the
        :class:`~course_lib.core.loop.TargetTracker`. ``extra`` adds the agent's own fields.

        ``train_seconds`` is the run's wall clock minus evaluation time; ``steps_per_second``
        counts this process's steps per second of its loop.
        """
        cfg = self.config
        train_return = None
        if episodes is not None and episodes.recent_returns:
            train_return = episodes.mean_return()
        out = {
            "env": getattr(cfg, "env", None),
            "env_backend": getattr(cfg, "env_backend", None),
            "seed": getattr(cfg, "seed", None),
            "total_steps": counters.step,
            "updates": counters.updates,
            "episodes": episodes.episodes if episodes is not None else None,
            "eval_return": sum(eval_returns) / len(eval_returns) if eval_returns else None,
            "eval_returns": eval_returns,
            "evaluation": evaluation,
            "train_return": train_return,
            "steps_per_second": self.steps_per_second(counters.step),
            "updates_per_second": self.updates_per_second(),
            "wall_seconds": self.elapsed(),
            "train_seconds": self.elapsed() - counters.time_evaluating,
            "time_acting": counters.time_acting,
            "time_learning": counters.time_learning,
            "time_evaluating": counters.time_evaluating,
            **(target.summary() if target is not None else
               {"target_return": getattr(cfg, "target_return", None), "time_to_target": None,
                "steps_to_target": None}),
            "device": str(self.device),
        }
        return {**out, **extra}

    def finish(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``summary.json`` (with the algorithm, resume count and config) and return it."""
        summary = {"algo": self.algo, **summary, "resumes": self.resumes, "config": self.config.to_dict()}
        if self.logger is not None:
            self.logger.close()
        if self.out is not None:
            tmp = self.out / (SUMMARY + ".tmp")
            tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.out / SUMMARY)
        return summary


def to_cpu(tree: Any) -> Any:
    """A copy of a (nested) state dict with every tensor moved to the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a NamedTuple
        return type(tree)(*(to_cpu(v) for v in tree))
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_cpu(v) for v in tree)
    return tree
