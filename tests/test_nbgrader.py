"""The `ppo` assignment through the real nbgrader command line, as an instructor runs it.

One module-scoped course directory (a copy of ``assignments/``) is generated once; every
student submission is written into it and graded by as few ``nbgrader autograde`` calls as
possible (one with the configured cell timeout, one with a short timeout for the student
whose notebook never stops). Scores are read back per test cell from the gradebook.

Scenarios: release without solutions or hidden tests; ``validate`` passes on the source and
fails every test of the release; full marks for the reference solution, zero for the blank
release, partial marks with exactly the expected cells failing for wrong solutions; an
infinite loop cut off by the timeout; edited test cells graded by the original tests.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = REPO / "assignments"
NBGRADER = Path(sys.executable).with_name("nbgrader")
COURSE_ID = "gpu-rl"
ASSIGNMENT = "ppo"
NOTEBOOK = "ppo.ipynb"

# Points per autograded test cell, as the source notebook assigns them.
POINTS = {
    "test_gae_td_errors": 1,
    "test_gae_no_episode_ends": 2,
    "test_gae_termination": 1,
    "test_gae_truncation": 2,
    "test_surrogate_inside_band": 1,
    "test_surrogate_clipping": 2,
    "test_surrogate_gradient": 1,
}
GAE_CELLS = [name for name in POINTS if name.startswith("test_gae")]
SURROGATE_CELLS = [name for name in POINTS if name.startswith("test_surrogate")]
COLAB_FIRST_LINE = ("# Colab set-up: install course_lib from the course repository "
                    "(elsewhere it is installed already).")

# Wrong solutions that students plausibly write.
GAE_TRUNCATION_AS_TERMINATION = '''
def gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    # Wrong: a time limit is treated like a real ending, so truncated steps lose their bootstrap.
    not_done = (~(terminated | truncated)).to(rewards.dtype)
    deltas = rewards + gamma * not_done * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages
'''
SURROGATE_WITHOUT_MIN = '''
def clipped_surrogate_objective(log_prob, old_log_prob, advantages, clip_eps):
    # Wrong: clips the ratio but forgets the pessimistic min with the unclipped term.
    ratio = torch.exp(log_prob - old_log_prob)
    return torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
'''
GAE_INFINITE_LOOP = '''
# Left over from debugging: this loop never ends, so gae_advantages below is never defined.
while True:
    pass

def gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    raise NotImplementedError()
'''
LOOP_TIMEOUT_S = 10  # long enough for `import torch` in a cold kernel on a slow machine
DELETED_TEST_CELL = "test_surrogate_clipping"  # edited_tests deletes this one (it would pass)

# Student id -> the test cells that must score zero (every other cell: full points).
EXPECTED_LOST = {
    "reference": [],
    "blank": list(POINTS),
    "wrong_gae": ["test_gae_truncation"],
    "wrong_surrogate": ["test_surrogate_clipping", "test_surrogate_gradient"],
    # The wrong GAE again, with every test cell replaced by `pass` and one deleted: the original
    # tests still run, so it scores like wrong_gae.
    "edited_tests": ["test_gae_truncation"],
    # The GAE cell loops forever: its tests fail, the surrogate's still count.
    "infinite_loop": GAE_CELLS,
}
STUDENTS = list(EXPECTED_LOST)


def _env() -> dict[str, str]:
    """The environment for nbgrader: no user-wide Jupyter config, and the venv's bin not on PATH.

    Leaving the venv's bin directory off PATH checks that `.venv/bin/nbgrader` works without
    activating the venv (nbgrader_config.py puts `alembic` back within reach).
    """
    env = dict(os.environ)
    bin_dir = str(NBGRADER.parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir)
    env.pop("VIRTUAL_ENV", None)
    return env


def run_nbgrader(course: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `nbgrader ARGS` in the course directory; returns the finished process (never raises on rc)."""
    assert NBGRADER.exists(), f"nbgrader is not installed next to {sys.executable}; run `make setup`"
    return subprocess.run([str(NBGRADER), *args], cwd=course, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def describe(proc: subprocess.CompletedProcess) -> str:
    return (f"`{' '.join(proc.args[1:])}` exited with {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
            f"\n--- stderr ---\n{proc.stderr[-6000:]}")


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def cells_by_id(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in nb.cells
            if "grade_id" in cell.metadata.get("nbgrader", {})}


def without_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def solution_lines(source: str) -> list[str]:
    """The code lines between BEGIN SOLUTION and END SOLUTION."""
    inside, lines = False, []
    for line in source.splitlines():
        if line.strip() == "### BEGIN SOLUTION":
            inside = True
        elif line.strip() == "### END SOLUTION":
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A fresh copy of assignments/ with `nbgrader generate_assignment ppo` run in it."""
    root = tmp_path_factory.mktemp("course")
    course_dir = root / "assignments"
    shutil.copytree(ASSIGNMENTS, course_dir, ignore=shutil.ignore_patterns(
        "release", "submitted", "autograded", "feedback", "downloaded", "gradebook.db", "*.csv",
        ".ipynb_checkpoints", "__pycache__"))
    proc = run_nbgrader(course_dir, "generate_assignment", ASSIGNMENT)
    assert proc.returncode == 0, f"generate_assignment failed:\n{describe(proc)}"
    assert (course_dir / "release" / ASSIGNMENT / NOTEBOOK).exists(), f"no release notebook:\n{describe(proc)}"
    return course_dir


@pytest.fixture(scope="module")
def source_nb(course) -> nbformat.NotebookNode:
    return read_notebook(course / "source" / ASSIGNMENT / NOTEBOOK)


@pytest.fixture(scope="module")
def release_nb(course) -> nbformat.NotebookNode:
    return read_notebook(course / "release" / ASSIGNMENT / NOTEBOOK)


def make_submissions(course: Path, source_nb, release_nb) -> None:
    """Writes submitted/<student>/ppo/ppo.ipynb for every student, each a modified release notebook."""
    source_cells = cells_by_id(source_nb)

    def submission(solutions: dict[str, str] | None = None, edit_tests: bool = False) -> nbformat.NotebookNode:
        nb = nbformat.from_dict(release_nb)  # a deep copy
        solutions = solutions or {}
        for grade_id, cell in cells_by_id(nb).items():
            meta = cell.metadata["nbgrader"]
            if meta.get("solution"):
                cell.source = solutions.get(grade_id, without_solution_markers(source_cells[grade_id].source))
            if edit_tests and meta.get("grade"):
                cell.source = "pass  # the tests were in the way"
                meta["points"] = 0
        if edit_tests:
            nb.cells = [cell for cell in nb.cells
                        if cell.metadata.get("nbgrader", {}).get("grade_id") != DELETED_TEST_CELL]
        return nb

    blank = nbformat.from_dict(release_nb)
    notebooks = {
        "reference": submission(),
        "blank": blank,
        "wrong_gae": submission({"gae_solution": GAE_TRUNCATION_AS_TERMINATION}),
        "wrong_surrogate": submission({"surrogate_solution": SURROGATE_WITHOUT_MIN}),
        "edited_tests": submission({"gae_solution": GAE_TRUNCATION_AS_TERMINATION}, edit_tests=True),
        "infinite_loop": submission({"gae_solution": GAE_INFINITE_LOOP}),
    }
    assert set(notebooks) == set(STUDENTS)
    for student, nb in notebooks.items():
        path = course / "submitted" / student / ASSIGNMENT / NOTEBOOK
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(course, source_nb, release_nb):
    """Autogrades every student; returns (scores {student: {cell: (score, max)}}, {call: (process, seconds)})."""
    from nbgrader.api import Gradebook

    make_submissions(course, source_nb, release_nb)
    calls = {}
    start = time.perf_counter()
    calls["main"] = (run_nbgrader(course, "autograde", ASSIGNMENT,
                                  "--CourseDirectory.student_id_exclude=infinite_loop"),
                     time.perf_counter() - start)
    start = time.perf_counter()
    calls["loop"] = (run_nbgrader(course, "autograde", ASSIGNMENT, "--student=infinite_loop",
                                  f"--Execute.timeout={LOOP_TIMEOUT_S}", timeout=120),
                     time.perf_counter() - start)
    for proc, _ in calls.values():
        assert proc.returncode == 0, f"autograde failed:\n{describe(proc)}"

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        for student in STUDENTS:
            nb = gb.find_submission_notebook(NOTEBOOK[:-len(".ipynb")], ASSIGNMENT, student)
            scores[student] = {grade.name: (grade.score, grade.max_score) for grade in nb.grades}
    return scores, calls


# --------------------------------------------------------------------------- fast checks (no nbgrader run)


def test_source_notebook_is_stored_clean():
    """The source notebook: nbformat 4, no outputs, nbgrader metadata, 10 points, Colab cell verbatim."""
    nb = read_notebook(ASSIGNMENTS / "source" / ASSIGNMENT / NOTEBOOK)
    assert nb.nbformat == 4
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"cell {cell.get('id')} has outputs; store the notebook stripped")
    cells = cells_by_id(nb)
    assert {k: int(c.metadata.nbgrader.points) for k, c in cells.items() if c.metadata.nbgrader.grade} == POINTS
    for name in POINTS:
        assert cells[name].metadata.nbgrader.locked, f"test cell {name} must be locked (read-only)"
        assert "### BEGIN HIDDEN TESTS" in cells[name].source, f"test cell {name} has no hidden tests"
    for name in ("gae_solution", "surrogate_solution"):
        assert cells[name].metadata.nbgrader.solution and "### BEGIN SOLUTION" in cells[name].source
    colab = next(c for c in nb.cells if c.cell_type == "code")
    assert colab.source.splitlines()[0] == COLAB_FIRST_LINE, "the first code cell must be the Colab set-up cell"
    assert 'if "google.colab" in sys.modules:' in colab.source


def test_config_sets_course_root_and_timeout(monkeypatch):
    from traitlets.config.loader import PyFileConfigLoader

    monkeypatch.setenv("PATH", os.environ.get("PATH", ""))  # the config may extend PATH; undo it afterwards
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ASSIGNMENTS)).load_config()
    assert config.CourseDirectory.course_id == COURSE_ID
    assert Path(config.CourseDirectory.root) == ASSIGNMENTS, "the course root must be assignments/ itself"
    assert config.Execute.timeout == 60, "nbgrader_config.py must set the cell timeout (Execute.timeout) explicitly"
    assert config.Autograde.create_student is True
    assert config.OverwriteCells.add_missing_cells is True


# --------------------------------------------------------------------------- a. generate_assignment


@pytest.mark.slow
def test_release_has_no_solutions_and_no_hidden_tests(source_nb, release_nb):
    source_cells, release_cells = cells_by_id(source_nb), cells_by_id(release_nb)
    assert set(release_cells) == set(source_cells), "the release must keep every nbgrader cell"
    release_text = "\n".join(cell.source for cell in release_nb.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "_reference_"):
        assert marker not in release_text, f"{marker!r} leaked into the release notebook"
    for grade_id, cell in source_cells.items():
        released = release_cells[grade_id]
        if cell.metadata.nbgrader.solution:
            assert "raise NotImplementedError()" in released.source, f"{grade_id}: no stub in the release"
            leaked = [line for line in solution_lines(cell.source) if line in released.source]
            assert not leaked, f"{grade_id}: solution code leaked into the release: {leaked}"
        if cell.metadata.nbgrader.grade:
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0].strip()
            assert released.source.strip() == visible, f"{grade_id}: the visible tests must be released unchanged"
            assert released.metadata.nbgrader.points == cell.metadata.nbgrader.points
            assert released.metadata.get("editable") is False, f"{grade_id}: test cells must be read-only"


# --------------------------------------------------------------------------- b. validate


@pytest.mark.slow
def test_validate_passes_on_the_source(course):
    proc = run_nbgrader(course, "validate", f"source/{ASSIGNMENT}/{NOTEBOOK}")
    assert proc.returncode == 0, describe(proc)
    assert "Success! Your notebook passes all the tests." in proc.stdout, describe(proc)
    assert "VALIDATION FAILED" not in proc.stdout, describe(proc)


@pytest.mark.slow
def test_validate_fails_every_test_of_the_release(course):
    # --invert succeeds only when no test cell passes: the stubs must make every test fail.
    proc = run_nbgrader(course, "validate", "--invert", f"release/{ASSIGNMENT}/{NOTEBOOK}")
    assert proc.returncode == 0, describe(proc)
    assert "Success! The notebook does not pass any tests." in proc.stdout, describe(proc)
    assert "NOTEBOOK PASSED ON" not in proc.stdout, describe(proc)
    # Without --invert the same notebook fails on all 7 test cells; nbgrader 0.9 still exits with 0,
    # so only its output tells.
    proc = run_nbgrader(course, "validate", f"release/{ASSIGNMENT}/{NOTEBOOK}")
    assert proc.returncode == 0, describe(proc)
    assert f"VALIDATION FAILED ON {len(POINTS)} CELL(S)!" in proc.stdout, describe(proc)
    assert "NotImplementedError" in proc.stdout, describe(proc)


# --------------------------------------------------------------------------- c, d, e. autograde


@pytest.mark.slow
@pytest.mark.parametrize("student", STUDENTS)
def test_autograde_scores_each_cell(graded, student):
    scores, _ = graded
    got = scores[student]
    assert set(got) == set(POINTS), f"{student}: graded cells {sorted(got)}, expected {sorted(POINTS)}"
    expected = {name: (0.0 if name in EXPECTED_LOST[student] else float(points), float(points))
                for name, points in POINTS.items()}
    wrong = {name: f"got {got[name][0]}/{got[name][1]}, expected {expected[name][0]}/{expected[name][1]}"
             for name in POINTS if got[name] != expected[name]}
    assert not wrong, f"{student}: unexpected scores per test cell: {wrong}"


@pytest.mark.slow
def test_autograde_totals(graded):
    scores, _ = graded
    totals = {student: sum(score for score, _ in cells.values()) for student, cells in scores.items()}
    assert totals == {"reference": 10, "blank": 0, "wrong_gae": 8, "wrong_surrogate": 7, "edited_tests": 8,
                      "infinite_loop": 4}, f"total scores: {totals}"


@pytest.mark.slow
def test_infinite_loop_is_cut_off_by_the_timeout(course, graded):
    _, calls = graded
    proc, seconds = calls["loop"]
    assert "Timeout waiting for execute reply" in proc.stderr, f"no cell timed out:\n{describe(proc)}"
    # One cell times out; a second one would show the timeout did not stop the loop.
    assert proc.stderr.count("Timeout waiting for execute reply") == 1, describe(proc)
    assert seconds < 60, f"grading one looping notebook took {seconds:.0f} s with a {LOOP_TIMEOUT_S} s timeout"
    nb = read_notebook(course / "autograded" / "infinite_loop" / ASSIGNMENT / NOTEBOOK)
    errors = [out for out in cells_by_id(nb)["gae_solution"].outputs if out.output_type == "error"]
    assert errors, "the looping cell should carry the timeout as an error output"
    # The cells after the loop ran: the surrogate's tests passed (checked in the scores), the GAE tests
    # failed because the function was never defined.
    gae_test = cells_by_id(nb)["test_gae_td_errors"]
    assert any(out.output_type == "error" and out.ename == "NameError" for out in gae_test.outputs), (
        "the GAE tests should fail with a NameError after the interrupted cell")


@pytest.mark.slow
def test_edited_test_cells_are_restored(course, graded, source_nb):
    nb = read_notebook(course / "autograded" / "edited_tests" / ASSIGNMENT / NOTEBOOK)
    source_cells, graded_cells = cells_by_id(source_nb), cells_by_id(nb)
    assert set(POINTS) <= set(graded_cells), f"test cells missing after autograde: {set(POINTS) - set(graded_cells)}"
    for name in POINTS:
        cell = graded_cells[name]
        if name == DELETED_TEST_CELL:
            # Put back by OverwriteCells.add_missing_cells, behind a comment saying so.
            assert cell.source.endswith(source_cells[name].source) and "added back by nbgrader" in cell.source, (
                f"the deleted cell {name} should have been added back with its original source")
        else:
            assert cell.source == source_cells[name].source, (
                f"{name}: autograde must run the original test cell (hidden tests included), not the edit")
        assert "pass  # the tests were in the way" not in cell.source
        assert float(cell.metadata.nbgrader.points) == POINTS[name], f"{name}: points were not restored"


# --------------------------------------------------------------------------- after grading


@pytest.mark.slow
def test_export_and_feedback(course, graded):
    proc = run_nbgrader(course, "export", "--to", "grades.csv")
    assert proc.returncode == 0, describe(proc)
    with open(course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(STUDENTS), f"grades.csv has students {sorted(rows)}"
    for student, cells in graded[0].items():
        total = sum(score for score, _ in cells.values())
        assert float(rows[student]["score"]) == total, f"{student}: grades.csv says {rows[student]['score']}"
        assert float(rows[student]["max_score"]) == sum(POINTS.values())

    proc = run_nbgrader(course, "generate_feedback", ASSIGNMENT, "--student=wrong_gae")
    assert proc.returncode == 0, describe(proc)
    html = (course / "feedback" / "wrong_gae" / ASSIGNMENT / "ppo.html").read_text()
    assert re.search(r"8(\.0)?\s*/\s*10", html), "the feedback should show the score 8 / 10"
