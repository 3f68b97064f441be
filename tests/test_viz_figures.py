"""viz helpers the chapters share: learning curves, matplotlib figures behind sliders (live and as PNG
frames), block diagrams, win/draw/loss tables and rows of boards."""
from __future__ import annotations

import base64
import doctest
import io
import json
import re

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course_lib.games import TicTacToe  # noqa: E402
from course_lib.viz import (LiveCurve, Slider, arrow, boards_html, both_sides, box, figure_explorer,  # noqa: E402
                            figure_html, figure_page, image_html, plot_learning_curve, read_page, smooth, wdl,
                            wdl_table)
from course_lib.viz.live import WIDGET_MIME  # noqa: E402


# ------------------------------------------------------------------------------------ curves
def test_plot_learning_curve(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps({"step": s, "episode_return": s / 10}) for s in range(1, 6)) + "\n")
    ax = plot_learning_curve({"run": tmp_path}, target=0.4)
    assert len(ax.lines) == 2 and list(ax.lines[0].get_xdata()) == [1, 2, 3, 4, 5]
    plt.close("all")


def test_smooth_is_a_trailing_mean():
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert smooth([2.0, 4.0], 1) == [2.0, 4.0]


def test_live_curve_collects_rows_outside_a_notebook():
    curve = LiveCurve(every=0.0)
    for step in range(3):
        curve({"step": step, "episode_return": float(step)})
    curve.close()
    assert [r["step"] for r in curve.rows] == [0, 1, 2]


def test_curve_helpers_live_only_in_viz():
    import course_lib.core as core
    import course_lib.core.metrics as metrics

    for name in ("LiveCurve", "plot_learning_curve", "smooth"):      # one copy, in course_lib.viz.curves
        assert not hasattr(core, name) and not hasattr(metrics, name)


# ------------------------------------------------------------------------- figures behind sliders
def draw_line(slope=1.0, shift=0):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [shift, shift + slope])
    ax.set(ylim=(-3, 3), title=f"slope {slope:g}")
    return fig


def png_of(img: str):
    from PIL import Image

    data = re.fullmatch(r"<img width='(\d+)' height='(\d+)' .*src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", img)
    assert data, img[:200]
    image = Image.open(io.BytesIO(base64.b64decode(data.group(3))))
    return image, (int(data.group(1)), int(data.group(2)))


def test_figure_html_is_a_small_palette_png_and_closes_the_figure():
    fig = draw_line()
    image, size = png_of(figure_html(fig, dpi=50))
    assert image.format == "PNG" and image.mode == "P" and image.size == size == (150, 100)
    assert not plt.fignum_exists(fig.number)
    with pytest.raises(ValueError, match="matplotlib Figure"):
        figure_html("not a figure")


def test_image_html_keeps_every_pixel():
    import numpy as np
    import torch

    grey = np.array([[0.0, 1.0], [0.5, 0.25]])
    image, size = png_of(image_html(grey, scale=4))
    assert size == (8, 8) and image.size == (2, 2)
    assert [image.getpixel((x, y)) for y in (0, 1) for x in (0, 1)] == [0, 255, 128, 64]
    rgb = torch.zeros(3, 2, 3, dtype=torch.uint8)
    rgb[1, 0] = torch.tensor([10, 200, 30])
    image, _ = png_of(image_html(rgb))
    assert image.size == (2, 3) and image.getpixel((0, 1)) == (10, 200, 30)
    with pytest.raises(ValueError, match=r"\[H, W\] or \[H, W, 3\]"):
        image_html(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        image_html(np.full((2, 2), 2.0))


def test_figure_page_draws_every_combination_once():
    calls = []

    def draw(slope, shift):
        calls.append((slope, shift))
        return draw_line(slope, shift if slope else 0)     # slope 0: the same drawing for every shift

    sliders = [Slider("slope", [0.0, 1.0, 2.0]), Slider("shift", [-1, 1])]
    page = figure_page(draw, sliders, kind="lines", dpi=40)
    assert calls == [(0.0, -1), (0.0, 1), (1.0, -1), (1.0, 1), (2.0, -1), (2.0, 1)] and not plt.get_fignums()
    frames = read_page(page)["frames"]
    assert len(frames) == 6 and frames[0] == frames[1] and frames[2] != frames[3]
    raw = json.loads(re.search(r"<script type='application/json'[^>]*>(.*?)</script>", page, re.S).group(1))
    assert len(raw["strings"]) == 5                          # the two identical drawings stored once
    assert not re.search(r"https?://", page)


def test_figure_explorer_is_one_output_live_and_static():
    widgets = pytest.importorskip("ipywidgets")
    from IPython.core.formatters import DisplayFormatter

    drawn = []

    def draw(slope=1.0):
        drawn.append(slope)
        return draw_line(slope)

    control = widgets.FloatSlider(value=0.9, min=-2, max=2)
    shown = figure_explorer(draw, [Slider("slope", [-2.0, -1.0, 1.0, 2.0], label="s")], kind="line-slope",
                            live={"slope": control}, dpi=30)
    data, _ = DisplayFormatter().format(shown)
    assert data[WIDGET_MIME]["model_id"] == shown.widget.model_id
    page = read_page(data["text/html"])
    assert page["kind"] == "line-slope" and page["sliders"][0].start == 2      # the grid value nearest 0.9
    assert drawn == [-2.0, -1.0, 1.0, 2.0, 0.9]              # the grid, then the live widget's first drawing
    control.value = -0.5                                     # the live widget redraws with the kernel
    assert drawn[-1] == -0.5 and control.description == "s" and not plt.get_fignums()
    with pytest.raises(ValueError, match="must be the sliders"):
        figure_explorer(draw, [Slider("slope", [1.0])], kind="x", live={"other": control})


# ---------------------------------------------------------------------------- diagrams, tables
def test_box_and_arrow_draw_patches_and_labels():
    fig, ax = plt.subplots()
    box(ax, 0, 0, 2, 1, "learner", "#fde3c8")
    arrow(ax, (2, 0.5), (4, 0.5), "unrolls", color="tab:blue", rad=0.2, dashed=True)
    arrow(ax, (4, 0.2), (2, 0.2))
    assert len(ax.patches) == 3 and [t.get_text() for t in ax.texts] == ["learner", "unrolls"]
    assert ax.patches[1].get_linestyle() == "--" and ax.patches[2].get_linestyle() == "-"
    plt.close(fig)


def test_win_draw_loss_tables():
    import course_lib.viz.tables as tables

    assert doctest.testmod(tables).failed == 0
    first = {"as_first": {"wins": 3, "draws": 1, "losses": 0}, "as_second": {"wins": 0, "draws": 2, "losses": 2}}
    assert wdl(first["as_second"]) == "0/2/2"
    assert both_sides(first) == "3/1/0 as first, 0/2/2 as second (W/D/L)"
    table = wdl_table({"vs perfect, network alone": first, "vs random": first}).splitlines()
    assert len(table) == 3 and table[1].endswith("3/1/0      0/2/2") and len({len(line) for line in table[1:]}) == 1
    with pytest.raises(ValueError, match="as_first"):
        both_sides({"wins": 1})
    with pytest.raises(ValueError, match="losses"):
        wdl({"wins": 1, "draws": 0})


def test_boards_html_captions_each_board():
    game = TicTacToe()
    row = boards_html(game, game.initial(2), ["first", "second"], [None, None], cell=20)
    assert row.count("<svg") == 2 and "first" in row and "second" in row
    with pytest.raises(ValueError, match="captions must have one entry per state"):
        boards_html(game, game.initial(2), ["only one"])
