"""Docstrings carry the lectures' equations in TeX; an escape Python reads first must not eat them.

In a non-raw string ``"\\text"`` is a TAB followed by ``ext``, ``"\\beta"`` a backspace and
``eta``, ``"\\frac"`` a form feed; the docstring still reads fine in the source and shows
garbage in ``help()`` and the rendered API. Two checks over every module, class and
function docstring of ``course_lib`` (read with ``ast``, so nothing is imported):

- the docstring Python sees contains no control character such an escape produces
  (TAB only where the docstring has TeX, since a TAB elsewhere is merely untidy);
- a docstring whose source writes a backslash escape followed by letters (``\\theta``,
  ``\\nu``, ``\\rho``) is a raw string, so the TeX reaches the reader as written.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "course_lib"

# What \a \b \f \v \r (and \t) turn into; \n is left out: docstrings are made of newlines.
CONTROL = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\v": r"\v", "\r": r"\r"}
# Signs that a docstring holds TeX: a math role or directive, $...$, or a TeX command.
TEX = re.compile(r":math:|\.\. math::|\$|\\[A-Za-z]{2,}")
# In the source of a non-raw literal: an escape Python understands, followed by a letter
# (the start of a TeX command). ``\\`` pairs are consumed first so ``\\theta`` is fine.
ESCAPE_THEN_LETTER = re.compile(r"\\\\|\\([abfnrtvNuUx])(?=[A-Za-z{])")


def _docstring_nodes(tree: ast.Module):
    """(name, string constant node) of the module's docstring and every class's and function's."""
    owners = [tree] + [node for node in ast.walk(tree)
                       if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    for owner in owners:
        body = getattr(owner, "body", [])
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            yield getattr(owner, "name", "<module>"), body[0].value


def _docstrings():
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for name, node in _docstring_nodes(ast.parse(source, filename=str(path))):
            yield path.relative_to(ROOT).as_posix(), node.lineno, name, node, ast.get_source_segment(source, node)


def control_characters(doc: str) -> list[str]:
    """The escapes whose control characters ``doc`` holds (TAB only when ``doc`` has TeX)."""
    found = [shown for char, shown in CONTROL.items() if char in doc]
    if "\t" in doc and TEX.search(doc):
        found.append(r"\t")
    return found


def swallowed_escapes(literal_source: str) -> list[str]:
    """The TeX-looking escapes (``\\t`` of ``\\text``) in the source of a string literal that is not raw."""
    prefix = re.match(r"[A-Za-z]*", literal_source).group(0).lower()
    if "r" in prefix:
        return []
    return ["\\" + m.group(1) + re.match(r"[A-Za-z]*", literal_source[m.end():]).group(0)
            for m in ESCAPE_THEN_LETTER.finditer(literal_source) if m.group(1)]


DOCSTRINGS = list(_docstrings())


def test_the_package_has_docstrings_to_check():
    assert len(DOCSTRINGS) > 200, "the scan found too few docstrings; did the package move?"
    assert any(name == "outcome_targets" for _, _, name, _, _ in DOCSTRINGS)


def test_no_docstring_holds_control_characters_from_escapes():
    bad = [f"{path}:{line} {name}: {', '.join(chars)}" for path, line, name, node, _ in DOCSTRINGS
           if (chars := control_characters(node.value))]
    assert not bad, ("docstrings with control characters (a TeX command read as an escape; "
                     "make the docstring raw, r\"\"\"...\"\"\"):\n" + "\n".join(bad))


def test_docstrings_with_tex_escapes_are_raw():
    bad = [f"{path}:{line} {name}: {', '.join(escapes)}" for path, line, name, _, segment in DOCSTRINGS
           if (escapes := swallowed_escapes(segment))]
    assert not bad, "non-raw docstrings whose TeX starts with an escape (make them r\"\"\"...\"\"\"):\n" + "\n".join(bad)


@pytest.mark.parametrize("source, expected", [
    ('"""z = r_{\\text{final}}"""', ["\\text"]),          # the bug this file was written for
    ('"""p = \\beta x"""', ["\\beta"]),
    ('"""\\\\theta is fine"""', []),                      # an escaped backslash: the text reads \theta
    ('r"""z = r_{\\text{final}}"""', []),                 # raw: nothing is an escape
    ('"""two lines\\nand a newline"""', ["\\nand"]),     # \n before letters is flagged too
])
def test_the_source_check_catches_a_swallowed_escape(source, expected):
    assert swallowed_escapes(source) == expected


def test_the_control_check_catches_the_characters():
    assert control_characters(ast.literal_eval('"""z = r_{\\text{final}} :math:`z`"""')) == [r"\t"]
    assert control_characters(ast.literal_eval('"""\\beta"""')) == [r"\b"]
    assert control_characters("a plain\tTAB without TeX") == []
    assert control_characters(r"\theta and :math:`x`") == []
