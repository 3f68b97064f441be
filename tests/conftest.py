"""Shared test helpers."""
from __future__ import annotations

import statistics
from typing import Callable, Iterable

import pytest


def median_of_runs(run: Callable[[int], float], seeds: Iterable[int]) -> tuple[float, list[float]]:
    """The median of ``run(seed)`` over ``seeds``, and every value (for the failure message).

    Why learning checks take it: deterministic mode is deterministic per machine only. Another
    CPU's matrix kernels (or another thread count) round differently, so the same seed follows
    another trajectory, and a bound fitted to one run can fail on a machine that learns as well.
    The median of a few short runs with different seeds needs most of them to go wrong before
    the check fails, while an agent that does not learn still fails it every time.
    """
    values = [float(run(seed)) for seed in seeds]
    if not values:
        raise ValueError("median_of_runs needs at least one seed")
    return statistics.median(values), values


@pytest.fixture(name="median_of_runs")
def median_of_runs_fixture() -> Callable[..., tuple[float, list[float]]]:
    """:func:`median_of_runs` for a test that asks for it by name."""
    return median_of_runs
