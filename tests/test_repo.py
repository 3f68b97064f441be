"""The repository's plumbing: book configuration, notebook links, CI workflow, conda environment.

Fast checks (no training, no notebook execution); each fails when one place is changed and
the place that must agree with it is not.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement  # installed with pytest

from course_lib import book_links

ROOT = Path(__file__).resolve().parent.parent


def _yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def _requirement(text: str) -> str:
    """A requirement in one spelling (normalised name, sorted specifiers), to compare as sets."""
    requirement = Requirement(text)
    name = re.sub(r"[-_.]+", "-", requirement.name).lower()
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    specifiers = ",".join(sorted(str(s) for s in requirement.specifier))
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{name}{extras}{specifiers}{marker}"


# --- CI workflow ---------------------------------------------------------------------------

def test_workflow_runs_make_test_and_make_book():
    workflow = _yaml(".github/workflows/book.yml")
    jobs = workflow["jobs"]
    runs = {name: " ".join(step.get("run", "") for step in job.get("steps", [])) for name, job in jobs.items()}
    assert re.search(r"\bmake test\b", runs["test"]), runs["test"]
    assert re.search(r"\bmake book\b", runs["book"]), runs["book"]
    uses = [step.get("uses", "") for job in jobs.values() for step in job.get("steps", [])]
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert any(u.startswith("actions/deploy-pages") for u in uses)
    # PyYAML reads the bare key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert "main" in triggers["push"]["branches"] and "pull_request" in triggers
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}


# --- conda environment ---------------------------------------------------------------------

def test_environment_yml_lists_the_same_requirements_as_pyproject():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    expected = list(project["dependencies"])
    for extra in ("book", "grading", "dev", "mujoco", "ray"):
        expected += project["optional-dependencies"][extra]

    environment = _yaml("environment.yml")
    assert environment["name"] == "gpu-rl-course"
    assert "conda-forge" in environment["channels"]
    assert "python=3.11" in environment["dependencies"] and "pip" in environment["dependencies"]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip[-1] == "-e .", "environment.yml's pip list must end with `-e .` (installs course_lib)"
    listed = pip[:-1]
    assert len(listed) == len(set(listed)), "a requirement is listed twice in environment.yml"
    missing = {_requirement(r) for r in expected} - {_requirement(r) for r in listed}
    extra = {_requirement(r) for r in listed} - {_requirement(r) for r in expected}
    assert not missing and not extra, (
        f"environment.yml and pyproject.toml disagree; only in pyproject.toml: {sorted(missing)}, "
        f"only in environment.yml: {sorted(extra)}"
    )


# --- book configuration --------------------------------------------------------------------

def _toc_files(entry) -> list[str]:
    """Every `file:` (and `root:`) named anywhere in a _toc.yml structure."""
    if isinstance(entry, dict):
        own = [entry[k] for k in ("root", "file") if k in entry]
        return own + [f for value in entry.values() for f in _toc_files(value)]
    if isinstance(entry, list):
        return [f for item in entry for f in _toc_files(item)]
    return []


def test_toc_references_only_existing_files():
    toc = _yaml("_toc.yml")
    assert toc["format"] == "jb-book" and toc["root"] == "book/intro"
    files = _toc_files(toc)
    assert "notebooks/04_ppo" in files and "book/instructors" in files
    missing = [
        f for f in files
        if not any((ROOT / (f + suffix)).is_file() for suffix in ("", ".md", ".ipynb"))
    ]
    assert not missing, f"_toc.yml names files that do not exist: {missing}"


def test_config_has_repository_and_colab_launch_button():
    config = _yaml("_config.yml")
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", config["repository"]["url"])
    assert config["repository"]["branch"]
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["html"]["use_repository_button"] is True
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["execute"]["allow_errors"] is False
    assert config["only_build_toc_files"] is True
    assert book_links.repository_url() == config["repository"]["url"]


def test_repository_url_lives_only_in_config():
    """Pages and notebooks get the address from _config.yml, never by writing it out."""
    url = book_links.repository_url()
    owner_repo = url.removeprefix("https://github.com/")
    for path in [*ROOT.glob("book/*.md"), ROOT / "_toc.yml"]:
        assert owner_repo not in path.read_text(encoding="utf-8"), f"{path} writes out the repository address"


# --- notebooks -----------------------------------------------------------------------------

def test_book_links_check_passes_on_the_repository():
    if not book_links.notebook_paths(ROOT):
        pytest.skip("no notebooks yet")
    result = subprocess.run(
        [sys.executable, "-m", "course_lib.book_links", "--check"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stored_notebooks_have_no_outputs():
    for path in book_links.notebook_paths(ROOT):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            where = f"{path.relative_to(ROOT)} cell {index}"
            assert cell.get("outputs") == [], f"{where} has stored outputs; clear them before committing"
            assert cell.get("execution_count") is None, f"{where} has an execution count"


def _cell(kind: str, text: str) -> dict:
    cell = {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


OLD_SETUP = (
    f"{book_links.SETUP_CELL_MARKER}\n"
    "import sys\n"
    'if "google.colab" in sys.modules:\n'
    '    %pip install --quiet "course-lib @ git+https://github.com/old-owner/old-repo@old-branch"\n'
)
OLD_BADGE = (
    "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
    "(https://colab.research.google.com/github/old-owner/old-repo/blob/old-branch/notebooks/other.ipynb)"
)


def _fake_repository(tmp_path: Path) -> Path:
    """A minimal checkout in tmp_path: _config.yml plus two notebooks with stale links."""
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    (tmp_path / "_config.yml").write_text(config, encoding="utf-8")
    for relpath in ("notebooks/01_demo.ipynb", "assignments/source/demo/demo.ipynb"):
        path = tmp_path / relpath
        path.parent.mkdir(parents=True)
        notebook = {
            "cells": [
                _cell("markdown", f"# Demo\n\n{OLD_BADGE}\n\nText that stays."),
                _cell("code", OLD_SETUP),
                _cell("code", "print('hello')"),
            ],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
        }
        path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")
    return tmp_path


def _check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "course_lib.book_links", "--check", "--root", str(root)],
        cwd=ROOT, capture_output=True, text=True,
    )


def test_book_links_rewrites_badges_and_install_line(tmp_path):
    root = _fake_repository(tmp_path)
    config_path = root / "_config.yml"
    config_path.write_text(
        config_path.read_text(encoding="utf-8").replace(
            book_links.repository_url(), "https://github.com/new-owner/new-repo"
        ).replace("branch: main", "branch: release"),
        encoding="utf-8",
    )
    assert book_links.repository_url(root) == "https://github.com/new-owner/new-repo"

    before = _check(root)
    assert before.returncode == 1
    assert "notebooks/01_demo.ipynb" in before.stderr and "make links" in before.stderr
    assert "assignments/source/demo/demo.ipynb" in before.stderr

    assert book_links.main(["--root", str(root)]) == 0

    for relpath in ("notebooks/01_demo.ipynb", "assignments/source/demo/demo.ipynb"):
        text = (root / relpath).read_text(encoding="utf-8")
        assert text.endswith("}\n") and text.startswith('{\n "cells": [\n  {\n')  # Jupyter's layout
        cells = json.loads(text)["cells"]
        badge, setup, plain = ("".join(c["source"]) for c in cells)
        assert f"(https://colab.research.google.com/github/new-owner/new-repo/blob/release/{relpath})" in badge
        assert "old-owner" not in badge and "Text that stays." in badge
        assert '    %pip install --quiet "course-lib @ git+https://github.com/new-owner/new-repo@release"\n' in setup
        assert "old-owner" not in setup and setup.startswith(book_links.SETUP_CELL_MARKER)
        assert plain == "print('hello')"
        assert book_links.colab_url(relpath, root) in badge

    after = _check(root)
    assert after.returncode == 0, after.stderr
    # Rewriting again changes nothing.
    snapshot = (root / "notebooks/01_demo.ipynb").read_bytes()
    assert book_links.main(["--root", str(root)]) == 0
    assert (root / "notebooks/01_demo.ipynb").read_bytes() == snapshot


def test_book_links_rejects_a_setup_cell_without_install_line(tmp_path):
    root = _fake_repository(tmp_path)
    path = root / "notebooks/01_demo.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    notebook["cells"][1] = _cell("code", f"{book_links.SETUP_CELL_MARKER}\nimport sys\n")
    path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")
    result = _check(root)
    assert result.returncode == 2 and "no `%pip install" in result.stderr


def test_book_links_rejects_a_non_github_url(tmp_path):
    (tmp_path / "_config.yml").write_text(
        "repository: {url: https://gitlab.com/a/b, branch: main}\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="github.com/OWNER/REPO"):
        book_links.install_line(tmp_path)
