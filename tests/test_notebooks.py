"""Every chapter notebook runs end to end in its quick profile.

The book build (the session fixture ``book`` of conftest.py, shared with test_book.py and the
browser test) executes every notebook once, in the quick profile, and keeps the executed copies
in ``_build/jupyter_execute``; these tests read those copies instead of running each notebook a
second time. ``COURSE_BOOK_HTML=path/_build/html`` reuses a book built before.
"""
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_profile(path, book):
    executed = book.html.parent / "jupyter_execute" / "notebooks" / path.name
    assert executed.is_file(), f"the book build did not execute {path.name} (looked for {executed})\n{book.log[-3000:]}"
    nb = nbformat.read(executed, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == sum(c.cell_type == "code" for c in nbformat.read(path, as_version=4).cells)
    unexecuted = [c.source[:80] for c in code if c.source.strip() and c.execution_count is None]
    assert not unexecuted, f"cells that did not run: {unexecuted}"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "profile: quick" in text
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 3, "chapters show plots"


def test_notebooks_are_stored_stripped():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has stored outputs"
