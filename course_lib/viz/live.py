"""One notebook output for a live explorer and its static page: the kernel shows one, the book the other.

A live ipywidget does nothing without a kernel, and the built book has none. So every live
explorer of the course is displayed as ONE output whose MIME bundle holds both:

* ``application/vnd.jupyter.widget-view+json``: the live widget (Jupyter, Colab, VS Code with a
  kernel render this one);
* ``text/html``: the static explorable page (:func:`~course_lib.viz.page.explorable_page`),
  which the book's HTML build is configured to prefer (``nb_mime_priority_overrides`` in
  ``_config.yml``), so a reader without a kernel still moves the sliders.

Example::

    import ipywidgets as widgets
    show_explorer(widgets.IntSlider(), "<b>the static page</b>")
"""
from __future__ import annotations

__all__ = ["LiveAndStatic", "WIDGET_MIME", "show_explorer"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class LiveAndStatic:
    """A displayable pairing a live widget with its static HTML page.

    Args:
      widget: an ipywidgets widget (a ``DOMWidget``; ipywidgets 7 or 8), or None for the page alone
        (ipywidgets not installed).
      html: the static page, self-contained HTML.
      text: the plain-text form (what a terminal shows).
    """

    def __init__(self, widget, html: str, text: str | None = None):
        if not isinstance(html, str) or not html:
            raise ValueError(f"html must be the static page, a non-empty string; got {type(html).__name__}")
        if widget is not None and not hasattr(widget, "model_id"):
            raise ValueError(f"widget must be an ipywidgets widget or None; got {type(widget).__name__}")
        self.widget, self.html = widget, html
        self.text = text if text is not None else f"<{type(self).__name__}: a live widget and its static page>"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = {"text/plain": self.text, "text/html": self.html}
        if self.widget is not None:
            # The same view reference a widget's own display writes (spec version 2.0 in ipywidgets 7 and 8).
            bundle[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}
            handle = getattr(self.widget, "_handle_displayed", None)      # ipywidgets 7's on_displayed callbacks
            if handle is not None:
                handle()
        return bundle


def show_explorer(widget, static_html: str, text: str | None = None) -> None:
    """Display ``widget`` and ``static_html`` as one output (see :class:`LiveAndStatic`)."""
    from IPython.display import display

    display(LiveAndStatic(widget, static_html, text))
