"""Keep every notebook's Colab badge and set-up cell pointing at the course repository.

The repository's address lives in one place: ``repository.url`` and ``repository.branch``
in ``_config.yml``. The book's launch button reads it there; this module copies it into the
notebooks (``notebooks/*.ipynb`` and ``assignments/source/*/*.ipynb``), where two things
name it:

- the Colab badge in a markdown cell, which must open the notebook itself::

      [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/notebooks/04_ppo.ipynb)

- the install line of the set-up cell (the code cell whose first line is ``SETUP_CELL_MARKER``)::

      %pip install --quiet "course-lib @ git+https://github.com/OWNER/REPO@BRANCH"

Usage::

    python -m course_lib.book_links            # rewrite out-of-date notebooks in place (make links)
    python -m course_lib.book_links --check    # change nothing; exit 1 naming out-of-date notebooks
    python -m course_lib.book_links --root DIR # another checkout (default: this package's parent)

Exit status: 0 when every notebook agrees (or was rewritten), 1 when ``--check`` finds one
out of date, 2 when ``_config.yml`` or a notebook cannot be used (the message says why).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

SETUP_CELL_MARKER = (
    "# Colab set-up: install course_lib from the course repository (elsewhere it is installed already)."
)
NOTEBOOK_GLOBS = ("notebooks/*.ipynb", "assignments/source/*/*.ipynb")
COLAB = "https://colab.research.google.com"
BADGE_IMAGE = f"{COLAB}/assets/colab-badge.svg"

# A markdown badge: [![alt](badge image)](link); group 1 is everything before the link.
_BADGE = re.compile(r"(\[!\[[^\]]*\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\()" + re.escape(COLAB) + r"/github/[^)\s]*(?=\))")
# The install line, whatever repository and branch it names now.
_INSTALL = re.compile(r'^[ \t]*%pip install [^\n]*"course-lib @ git\+[^"\n]*"[^\n]*$', re.MULTILINE)
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def repository_root() -> Path:
    """The repository's root: the folder that holds the ``course_lib`` package."""
    return Path(__file__).resolve().parent.parent


def _repository(root: Path | None = None) -> tuple[str, str, str, str]:
    """``(url, owner, repo, branch)`` from ``_config.yml``'s ``repository`` section."""
    config_path = Path(root or repository_root()) / "_config.yml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found; book_links needs the book's _config.yml")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    repository = config.get("repository") or {}
    url, branch = repository.get("url"), repository.get("branch")
    if not url or not branch:
        raise ValueError(f"{config_path}: repository.url and repository.branch must both be set")
    match = _GITHUB.match(str(url).strip())
    if match is None:
        raise ValueError(
            f"{config_path}: repository.url {url!r} must look like https://github.com/OWNER/REPO "
            "(Colab opens notebooks from GitHub only)"
        )
    owner, repo = match.groups()
    return f"https://github.com/{owner}/{repo}", owner, repo, str(branch)


def repository_url(root: Path | None = None) -> str:
    """``repository.url`` from ``_config.yml``, normalised to ``https://github.com/OWNER/REPO``."""
    return _repository(root)[0]


def colab_url(notebook_relpath: str | Path, root: Path | None = None) -> str:
    """The Colab address that opens ``notebook_relpath`` (relative to the repository root)."""
    _, owner, repo, branch = _repository(root)
    return f"{COLAB}/github/{owner}/{repo}/blob/{branch}/{Path(notebook_relpath).as_posix()}"


def install_line(root: Path | None = None) -> str:
    """The set-up cell's install line (indented: it sits under ``if "google.colab" in sys.modules:``)."""
    url, _, _, branch = _repository(root)
    return f'    %pip install --quiet "course-lib @ git+{url}@{branch}"'


def notebook_paths(root: Path | None = None) -> list[Path]:
    """The notebooks that carry badges and set-up cells, sorted."""
    root = Path(root or repository_root())
    return sorted(path for pattern in NOTEBOOK_GLOBS for path in root.glob(pattern))


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _set_source(cell: dict, text: str) -> None:
    # Jupyter stores a list of lines, each keeping its newline.
    cell["source"] = text.splitlines(keepends=True) if isinstance(cell.get("source"), list) else text


def update_notebook(notebook: dict, relpath: str | Path, root: Path | None = None) -> list[str]:
    """Point ``notebook``'s badges and set-up cell at the repository, in place.

    Returns what changed, one short phrase each (empty when the notebook already agreed).
    Raises ``ValueError`` when a set-up cell has no install line to rewrite.
    """
    badge_target, install = colab_url(relpath, root), install_line(root)
    changes = []
    for index, cell in enumerate(notebook.get("cells", [])):
        text = _source(cell)
        if cell.get("cell_type") == "markdown":
            new = _BADGE.sub(lambda m: m.group(1) + badge_target, text)
            what = "Colab badge"
        elif cell.get("cell_type") == "code" and text.startswith(SETUP_CELL_MARKER):
            if not _INSTALL.search(text):
                raise ValueError(
                    f"{relpath}: cell {index} is the set-up cell but has no "
                    f'`%pip install --quiet "course-lib @ git+..."` line to point at the repository'
                )
            new = _INSTALL.sub(lambda m: install, text)
            what = "set-up cell"
        else:
            continue
        if new != text:
            _set_source(cell, new)
            changes.append(f"{what} (cell {index})")
    return changes


# A Colab link in a markdown page: group 1 is the path of the notebook it opens.
_PAGE_LINK = re.compile(re.escape(COLAB) + r"/github/[^/\s)]+/[^/\s)]+/blob/[^/\s)]+/([^)\s]+\.ipynb)")
MARKDOWN_PAGES = ("README.md",)


def update_markdown(text: str, root: Path | None = None) -> str:
    """``text`` with every Colab link re-pointed at the repository, each keeping its notebook path."""
    return _PAGE_LINK.sub(lambda m: colab_url(m.group(1), root), text)


def sync(root: Path | None = None, check: bool = False) -> list[str]:
    """Bring every notebook (and the README's Colab links) in line with ``_config.yml``.

    With ``check`` nothing is written. Returns one line per file that was (or, with
    ``check``, would be) rewritten.
    """
    root = Path(root or repository_root()).resolve()
    report = []
    for name in MARKDOWN_PAGES:
        page = root / name
        if not page.is_file():
            continue
        text = page.read_text(encoding="utf-8")
        new = update_markdown(text, root)
        if new != text:
            report.append(f"{name}: out of date (Colab links); run `make links`" if check
                          else f"{name}: updated Colab links")
            if not check:
                page.write_text(new, encoding="utf-8")
    for path in notebook_paths(root):
        relpath = path.relative_to(root).as_posix()
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{relpath} is not valid notebook JSON: {error}") from None
        changes = update_notebook(notebook, relpath, root)
        if not changes:
            continue
        if check:
            report.append(f"{relpath}: out of date ({', '.join(changes)}); run `make links`")
        else:
            # The format Jupyter itself writes, so that diffs show only the links.
            text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
            path.write_text(text, encoding="utf-8")
            report.append(f"{relpath}: updated {', '.join(changes)}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.book_links",
        description="Point every notebook's Colab badge and set-up cell at _config.yml's repository.url.",
    )
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook is out of date")
    parser.add_argument("--root", type=Path, default=None,
                        help="the repository root (default: the folder holding course_lib)")
    args = parser.parse_args(argv)
    try:
        report = sync(args.root, check=args.check)
    except (OSError, ValueError) as error:
        print(f"book_links: error: {error}", file=sys.stderr)
        return 2
    for line in report:
        print(line, file=sys.stderr if args.check else sys.stdout)
    if args.check and report:
        return 1
    if not args.check and not report:
        print(f"All notebooks already point at {repository_url(args.root)}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
