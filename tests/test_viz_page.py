"""The static explorable page: self-contained, its frames round-trip, sliders map to frames; and in a
headless browser (when one is installed), its script answers slider moves and clicks.

Also the one-output helper for a live widget and its static page."""
from __future__ import annotations

import html
import itertools
import json
import os
import re
import shutil
import subprocess

import pytest

from course_lib.viz import Frame, LiveAndStatic, Slider, explorable_page, frame_index, grid_values, read_page
from course_lib.viz.live import WIDGET_MIME


def outside_json(page: str) -> str:
    """The page without its frames' JSON: what a reader sees before any script runs."""
    return re.sub(r"<script type='application/json'.*?</script>", "", page, flags=re.S)


def lettered_page(**options) -> tuple[str, list[Slider]]:
    """Three sliders (2 x 3 x 4); frame (i, j, k) shows the text "a<i> b<j> c<k>"."""
    sliders = [Slider("a", [0.5, 1.5]), Slider("b", ["x", "y", "z"], label="letter"), Slider("c", [1, 2, 3, 4])]
    frames = [{"main": f"a{i} b{j} c{k}"} for i, j, k in itertools.product(range(2), range(3), range(4))]
    return explorable_page(frames, sliders, kind="demo", **options), sliders


# --------------------------------------------------------------------------- the page's data
def test_page_is_self_contained():
    page, _ = lettered_page(title="three sliders", hint="move them")
    assert not re.search(r"https?://", page)                  # no network: nothing to fetch, nowhere to link
    assert "<script src" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count("<script") == page.count("</script>") == 2   # the frames' JSON and the inline script
    assert page.count("<style>") == 1 and page.count("type='range'") == 3
    root = re.match(r"<style>.*?</style><div id='(vx-[0-9a-f]{12})' [^>]*data-explorer='demo'", page)
    assert root and f'getElementById("{root.group(1)}")' in page
    assert read_page(page)["id"] == root.group(1) != read_page(lettered_page()[0])["id"]   # unique per call


def test_frames_round_trip_and_shared_pieces_are_stored_once():
    board = "<svg xmlns='http://www.w3.org/2000/svg' width='9' height='9'><rect width='9' height='9'/></svg>"
    nasty = "</script><script>alert(1)</script><!-- \u00e9 \u2028"      # must not end or break the JSON's script
    frames = [Frame({"tree": f"tree {k}", "panel": ["<b>", board, f"{k}</b>"]},
                    {"n1": {"panel": ["node 1 ", board, nasty]}, "n2": {"tree": "other", "panel": str(k)}})
              for k in range(3)]
    page = explorable_page(frames, [Slider("k", [0, 1, 2], start=-1)], kind="round-trip", select="n1",
                           views={"tree": "flex:1", "panel": "width:100px"}, meta={"why": [1, 2]})
    data = read_page(page)
    joined = [Frame({v: c if isinstance(c, str) else "".join(c) for v, c in f.views.items()},
                    {k: {v: c if isinstance(c, str) else "".join(c) for v, c in over.items()}
                     for k, over in f.on_click.items()}) for f in frames]
    assert data["frames"] == joined and data["select"] == "n1" and data["meta"] == {"why": [1, 2]}
    assert data["kind"] == "round-trip" and data["sliders"][0].values == (0, 1, 2) and data["sliders"][0].start == 2
    text = re.search(r"<script type='application/json'[^>]*>(.*?)</script>", page, re.S).group(1)
    assert "</script" not in text and "<script" not in text and "<!--" not in text    # it ends where it should
    raw = json.loads(text)
    assert raw["strings"].count(board) == 1 and raw["strings"].count(nasty) == 1
    # The start frame (the last, with n1 selected) is in the page before any script runs.
    assert "tree 2" in outside_json(page) and "node 1 " + board in outside_json(page)


def test_sliders_map_to_frames_row_major():
    page, sliders = lettered_page()
    data = read_page(page)
    assert len(data["frames"]) == 24
    for i, j, k in itertools.product(range(2), range(3), range(4)):
        assert data["frames"][frame_index(sliders, (i, j, k))].views["main"] == f"a{i} b{j} c{k}"
    assert [frame_index(sliders, p) for p in itertools.product(range(2), range(3), range(4))] == list(range(24))
    assert list(grid_values(sliders))[frame_index(sliders, (1, 2, 0))] == {"a": 1.5, "b": "z", "c": 1}
    assert sliders[0].shown_texts == ["a = 0.5", "a = 1.5"] and sliders[1].shown_texts[2] == "letter = z"
    with pytest.raises(ValueError, match="position 3 is outside"):
        frame_index(sliders, (0, 3, 0))


def test_page_without_sliders_has_one_frame():
    page = explorable_page([{"only": "<p>still</p>"}], kind="still")
    assert "<p>still</p>" in outside_json(page) and "type='range'" not in page
    assert read_page(page)["frames"] == [Frame({"only": "<p>still</p>"})]


def test_bad_pages_raise_clear_errors():
    two = [Slider("a", [1, 2])]
    with pytest.raises(ValueError, match=r"one frame per combination .*2 = 2\); got 3"):
        explorable_page([{"v": "x"}] * 3, two, kind="demo")
    with pytest.raises(ValueError, match="kind must match"):
        explorable_page([{"v": "x"}], kind="Tree Explorer")
    with pytest.raises(ValueError, match="views \\['w'\\] the page does not have"):
        explorable_page([{"v": "x"}, {"w": "y"}], two, kind="demo", views={"v": ""})
    with pytest.raises(ValueError, match="click 'k' fills views \\['w'\\] that the frame's views do not fill"):
        explorable_page([Frame({"v": "x"}, {"k": {"w": "y"}})], kind="demo", views={"v": "", "w": ""})
    with pytest.raises(ValueError, match="slider names must differ"):
        explorable_page([{"v": "x"}] * 4, [Slider("a", [1, 2]), Slider("a", [1, 2])], kind="demo")
    with pytest.raises(ValueError, match="content must be an HTML string"):
        explorable_page([{"v": 3}], kind="demo")
    with pytest.raises(ValueError, match="not both"):
        explorable_page([{"v": "x"}], kind="demo", views={"v": ""}, body="<div data-view='v'>$v</div>")
    with pytest.raises(ValueError, match="start must index"):
        Slider("a", [1, 2], start=2)
    with pytest.raises(ValueError, match="at least one value"):
        Slider("a", [])
    with pytest.raises(ValueError, match="3 values but 2 texts"):
        Slider("a", [1, 2, 3], texts=["one", "two"])
    with pytest.raises(ValueError, match="one explorable page"):
        read_page("<p>no page</p>")


# ----------------------------------------------------------------------- live and static together
class FakeWidget:
    model_id = "abc123"
    displayed = 0

    def _handle_displayed(self):          # ipywidgets 7 runs its on_displayed callbacks from here
        self.displayed += 1


def test_live_and_static_is_one_output_with_both_views():
    from IPython.core.formatters import DisplayFormatter

    page, _ = lettered_page()
    widget = FakeWidget()
    data, _ = DisplayFormatter().format(LiveAndStatic(widget, page))
    assert data[WIDGET_MIME] == {"version_major": 2, "version_minor": 0, "model_id": "abc123"}
    assert data["text/html"] == page and "text/plain" in data and widget.displayed == 1
    alone, _ = DisplayFormatter().format(LiveAndStatic(None, page))
    assert WIDGET_MIME not in alone and alone["text/html"] == page
    with pytest.raises(ValueError, match="ipywidgets widget or None"):
        LiveAndStatic(object(), page)
    with pytest.raises(ValueError, match="non-empty string"):
        LiveAndStatic(widget, "")


def test_live_and_static_with_a_real_widget():
    widgets = pytest.importorskip("ipywidgets")
    slider = widgets.IntSlider()
    data = LiveAndStatic(slider, "<p>page</p>")._repr_mimebundle_()
    assert data[WIDGET_MIME] == slider._repr_mimebundle_()[WIDGET_MIME]


# --------------------------------------------------------------------------- in a real browser
def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("no Chromium found (CI=true needs one: apt-get install chromium)")
    pytest.skip("no Chromium found: the page's script is tested in a headless browser")


def run_in_browser(body: str, actions: str, tmp_path) -> dict:
    """Load ``body`` in headless Chromium, run the JavaScript ``actions`` (which fill the object
    ``out``), and return ``out`` with the page's uncaught errors under ``"errors"``."""
    doc = ("<!doctype html><html><head><meta charset='utf-8'><script>window.__errors = [];"
           "window.addEventListener('error', function (e) { __errors.push(String(e.message)); });</script></head>"
           f"<body style='margin:0;width:1000px'>{body}<pre id='result'></pre><script>(function () {{"
           "var out = {}; function slide(input, value, type) { input.value = value; "
           "input.dispatchEvent(new Event(type || 'input', {bubbles: true})); }"
           "function click(el) { el.dispatchEvent(new MouseEvent('click', {bubbles: true})); }"
           f"try {{ {actions} }} catch (e) {{ out.actions_failed = String(e); }}"
           "out.errors = window.__errors; document.getElementById('result').textContent = JSON.stringify(out);"
           "})();</script></body></html>")
    path = tmp_path / "page.html"
    path.write_text(doc, encoding="utf-8")
    done = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,800",
                           "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1), f"the browser returned no result: {done.stderr[-2000:]}"
    out = json.loads(html.unescape(found.group(1)))
    assert "actions_failed" not in out and out["errors"] == [], out
    return out


def test_sliders_and_buttons_choose_frames_in_a_browser(tmp_path):
    page, sliders = lettered_page()
    out = run_in_browser(page, r"""
      var root = document.querySelector('[data-explorer="demo"]'), main = root.querySelector('[data-view="main"]');
      var inputs = root.querySelectorAll('input[type=range]'), seen = [], states = [];
      function note() { seen.push(main.textContent); states.push(root.getAttribute('data-state')); }
      note();
      slide(inputs[0], 1); note();
      slide(inputs[1], 2, 'change'); note();
      slide(inputs[2], 3); note();
      click(root.querySelectorAll('[data-role="prev"]')[2]); note();
      click(root.querySelectorAll('[data-role="first"]')[0]); note();
      out.seen = seen; out.states = states;
      out.label = root.querySelectorAll('[data-role="label"]')[1].textContent;
      out.prev_disabled = root.querySelectorAll('[data-role="prev"]')[0].disabled;
      out.last_disabled = root.querySelectorAll('[data-role="last"]')[1].disabled;
    """, tmp_path)
    assert out["seen"] == ["a0 b0 c0", "a1 b0 c0", "a1 b2 c0", "a1 b2 c3", "a1 b2 c2", "a0 b2 c2"]
    assert out["states"] == ["0,0,0", "1,0,0", "1,2,0", "1,2,3", "1,2,2", "0,2,2"]
    assert out["label"] == "letter = z" and out["prev_disabled"] and out["last_disabled"]


def test_clicks_select_toggle_and_fall_back_in_a_browser(tmp_path):
    # Frame 0 has parts p and q; frame 1 only p. Selecting q then moving to frame 1 falls back to p.
    part = "<span data-click='{0}'>[{0}]</span>"
    frames = [Frame({"parts": part.format("p") + part.format("q"), "info": "nothing selected"},
                    {"p": {"info": "p in 0"}, "q": {"info": "q in 0"}}),
              Frame({"parts": part.format("p"), "info": "nothing selected"}, {"p": {"info": "p in 1"}})]
    page = explorable_page(frames, [Slider("t", [0, 1])], kind="clicks", select="p")
    out = run_in_browser(page, r"""
      var root = document.querySelector('[data-explorer="clicks"]'), info = root.querySelector('[data-view="info"]');
      var log = [];
      function note() {
        var sel = root.querySelector('[data-selected]');
        log.push([info.textContent, sel ? sel.getAttribute('data-click') : null, root.getAttribute('data-state')]);
      }
      note();
      click(root.querySelector('[data-click="q"]')); note();
      click(root.querySelector('[data-click="q"]')); note();     // again: cleared
      click(root.querySelector('[data-click="q"]')); note();
      slide(root.querySelector('input[type=range]'), 1); note(); // q is not in frame 1: back to p
      out.log = log;
    """, tmp_path)
    assert out["log"] == [["p in 0", "p", "0|p"], ["q in 0", "q", "0|q"], ["nothing selected", None, "0"],
                          ["q in 0", "q", "0|q"], ["p in 1", "p", "1|p"]]
