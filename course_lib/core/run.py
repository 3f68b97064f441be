"""A training run's files and clock: the part every algorithm shares.

An algorithm's ``train`` function keeps its loop in plain sight and hands the
bookkeeping to :class:`Run`:

* ``DIR/metrics.jsonl`` — one row per update (:class:`~course_lib.core.metrics.MetricsLogger`);
* ``DIR/checkpoint.pt`` — written atomically every ``checkpoint_every`` steps and at the end,
  with the algorithm's state plus RNG states, the metrics log's position and the clock;
* ``DIR/summary.json`` — the final numbers.

``Run(out, ..., resume=True)`` reads the checkpoint back; the algorithm restores its
own pieces from ``run.restored``, calls ``run.restore_rng()`` and continues. Ctrl-C (SIGINT) is held until the
current update finishes, then a checkpoint is written and :class:`KeyboardInterrupt`
raised, so an interrupted run loses nothing.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, ConfigError
from .device import rng_state, set_rng_state
from .metrics import MetricsLogger, read_metrics

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
    """Files, clock and interrupt handling of one training run (see the module docstring).

    Args:
      out: run directory, or None to keep metrics in memory only (no files, no resume).
      algo: algorithm name, stored in the checkpoint and summary.
      config: the run's validated config.
      resume: continue from ``out/checkpoint.pt``.
      overwrite: start afresh even if ``out`` already holds a run.
    """

    def __init__(self, out: str | os.PathLike | None, algo: str, config: Config,
                 resume: bool = False, overwrite: bool = False):
        self.algo = algo
        self.config = config
        self.out = Path(out) if out is not None else None
        self.rows: list[dict[str, Any]] = []
        self.restored: dict[str, Any] | None = None
        self._elapsed_before = 0.0
        self._t0 = time.perf_counter()
        self._stop_requested = False
        self.resumes = 0
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

    # ---------------------------------------------------------------- metrics
    def log(self, row: Mapping[str, Any]) -> None:
        row = dict(row)
        self.rows.append(row)
        if self.logger is not None:
            self.logger.log(row)

    # ------------------------------------------------------------ checkpoints
    def save(self, state: Mapping[str, Any]) -> None:
        """Checkpoint the algorithm's ``state`` with the run's own (no-op without ``out``)."""
        if self.out is None:
            return
        save_checkpoint(self.out / CHECKPOINT, {
            **state,
            "algo": self.algo,
            "config": self.config.to_dict(),
            "rng": rng_state(),
            "elapsed": self.elapsed(),
            "resumes": self.resumes,
            "metrics_position": self.logger.position(),
        })

    def restore_rng(self) -> None:
        """Put every RNG back as checkpointed. Call it after building and restoring
        models and envs, whose construction draws random numbers."""
        if self.restored is not None:
            set_rng_state(self.restored["rng"])

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
        if self.logger is not None:
            self.logger.close()

    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self._stop_requested = True

    def stop_if_interrupted(self, state_fn, step: int) -> None:
        """Call at an update boundary: after a Ctrl-C, checkpoint ``state_fn()`` and stop."""
        if not self._stop_requested:
            return
        self.save(state_fn())
        where = f"; continue with --resume --out {self.out}" if self.out else ""
        raise KeyboardInterrupt(f"interrupted at step {step:,}{where}")

    # ---------------------------------------------------------------- summary
    def standard_summary(self, config: Config, counters: Mapping[str, Any], episodes, eval_returns: list[float],
                         steps_trained: int, train_seconds: float, device) -> dict[str, Any]:
        """The summary fields every algorithm reports, from its counters and episode tracker.

        ``counters`` holds ``step``, ``time_acting``, ``time_learning``, ``time_evaluating``,
        ``time_to_target`` and ``steps_to_target``; ``steps_trained`` and ``train_seconds``
        cover this process's training loop (for ``steps_per_second``).
        """
        return {
            "env": config.env,
            "env_backend": config.env_backend,
            "seed": config.seed,
            "total_steps": counters["step"],
            "eval_return": sum(eval_returns) / len(eval_returns),
            "eval_returns": eval_returns,
            "train_return": episodes.mean_return(),
            "episodes": episodes.episodes,
            "steps_per_second": steps_trained / train_seconds if train_seconds > 0 else None,
            "wall_seconds": self.elapsed(),
            "time_acting": counters["time_acting"],
            "time_learning": counters["time_learning"],
            "time_evaluating": counters["time_evaluating"],
            "target_return": config.target_return,
            "time_to_target": counters["time_to_target"],
            "steps_to_target": counters["steps_to_target"],
            "device": str(device),
        }

    def finish(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        summary = {"algo": self.algo, **summary, "resumes": self.resumes, "config": self.config.to_dict()}
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
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_cpu(v) for v in tree)
    return tree
