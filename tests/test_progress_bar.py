"""core.metrics.ProgressBar: tqdm's text bar in a terminal; in Jupyter, tqdm's widget in one output
whose MIME bundle also holds a static copy (text/html, text/plain) of the bar's final state, which
a saved notebook and the book show where the widget would need a kernel."""
from __future__ import annotations

import re

import pytest

from course_lib.core import ProgressBar
from course_lib.core.metrics import in_notebook

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_outside_a_notebook_it_is_the_text_bar(capsys):
    assert not in_notebook()
    bar = ProgressBar(100, "demo")
    bar.update(40, episode_return=2.5)
    bar.close()
    err = capsys.readouterr().err
    assert re.search(r"demo: 100%.*40(\.0)?/40(\.0)? .*episode_return=2.5", err), err  # stopped early: complete
    quiet = ProgressBar(100, "quiet", enabled=False)
    quiet.update(50)
    quiet.close()
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_in_a_kernel_the_widget_carries_a_static_copy_of_its_final_state():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(  # a run that stops early, at 600 of 1,000 steps (a target reached)
            "from course_lib.core import ProgressBar\n"
            "bar = ProgressBar(1000, 'early stop')\n"
            "for step in range(0, 601, 100):\n"
            "    bar.update(step, episode_return=3.25)\n"
            "bar.close()"),
        nbformat.v4.new_code_cell(  # a run that never closes its bar (it raised): the copy shows the start
            "unclosed = ProgressBar(500, 'unclosed')\n"
            "unclosed.update(100)"),
    ]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()

    (closed,), (unclosed,) = (cell.outputs for cell in nb.cells)
    for output in (closed, unclosed):
        assert output.output_type == "display_data"
        assert set(output.data) == {WIDGET_VIEW, "text/html", "text/plain"}
        assert output.data[WIDGET_VIEW]["model_id"] in str(nb.metadata.widgets), "the live widget's state is saved"

    page = closed.data["text/html"].replace("\u2007", " ")  # tqdm pads the widget's text with figure spaces
    assert "early stop" in page and "100%" in page and "600/600" in page and "episode_return=3.2" in page
    assert re.search(r"width:100\.0%;[^']*background:#4caf50", page), "a complete bar, in the success colour"
    assert "<script" not in page and "http" not in page
    assert closed.data["text/plain"].startswith("early stop: 100%|") and "600/600" in closed.data["text/plain"]

    started = unclosed.data["text/html"].replace("\u2007", " ")
    assert "unclosed" in started and "0/500" in started and re.search(r"width:0\.0%", started)
