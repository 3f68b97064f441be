"""Fixtures and helpers shared by several test files."""
from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class BookBuild:
    """A built book: ``html`` is its ``_build/html``; ``returncode`` and ``log`` are jupyter-book's
    (None and "" for a book built before this session, see :func:`book`)."""

    html: Path
    returncode: int | None
    log: str


@pytest.fixture(scope="session")
def book(tmp_path_factory) -> BookBuild:
    """The book, built once per test session for every test that reads it.

    The build executes every notebook (minutes on a CPU), so tests/test_book.py and
    tests/test_book_browser.py share this one build in a temporary folder. Set
    ``COURSE_BOOK_HTML=path/to/_build/html`` to test a book built before instead (while working on
    a test; the test of the build itself is then skipped).
    """
    prebuilt = os.environ.get("COURSE_BOOK_HTML")
    if prebuilt:
        html = Path(prebuilt).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"COURSE_BOOK_HTML={prebuilt} has no index.html; point it at a built book's _build/html")
        return BookBuild(html, None, "")
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run(
        [str(jupyter_book), "build", "--warningiserror", "--keep-going", "--path-output", str(out), str(ROOT)],
        env={**os.environ, "COURSE_PROFILE": "quick"}, capture_output=True, text=True, timeout=1800,
    )
    return BookBuild(out / "_build" / "html", proc.returncode, proc.stdout + proc.stderr)


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
