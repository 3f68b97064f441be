"""Keep every notebook's Colab badge and set-up cell pointing at the course repository.

The repository's address lives in one place: ``repository.url`` and ``repository.branch``
in ``_config.yml``. The book's launch button reads it there; this module copies it into the
notebooks (``notebooks/*.ipynb`` and ``assignments/source/*/*.ipynb``), where two things
name it:

- the Colab badge in a markdown cell, which must open the notebook itself::

      [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/notebooks/04_ppo.ipynb)

- the install line of the set-up cell (the code cell whose first line is ``SETUP_CELL_MARKER``)::

      %pip install --quiet "course-lib @ git+https://github.com/OWNER/REPO@BRANCH"

It also keeps the lists of what the course offers in one place. Which chapters are
available is ``_toc.yml``'s say (a chapter is available when its notebook is in the book),
a chapter's title is its notebook's first heading, and the assignments are the folders of
``assignments/source``. The pages that list them (``README.md``, ``book/intro.md``, the
module pages) mark each list as a generated region::

    <!-- BEGIN generated: chapters (python -m course_lib.book_links) -->
    ...
    <!-- END generated: chapters -->

and this module rewrites what lies between the markers (see :data:`REGIONS` for the kinds).

Usage::

    python -m course_lib.book_links            # rewrite out-of-date notebooks and pages in place (make links)
    python -m course_lib.book_links --check    # change nothing; exit 1 naming out-of-date files
    python -m course_lib.book_links --root DIR # another checkout (default: this package's parent)

Exit status: 0 when every file agrees (or was rewritten), 1 when ``--check`` finds one
out of date, 2 when ``_config.yml``, ``_toc.yml``, a notebook or a page cannot be used (the
message says why).
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


# --------------------------------------------------------------------------- generated lists
# Pages with generated regions. The book's module pages are found from _toc.yml.
LIST_PAGES = ("README.md", "book/intro.md")
_REGION = re.compile(r"(?P<begin><!-- BEGIN generated: (?P<name>[a-z-]+)[^\n]*?-->\n)(?P<body>.*?)"
                     r"(?P<end><!-- END generated: (?P=name) -->)", re.DOTALL)
_MODULE = re.compile(r"^Module (\d+): (.+)$")
_STEM = re.compile(r"\b(\d\d_[a-z0-9_]+)\b")


def _toc_chapters(root: Path) -> list[dict]:
    """The modules of ``_toc.yml`` in order: ``number``, ``name``, ``page`` and ``notebooks`` (stems)."""
    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise FileNotFoundError(f"{toc_path} not found; the generated lists are read from the book's _toc.yml")
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8")) or {}
    modules = []
    for part in toc.get("parts", []):
        match = _MODULE.match(str(part.get("caption", "")))
        if match is None:
            continue
        files = [str(chapter.get("file", "")) for chapter in part.get("chapters", [])]
        modules.append({"number": int(match.group(1)), "name": match.group(2),
                        "page": next((f for f in files if f.startswith("book/")), None),
                        "notebooks": [Path(f).name for f in files if f.startswith("notebooks/")]})
    return modules


def notebook_title(path: Path) -> str:
    """The first heading of the notebook's first markdown cell, without its ``#``."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            break
    raise ValueError(f"{path.name}: its first markdown cell has no '# title' line")


def assignments(root: Path) -> list[tuple[str, str]]:
    """``(name, title)`` of every assignment in ``assignments/source`` (the notebook's title after the colon)."""
    found = []
    for path in sorted((root / "assignments" / "source").glob("*/*.ipynb")):
        if path.stem != path.parent.name:
            continue
        title = notebook_title(path)
        found.append((path.stem, title.split(":", 1)[1].strip() if ":" in title else title))
    return found


def _short(title: str) -> str:
    """A chapter's short name: its title up to the colon ("PPO" of "PPO: proximal policy optimisation")."""
    return title.split(":", 1)[0].strip()


def _chapter_list(root: Path, page: str) -> str:
    """README: the available chapters by module, each with its Colab badge."""
    lines = []
    for module in _toc_chapters(root):
        if not module["notebooks"]:
            continue
        lines.append(f"- Module {module['number']}, *{module['name']}*:")
        for stem in module["notebooks"]:
            relpath = f"notebooks/{stem}.ipynb"
            title = notebook_title(root / relpath)
            lines.append(f"  - [{stem[:2]} · {title}]({relpath}) "
                         f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(relpath, root)})")
    return "\n".join(lines) + "\n"


def _grading(root: Path, page: str) -> str:
    """README: the assignments and the commands that grade one."""
    names = assignments(root)
    if not names:
        raise ValueError("assignments/source holds no assignment (a folder NAME with NAME.ipynb)")
    example = "ppo" if "ppo" in dict(names) else names[0][0]
    lines = ["The assignments, one nbgrader notebook each in `assignments/source/`:", ""]
    lines += [f"- `{name}`: {title}" for name, title in names]
    lines += ["", "```bash", "source .venv/bin/activate && cd assignments",
              f"nbgrader generate_assignment {example:<13s}# student version → release/{example}/ "
              f"(any of: {', '.join(name for name, _ in names)})",
              f"# collect submissions into submitted/<student>/{example}/{example}.ipynb, then",
              f"nbgrader autograde {example:<23s}# runs visible + hidden tests (hidden ones compare with course_lib)",
              f"nbgrader generate_feedback {example} && nbgrader export   # feedback/ HTML and grades.csv",
              "```"]
    return "\n".join(lines) + "\n"


def _doc(stem: str, root: Path) -> str:
    """A book link to the chapter ``stem`` from a page in ``book/``, named by number and short title."""
    return f"{{doc}}`{stem[:2]} · {_short(notebook_title(root / 'notebooks' / f'{stem}.ipynb'))} <../notebooks/{stem}>`"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _availability(root: Path, page: str) -> str:
    """intro.md: which modules' chapters are available; a module page: which of its chapters are."""
    modules = _toc_chapters(root)
    if page == "book/intro.md":
        ready = [m for m in modules if m["notebooks"]]
        waiting = [m for m in modules if not m["notebooks"]]
        parts = [f"Module {m['number']} ({', '.join(_doc(s, root) for s in m['notebooks'])})" for m in ready]
        text = f"Available now: {_and(parts)}." if parts else "No chapter is available yet."
        if waiting:
            numbers = _and([str(m["number"]) for m in waiting])
            text += (f" {'Modules' if len(waiting) > 1 else 'Module'} {numbers} "
                     f"{'are' if len(waiting) > 1 else 'is'} planned; the table lists their chapters so you "
                     f"can see where the course is going.")
        return text + "\n"
    module = next((m for m in modules if m["page"] == page.removesuffix(".md")), None)
    if module is None:
        raise ValueError(f"{page} is not the overview page of a module in _toc.yml")
    stems = module["notebooks"]
    if not stems:
        return "No chapter of this module is available yet; the table shows what is planned.\n"
    return f"Available now: {_and([_doc(s, root) for s in stems])}.\n"


def _chapter_table(root: Path, page: str, body: str) -> str:
    """A table written by hand whose rows name chapters: each chapter's link and status follow _toc.yml.

    In every row that names a chapter (``NN_name``), the cell naming it becomes a link to
    the chapter when it is in the book and plain code when it is not, and the last cell
    becomes ``**available**`` or ``planned``; the other cells stay as written.
    """
    available = {stem for module in _toc_chapters(root) for stem in module["notebooks"]}
    out = []
    for line in body.splitlines(keepends=True):
        cells = line.rstrip("\n").split("|")
        named = [i for i, cell in enumerate(cells[1:-1], 1) if _STEM.search(cell)]
        if line.startswith("|") and len(cells) > 3 and named:
            i = named[0]
            stem = _STEM.search(cells[i]).group(1)
            cells[i] = (f" {{doc}}`{stem} <../notebooks/{stem}>` " if stem in available else f" `{stem}` ")
            cells[-2] = " **available** " if stem in available else " planned "
            line = "|".join(cells) + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


# Kinds of generated region: name -> (what it is, generator). A generator gets the checkout's
# root, the page's path relative to it and (for tables) the region's current text.
REGIONS = {
    "chapters": ("the available chapters with Colab badges", _chapter_list),
    "grading": ("the assignments and how to grade one", _grading),
    "availability": ("which chapters are available", _availability),
    "chapter-table": ("a chapter table's links and status", _chapter_table),
}


def update_lists(text: str, page: str, root: Path) -> str:
    """``text`` of ``page`` with every generated region brought up to date."""
    def regenerate(match: re.Match) -> str:
        name = match.group("name")
        if name not in REGIONS:
            raise ValueError(f"{page}: unknown generated region {name!r}; accepted: {', '.join(REGIONS)}")
        generate = REGIONS[name][1]
        body = generate(root, page, match.group("body")) if name == "chapter-table" else generate(root, page)
        return match.group("begin") + body + match.group("end")

    if text.count("<!-- BEGIN generated:") != len(_REGION.findall(text)):
        raise ValueError(f"{page}: a '<!-- BEGIN generated: NAME' marker has no matching '<!-- END generated: NAME -->'")
    return _REGION.sub(regenerate, text)


def list_pages(root: Path) -> list[str]:
    """The pages that may hold generated regions: the README, the book's intro and its module pages."""
    pages = list(LIST_PAGES)
    if (root / "_toc.yml").is_file():
        pages += [f"{m['page']}.md" for m in _toc_chapters(root) if m["page"]]
    return [page for page in pages if (root / page).is_file()]


def sync(root: Path | None = None, check: bool = False) -> list[str]:
    """Bring every notebook, the README's Colab links and every generated list up to date.

    With ``check`` nothing is written. Returns one line per file that was (or, with
    ``check``, would be) rewritten.
    """
    root = Path(root or repository_root()).resolve()
    report = []
    for name in dict.fromkeys([*MARKDOWN_PAGES, *list_pages(root)]):
        page = root / name
        if not page.is_file():
            continue
        text = page.read_text(encoding="utf-8")
        linked = update_markdown(text, root) if name in MARKDOWN_PAGES else text
        new = update_lists(linked, name, root)
        what = ", ".join(w for w, changed in (("Colab links", linked != text), ("generated lists", new != linked))
                         if changed)
        if new != text:
            report.append(f"{name}: out of date ({what}); run `make links`" if check else f"{name}: updated {what}")
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
        description="Point every notebook's Colab badge and set-up cell at _config.yml's repository.url, and "
                    "rewrite the generated lists of chapters and assignments in README.md and the book's pages.",
    )
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook or a generated list is out of date")
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
        print(f"All notebooks already point at {repository_url(args.root)}, and every generated list is up to date.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
