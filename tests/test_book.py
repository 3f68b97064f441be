"""The book builds with warnings as errors, executes its notebooks, links Colab to the repository,
and loads nothing from another host (the book is read offline too).

The build is the session fixture ``book`` (tests/conftest.py), shared with tests/test_book_browser.py,
which opens every page in a browser.
"""
import re

import pytest

from course_lib.book_links import colab_url

# A page element that makes the browser fetch its URL as it loads the page (links, <a href>, do not).
FETCHED = re.compile(
    r"<(?:script|img|iframe|source|audio|video|embed)\b[^>]*?\ssrc\s*=\s*[\"']?(?P<src>(?:https?:)?//[^\"'\s>]+)"
    r"|<link\b[^>]*?\shref\s*=\s*[\"']?(?P<href>(?:https?:)?//[^\"'\s>]+)", re.IGNORECASE)
# What a style sheet fetches: @import and url(), fonts included.
CSS_FETCHED = re.compile(r"(?:@import\s+(?:url\()?|url\()\s*[\"']?((?:https?:)?//[^\"')\s]+)", re.IGNORECASE)


@pytest.mark.slow
def test_book_builds_without_warnings(book):
    if book.returncode is None:
        pytest.skip("COURSE_BOOK_HTML: a book built before this session, whose build log is not here")
    assert book.returncode == 0, book.log[-4000:]


@pytest.mark.slow
def test_book_pages_are_built_and_executed(book):
    html = book.html
    page = (html / "notebooks" / "04_ppo.html").read_text(encoding="utf-8")
    assert colab_url("notebooks/04_ppo.ipynb") in page, "the Colab launch button opens the repository's notebook"
    assert "greedy evaluation over 20 fresh episodes" in page, "the notebook was executed during the build"
    for page in ("index.html", "book/using.html", "book/instructors.html", "book/module2.html"):
        assert (html / page).is_file(), page


@pytest.mark.slow
def test_book_loads_nothing_from_another_host(book):
    """No page or style sheet names a script, style, font or image on another host: MathJax and
    everything else is served from the build. (The browser test also blocks such requests.)"""
    html = book.html
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is copied into the build"
    found = []
    for path in sorted(html.rglob("*.html")):
        for match in FETCHED.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.append(f"{path.relative_to(html)}: {match.group('src') or match.group('href')}")
    for path in sorted(html.rglob("*.css")):
        for match in CSS_FETCHED.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.append(f"{path.relative_to(html)}: {match.group(1)}")
    assert not found, "fetched from another host:\n" + "\n".join(found[:40])
    chapter = (html / "notebooks" / "04_ppo.html").read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in chapter, "a page with equations loads the build's MathJax"
