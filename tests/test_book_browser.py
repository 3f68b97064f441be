"""The built book in a real browser, offline: headless Chromium opens every page of it.

For every page: it loads without a JavaScript error (page errors and console errors), with
every request to another host blocked (and none made); its equations are typeset by the
MathJax copied into the build (no raw TeX left, no TeX error); no output holds a Python
traceback or a live widget that needs a kernel; every local link and resource resolves,
anchors included; and every static explorer responds: moving each of its sliders and
clicking its clickable parts changes its DOM.

The static explorer contract (course_lib.viz): an explorer's root element carries
``data-explorer="<kind>"``; its sliders are ``input[type=range]``; its clickable parts carry
``data-click`` (the MCTS tree explorer's are its ``data-node`` groups and ``data-role`` buttons).
A tree explorer from before that contract (a ``.mctsx`` root with a slider) is found too.

The browser is Debian's ``chromium`` package (.ci/run installs it), driven by playwright, which
never downloads a browser here. Without one the test skips with its reason; under CI=true it
fails instead. The book is built once per session (the ``book`` fixture, tests/conftest.py).
The checker itself is tested on small pages written here: it must fail a page whose explorer
has lost its script, and report each kind of problem it looks for.
"""
from __future__ import annotations

import contextlib
import functools
import html.parser
import os
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions",
    # No host name resolves: a request that escaped the blocking below still reaches nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
# Pages of the build that are not the book's pages.
NOT_PAGES = ("_static", "_sources", "_images", "_downloads")
# The chapters whose static explorers must be found (the check is not vacuous).
PAGES_WITH_EXPLORERS = ("notebooks/01_alphago_alphazero.html", "notebooks/02_muzero.html",
                        "notebooks/06_attention_vit.html")
RESOURCE_TAGS = {"script", "img", "iframe", "source", "audio", "video", "embed", "link", "object"}
# A page that only sends the reader on (the book's index.html opens its first page).
REDIRECT = re.compile(r"<meta[^>]+http-equiv=[\"']?refresh[\"']?[^>]+content=[\"']?\d+\s*;\s*url=([^\"'>]+)",
                      re.IGNORECASE)


def chromium_path() -> str | None:
    """Debian's Chromium (or $CHROMIUM); None when there is none."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    reason = None
    if path is None:
        reason = "no Chromium at /usr/bin/chromium (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            reason = "playwright is not installed (pip install -c constraints.txt -e '.[dev]')"
    if reason is not None:
        if on_ci():
            pytest.fail(f"CI=true: the browser test must run, but {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would bury the test's output
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on a free port of 127.0.0.1; yields the base URL (ending in /)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Ids(html.parser.HTMLParser):
    """The anchors of an HTML file: every id, and the name of every <a>."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if value is not None and (key == "id" or (tag == "a" and key == "name")):
                self.ids.add(value)


# ------------------------------------------------------------------------- in the page
# Waits for MathJax's first typesetting (it loads asynchronously) where the page has math.
_MATHJAX_READY = "() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)"

_INSPECT = r"""async () => {
  const out = {math: 0, untypeset: [], texErrors: [], rawTex: [], rawTables: [], tracebacks: [], widgets: [], refs: []};
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const clip = s => s.replace(/\s+/g, ' ').trim().slice(0, 120);
  const maths = document.querySelectorAll('.math');
  out.math = maths.length;
  for (const m of maths) if (!m.querySelector('mjx-container')) out.untypeset.push(clip(m.textContent));
  for (const e of document.querySelectorAll('mjx-merror')) out.texErrors.push(clip(e.textContent));
  // TeX that reached the reader as text: \( \[ $$ \begin{ or $...\command...$ outside code.
  const tex = /\\\(|\\\[|\$\$|\\begin\{|\$[^$\s][^$]*?\\[A-Za-z]+[^$]*?\$/;
  const skip = 'pre, code, script, style, textarea, mjx-container, .math, .highlight';
  const table = /\|\s*:?-{3,}:?\s*\|/;  // a Markdown table's rule: displayed Markdown that was not parsed
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement && n.parentElement.closest(skip)) continue;
    if (tex.test(n.nodeValue)) out.rawTex.push(clip(n.nodeValue));
    if (table.test(n.nodeValue)) out.rawTables.push(clip(n.nodeValue));
  }
  const text = document.body.innerText;
  let at = text.indexOf('Traceback (most recent call last)');
  if (at >= 0) out.tracebacks.push(clip(text.slice(at, at + 240)));
  for (const e of document.querySelectorAll('.output.traceback, .output.error')) out.tracebacks.push(clip(e.innerText));
  // A live widget needs a kernel: offline it shows nothing, its text form is dead text.
  for (const e of document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'))
    out.widgets.push('a widget view without a static copy: ' + clip(e.textContent));
  const dead = /\b(?:HBox|VBox|Box|interactive|IntSlider|FloatSlider|Output|Button|Dropdown)\((?:children|value|description)=/;
  for (const e of document.querySelectorAll('.output pre, .cell_output pre'))
    if (dead.test(e.textContent)) out.widgets.push('a widget shown as its text: ' + clip(e.textContent));
  const attrs = [['href', 'href'], ['src', 'src'], ['data', 'data']];
  for (const e of document.querySelectorAll('[href], [src], object[data]')) {
    for (const [attr, prop] of attrs) {
      const raw = e.getAttribute(attr);
      if (raw === null || e.namespaceURI !== 'http://www.w3.org/1999/xhtml') continue;
      out.refs.push({tag: e.tagName.toLowerCase(), raw: raw, url: e[prop] || raw, rel: e.getAttribute('rel') || '',
                     here: raw.startsWith('#') ? document.getElementById(decodeURIComponent(raw.slice(1))) !== null : null});
    }
  }
  return out;
}"""

_EXERCISE_EXPLORERS = r"""async () => {
  const settle = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 30)));
  const roots = [...document.querySelectorAll('[data-explorer]')];
  for (const e of document.querySelectorAll('.mctsx'))  // tree explorers from before the data-explorer contract
    if (e.querySelector('input[type=range]') && !roots.some(r => r.contains(e) || e.contains(r))) roots.push(e);
  const fire = (el, type) => el.dispatchEvent(new Event(type, {bubbles: true}));
  const results = [];
  for (const root of roots) {
    const res = {kind: root.getAttribute('data-explorer') || 'mcts tree (.mctsx)', sliders: [], clicks: []};
    const sliders = () => root.querySelectorAll('input[type=range]');
    for (let i = 0; i < sliders().length; i++) {
      const s = sliders()[i], from = s.value;
      const lo = s.min === '' ? 0 : +s.min, hi = s.max === '' ? 100 : +s.max;
      const to = String(+from === hi ? lo : hi);
      const before = root.innerHTML;
      s.value = to; fire(s, 'input'); fire(s, 'change');
      await settle();
      res.sliders.push({index: i, from: from, to: to, movable: lo !== hi, changed: root.innerHTML !== before});
      const back = sliders()[i];  // put it back, so that what follows starts from the page's own state
      if (back) { back.value = from; fire(back, 'input'); fire(back, 'change'); await settle(); }
    }
    // One of each kind of clickable part must change the explorer (the first may be the one already shown).
    for (const [kind, sel] of [['data-click', '[data-click]'], ['data-node', '[data-node]'], ['button', 'button[data-role]']]) {
      const count = root.querySelectorAll(sel).length;
      if (!count) continue;
      let changed = false, tried = 0;
      for (let i = 0; i < count && tried < 12 && !changed; i++) {
        const el = root.querySelectorAll(sel)[i];
        if (!el || el.disabled) continue;
        tried++;
        const before = root.innerHTML;
        el.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, view: window}));
        await settle();
        changed = root.innerHTML !== before;
      }
      res.clicks.push({kind: kind, count: count, tried: tried, changed: changed});
    }
    results.push(res);
  }
  return results;
}"""


class BookChecker:
    """Opens pages served from ``root`` at ``base_url`` in one browser context, offline.

    Every request to a host other than this machine is aborted and recorded. :meth:`check`
    returns the problems of one page (an empty list when it is right) and what it found.
    """

    def __init__(self, browser, root: Path, base_url: str):
        self.root, self.base_url = root, base_url
        self.context = browser.new_context(service_workers="block")
        self.context.set_default_timeout(60_000)
        self.outside: list[str] = []
        self.context.route("**/*", self._route)
        self._anchors: dict[Path, set[str]] = {}

    def _route(self, route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort("blockedbyclient")

    def close(self) -> None:
        self.context.close()

    def check(self, relative: str) -> tuple[list[str], dict]:
        """Load ``relative`` (a path under the root), check it; returns (problems, {"math": n, "explorers": [...]})."""
        source = self.root / relative
        redirect = REDIRECT.search(source.read_text(encoding="utf-8", errors="replace"))
        if redirect:  # loading it would leave for its target, which is checked as a page of its own
            target = source.parent / unquote(redirect.group(1).strip()).split("#")[0]
            missing = [] if target.is_file() else [f"redirects to a missing page: {redirect.group(1)}"]
            return missing, {"math": 0, "explorers": []}
        problems: list[str] = []
        page = self.context.new_page()
        page.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"JavaScript error: {e}"))
        outside_before = len(self.outside)
        try:
            response = page.goto(self.base_url + relative, wait_until="load")
            if response is None or not response.ok:
                problems.append(f"HTTP {response.status if response else 'no response'}")
            if page.evaluate("() => document.querySelector('.math') !== null"):
                if not page.evaluate("() => [...document.scripts].some(s => /mathjax/i.test(s.src))"):
                    problems.append("the page has equations but loads no MathJax")
                else:
                    try:
                        page.wait_for_function(_MATHJAX_READY, timeout=30_000)
                    except Exception:
                        problems.append("the page has equations but MathJax never started")
            found = page.evaluate(_INSPECT)
            explorers = page.evaluate(_EXERCISE_EXPLORERS)
        finally:
            page.close()
        problems += [f"equation not typeset: {t}" for t in found["untypeset"][:5]]
        problems += [f"TeX error: {t}" for t in found["texErrors"][:5]]
        problems += [f"raw TeX in the text: {t}" for t in found["rawTex"][:5]]
        problems += [f"a Markdown table shown as text: {t}" for t in found["rawTables"][:3]]
        problems += [f"Python traceback: {t}" for t in found["tracebacks"][:3]]
        problems += found["widgets"][:5]
        problems += self._check_refs(found["refs"])
        for i, ex in enumerate(explorers):
            name = f"explorer {i + 1} ({ex['kind']})"
            if not ex["sliders"] and not ex["clicks"]:
                problems.append(f"{name} has no slider and nothing to click")
            for s in ex["sliders"]:
                if not s["movable"]:
                    problems.append(f"{name}: slider {s['index'] + 1} has a single position")
                elif not s["changed"]:
                    problems.append(f"{name} did not respond to slider {s['index'] + 1} moved {s['from']} -> {s['to']}")
            for c in ex["clicks"]:
                if not c["changed"]:
                    problems.append(f"{name} did not respond to a click on any of its {c['count']} {c['kind']} "
                                    f"parts ({c['tried']} clicked)")
        problems += [f"requested from another host (blocked): {u}" for u in self.outside[outside_before:]]
        return problems, {"math": found["math"], "explorers": explorers}

    def _check_refs(self, refs: list[dict]) -> list[str]:
        """Local links and resources must name a file of the build, and an anchor in it."""
        problems, seen = [], set()
        for ref in refs:
            url = urlsplit(ref["url"])
            if url.scheme in ("http", "https") and url.hostname not in LOCAL_HOSTS:
                if ref["tag"] in RESOURCE_TAGS - {"link"} or (ref["tag"] == "link" and ref["rel"].lower() in (
                        "stylesheet", "preload", "modulepreload", "icon", "shortcut icon", "prefetch", "manifest")):
                    problems.append(f"<{ref['tag']}> from another host: {ref['raw']}")
                continue
            if url.scheme not in ("http", "https") or (ref["raw"], ref["url"]) in seen:
                continue  # mailto:, javascript:, data:
            seen.add((ref["raw"], ref["url"]))
            if ref["raw"].startswith("#"):
                if len(ref["raw"]) > 1 and not ref["here"]:
                    problems.append(f"broken anchor on the page: {ref['raw']}")
                continue
            path = unquote(url.path).lstrip("/")
            target = self.root / path
            if path == "" or path.endswith("/"):
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"broken local link: {ref['raw']} (no {target.relative_to(self.root)})")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in self._ids(target):
                problems.append(f"broken anchor: {ref['raw']} (no id {unquote(url.fragment)!r} in "
                                f"{target.relative_to(self.root)})")
        return problems

    def _ids(self, path: Path) -> set[str]:
        if path not in self._anchors:
            parser = _Ids()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            self._anchors[path] = parser.ids
        return self._anchors[path]


@contextlib.contextmanager
def checker_for(browser, root: Path):
    with serve(root) as base_url:
        checker = BookChecker(browser, root, base_url)
        try:
            yield checker
        finally:
            checker.close()


# ------------------------------------------------------------------------------ the book
@pytest.mark.slow
def test_every_page_of_the_book_works_offline(browser, request):
    book = request.getfixturevalue("book")  # after `browser`: without one, skip before building the book
    html = book.html
    assert (html / "index.html").is_file(), f"the book was not built (see test_book.py): {book.log[-2000:]}"
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).parts[0] in NOT_PAGES)
    report, failures, equations = [], [], 0
    with checker_for(browser, html) as checker:
        for relative in pages:
            problems, found = checker.check(relative)
            explorers = found["explorers"]
            equations += found["math"]
            report.append(f"{relative}: {found['math']} equations, {len(explorers)} explorers "
                          f"({sum(len(e['sliders']) for e in explorers)} sliders)")
            if relative in PAGES_WITH_EXPLORERS and not explorers:
                problems.append("no static explorer found (expected at least one)")
            failures += [f"{relative}: {p}" for p in dict.fromkeys(problems)]
    print("\n".join(report))
    assert len(pages) >= 10, pages
    assert equations > 100, f"only {equations} equations found in the book"
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:60])


# -------------------------------------------------------------------------- the checker
def _page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"


# A small explorer of the data-explorer contract: a slider, clickable parts and a shown frame.
_SMALL_EXPLORER = """<div data-explorer='demo'><input type='range' min='0' max='2' value='0'>
<span data-click='a'>a</span><span data-click='b'>b</span><div data-role='shown'>frame 0</div></div>
<script>(function () {
  var root = document.querySelector('[data-explorer]'), shown = root.querySelector('[data-role=shown]');
  var at = 0, picked = 'a';
  function draw() { shown.textContent = 'frame ' + at + ', part ' + picked; }
  root.querySelector('input').addEventListener('input', function (e) { at = +e.target.value; draw(); });
  root.addEventListener('click', function (e) { var p = e.target.getAttribute('data-click'); if (p) { picked = p; draw(); } });
})();</script>"""


def _without_scripts(page: str) -> str:
    """The page less its behaviour: every <script> that is not a data block (type=application/json) goes."""
    return re.sub(r"<script(?![^>]*type=['\"]?application/json)[^>]*>.*?</script>", "", page, flags=re.S | re.I)


def _tree_explorer_html() -> str:
    import torch

    from course_lib.games import TicTacToe
    from course_lib.viz import TreeExplorer

    game = TicTacToe()

    def uniform(states):
        return torch.zeros(states.shape[0], game.num_actions), torch.zeros(states.shape[0])

    return TreeExplorer(game, uniform, game.initial(1), num_simulations=8).to_html(title="checker test")


def test_checker_passes_working_explorers_and_fails_them_without_their_script(browser, tmp_path):
    (tmp_path / "small.html").write_text(_page(_SMALL_EXPLORER), encoding="utf-8")
    (tmp_path / "small_broken.html").write_text(_without_scripts(_page(_SMALL_EXPLORER)), encoding="utf-8")
    tree = _page(_tree_explorer_html())
    (tmp_path / "tree.html").write_text(tree, encoding="utf-8")
    (tmp_path / "tree_broken.html").write_text(_without_scripts(tree), encoding="utf-8")
    assert _without_scripts(tree) != tree and "application/json" in _without_scripts(tree)
    with checker_for(browser, tmp_path) as checker:
        for name in ("small", "tree"):
            problems, found = checker.check(f"{name}.html")
            assert problems == [], (name, problems)
            assert len(found["explorers"]) == 1 and found["explorers"][0]["sliders"], (name, found)
            problems, found = checker.check(f"{name}_broken.html")
            assert len(found["explorers"]) == 1, (name, found)
            assert any("did not respond to slider 1" in p for p in problems), (name, problems)
            assert any("did not respond to a click" in p for p in problems), (name, problems)


def test_checker_reports_every_kind_of_problem(browser, tmp_path):
    (tmp_path / "other.html").write_text(_page("<p id='there'>there</p>"), encoding="utf-8")
    for name, target in (("redirect", "other.html"), ("bad_redirect", "gone.html")):
        head = f'<meta http-equiv="Refresh" content="0; url={target}" />'
        (tmp_path / f"{name}.html").write_text(_page("", head), encoding="utf-8")
    body = """
      <p>raw TeX: \\(x^2\\) and $\\pi_\\theta$</p> <p>| a | b | | --- | --- | | 1 | 2 |</p>
      <span class="math notranslate nohighlight">\\(y\\)</span>
      <div class="cell_output"><pre>Traceback (most recent call last):\n  File "x.py"\nValueError: no</pre></div>
      <div class="cell_output"><pre>VBox(children=(HBox(children=(Button(description='Step'),)),))</pre></div>
      <a href="other.html#there">fine</a> <a href="other.html#nowhere">bad anchor</a>
      <a href="missing.html">missing</a> <a href="#gone">gone here</a> <img src="_static/missing.png">
      <a href="https://example.org/">an outside link is not a request</a>
      <script>console.error("logged error"); undefinedFunction();</script>"""
    head = "<script src='https://cdn.example.org/lib.js'></script>"
    (tmp_path / "bad.html").write_text(_page(body, head), encoding="utf-8")
    with checker_for(browser, tmp_path) as checker:
        for fine in ("other.html", "redirect.html"):
            problems, _ = checker.check(fine)
            assert problems == [], (fine, problems)
        assert checker.check("bad_redirect.html")[0] == ["redirects to a missing page: gone.html"]
        problems, _ = checker.check("bad.html")
    text = "\n".join(problems)
    expected = [
        "JavaScript error: undefinedFunction is not defined", "console error: logged error",
        "the page has equations but loads no MathJax", "equation not typeset: \\(y\\)", "raw TeX in the text: raw TeX: \\(x^2\\)",
        "a Markdown table shown as text: | a | b | | --- |",
        "Python traceback", "a widget shown as its text", "broken anchor: other.html#nowhere",
        "broken local link: missing.html", "broken anchor on the page: #gone", "broken local link: _static/missing.png",
        "<script> from another host: https://cdn.example.org/lib.js",
        "requested from another host (blocked): https://cdn.example.org/lib.js",
    ]
    for needle in expected:
        assert needle in text, f"{needle!r} not reported in:\n{text}"
    assert "example.org/\"" not in text and "https://example.org/" not in text  # a plain link is no request
    assert "other.html#there" not in text
