"""Matplotlib figures behind sliders: a live ``interactive`` in the kernel, precomputed PNGs in the book.

A chapter's slider calls one function ``draw(**values) -> Figure``. :func:`figure_explorer`
uses that same function twice: live, through ``ipywidgets.interactive`` (every move redraws in
the kernel), and static, drawing it once for every combination of a grid of values into small
PNGs inside an :func:`~course_lib.viz.page.explorable_page`. Both are displayed as one output
(:class:`~course_lib.viz.live.LiveAndStatic`).

Example (a notebook cell)::

    def draw(alpha=0.5):
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(xs, np.exp(-xs / alpha))
        return fig

    figure_explorer(draw, [Slider("alpha", np.logspace(-2, 1, 31), label="α")], kind="soft-value",
                    live={"alpha": widgets.FloatLogSlider(value=0.5, base=10, min=-2, max=1, step=0.02)})
"""
from __future__ import annotations

import base64
import functools
import html
import io
import math
from typing import Callable, Mapping, Sequence

from .live import LiveAndStatic
from .page import Slider, explorable_page, grid_values

__all__ = ["figure_explorer", "figure_html", "figure_page", "image_html"]


def figure_html(fig, *, dpi: float = 72, colors: int = 128, close: bool = True) -> str:
    """An ``<img>`` holding ``fig`` as a base64 PNG, palette-quantised (line plots lose nothing visible).

    A palette of ``colors`` entries instead of 8-bit RGBA makes a plot's PNG several times smaller,
    which is what keeps a page of dozens of frames small. ``close`` closes the figure (a pyplot
    figure left open would also be shown at the end of the notebook cell).
    """
    from matplotlib.figure import Figure
    from PIL import Image

    if not isinstance(fig, Figure):
        raise ValueError(f"figure_html takes a matplotlib Figure; got {type(fig).__name__}")
    if not 2 <= colors <= 256:
        raise ValueError(f"colors must be in [2, 256]; got {colors}")
    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=dpi, facecolor="white")
    if close:
        import matplotlib.pyplot as plt
        plt.close(fig)
    raw.seek(0)
    image = Image.open(raw).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                                    dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    width, height = image.size
    return (f"<img width='{width}' height='{height}' style='max-width:100%;height:auto' alt='plot' "
            f"src='data:image/png;base64,{base64.b64encode(out.getvalue()).decode('ascii')}'>")


def image_html(pixels, *, scale: int = 1, alt: str = "image") -> str:
    """An ``<img>`` holding an array of pixels as a base64 PNG, each pixel a ``scale`` x ``scale`` square.

    For frames that are pictures already (an observation, an imagined frame), without matplotlib.

    Args:
      pixels: ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB), a NumPy array or tensor; floats in [0, 1] or
        integers in [0, 255].
      scale: an integer upscaling, drawn without smoothing (``image-rendering: pixelated``).
      alt: the image's text alternative.
    """
    import numpy as np
    from PIL import Image

    array = pixels.detach().cpu().numpy() if hasattr(pixels, "detach") else np.asarray(pixels)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"pixels must be [H, W] or [H, W, 3]; got shape {tuple(array.shape)}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1; got {scale!r}")
    if array.dtype.kind == "f":
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(f"float pixels must be in [0, 1]; got [{array.min():.3g}, {array.max():.3g}]")
        array = np.rint(array * 255)
    elif array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"integer pixels must be in [0, 255]; got [{array.min()}, {array.max()}]")
    image = Image.fromarray(array.astype(np.uint8))
    width, height = image.width * scale, image.height * scale
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return (f"<img width='{width}' height='{height}' style='image-rendering:pixelated' "
            f"alt='{html.escape(alt, quote=True)}' "
            f"src='data:image/png;base64,{base64.b64encode(out.getvalue()).decode('ascii')}'>")


def figure_page(draw: Callable, sliders: Sequence[Slider], *, kind: str, title: str | None = None,
                dpi: float = 72, colors: int = 128) -> str:
    """A static page of ``draw(**values)`` for every combination of the sliders' values (PNG frames).

    Args:
      draw: ``draw(**{slider.name: value}) -> matplotlib Figure``; each figure is closed once drawn.
      sliders: the grid (:class:`~course_lib.viz.page.Slider`); the page holds
        ``prod(len(values))`` frames, identical drawings stored once.
      kind, title: see :func:`~course_lib.viz.page.explorable_page`.
      dpi, colors: see :func:`figure_html`.
    """
    frames = []
    for values in grid_values(sliders):
        fig = draw(**values)
        frames.append({"plot": figure_html(fig, dpi=dpi, colors=colors)})
    return explorable_page(frames, sliders, kind=kind, title=title, views={"plot": "max-width:100%"})


def figure_explorer(draw: Callable, sliders: Sequence[Slider], *, kind: str, live: Mapping | None = None,
                    title: str | None = None, dpi: float = 72, colors: int = 128) -> LiveAndStatic:
    """``draw`` behind sliders: live ipywidgets controls with a kernel, the precomputed page in the book.

    Args:
      draw: ``draw(**values) -> matplotlib Figure``, the one drawing function of both versions.
      sliders: the static page's grid (keep it small: every combination is a PNG in the page). A
        slider whose ``start`` is 0 starts at the grid value nearest the live control's value.
      kind: the page's ``data-explorer`` (e.g. ``"soft-value"``).
      live: ``{name: ipywidgets control}`` for the kernel (finer than the grid, as fine as you
        like); None: the static page alone.
      title, dpi, colors: see :func:`figure_page`.

    Returns:
      A :class:`~course_lib.viz.live.LiveAndStatic`: the last expression of a cell displays it;
      ``.widget`` is the ``ipywidgets.interactive`` (None without ``live``), ``.html`` the page.
    """
    names = [s.name for s in sliders]
    if live is not None and set(live) != set(names):
        raise ValueError(f"live controls {sorted(live)} must be the sliders {names}")
    if live is not None:
        sliders = [_start_near(s, getattr(live[s.name], "value", None)) for s in sliders]
    page = figure_page(draw, sliders, kind=kind, title=title, dpi=dpi, colors=colors)
    widget = None
    if live is not None:
        import ipywidgets as widgets

        @functools.wraps(draw)          # interactive reads the keywords from draw's signature
        def redraw(**values):
            import matplotlib.pyplot as plt
            from IPython.display import display

            fig = draw(**values)
            display(fig)                   # into the interactive's output area
            plt.close(fig)

        for slider in sliders:
            if not getattr(live[slider.name], "description", ""):
                live[slider.name].description = slider.label or slider.name
        widget = widgets.interactive(redraw, **live)
    return LiveAndStatic(widget, page, text=f"<figure explorer {kind!r}: {' x '.join(names)}>")


def _start_near(slider: Slider, value) -> Slider:
    """``slider`` starting at the value nearest ``value`` (unless it already starts elsewhere)."""
    if slider.start != 0 or not isinstance(value, (int, float)) or isinstance(value, bool):
        return slider
    numbers = [(v, i) for i, v in enumerate(slider.values) if isinstance(v, (int, float))]
    if not numbers:
        return slider
    if value > 0 and all(v > 0 for v, _ in numbers):     # a log-spaced grid: nearest by ratio
        numbers = [(abs(math.log(v / value)), i) for v, i in numbers]
    else:
        numbers = [(abs(v - value), i) for v, i in numbers]
    return Slider(slider.name, slider.values, slider.label, slider.texts, min(numbers)[1])
