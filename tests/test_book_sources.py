"""Every chapter and module page names the lectures it follows and the papers, never a file number.

The lecture notes are the course's syllabus, but a reader of the book cannot open them: "Lecture
notes: 001" tells them nothing. Pages name the lectures by their titles and cite the papers
(authors, year, title), which a reader can look up.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_lib import book_links

ROOT = Path(__file__).resolve().parent.parent

# The titles the lecture notes give themselves (shared/seeds in the course's sources).
LECTURES = (
    "Foundation, World and Transformer Models (Advanced Topic)",
    "Transformers: Foundation & World Models (Advanced Topic)",
    "Planning & RL for Transformers",
    "How to Train Your World Models",
    "Transformer-based World Models Are Happy With 100k Interactions",
)
CITATION = re.compile(r"[A-Z][A-Za-z\u00C0-\u017F-]+(?: et al\.| & [A-Z][A-Za-z-]+)? \((?:19|20)\d\d[a-z]?\)[,.]? \*[^*]+\*")
FILE_NUMBER = re.compile(r"[Ll]ecture(?: notes?)?\W{0,6}0\d\d\b")


def _pages():
    pages = []
    for module in book_links._toc_chapters(ROOT):
        pages.append(f"{module['page']}.md")
        pages += [f"notebooks/{stem}.ipynb" for stem in module["notebooks"]]
    return pages


def _text(page: str) -> str:
    """The page's prose with every run of white space as one space (pages wrap titles across lines)."""
    path = ROOT / page
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    return " ".join(text.split())


@pytest.mark.parametrize("page", _pages())
def test_page_names_its_lectures_and_papers(page):
    text = _text(page)
    assert any(title in text for title in LECTURES), f"{page} names none of the lectures: {LECTURES}"
    assert CITATION.search(text), f"{page} cites no paper as 'Author et al. (year), *title*'"
    assert not FILE_NUMBER.search(text), f"{page} cites a lecture by its file number: {FILE_NUMBER.search(text)}"


def test_the_checks_catch_what_they_are_for():
    assert FILE_NUMBER.search("**Lecture notes:** 001 (AlphaGo, AlphaZero, MuZero)")
    assert not FILE_NUMBER.search("the lecture *Planning & RL for Transformers* (SAC, PPO)")
    assert CITATION.search("Schrittwieser et al. (2020), *Mastering Atari, Go, chess and shogi*")
    assert CITATION.search("Ha & Schmidhuber (2018), *World Models*")
    assert not CITATION.search("Schrittwieser et al., 2020")
