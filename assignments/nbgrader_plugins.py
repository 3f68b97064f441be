"""What nbgrader_config.py plugs into nbgrader: it runs in the nbgrader process, where no student code runs.

- :class:`FlagGraderTampering` (autograde, after the notebook ran): a notebook whose own cells name the
  grader (``course_lib.grading``) or switch Python's profiler or tracer scores 0 on every test. The checks
  of ``course_lib.grading`` run in the kernel beside the student's code, which could rewrite them; this one
  runs where that code cannot reach, on the text of the cells.
- :class:`OverwriteCellsQuietly` (autograde, before the notebook runs): nbgrader restores every locked cell
  from the gradebook and warns "Attribute 'checksum' for cell ... has changed!" whenever the submitted cell
  differs from the stored one. A test cell with hidden tests always differs (the release leaves them out),
  so the warning came for every test cell of every student. This class keeps it for real edits only.
- :class:`CsvExportWithLateness` (export): nbgrader's CSV plus ``seconds_late``.
- :func:`inline_mathjax` (feedback): MathJax inlined into each feedback page, so that its equations render
  offline (nbgrader's template loads MathJax 2 from a CDN); ``templates/base/mathjax.html.j2`` calls it.
"""
from __future__ import annotations

import csv
import functools
import io
import re
import tokenize
from importlib import metadata
from pathlib import Path

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.plugins import CsvExportPlugin
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells

TEMPLATES = Path(__file__).resolve().parent / "templates"

# What an honest solution never writes: the grader's module, and the hooks its watch of calls rests on.
_TAMPERING = (
    re.compile(r"\bcourse_lib\s*\.\s*grading\b"),
    re.compile(r"\bfrom\s+course_lib\s+import\s+[^\n]*\bgrading\b"),
    re.compile(r"\b(setprofile|settrace|NBGRADER_EXECUTION)\b"),
)


def _code_without_comments(source: str) -> str:
    """The cell's code and strings without its comments (the raw text where it does not tokenize)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source
    return " ".join(token.string for token in tokens if token.type != tokenize.COMMENT)


def names_the_grader(source: str) -> str | None:
    """The first text in `source` that names the grader or its hooks, or None."""
    code = _code_without_comments(source)
    for pattern in _TAMPERING:
        found = pattern.search(code)
        if found:
            return re.sub(r"\s*\.\s*", ".", " ".join(found.group(0).split()))
    return None


class FlagGraderTampering(NbGraderPreprocessor):
    """Fails every test cell of a notebook whose own (unlocked) cells name the grader: an error output per cell."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        found = None
        for cell in nb.cells:
            if cell.cell_type == "code" and not utils.is_locked(cell):
                found = names_the_grader(cell.source)
                if found:
                    break
        if found:
            message = (f"the notebook's own code names the autograder ({found!r}): a solution has no business "
                       f"with it, so every test scores 0.")
            self.log.warning("%s: %s", resources.get("unique_key", "notebook"), message)
            for cell in nb.cells:
                if utils.is_grade(cell) and cell.cell_type == "code":
                    cell.outputs.append(NotebookNode(output_type="error", ename="AssertionError", evalue=message,
                                                     traceback=[f"AssertionError: {message}"]))
        return nb, resources


class OverwriteCellsQuietly(OverwriteCells):
    """nbgrader's OverwriteCells, without its checksum warning for a test cell that only lacks its hidden tests.

    The cell is restored either way; only the warning is kept back, and only when the submitted source is
    exactly what generate_assignment released (the stored source less its hidden tests). Any other change
    to a locked cell still warns.
    """

    _released_source: str | None = None

    def preprocess_cell(self, cell: NotebookNode, resources: dict, cell_index: int) -> tuple[NotebookNode, dict]:
        self._released_source = None
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                stored = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                pass
            else:
                released = NotebookNode(cell_type=stored.cell_type, source=stored.source, metadata={})
                ClearHiddenTests(enforce_metadata=False)._remove_hidden_test_region(released)
                self._released_source = released.source
                self._submitted_source = cell.source
        return super().preprocess_cell(cell, resources, cell_index)

    def report_change(self, name: str, attr: str, old, new) -> None:
        if (attr == "checksum" and self._released_source is not None
                and self._submitted_source.strip() == self._released_source.strip()):
            self.log.debug("Cell %s: its hidden tests are put back (the release leaves them out)", name)
            return
        super().report_change(name, attr, old, new)


class CsvExportWithLateness(CsvExportPlugin):
    """nbgrader's CSV export with one more column, ``seconds_late`` (0 when on time or without a due date)."""

    def export(self, gradebook) -> None:
        super().export(gradebook)
        destination = self.to or "grades.csv"
        with open(destination, newline="") as f:
            reader = csv.DictReader(f)
            columns, rows = list(reader.fieldnames or []), list(reader)
        for row in rows:
            try:
                submission = gradebook.find_submission(row["assignment"], row["student_id"])
            except MissingEntry:
                row["seconds_late"] = ""  # nothing handed in
            else:
                row["seconds_late"] = f"{submission.total_seconds_late:g}"
        columns.insert(columns.index("timestamp") + 1, "seconds_late")
        with open(destination, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


@functools.lru_cache(maxsize=None)
def _mathjax_file(name: str) -> Path | None:
    """A file of the MathJax 3 distribution that the sphinx-mathjax-offline package ships, or None."""
    try:
        files = metadata.files("sphinx-mathjax-offline") or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == name and file.parent.name == "mathjax":
            return Path(file.locate())
    return None


def inline_mathjax(name: str) -> str:
    """The text of MathJax's `name` bundle, to put inside a <script> element of a feedback page.

    ``tex-svg-full`` draws equations as SVG with every TeX extension built in: no fonts and no extension are
    fetched from anywhere, so the page renders offline. Raises FileNotFoundError when the package is missing.
    """
    path = _mathjax_file(name)
    if path is None:
        raise FileNotFoundError(f"MathJax's {name} was not found: install sphinx-mathjax-offline (`make setup` does, "
                                f"with the course's book extra: pip install -e '.[book,grading]')")
    # "</script" inside the code would end the element early; "<\/" means the same to JavaScript.
    return path.read_text(encoding="utf-8").replace("</script", "<\\/script")
