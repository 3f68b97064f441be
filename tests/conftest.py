"""Fixtures shared by several test files."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

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
