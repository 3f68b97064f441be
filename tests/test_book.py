"""The book builds with warnings as errors, executes its notebooks and links Colab to the repository."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.book_links import colab_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run(
        [str(jupyter_book), "build", "--warningiserror", "--keep-going", "--path-output", str(tmp_path), str(ROOT)],
        env={**os.environ, "COURSE_PROFILE": "quick"}, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    page = (html / "notebooks" / "04_ppo.html").read_text(encoding="utf-8")
    assert colab_url("notebooks/04_ppo.ipynb") in page, "the Colab launch button opens the repository's notebook"
    assert "greedy evaluation over 20 fresh episodes" in page, "the notebook was executed during the build"
    for page in ("index.html", "book/using.html", "book/instructors.html", "book/module2.html"):
        assert (html / page).is_file(), page
