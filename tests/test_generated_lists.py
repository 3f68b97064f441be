"""The lists of chapters and assignments in README.md and the book come from one source and cannot go stale.

``course_lib.book_links`` rewrites the regions between ``<!-- BEGIN generated: NAME ... -->`` and
``<!-- END generated: NAME -->`` from ``_toc.yml``, the notebooks' titles and
``assignments/source``; ``--check`` (run by ``make book`` and by test_repo) fails when a page
no longer matches them.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import book_links

ROOT = Path(__file__).resolve().parent.parent


def _region(text: str, name: str) -> str:
    match = re.search(rf"<!-- BEGIN generated: {name} [^\n]*-->\n(.*?)<!-- END generated: {name} -->", text, re.S)
    assert match, f"no generated region {name!r}"
    return match.group(1)


# --- the repository's own pages ------------------------------------------------------------

def test_readme_lists_every_chapter_of_the_book_and_every_assignment():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    chapters = _region(readme, "chapters")
    stems = [stem for module in book_links._toc_chapters(ROOT) for stem in module["notebooks"]]
    assert len(stems) >= 5
    for stem in stems:
        assert f"(notebooks/{stem}.ipynb)" in chapters
        assert book_links.colab_url(f"notebooks/{stem}.ipynb", ROOT) in chapters
    grading = _region(readme, "grading")
    names = [name for name, _ in book_links.assignments(ROOT)]
    assert {"mcts", "muzero_targets", "ppo", "sac", "vtrace"} <= set(names)
    for name in names:
        assert f"- `{name}`: " in grading and name in grading.split("any of:")[1].split(")")[0]


def test_book_pages_mark_their_lists_and_agree_with_the_toc():
    intro = (ROOT / "book/intro.md").read_text(encoding="utf-8")
    available = _region(intro, "availability")
    for module in book_links._toc_chapters(ROOT):
        for stem in module["notebooks"]:
            assert f"<../notebooks/{stem}>" in available
            row = next(line for line in _region(intro, "chapter-table").splitlines() if stem in line)
            assert row.rstrip().endswith("| **available** |")
        page = (ROOT / f"{module['page']}.md").read_text(encoding="utf-8")
        assert _region(page, "availability") and _region(page, "chapter-table")
    if any(not module["notebooks"] for module in book_links._toc_chapters(ROOT)):
        assert "| planned |" in _region(intro, "chapter-table")   # the chapters still to come stay listed


# --- a checkout that drifts ----------------------------------------------------------------

TOC = """format: jb-book
root: book/intro
parts:
  - caption: "Module 1: Search"
    chapters:
      - file: book/module1
      - file: notebooks/01_first
  - caption: "Module 2: Later"
    chapters:
      - file: book/module2
  - caption: Reference
    chapters:
      - file: book/results
"""

INTRO = """# Intro

<!-- BEGIN generated: availability (python -m course_lib.book_links) -->
Module 2 is complete.
<!-- END generated: availability -->

<!-- BEGIN generated: chapter-table (python -m course_lib.book_links) -->
| Module | Chapter | What it covers | Status |
| --- | --- | --- | --- |
| 1 | `01_first` | the first thing | planned |
| 2 | {doc}`02_second <../notebooks/02_second>` | the second thing | **available** |
<!-- END generated: chapter-table -->
"""

README = """# Course

<!-- BEGIN generated: chapters (python -m course_lib.book_links) -->
- nothing yet
<!-- END generated: chapters -->

<!-- BEGIN generated: grading (python -m course_lib.book_links) -->
stale
<!-- END generated: grading -->
"""


def _notebook(path: Path, title: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cell = {"cell_type": "markdown", "metadata": {}, "source": [f"# {title}\n", "\n", "Text."]}
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n",
                    encoding="utf-8")


def _checkout(tmp_path: Path) -> Path:
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "_toc.yml").write_text(TOC, encoding="utf-8")
    (tmp_path / "book").mkdir()
    (tmp_path / "book/intro.md").write_text(INTRO, encoding="utf-8")
    for n in (1, 2):
        (tmp_path / f"book/module{n}.md").write_text(
            f"# Module {n}\n\n<!-- BEGIN generated: availability (python -m course_lib.book_links) -->\n"
            "old\n<!-- END generated: availability -->\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    _notebook(tmp_path / "notebooks/01_first.ipynb", "First: a chapter")
    _notebook(tmp_path / "notebooks/02_second.ipynb", "Second: not in the book yet")
    _notebook(tmp_path / "assignments/source/alpha/alpha.ipynb", "Assignment `alpha`: the first exercise")
    _notebook(tmp_path / "assignments/source/beta/beta.ipynb", "Assignment `beta`: the second exercise")
    return tmp_path


def _check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_lib.book_links", "--check", "--root", str(root)],
                          cwd=ROOT, capture_output=True, text=True)


def test_stale_lists_fail_the_check_and_make_links_rewrites_them(tmp_path):
    root = _checkout(tmp_path)
    before = _check(root)
    assert before.returncode == 1
    for page in ("README.md", "book/intro.md", "book/module1.md", "book/module2.md"):
        assert f"{page}: out of date (generated lists); run `make links`" in before.stderr

    assert book_links.main(["--root", str(root)]) == 0
    assert _check(root).returncode == 0

    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "- Module 1, *Search*:\n  - [01 · First: a chapter](notebooks/01_first.ipynb)" in readme
    assert "02_second" not in readme                                   # not in _toc.yml: not offered
    assert "- `alpha`: the first exercise\n- `beta`: the second exercise" in readme
    assert "(any of: alpha, beta)" in readme and readme.startswith("# Course\n")
    intro = (root / "book/intro.md").read_text(encoding="utf-8")
    assert "Available now: Module 1 ({doc}`01 · First <../notebooks/01_first>`). Module 2 is planned;" in intro
    assert "| 1 | {doc}`01_first <../notebooks/01_first>` | the first thing | **available** |" in intro
    assert "| 2 | `02_second` | the second thing | planned |" in intro
    assert "Available now: {doc}`01 · First <../notebooks/01_first>`." in (root / "book/module1.md").read_text()
    assert "No chapter of this module is available yet" in (root / "book/module2.md").read_text()

    # A chapter joins the book: every list that names it is stale until `make links` runs.
    (root / "_toc.yml").write_text(TOC.replace("      - file: book/module2\n",
                                               "      - file: book/module2\n      - file: notebooks/02_second\n"))
    stale = _check(root)
    assert stale.returncode == 1 and "README.md" in stale.stderr and "book/intro.md" in stale.stderr
    assert book_links.main(["--root", str(root)]) == 0
    intro = (root / "book/intro.md").read_text(encoding="utf-8")
    assert "| 2 | {doc}`02_second <../notebooks/02_second>` | the second thing | **available** |" in intro
    assert "Modules" not in _region(intro, "availability")            # no module is planned any more
    # An assignment appears: the grading list follows.
    _notebook(root / "assignments/source/gamma/gamma.ipynb", "Assignment `gamma`: the third exercise")
    assert _check(root).returncode == 1
    assert book_links.main(["--root", str(root)]) == 0
    assert "(any of: alpha, beta, gamma)" in (root / "README.md").read_text(encoding="utf-8")
    snapshot = {p: p.read_bytes() for p in root.rglob("*.md")}
    assert book_links.main(["--root", str(root)]) == 0                # a second run changes nothing
    assert snapshot == {p: p.read_bytes() for p in root.rglob("*.md")}


@pytest.mark.parametrize("text, message", [
    ("<!-- BEGIN generated: chapterz (x) -->\nold\n<!-- END generated: chapterz -->\n", "unknown generated region 'chapterz'"),
    ("<!-- BEGIN generated: chapters (x) -->\nold\n", "has no matching"),
])
def test_a_broken_region_is_an_error_naming_the_page(tmp_path, text, message):
    root = _checkout(tmp_path)
    (root / "README.md").write_text(text, encoding="utf-8")
    result = _check(root)
    assert result.returncode == 2 and "README.md" in result.stderr and message in result.stderr
