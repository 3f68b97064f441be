"""Sphinx extension of the book: its pages fetch nothing from another host (the book is read
offline too) and run without JavaScript errors. tests/test_book_browser.py checks both.

- Each notebook's Colab badge is an image on Colab's server, as it must be where the notebook is
  opened on GitHub or in Colab. In the book's HTML the image becomes the badge's text, drawn by
  the page itself and still linking to Colab: offline, a reader sees a badge, not a broken image.
- sphinx-thebe (which Jupyter Book always loads) adds its inline configuration script once per
  read of the sources, so a page can carry it twice and the second copy throws ("Identifier
  'THEBE_JS_URL' has already been declared"). Each page keeps one copy of every script.

MathJax comes from the build through the sphinx-mathjax-offline extension (see _config.yml).
"""
from __future__ import annotations

import html

from docutils import nodes

from course_lib.book_links import BADGE_IMAGE

BADGE_STYLE = ("display:inline-block;padding:1px 8px;border-radius:3px;background:#555;color:#fff;"
               "font:12px/18px Verdana,DejaVu Sans,sans-serif;text-decoration:none")


def _draw_colab_badges(app, doctree: nodes.document, docname: str) -> None:
    if app.builder.format != "html":
        return
    for image in list(doctree.findall(nodes.image)):
        if image.get("uri") == BADGE_IMAGE:
            text = html.escape(image.get("alt") or "Open in Colab")
            image.replace_self(nodes.raw("", f"<span class='colab-badge' style='{BADGE_STYLE}'>{text}</span>",
                                         format="html"))


def _one_copy_of_each_script(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    kept, seen = [], set()
    for js in scripts:
        # An inline script is registered once with filename None and once with "" (builder and registry).
        key = (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept  # in place: the builder's list, which other handlers extend


def setup(app):
    app.connect("doctree-resolved", _draw_colab_badges)
    # First: Sphinx stops calling html-page-context handlers at the first one that returns a template.
    app.connect("html-page-context", _one_copy_of_each_script, priority=100)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
