"""nbgrader configuration for the course's assignments.

Run every nbgrader command from this directory (``cd assignments``): nbgrader reads this
file from the working directory. No JupyterHub and no exchange directory are needed;
see book/instructors.md for the whole release -> collect -> autograde -> feedback cycle.

Layout (all relative to this directory):
  source/<assignment>/           instructor notebooks, with solutions and hidden tests
  release/<assignment>/          student versions, written by `nbgrader generate_assignment`
  submitted/<student>/<assignment>/   collected submissions (by hand or `nbgrader zip_collect`)
  autograded/<student>/<assignment>/  written by `nbgrader autograde`
  feedback/<student>/<assignment>/    HTML written by `nbgrader generate_feedback`
  gradebook.db                   the SQLite gradebook
"""
import os
import shutil
import sys
import warnings

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)  # for nbgrader_plugins.py beside this file

import nbgrader  # noqa: E402
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput,  # noqa: E402
                                    DeduplicateIds, Execute, IgnorePattern, LimitOutput,
                                    OverwriteKernelspec, SaveAutoGrades)
from sqlalchemy.exc import SAWarning  # noqa: E402

from nbgrader_plugins import (TEMPLATES, CsvExportWithLateness, FlagGraderTampering,  # noqa: E402
                              OverwriteCellsQuietly, inline_mathjax)

c.CourseDirectory.course_id = "gpu-rl"
# The course directory is this file's directory, wherever the command is run from.
c.CourseDirectory.root = _here

# Students are not registered in advance: autograde adds each student it finds under
# submitted/ to the gradebook (nbgrader 0.9's default, set here so it stays explicit).
c.Autograde.create_student = True

# A test cell a student deleted is put back from the gradebook and run, instead of
# scoring zero. (Edited test cells are always replaced by the originals: they are locked.)
c.OverwriteCells.add_missing_cells = True

# Each cell gets this many seconds when validating or autograding; a cell that runs
# longer (an infinite loop) is interrupted, recorded as an error, and grading goes on
# with the next cell. nbgrader's own default is 30 s; the reference solutions need
# well under a second per cell, so 60 s leaves room for a slow machine.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True

# Every kernel nbgrader starts (autograde, validate) loads course_lib.grading before the first cell: it
# records course_lib and the test helpers while no student code has run, so that the hidden tests can
# tell a solution that is or calls the library's reference, or a notebook that patched the library or
# the comparisons, and score it 0 (see course_lib/grading.py). Under autograde a kernel without it fails
# every hidden test rather than grade with a yardstick the student's code could have moved.
c.Execute.extra_arguments = ["--IPKernelApp.extensions=course_lib.grading"]

# nbgrader runs the `alembic` command, installed beside it, when it creates gradebook.db.
# Called as .venv/bin/nbgrader from a shell where the venv is not activated, that command
# is not on PATH and generate_assignment fails with "No such file or directory: 'alembic'";
# so put nbgrader's own bin directory on PATH when alembic is not found otherwise.
_bin = os.path.dirname(sys.executable)
if shutil.which("alembic") is None and os.path.exists(os.path.join(_bin, "alembic")):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

# nbgrader 0.9's autograde pipeline, with two changes (see nbgrader_plugins.py): test cells that only lack
# their hidden tests are restored without the "Attribute 'checksum' ... has changed!" warning (every test
# cell of every student raised it), and after the notebook ran, a notebook whose own cells name the grader
# scores 0 on every test. Keep these lists in step with nbgrader's when upgrading it.
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCellsQuietly,
                                      CheckCellMetadata]
c.Autograde.autograde_preprocessors = [Execute, FlagGraderTampering, IgnorePattern, ClearMetadataPreprocessor,
                                       LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]

# A new student's first autograde made SQLAlchemy 2 warn "Object of type <SubmittedAssignment> not in
# session, add operation along 'Assignment.submissions' will not proceed" (and the same for the notebooks):
# nbgrader builds the submission's rows, reads the assignment's notebooks (which flushes the session) and
# only then adds the rows, all of them at once. Nothing is lost (the tests read every grade back), so this
# one message is silenced; other SQLAlchemy warnings still show.
warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session, add operation along",
                        category=SAWarning)

# `nbgrader export` writes nbgrader's CSV plus a seconds_late column (late_submission_penalty stays 0:
# no penalty is configured).
c.ExportApp.plugin_class = CsvExportWithLateness

# Feedback pages carry MathJax inside them instead of loading it from a CDN, so that their equations
# render offline: templates/base/mathjax.html.j2 replaces nbconvert's macro of the same name (this folder
# is searched first; nbgrader's own feedback template comes next, as nbgrader would set it).
c.HTMLExporter.extra_template_basedirs = [
    str(TEMPLATES),
    os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader", "templates"),
]
c.HTMLExporter.filters = {"inline_mathjax": inline_mathjax}
