r"""The static explorable page: precomputed frames behind sliders and clickable parts, in one HTML string.

A notebook's live explorer runs Python on every move of a slider. The book has no kernel, so
every visualisation also ships this page: all the frames a reader can reach are computed in
advance, stored once as JSON inside the page, and a few lines of inline JavaScript only
*choose* between them. No kernel, no network, no external script or style sheet.

The model of a page:

* **sliders** ``S_1 .. S_m`` (:class:`Slider`), each over a list of values. Every combination of
  their positions has one frame; frame ``i`` belongs to positions ``(i_1, .., i_m)`` with
  ``i = (..(i_1 n_2 + i_2) n_3 + ..) n_m + i_m`` (row-major: the first slider varies slowest;
  :func:`frame_index`). No sliders: one frame.
* a **frame** (:class:`Frame`) gives the content of each named **view** of the page (a box:
  the tree, the panel, the plot). Content is HTML text (an SVG drawing, or an ``<img>`` of a
  base64 PNG, is HTML too), or a list of pieces joined in order: a piece that many frames share
  (a board drawing) is stored once, as every distinct piece is.
* **clicks**: an element of any view with ``data-click="key"`` selects ``key``; clicking the
  selected one again clears the selection. ``Frame.on_click[key]`` overrides some views while
  ``key`` is selected (a clicked node's panel). A selection the new frame has no element for
  falls back to the page's default ``select``.

The contract the browser tests rely on (keep it for every new explorer): the page's root
element has ``data-explorer="<kind>"``; its sliders are ``input[type=range]`` (``input`` and
``change`` events move them); clickable parts carry ``data-click`` and the selected one
``data-selected``; every slider move and every click changes the root's DOM (at least its
``data-state`` attribute: the slider positions and the selection).

Example (two sliders, 3 x 2 frames)::

    from course_lib.viz import Slider, explorable_page
    sliders = [Slider("a", [1, 2, 3]), Slider("b", ["x", "y"])]
    frames = [{"main": f"<b>{a}{b}</b>"} for a in (1, 2, 3) for b in "xy"]
    html = explorable_page(frames, sliders, kind="demo")      # display(HTML(html)) in a notebook
"""
from __future__ import annotations

import html as _html
import itertools
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from string import Template
from typing import Any, Iterator, Mapping, Sequence, Union

__all__ = ["Frame", "Slider", "explorable_page", "frame_index", "grid_values", "json_for_script", "read_page"]

FORMAT = "course_lib.viz.page/1"
Content = Union[str, Sequence[str]]
TEXT, MUTED = "#202124", "#5f6368"
_KIND = re.compile(r"[a-z][a-z0-9-]*\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Slider:
    """One slider of a page: its values in order, and how each reads beside the slider.

    Args:
      name: an identifier (a keyword of the function that draws the frames).
      values: the values, numbers or strings (at least one).
      label: what the slider is called on the page (default: ``name``).
      texts: how each value reads (default ``"label = value"``, numbers to 3 significant digits).
      start: index of the value shown first (negative: from the end).
    """
    name: str
    values: Sequence[Any]
    label: str | None = None
    texts: Sequence[str] | None = None
    start: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"a slider's name must be an identifier; got {self.name!r}")
        values = [_plain(v) for v in self.values]
        if not values:
            raise ValueError(f"slider {self.name!r} needs at least one value")
        if any(not isinstance(v, (int, float, str)) for v in values):
            raise ValueError(f"slider {self.name!r}: values must be numbers or strings; got {values!r}")
        object.__setattr__(self, "values", tuple(values))
        if self.texts is not None and len(self.texts) != len(values):
            raise ValueError(f"slider {self.name!r}: {len(values)} values but {len(self.texts)} texts")
        if not -len(values) <= self.start < len(values):
            raise ValueError(f"slider {self.name!r}: start must index its {len(values)} values; got {self.start}")

    @property
    def shown_texts(self) -> list[str]:
        """What the page writes beside the slider for each value."""
        if self.texts is not None:
            return [str(t) for t in self.texts]
        label = self.label or self.name
        return [f"{label} = {v:.3g}" if isinstance(v, float) else f"{label} = {v}" for v in self.values]


@dataclass(frozen=True)
class Frame:
    """What the page shows at one position of its sliders.

    Args:
      views: ``{view name: content}``; content is HTML text or a list of pieces joined in order.
      on_click: ``{key: {view name: content}}``: views replaced while the part ``data-click=key``
        is selected (each of them also in ``views``: what shows when nothing is selected).
    """
    views: Mapping[str, Content]
    on_click: Mapping[str, Mapping[str, Content]] = field(default_factory=dict)


def _plain(value):
    """Python numbers from NumPy or torch scalars (JSON and formatting need them)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, list, tuple)) else value


def frame_index(sliders: Sequence[Slider], positions: Sequence[int]) -> int:
    """The index of the frame at slider positions ``(i_1, .., i_m)``: row-major, the first slider slowest."""
    if len(positions) != len(sliders):
        raise ValueError(f"one position per slider: {len(sliders)} sliders, got {len(positions)} positions")
    index = 0
    for slider, i in zip(sliders, positions):
        if not 0 <= i < len(slider.values):
            raise ValueError(f"slider {slider.name!r} has {len(slider.values)} values; position {i} is outside")
        index = index * len(slider.values) + i
    return index


def grid_values(sliders: Sequence[Slider]) -> Iterator[dict[str, Any]]:
    """``{name: value}`` for every combination of the sliders' values, in frame order (:func:`frame_index`)."""
    names = [s.name for s in sliders]
    for combination in itertools.product(*(s.values for s in sliders)):
        yield dict(zip(names, combination))


def json_for_script(payload) -> str:
    """JSON that is safe inside ``<script>``: the ``<`` of ``</script``, ``<script`` and ``<!--`` written
    ``\\u003c`` (inside a JSON string, which reads it back as ``<``)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return re.sub(r"<(?=/?script|!--)", r"\\u003c", text, flags=re.IGNORECASE)


def _attr(text) -> str:
    return _html.escape(str(text), quote=True)


class _Pieces:
    """Every distinct piece of content once; content becomes an index or a list of indices."""

    def __init__(self):
        self.strings: list[str] = []
        self._index: dict[str, int] = {}

    def ref(self, content: Content, where: str):
        if isinstance(content, str):
            return self._one(content)
        if isinstance(content, (list, tuple)) and all(isinstance(p, str) for p in content):
            return [self._one(p) for p in content]
        raise ValueError(f"{where}: content must be an HTML string or a list of strings; got {type(content).__name__}")

    def _one(self, piece: str) -> int:
        if piece not in self._index:
            self._index[piece] = len(self.strings)
            self.strings.append(piece)
        return self._index[piece]


def _template_names(body: str) -> list[str]:
    """The ``$name`` placeholders of a template, in order (``Template.get_identifiers`` needs Python 3.11)."""
    names = []
    for match in Template.pattern.finditer(body):
        name = match.group("named") or match.group("braced")
        if name and name not in names:
            names.append(name)
    return names


def _joined(content: Content) -> str:
    return content if isinstance(content, str) else "".join(content)


# The page's behaviour. ES5, no library: it runs in any browser the book is read in.
_SCRIPT = r"""(function () {
  var root = document.getElementById(%(id)s);
  var data = JSON.parse(document.getElementById(%(id)s + '-data').textContent);
  var strings = data.strings, sliders = data.sliders, frames = data.frames, hook = %(hook)s;
  var at = sliders.map(function (s) { return s.start; }), sel = data.select, first = true;
  var views = {}, inputs = [], labels = [];
  Array.prototype.forEach.call(root.querySelectorAll('[data-view]'), function (el) {
    views[el.getAttribute('data-view')] = el;
  });
  function text(ref) {
    if (typeof ref === 'number') return strings[ref];
    var out = '';
    for (var i = 0; i < ref.length; i++) out += strings[ref[i]];
    return out;
  }
  function fill(content) {
    for (var name in content) if (views[name]) views[name].innerHTML = text(content[name]);
  }
  function role(row, name) { return row.querySelector('[data-role="' + name + '"]'); }
  function clickables() { return root.querySelectorAll('[data-click]'); }
  function exists(key) {
    var all = clickables();
    for (var i = 0; i < all.length; i++) if (all[i].getAttribute('data-click') === key) return true;
    return false;
  }
  function show() {
    var index = 0;
    for (var k = 0; k < sliders.length; k++) index = index * sliders[k].values.length + at[k];
    var frame = frames[index], on = frame.c || {};
    fill(frame.v);
    if (sel !== null && !exists(sel)) sel = (data.select !== null && exists(data.select)) ? data.select : null;
    if (sel !== null && on[sel]) fill(on[sel]);
    Array.prototype.forEach.call(clickables(), function (el) {
      if (el.getAttribute('data-click') === sel) el.setAttribute('data-selected', '');
      else el.removeAttribute('data-selected');
    });
    for (var s = 0; s < sliders.length; s++) {
      var last = sliders[s].values.length - 1;
      inputs[s].value = at[s];
      labels[s].textContent = sliders[s].texts[at[s]];
      var row = inputs[s].parentNode;
      role(row, 'first').disabled = role(row, 'prev').disabled = at[s] === 0;
      role(row, 'last').disabled = role(row, 'next').disabled = at[s] === last;
    }
    root.setAttribute('data-state', at.join(',') + (sel === null ? '' : '|' + sel));
    if (hook) hook(root, {at: at.slice(), selected: sel, first: first});
    first = false;
  }
  function go(s, i) { at[s] = Math.max(0, Math.min(sliders[s].values.length - 1, i)); show(); }
  Array.prototype.forEach.call(root.querySelectorAll('[data-slider]'), function (row) {
    var s = +row.getAttribute('data-slider'), input = row.querySelector('input[type=range]');
    inputs[s] = input;
    labels[s] = row.querySelector('[data-role="label"]');
    input.addEventListener('input', function () { go(s, +input.value); });
    input.addEventListener('change', function () { go(s, +input.value); });
    function on(name, where) { role(row, name).addEventListener('click', function () { go(s, where()); }); }
    on('first', function () { return 0; });
    on('prev', function () { return at[s] - 1; });
    on('next', function () { return at[s] + 1; });
    on('last', function () { return sliders[s].values.length - 1; });
  });
  root.addEventListener('click', function (e) {
    var t = e.target;
    while (t && t !== root && !(t.getAttribute && t.getAttribute('data-click') !== null)) t = t.parentNode;
    if (!t || t === root) return;
    var key = t.getAttribute('data-click');
    sel = sel === key ? null : key;
    show();
  });
  show();
})();"""

_CSS = (".vx button{font-size:12px;padding:1px 6px}.vx [data-slider]{display:flex;align-items:center;gap:6px;"
        "margin-bottom:4px}.vx input[type=range]{flex:0 1 320px}.vx [data-click]{cursor:pointer}")


def explorable_page(frames: Sequence[Frame | Mapping[str, Content]], sliders: Sequence[Slider] = (), *, kind: str,
                    views: Mapping[str, str] | None = None, body: str | None = None, title: str | None = None,
                    hint: str | None = None, select: str | None = None, on_show: str | None = None,
                    css: str = "", css_class: str = "", meta: Mapping[str, Any] | None = None,
                    id_prefix: str = "vx") -> str:
    """One self-contained HTML string: ``frames`` behind ``sliders``, with clickable parts.

    Args:
      frames: one :class:`Frame` (or a plain ``{view: content}``) per combination of the sliders'
        positions, in :func:`frame_index` order; a page without sliders has one frame.
      sliders: the :class:`Slider` s, top to bottom.
      kind: what explorer this is, ``[a-z][a-z0-9-]*`` (the root's ``data-explorer``).
      views: ``{view name: CSS of its box}``, in page order; the default body puts the boxes side
        by side (wrapping). Default: one box per view of the first frame, unstyled.
      body: instead of ``views``, the HTML around the views, a :class:`string.Template` with one
        element ``data-view='name'`` holding ``$name`` per view (write ``$$`` for a literal ``$``).
      title: a caption above the sliders.
      hint: a line beside the sliders (e.g. "click a node to see it").
      select: the ``data-click`` key selected first, and again when a selection is not in a frame.
      on_show: a JavaScript expression whose value is a function ``(root, state)``, called after
        every render with ``state = {at: [slider positions], selected: key or null, first: bool}``
        (the tree explorer moves its ring and scrolls to the root with it).
      css: extra style rules (put once per page; scope them with ``css_class``).
      css_class: extra class(es) of the root element.
      meta: extra JSON-able data stored with the frames (for readers of the page's data).
      id_prefix: the root element's id is ``<id_prefix>-<12 hex digits>``, unique per call.

    Returns:
      HTML: a style block, the root ``<div data-explorer=kind>`` holding the sliders, the views
      (showing the start frame, so the page reads without JavaScript too), the frames as
      ``<script type="application/json" id="<id>-data">`` and the inline script.
    """
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ValueError(f"kind must match [a-z][a-z0-9-]* (e.g. 'mcts-tree'); got {kind!r}")
    sliders = list(sliders)
    if len({s.name for s in sliders}) != len(sliders):
        raise ValueError(f"slider names must differ; got {[s.name for s in sliders]}")
    expected = math.prod(len(s.values) for s in sliders)
    frames = [f if isinstance(f, Frame) else Frame(f) for f in frames]
    if len(frames) != expected:
        sizes = " x ".join(str(len(s.values)) for s in sliders) or "no sliders"
        raise ValueError(f"need one frame per combination of slider values ({sizes} = {expected}); got {len(frames)}")
    if views is None and body is None:
        views = {name: "" for name in frames[0].views}
    if views is not None and body is not None:
        raise ValueError("give views (boxes side by side) or body (your own template), not both")
    names = list(views) if views is not None else _template_names(body)
    if not names or any(not _NAME.match(n) for n in names):
        raise ValueError(f"view names must be identifiers, at least one; got {names}")
    for i, frame in enumerate(frames):
        unknown = set(frame.views).union(*(set(v) for v in frame.on_click.values())) - set(names)
        if unknown:
            raise ValueError(f"frame {i} fills views {sorted(unknown)} the page does not have; views: {names}")
        if any(not isinstance(key, str) for key in frame.on_click):
            raise ValueError(f"frame {i}: on_click keys must be strings (data-click values)")
        for key, over in frame.on_click.items():
            if set(over) - set(frame.views):     # else clearing the selection would leave the clicked content
                raise ValueError(f"frame {i}: click {key!r} fills views {sorted(set(over) - set(frame.views))} that "
                                 f"the frame's views do not fill (they show when nothing is selected)")
    if select is not None and not isinstance(select, str):
        raise ValueError(f"select must be a data-click key (a string) or None; got {select!r}")

    pieces, packed = _Pieces(), []
    for i, frame in enumerate(frames):
        entry = {"v": {name: pieces.ref(c, f"frame {i}, view {name!r}") for name, c in frame.views.items()}}
        if frame.on_click:
            entry["c"] = {key: {name: pieces.ref(c, f"frame {i}, click {key!r}, view {name!r}")
                                for name, c in over.items()} for key, over in frame.on_click.items()}
        packed.append(entry)
    starts = [s.start % len(s.values) for s in sliders]
    payload = {"format": FORMAT, "kind": kind, "select": select,
               "sliders": [{"name": s.name, "label": s.label or s.name, "values": list(s.values),
                            "texts": s.shown_texts, "start": start} for s, start in zip(sliders, starts)],
               "strings": pieces.strings, "frames": packed}
    if meta is not None:
        payload["meta"] = dict(meta)

    start_frame = frames[frame_index(sliders, starts)]
    start_views = {name: _joined(c) for name, c in start_frame.views.items()}
    if select is not None:
        start_views.update((name, _joined(c)) for name, c in start_frame.on_click.get(select, {}).items())
    start_views = {name: start_views.get(name, "") for name in names}
    if body is None:
        body = ("<div style='display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start'>"
                + "".join(f"<div data-view='{n}' style='{_attr(style)}'>${n}</div>" for n, style in views.items())
                + "</div>")
    try:
        inner = Template(body).substitute(start_views)
    except (KeyError, ValueError) as error:
        raise ValueError(f"body is not a template of the views {names}: {error}") from None

    uid = f"{id_prefix}-{uuid.uuid4().hex[:12]}"
    rows = []
    for i, (s, start) in enumerate(zip(sliders, starts)):
        rows.append(f"<div data-slider='{i}'><button data-role='first' title='first'>|◀</button>"
                    f"<button data-role='prev'>◀</button><input type='range' min='0' max='{len(s.values) - 1}' "
                    f"step='1' value='{start}' aria-label='{_attr(s.label or s.name)}'>"
                    f"<button data-role='next'>▶</button><button data-role='last' title='last'>▶|</button>"
                    f"<span data-role='label'>{_attr(s.shown_texts[start])}</span></div>")
    state = ",".join(map(str, starts)) + ("" if select is None else f"|{select}")
    script = _SCRIPT % {"id": json.dumps(uid), "hook": on_show or "null"}
    return (f"<style>{_CSS}{css}</style>"
            f"<div id='{uid}' class='vx {_attr(css_class)}' data-explorer='{kind}' data-state='{_attr(state)}' "
            f"style='font:12px/1.35 sans-serif;color:{TEXT};margin:6px 0'>"
            + (f"<div style='font-weight:bold;margin-bottom:4px'>{_attr(title)}</div>" if title else "")
            + "".join(rows)
            + (f"<div style='color:{MUTED};margin-bottom:4px'>{_attr(hint)}</div>" if hint else "")
            + inner
            + f"<script type='application/json' id='{uid}-data'>{json_for_script(payload)}</script>"
            f"<script>{script}</script></div>")


def read_page(page: str) -> dict:
    """The data of a page made by :func:`explorable_page`, with its frames' content joined again.

    Returns:
      ``{"id", "kind", "select", "sliders": [Slider], "frames": [Frame], "meta"}`` where each
      frame's content is the joined HTML string; ``frames[frame_index(sliders, positions)]``
      is what the page shows at those positions.
    """
    found = re.findall(r"<script type='application/json' id='([^']+)-data'>(.*?)</script>", page, re.S)
    if len(found) != 1:
        raise ValueError(f"expected one explorable page in the HTML; found {len(found)}")
    uid, text = found[0]
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"not an explorable page's data (format {data.get('format')!r}, expected {FORMAT!r})")
    strings = data["strings"]

    def joined(ref):
        return strings[ref] if isinstance(ref, int) else "".join(strings[i] for i in ref)

    frames = [Frame({n: joined(r) for n, r in f["v"].items()},
                    {k: {n: joined(r) for n, r in over.items()} for k, over in f.get("c", {}).items()})
              for f in data["frames"]]
    sliders = [Slider(s["name"], s["values"], s["label"], s["texts"], s["start"]) for s in data["sliders"]]
    return {"id": uid, "kind": data["kind"], "select": data["select"], "sliders": sliders, "frames": frames,
            "meta": data.get("meta")}
