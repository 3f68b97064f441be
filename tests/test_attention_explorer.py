"""The attention-map explorer: rollout and flow against plain loops and a hand-worked example, the
drawing against the weights it draws, the static page's structure and size, input errors, the ViT
overlay, the live widget, and the page in headless Chromium (clicks and the head slider).

Synthetic weights throughout: random logits, causally masked, softmaxed over the keys."""
from __future__ import annotations

import base64
import io
import math
import re

import numpy as np
import pytest
import torch

from course_lib.viz import (AttentionExplorerWidget, LiveAndStatic, attention_explorer, attention_flow,
                            attention_page, attention_rollout, check_attention_weights, cls_attention_maps,
                            cls_rollout_maps, head_layer_grid, read_page, tokens_layers_svg, vit_attention_html)
from course_lib.viz.attention import FLOW, LINK, MAX_TOKENS, MIN_WEIGHT, OWN
from course_lib.viz.live import WIDGET_MIME
from test_book_browser import browser, checker_for  # noqa: F401  (the fixture and the book's page checker)


def synthetic(L=3, H=2, T=6, S=None, seed=0, scale=2.0, causal=True) -> torch.Tensor:
    """``[L, H, T, S]`` weights: random logits, masked (query i sees keys j <= S - T + i), softmaxed."""
    S = T if S is None else S
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(L, H, T, S, generator=g, dtype=torch.float64) * scale
    if causal:
        allowed = torch.ones(T, S, dtype=torch.bool).tril(S - T)
        logits = logits.masked_fill(~allowed, float("-inf"))
    return torch.softmax(logits, -1)


# ------------------------------------------------------------------------------- rollout
def rollout_by_loops(w: np.ndarray, residual: bool) -> np.ndarray:
    """Abnar & Zuidema's rollout written with Python loops (no memory: S == T)."""
    L, H, T, _ = w.shape
    total = [[1.0 if i == j else 0.0 for j in range(T)] for i in range(T)]
    out = np.zeros((L, T, T))
    for layer in range(L):
        step = [[sum(w[layer, h, i, j] for h in range(H)) / H for j in range(T)] for i in range(T)]
        if residual:
            step = [[0.5 * step[i][j] + (0.5 if i == j else 0.0) for j in range(T)] for i in range(T)]
        step = [[v / sum(row) for v in row] for row in step]
        total = [[sum(step[i][k] * total[k][j] for k in range(T)) for j in range(T)] for i in range(T)]
        out[layer] = total
    return out


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("causal", [True, False])
def test_rollout_equals_a_plain_loop(residual, causal):
    w = synthetic(L=3, H=4, T=7, seed=1, causal=causal)
    expected = rollout_by_loops(w.numpy(), residual)
    got = attention_rollout(w, residual=residual)
    assert isinstance(got, torch.Tensor) and got.shape == (3, 7, 7) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(got.sum(-1).numpy(), 1.0, atol=1e-12)
    if causal:  # nothing flows from the future
        assert torch.all(got.triu(1) == 0)
    # The same from NumPy (NumPy back), from float32, and from the model's list of layers.
    as_numpy = attention_rollout(w.numpy(), residual=residual)
    assert isinstance(as_numpy, np.ndarray)
    np.testing.assert_allclose(as_numpy, expected, atol=1e-12)
    as_list = attention_rollout([layer.float() for layer in w], residual=residual)
    assert as_list.dtype == torch.float32
    np.testing.assert_allclose(as_list.numpy(), expected, atol=1e-5)


def test_rollout_of_a_hand_worked_two_token_example():
    # One head; causal: token 0 reads itself, token 1 reads 0.4 of token 0 and 0.6 of itself.
    layer = [[[1.0, 0.0], [0.4, 0.6]]]
    w = torch.tensor([layer, layer])                       # [L=2, H=1, T=2, S=2]
    # With the residual: 0.5 W + 0.5 I = [[1, 0], [0.2, 0.8]]; two layers: [[1, 0], [0.36, 0.64]].
    r = attention_rollout(w)
    np.testing.assert_allclose(r[0].numpy(), [[1, 0], [0.2, 0.8]], atol=1e-7)
    np.testing.assert_allclose(r[1].numpy(), [[1, 0], [0.36, 0.64]], atol=1e-7)
    # Without: W W = [[1, 0], [0.4 + 0.6 * 0.4, 0.36]].
    np.testing.assert_allclose(attention_rollout(w, residual=False)[1].numpy(), [[1, 0], [0.64, 0.36]], atol=1e-7)
    # Two heads are averaged first: [[1, 0], [0.2, 0.8]] and [[1, 0], [0.6, 0.4]] give the layer above.
    two = torch.tensor([[[[1.0, 0.0], [0.2, 0.8]], [[1.0, 0.0], [0.6, 0.4]]]])
    np.testing.assert_allclose(attention_rollout(two)[0].numpy(), [[1, 0], [0.2, 0.8]], atol=1e-7)


def test_rollout_with_memory_keeps_the_memory_as_inputs():
    w = synthetic(L=3, H=2, T=4, S=7, seed=2)              # 3 memory keys, then the 4 tokens
    r = attention_rollout(w)
    assert r.shape == (3, 4, 7)
    np.testing.assert_allclose(r.sum(-1).numpy(), 1.0, atol=1e-12)
    # By hand: memory rows are the identity, so after layer 1 token i holds 0.5 * attention + 0.5 of itself.
    first = 0.5 * w[0].mean(0)
    first[torch.arange(4), 3 + torch.arange(4)] += 0.5
    np.testing.assert_allclose(r[0].numpy(), first.numpy(), atol=1e-12)
    extended = torch.eye(7, dtype=torch.float64).repeat(3, 1, 1)
    extended[:, 3:] = 0.5 * w.mean(1) + 0.5 * torch.eye(7, dtype=torch.float64)[3:]
    np.testing.assert_allclose(r[2].numpy(), (extended[2] @ extended[1] @ extended[0])[3:].numpy(), atol=1e-12)


def test_flow_is_the_rollout_without_residual_and_conserves_mass():
    w = synthetic(L=4, H=3, T=8, seed=3)
    plain = attention_rollout(w, residual=False)
    for token in (0, 5, 7):
        mass = attention_flow(w, token)
        assert mass.shape == (5, 8) and mass[4, token] == 1 and mass[4].sum() == 1
        np.testing.assert_allclose(mass.sum(1), 1.0, atol=1e-12)
        np.testing.assert_allclose(mass[0], plain[-1, token].numpy(), atol=1e-12)
    one_head = attention_flow(w, 6, head=2)
    np.testing.assert_allclose(one_head[3], w[3, 2, 6].numpy(), atol=1e-12)       # one layer down: its own row
    with pytest.raises(ValueError, match=r"token must be an integer in \[0, 7\]"):
        attention_flow(w, 8)


def test_a_fully_masked_row_is_accepted_and_attends_nowhere():
    w = synthetic(L=2, H=1, T=3, seed=4)
    w[:, :, 1] = 0                                          # query 1 has no allowed key (the transformer gives 0)
    check_attention_weights(w)
    r = attention_rollout(w)
    np.testing.assert_allclose(r[0, 1].numpy(), [0, 1, 0], atol=1e-12)   # it keeps only itself (residual)
    assert attention_rollout(w, residual=False)[0, 1].abs().sum() == 0


# ------------------------------------------------------------------------- input errors
def test_bad_inputs_raise_one_line_errors():
    w = synthetic(L=2, H=2, T=4)
    cases = [
        (lambda: check_attention_weights(w[None]), r"\[B, L, H, T, S\] = \(1, 2, 2, 4, 4\), a batch.*pick it first"),
        (lambda: check_attention_weights([w[0][None], w[1][None]]), r"weights\[0\] is \[B, H, T, S\].*\[w\[b\] for w"),
        (lambda: check_attention_weights(w[0]), r"must be \[L, H, T, S\].*one layer \[H, T, S\]\? pass \[weights\]"),
        (lambda: check_attention_weights([w[0], w[1][:, :3]]), r"same \[H, T, S\]"),
        (lambda: check_attention_weights([]), "empty list"),
        (lambda: check_attention_weights("weights"), "must be a tensor or array"),
        (lambda: check_attention_weights(w[..., :3]), r"needs S >= T"),
        (lambda: check_attention_weights(torch.log(w + 1e-9)), r"must be >= 0 .*layer 0, head 0, query 0"),
        (lambda: check_attention_weights(w * 2), r"must sum to 1 .*query 0 sums to 2 \(logits instead"),
        (lambda: check_attention_weights(w.masked_fill(w == 0, float("nan"))), "must be finite.*fully masked"),
        (lambda: attention_page(w, list("abc")), r"tokens has 3 labels but the weights have T = 4"),
        (lambda: attention_page(w, list("abcd"), key_tokens=list("ab")), r"key_tokens has 2 labels .* S = 4"),
        (lambda: attention_page(w, list("abcd"), groups=["s", "a"]), r"groups has 2 entries; expected .*T = 4"),
        (lambda: attention_page(w, list("abcd"), patch_grid=(2, 2)),
         r"patch_grid \(2, 2\) needs T = S = 1 \+ 2 \* 2 = 5"),
        (lambda: attention_page(w, list("abcd"), patch_grid=(1.5, 2)), r"patch_grid must be \(gh, gw\)"),
        (lambda: attention_page(w, image=np.zeros((4, 4))), r"image needs patch_grid"),
        (lambda: tokens_layers_svg(w, head=2), r"head must be 'mean' or an integer in \[0, 1\]; got 2"),
        (lambda: tokens_layers_svg(w, selected=4), r"selected must be a drawn token \(0 \.\. 3\)"),
        (lambda: attention_page(synthetic(L=1, H=1, T=60), window=(0, 60)), rf"at most {MAX_TOKENS} positions"),
        (lambda: attention_page(w, window=(3, 1)), r"window must be \(start, stop\) with 0 <= start < stop"),
        (lambda: attention_page(synthetic(T=2, S=5), window=(0, 3)), r"holds only memory keys"),
        (lambda: attention_page(w, min_weight=1.5), r"min_weight must be in \[0, 1\)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            call()
        assert "\n" not in str(error.value), str(error.value)
    vit = synthetic(L=1, H=1, T=5, causal=False)
    for image, message in [(np.zeros((3, 8, 8)), r"channels first\? \(pass image.permute\(1, 2, 0\)\)"),
                           (np.zeros((8, 8, 2, 1)), r"image must be \[H, W\] or \[H, W, C\]"),
                           (np.full((4, 4), np.nan), "image must be finite")]:
        with pytest.raises(ValueError, match=message):
            vit_attention_html(image, vit, (2, 2))


def test_half_precision_weights_pass_with_a_looser_tolerance():
    w = synthetic(L=2, H=2, T=16, scale=0.3).to(torch.bfloat16)      # rows sum to 1 only within ~1e-2
    assert check_attention_weights(w).dtype == torch.float32


# ------------------------------------------------------------------------- the drawing
def link_sets(svg: str, colour: str, L: int) -> dict[tuple[int, int, int], int]:
    """``{(layer, query position, key position): strength}`` of the links drawn in ``colour``
    (grid units: ``M p r L j r-1`` is layer r's link from query p down to key j)."""
    out = {}
    for group in re.findall(rf"<g stroke='{colour}'[^>]*>(.*?)</g>", svg):
        for k, d in re.findall(r"<path class='s(\d+)' d='([^']*)'/>", group):
            for p, r, j, r0 in re.findall(r"M(\d+) (\d+)L(\d+) (\d+)", d):
                assert int(r) == int(r0) + 1 and 1 <= int(r) <= L
                out[(int(r) - 1, int(p), int(j))] = int(k)
    return out


def test_links_are_the_weights_above_the_threshold():
    w = synthetic(L=3, H=2, T=10, seed=5, scale=1.5)
    for head in ("mean", 1):
        a = w.mean(1) if head == "mean" else w[:, head]
        drawn = link_sets(tokens_layers_svg(w, head=head), LINK, 3)
        expected = {(layer, i, j): math.ceil(float(a[layer, i, j]) * 10 - 1e-9)
                    for layer in range(3) for i in range(10) for j in range(10) if a[layer, i, j] >= MIN_WEIGHT}
        assert drawn == expected
        assert all(j <= i for _, i, j in drawn)                        # causal: no link to the future
    # A selected token: its own links (blue) are its rows of every layer; the chain (orange) starts at it.
    svg = tokens_layers_svg(w, head=0, selected=7)
    own = link_sets(svg, OWN, 3)
    assert set(own) == {(layer, 7, j) for layer in range(3) for j in range(10) if w[layer, 0, 7, j] >= MIN_WEIGHT}
    mass = attention_flow(w, 7, head=0)
    chain = link_sets(svg, FLOW, 3)
    assert {(2, 7, j) for j in range(10) if w[2, 0, 7, j] >= MIN_WEIGHT} == {k for k in chain if k[0] == 2}
    for layer, p, j in chain:
        assert mass[layer + 1, p] * float(w[layer, 0, p, j]) >= MIN_WEIGHT
    assert set(link_sets(svg, LINK, 3)) == set(link_sets(tokens_layers_svg(w, head=0), LINK, 3))   # faded beneath
    assert "<g opacity='0.15'>" in svg and "<g opacity='0.15'>" not in tokens_layers_svg(w, head=0)


def test_every_drawn_token_is_clickable_and_long_sequences_are_windowed():
    w = synthetic(L=2, H=1, T=60, seed=6)
    svg = tokens_layers_svg(w)
    assert re.findall(r"data-click='t(\d+)'", svg) == [str(t) for t in range(MAX_TOKENS)]
    later = tokens_layers_svg(w, window=(20, 60))
    assert re.findall(r"data-click='t(\d+)'", later) == [str(t) for t in range(20, 60)]
    assert max(p for _, p, _ in link_sets(later, LINK, 2)) == 39            # positions relative to the window
    # With a memory, the default window ends at the last token; memory keys are labelled, not clickable.
    mem = tokens_layers_svg(synthetic(L=2, H=1, T=4, S=9), [f"x{i}" for i in range(4)],
                            key_tokens=[f"old{i}" for i in range(5)] + [f"x{i}" for i in range(4)])
    assert re.findall(r"data-click='t(\d+)'", mem) == ["0", "1", "2", "3"]
    assert "memory key 0: old0" in mem and ">old4<" in mem


def test_groups_colour_the_tokens():
    w = synthetic(L=1, H=1, T=6)
    svg = tokens_layers_svg(w, list("sarsar"), groups=["state", "action", "reward"] * 2)
    colours = re.findall(r"<title>token (\d): [^<]*\((\w+)\)</title>.*?fill='(#[0-9a-f]{6})'>", svg)
    by_group = {}
    for _, group, colour in colours:
        by_group.setdefault(group, set()).add(colour)
    assert sorted(by_group) == ["action", "reward", "state"] and all(len(c) == 1 for c in by_group.values())
    assert len({c for cs in by_group.values() for c in cs}) == 3


def test_head_layer_grid_has_a_map_per_head_and_layer():
    w = synthetic(L=3, H=2, T=5, seed=7)
    grid = head_layer_grid(w, head=1)
    images = re.findall(r"src='data:image/png;base64,([^']+)'", grid)
    assert len(images) == 3 * 3                       # rows: mean, head 0, head 1; a column per layer
    pixels = png(images[3 * 2 + 1])                   # head 1, layer 2
    assert pixels.shape[:2] == (5, 5)
    masked = pixels[np.triu_indices(5, 1)]
    assert np.all(masked[..., :3] == 255)             # zero attention is white
    darkness = 255 - pixels[..., 0].astype(int)       # darker with more attention
    order = np.argsort(w[1, 1].numpy(), axis=None)
    assert darkness.reshape(-1)[order[-1]] > darkness.reshape(-1)[order[0]]
    assert "background:#e8f0fe;font-weight:bold'>head 1<" in grid
    # A long sequence's maps are averaged over blocks: T = 200 > 96 pixels becomes 67 x 67 (blocks of 3,
    # the last one 2 wide).
    long = synthetic(L=1, H=1, T=200, seed=7)
    [first] = re.findall(r"src='data:image/png;base64,([^']+)'", head_layer_grid(long))[:1]
    pooled = png(first)
    assert pooled.shape[:2] == (67, 67)
    block = long[0, 0, 60:63, 15:18].mean().item()
    assert abs(int(pooled[66, 66, 0]) - round(255 - (255 - 23) * math.sqrt(long[0, 0, 198:, 198:].mean().item()))) <= 1
    assert abs(int(pooled[20, 5, 0]) - round(255 - (255 - 23) * math.sqrt(block))) <= 1


def png(data: str) -> np.ndarray:
    """The pixels of a base64 PNG: grey ``[H, W]``, else RGBA ``[H, W, 4]`` (palettes resolved)."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data)))
    return np.asarray(image if image.mode == "L" else image.convert("RGBA"))


# ------------------------------------------------------------------------------- ViT
def test_vit_maps_and_the_overlay_follow_the_cls_attention():
    gh, gw = 3, 4
    T = 1 + gh * gw
    w = synthetic(L=2, H=3, T=T, seed=8, causal=False, scale=2.5)
    maps = cls_attention_maps(w, (gh, gw))
    np.testing.assert_allclose(maps, w.mean(1)[:, 0, 1:].reshape(2, gh, gw).numpy(), atol=1e-12)
    np.testing.assert_allclose(cls_attention_maps(w, (gh, gw), head=2)[1], w[1, 2, 0, 1:].reshape(gh, gw).numpy())
    np.testing.assert_allclose(cls_rollout_maps(w, (gh, gw)), attention_rollout(w)[:, 0, 1:].reshape(2, gh, gw).numpy())
    image = np.random.default_rng(0).uniform(0, 16, (6, 8))                # digits-like range, stretched
    html = vit_attention_html(torch.tensor(image), w, (gh, gw), head=2)
    sources = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(sources) == 1 + 2 * (1 + 2)           # the image alone, then image + overlay per layer and rollout
    base = png(sources[0])
    assert base.shape == (6, 8) and base.min() == 0 and base.max() == 255
    for overlay, heat in [(sources[2], maps_for(w, 0, 2, gh, gw)), (sources[4], maps_for(w, 1, 2, gh, gw)),
                          (sources[6], cls_rollout_maps(w, (gh, gw))[-1])]:
        alpha = png(overlay)[..., 3].astype(float)
        assert alpha.shape == (gh, gw)
        np.testing.assert_allclose(alpha / alpha.max(), heat / heat.max(), atol=0.01)   # opacity ∝ attention
    # RGB and [H, W, 1] images work; the page gets an image view with the same pictures.
    vit_attention_html(np.zeros((6, 8, 3), dtype=np.uint8), w, (gh, gw))
    page = read_page(attention_page(w, image=image[..., None], patch_grid=(gh, gw)))
    assert page["frames"][3].views["image"] == html
    assert page["meta"]["tokens"][:3] == ["[CLS]", "0,0", "0,1"]


def maps_for(w, layer, head, gh, gw):
    return w[layer, head, 0, 1:].reshape(gh, gw).numpy()


# ------------------------------------------------------------------------ the static page
def test_page_structure_frames_slider_and_clicks():
    w = synthetic(L=3, H=2, T=8, seed=9)
    tokens = [f"tok{i}" for i in range(8)]
    page = attention_page(w, tokens, title="synthetic")
    data = read_page(page)
    assert data["kind"] == "attention" and "data-explorer='attention'" in page and data["select"] is None
    [slider] = data["sliders"]
    assert slider.name == "head" and slider.values == ("mean", 0, 1) and page.count("type='range'") == 1
    frames = data["frames"]
    assert len(frames) == 3 and all(set(f.views) == {"graph", "panel", "tokens", "grid"} for f in frames)
    keys = [f"t{t}" for t in range(8)]
    for frame in frames:
        assert list(frame.on_click) == keys
        for view in ("graph", "tokens"):                 # the picture's columns and the token list
            assert re.findall(r"data-click='(t\d+)'", frame.views[view]) == keys
        panels = [frame.on_click[k]["panel"] for k in keys]
        assert len(set(panels)) == 8 and frame.views["panel"] not in panels
        assert all(f"token {t}: tok{t}" in panels[t] for t in range(8))
        graphs = [frame.on_click[k]["graph"] for k in keys]
        assert len(set(graphs)) == 8 and frame.views["graph"] not in graphs
    assert len({f.views["graph"] for f in frames}) == 3             # each head draws its own links
    assert len({f.views["grid"] for f in frames}) == 3               # and marks its row of the grid
    assert frames[1].on_click["t5"]["graph"] == tokens_layers_svg(w, tokens, head=0, selected=5)
    assert "head 0" in frames[1].on_click["t5"]["panel"] and "mean over heads" in frames[0].views["panel"]
    # The rollout row of a panel is the library's rollout.
    top = int(np.argmax(attention_rollout(w)[-1, 5].numpy()))
    assert re.search(rf"rollout</th><td><b>tok{top}</b> ", frames[0].on_click["t5"]["panel"])


def test_page_stays_small():
    w = synthetic(L=4, H=4, T=32, seed=10)
    page = attention_page(w, [f"w{i}" for i in range(32)], groups=["state", "action", "reward", "x"] * 8)
    size = len(page.encode("utf-8"))
    print(f"attention page, L=4, H=4, T=32: {size / 1e3:.0f} kB")
    assert size < 700_000, size
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)      # self-contained, nothing to fetch


# -------------------------------------------------------------------------------- live
def test_live_widget_builds_and_redraws():
    pytest.importorskip("ipywidgets")
    w = synthetic(L=2, H=3, T=6, seed=11)
    live = AttentionExplorerWidget(w, list("abcdef"), title="live")
    seen = [live.view.value]
    live.head.value = 1
    seen.append(live.view.value)
    live.token.value = 4
    seen.append(live.view.value)
    live.layer.value = 1
    seen.append(live.view.value)
    assert len(set(seen)) == 4
    assert tokens_layers_svg(w, list("abcdef"), head=1, selected=4) in seen[2]
    assert "token 4: e" in seen[2] and "<b>layer 1</b>, head 1" in seen[3]
    assert [o[1] for o in live.token.options] == [None, 0, 1, 2, 3, 4, 5]

    both = attention_explorer(w, list("abcdef"), title="live")
    assert isinstance(both, LiveAndStatic) and hasattr(both.widget, "model_id")
    bundle = both._repr_mimebundle_()
    assert bundle[WIDGET_MIME]["model_id"] == both.widget.model_id and bundle["text/html"] == both.html
    assert read_page(both.html)["kind"] == "attention"
    assert attention_explorer(w, live=False).widget is None


# ----------------------------------------------------------------------------- browser
_IN_BROWSER = r"""async () => {
  const settle = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 30)));
  const root = document.querySelector('[data-explorer="attention"]');
  const graph = root.querySelector('[data-view="graph"]'), panel = root.querySelector('[data-view="panel"]');
  const note = () => ({state: root.getAttribute('data-state'), graph: graph.innerHTML, panel: panel.textContent,
                       blue: graph.querySelectorAll('g[stroke="#1a73e8"]').length,
                       selected: [...root.querySelectorAll('[data-selected]')].map(e => e.getAttribute('data-click'))});
  const click = el => el.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, view: window}));
  const slide = v => { const s = root.querySelector('input[type=range]'); s.value = v;
                       s.dispatchEvent(new Event('input', {bubbles: true})); };
  const out = [note()];
  click(root.querySelector('[data-view="graph"] [data-click="t5"] rect')); await settle(); out.push(note());
  slide(2); await settle(); out.push(note());
  click(root.querySelector('[data-view="tokens"] [data-click="t2"]')); await settle(); out.push(note());
  click(root.querySelector('[data-view="tokens"] [data-click="t2"]')); await settle(); out.push(note());
  return out;
}"""


def test_page_in_a_browser(browser, tmp_path):  # noqa: F811  (the fixture imported above)
    w = synthetic(L=3, H=3, T=8, seed=12)
    page = attention_page(w, [f"tok{i}" for i in range(8)], title="browser")
    (tmp_path / "attention.html").write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{page}"
                                             f"</body></html>", encoding="utf-8")
    with checker_for(browser, tmp_path) as checker:
        problems, found = checker.check("attention.html")          # the book's own check of every explorer
        assert problems == [], problems
        [explorer] = found["explorers"]
        assert explorer["kind"] == "attention" and explorer["sliders"][0]["changed"]
        assert all(c["changed"] for c in explorer["clicks"])
        tab = checker.context.new_page()
        errors = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(checker.base_url + "attention.html")
        steps = tab.evaluate(_IN_BROWSER)
        tab.close()
    assert errors == []
    start, clicked, other_head, other_token, cleared = steps
    assert start["state"] == "0" and start["blue"] == 0 and "Click a token" in start["panel"]
    assert clicked["state"] == "0|t5" and clicked["blue"] == 1 and "token 5: tok5" in clicked["panel"]
    assert clicked["selected"] == ["t5", "t5"]                      # its column and its word in the list
    assert other_head["state"] == "2|t5" and other_head["graph"] != clicked["graph"] and "head 1" in other_head["panel"]
    assert other_token["state"] == "2|t2" and "token 2: tok2" in other_token["panel"]
    assert cleared["state"] == "2" and cleared["blue"] == 0 and cleared["selected"] == []
