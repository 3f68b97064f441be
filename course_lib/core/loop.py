r"""The training-loop kit: the bookkeeping every agent's ``train()`` shares.

An agent's loop body (act, compute targets, optimise) stays in its own ``train()``, in
plain sight, as in CleanRL. What surrounds it comes from here and from
:class:`~course_lib.core.run.Run`:

* :class:`Counters` — typed counters (steps, iterations, updates, seconds per phase),
  saved with every checkpoint; an agent subclasses it to add its own.
* :class:`Stopwatch` — ``with clock("acting"):`` adds the block's seconds to
  ``counters.time_acting``, waiting for queued GPU work first so that a phase's time is
  the time of its work, not of its kernel launches.
* :class:`MeanStats` — means of per-update diagnostics kept on the device, so a GPU loop
  waits for the device once per metrics row, not once per update.
* :func:`crossed` — "did ``step`` just pass a multiple of ``every``?", the test behind every
  "log / evaluate / checkpoint every N steps".
* :class:`TargetTracker` — periodic greedy evaluations, and the one meaning of
  ``target_return``, ``time_to_target`` and ``stop_at_target`` (below).

The target, in one place
------------------------
``target_return`` is the return that counts as solved. The *score* it is compared with is
the mean return of the latest periodic greedy evaluation when there are periodic evaluations
(``eval_every > 0``), and
otherwise the moving average of the last :data:`RETURN_WINDOW` finished training episodes
(once that many have finished). ``steps_to_target`` is the step count and
``time_to_target`` the training seconds (wall clock, evaluations excluded) at the first
score at or above the target. With ``stop_at_target`` the run stops there, provided the
policy's greedy version agrees: a score from training episodes (a stochastic policy) is
confirmed first by a greedy evaluation on :data:`CONFIRM_EPISODES` fresh episodes; a
score from a greedy evaluation is its own confirmation.
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import torch

from .device import synchronize

# Training episodes in the moving-average return (EpisodeTracker's window).
RETURN_WINDOW = 20
# Greedy episodes that must confirm a target reached by training returns before stop_at_target stops a run.
CONFIRM_EPISODES = 100
# Seeds of evaluations, far apart so that no two evaluations (nor training) share episodes:
# the k-th periodic evaluation uses seed + PERIODIC_EVAL_SEED_STRIDE * k; a confirmation at
# loop iteration i uses seed + CONFIRM_SEED_OFFSET + i; the final one uses the run's seed
# (evaluate_policy adds its own offset to all of them).
PERIODIC_EVAL_SEED_STRIDE = 7919
CONFIRM_SEED_OFFSET = 104_729


# What every train() accepts as ``callback``: called with each metrics row.
Callback = Callable[[Mapping[str, Any]], None]


def crossed(step: int, previous: int, every: int) -> bool:
    """True when going from ``previous`` to ``step`` passed a multiple of ``every`` (never for ``every <= 0``)."""
    return every > 0 and step // every > previous // every


@dataclasses.dataclass
class Counters:
    """What a run has done so far; checkpointed, so a resumed run counts on.

    ``step`` counts environment steps (frames for IMPALA, moves for board games),
    ``iteration`` loop iterations, ``updates`` gradient steps. The ``time_*`` fields are
    seconds summed over every process that worked on the run. Subclass it (as a dataclass)
    to add an agent's own counters.
    """

    step: int = 0
    iteration: int = 0
    updates: int = 0
    time_acting: float = 0.0
    time_learning: float = 0.0
    time_evaluating: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in state.items():
            if key not in names:
                raise KeyError(f"checkpoint counter {key!r} is not a field of {type(self).__name__}")
            setattr(self, key, value)


class Stopwatch:
    """Adds the seconds of ``with clock("phase"):`` blocks to ``counters.time_<phase>``.

    On a CUDA device it synchronises before reading the clock at both ends, so the time is
    that of the phase's own work (the default: skipped on CPUs, where work is synchronous).
    """

    def __init__(self, counters: Counters, device: torch.device | str = "cpu"):
        self.counters = counters
        self.device = torch.device(device)

    def sync(self) -> None:
        synchronize(self.device)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        name = f"time_{phase}"
        if not hasattr(self.counters, name):
            raise AttributeError(f"{type(self.counters).__name__} has no field {name!r} for phase {phase!r}")
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            setattr(self.counters, name, getattr(self.counters, name) + time.perf_counter() - start)


class MeanStats:
    """Running means of named scalar diagnostics, kept where they are computed.

    ``add({"loss": loss, ...})`` sums tensors on their device (no synchronisation); each name
    is averaged over the calls that gave it (an actor loss over the actor's updates, a critic
    loss over the critic's). ``pop()`` returns the means as Python floats (one transfer for
    all of them) and starts over. Python numbers are summed as Python floats.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self._sums: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self.device = device  # where load_state_dict puts the sums back

    def add(self, stats: Mapping[str, Any]) -> None:
        for key, value in stats.items():
            if isinstance(value, torch.Tensor):
                value = value.detach()
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + 1

    def pop(self) -> dict[str, float]:
        """The means since the last ``pop`` (an empty dict when nothing was added)."""
        means = {k: v / self._counts[k] for k, v in self._sums.items()}
        tensors = [k for k, v in means.items() if isinstance(v, torch.Tensor)]
        if tensors:
            means.update(zip(tensors, torch.stack([means[k].float() for k in tensors]).tolist()))
        self._sums.clear()
        self._counts.clear()
        return means

    def state_dict(self) -> dict[str, Any]:
        """The partial sums (a checkpoint between two metrics rows keeps them)."""
        return {"sums": {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in self._sums.items()},
                "counts": dict(self._counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._sums = {k: (v.to(self.device) if isinstance(v, torch.Tensor) and self.device is not None else v)
                      for k, v in state["sums"].items()}
        self._counts = dict(state["counts"])


class TargetTracker:
    """Periodic greedy evaluations and the return target (see the module docstring).

    Args:
      cfg: a config with ``seed``, ``eval_every``, ``eval_episodes`` and, when it has a target,
        ``target_return`` and ``stop_at_target``.
      counters: the run's counters (``step``, ``iteration``, ``time_evaluating``).
      elapsed: the run's clock (:meth:`Run.elapsed`).
      evaluate: ``evaluate(episodes, seed)`` runs a greedy evaluation and returns its result:
        a list of returns, or anything ``score`` turns into a number (board games).
      episodes: the :class:`~course_lib.core.metrics.EpisodeTracker` of the training
        episodes (for the moving-average score), or None.
      score: result -> number compared with the target (default: the mean of a list).
      confirm_every: with ``stop_at_target``, steps between two confirmations of a target
        reached by training returns (0: confirm at every iteration at the target).
      every: steps between periodic evaluations (default ``cfg.eval_every``; 0: none).
    """

    def __init__(self, cfg: Any, counters: Counters, elapsed: Callable[[], float],
                 evaluate: Callable[[int, int], Any], episodes: Any = None,
                 score: Callable[[Any], float | None] | None = None, confirm_every: int = 0,
                 every: int | None = None):
        self.cfg, self.counters, self.elapsed = cfg, counters, elapsed
        self.every = getattr(cfg, "eval_every", 0) if every is None else every
        self.evaluate_fn, self.episodes = evaluate, episodes
        self.score = score if score is not None else (lambda returns: sum(returns) / len(returns))
        self.target = getattr(cfg, "target_return", None)
        self.stop_at_target = bool(getattr(cfg, "stop_at_target", False))
        self.confirm_every = confirm_every
        self.evals = 0            # periodic evaluations so far (the k of their seeds)
        self.last_eval: Any = None  # the latest periodic evaluation's score (or result, without a score)
        self.last_result: Any = None
        self.time_to_target: float | None = None
        self.steps_to_target: int | None = None
        self.next_confirm = 0
        self.reached = False

    # ------------------------------------------------------------ evaluating
    def evaluate(self, episodes: int, seed: int) -> Any:
        """Run ``evaluate`` and count its seconds as evaluation time."""
        start = time.perf_counter()
        try:
            return self.evaluate_fn(episodes, seed)
        finally:
            self.counters.time_evaluating += time.perf_counter() - start

    def final(self) -> Any:
        """The final greedy evaluation: ``cfg.eval_episodes`` episodes seeded from the run's seed."""
        return self.evaluate(self.cfg.eval_episodes, self.cfg.seed)

    def periodic(self, previous_step: int) -> bool:
        """The periodic evaluation, when the last iteration crossed a multiple of ``eval_every``.
        Returns whether one ran."""
        if not crossed(self.counters.step, previous_step, self.every):
            return False
        self.evals = self.counters.step // self.every
        result = self.evaluate(self.cfg.eval_episodes, self.cfg.seed + PERIODIC_EVAL_SEED_STRIDE * self.evals)
        self.last_result = result
        self.last_eval = self.score(result)
        return True

    # ---------------------------------------------------------------- target
    def current_score(self, evaluated_now: bool) -> float | None:
        """The number the target is judged on now, or None when there is none yet."""
        if self.every:
            return self.last_eval if evaluated_now else None
        eps = self.episodes
        if eps is None or len(eps.recent_returns) < eps.recent_returns.maxlen:
            return None
        return eps.mean_return()

    def update(self, previous_step: int) -> bool:
        """End-of-iteration check: evaluate if due, judge the target, confirm it if asked.

        Returns True when the run should stop (``stop_at_target`` and the target is reached
        and confirmed). ``previous_step`` is ``counters.step`` before this iteration.
        """
        evaluated = self.periodic(previous_step)
        if self.target is None:
            return False
        score = self.current_score(evaluated)
        if score is None or score < self.target:
            return False
        if self.time_to_target is None:
            self.time_to_target = self.elapsed() - self.counters.time_evaluating
            self.steps_to_target = self.counters.step
        if not self.stop_at_target:
            return False
        if evaluated:  # a greedy evaluation is its own confirmation
            self.reached = True
        elif self.counters.step >= self.next_confirm:
            returns = self.evaluate(CONFIRM_EPISODES, self.cfg.seed + CONFIRM_SEED_OFFSET + self.counters.iteration)
            self.reached = sum(returns) / len(returns) >= self.target
            self.next_confirm = self.counters.step + self.confirm_every
        return self.reached

    # ------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"evals": self.evals, "last_eval": self.last_eval, "last_result": self.last_result,
                "time_to_target": self.time_to_target, "steps_to_target": self.steps_to_target,
                "next_confirm": self.next_confirm, "reached": self.reached}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def summary(self) -> dict[str, Any]:
        """The target fields of a run's summary."""
        return {"target_return": self.target, "time_to_target": self.time_to_target,
                "steps_to_target": self.steps_to_target}
