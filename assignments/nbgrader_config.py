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

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "gpu-rl"
# The course directory is this file's directory, wherever the command is run from.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

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

# nbgrader runs the `alembic` command, installed beside it, when it creates gradebook.db.
# Called as .venv/bin/nbgrader from a shell where the venv is not activated, that command
# is not on PATH and generate_assignment fails with "No such file or directory: 'alembic'";
# so put nbgrader's own bin directory on PATH when alembic is not found otherwise.
_bin = os.path.dirname(sys.executable)
if shutil.which("alembic") is None and os.path.exists(os.path.join(_bin, "alembic")):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")
