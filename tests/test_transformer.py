"""The course transformer (course_lib.nets.transformer): attention against independent references,
masks respected, the fast path equal to the weight-returning path, cached decoding and Transformer-XL
memory equal to recomputing the whole context."""
import math

import pytest
import torch
from torch import nn

from course_lib.core import ConfigError
from course_lib.nets.transformer import (GPT, KVCache, MultiHeadAttention, Transformer, TransformerConfig,
                                         block_causal_mask, causal_mask, merge_heads, multi_head_attention,
                                         padding_mask, sample_next_token, scaled_dot_product_attention, split_heads)

TOL = dict(atol=1e-5, rtol=1e-4)


def loop_attention(q, k, v, mask):
    """softmax(q k / sqrt(d)) v one query at a time in plain Python (rows with no allowed key: zeros)."""
    T, S, d = q.shape[0], k.shape[0], q.shape[1]
    out, weights = torch.zeros(T, v.shape[1]), torch.zeros(T, S)
    for i in range(T):
        allowed = [j for j in range(S) if mask[i, j]]
        if not allowed:
            continue
        scores = torch.tensor([float(q[i] @ k[j]) / math.sqrt(d) for j in allowed])
        w = torch.exp(scores - scores.max())
        w = w / w.sum()
        for wj, j in zip(w, allowed):
            weights[i, j] = wj
            out[i] += wj * v[j]
    return out, weights


@pytest.mark.parametrize("T,S", [(1, 1), (4, 4), (3, 7)])
def test_attention_equals_a_plain_loop_with_any_mask(T, S):
    g = torch.Generator().manual_seed(T * 10 + S)
    q, k, v = torch.randn(T, 5, generator=g), torch.randn(S, 5, generator=g), torch.randn(S, 3, generator=g)
    mask = torch.rand(T, S, generator=g) > 0.4
    mask[0] = False                                                     # one query that may see nothing
    want_out, want_w = loop_attention(q, k, v, mask)
    out, w = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    fast, none = scaled_dot_product_attention(q, k, v, mask)
    assert none is None
    torch.testing.assert_close(out, want_out, **TOL)
    torch.testing.assert_close(w, want_w, **TOL)
    torch.testing.assert_close(fast, want_out, **TOL)
    assert torch.all(w[0] == 0) and torch.all(fast[0] == 0)


def test_causal_flag_sees_only_the_past_with_queries_as_the_last_positions():
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    out, w = scaled_dot_product_attention(q, k, v, causal=True, need_weights=True)
    assert torch.all(w[:, 0, 4:] == 0) and torch.all(w[:, 1, 5:] == 0) and torch.all(w[:, 2] > 0)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, causal=True)[0], out, **TOL)
    with pytest.raises(ValueError, match="bool"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 6))


def test_heads_split_and_merge_are_inverse():
    x = torch.randn(2, 5, 12)
    h = split_heads(x, 3)
    assert h.shape == (2, 3, 5, 4)
    torch.testing.assert_close(h[:, 1], x[..., 4:8])                   # head 1 owns channels 4..7
    torch.testing.assert_close(merge_heads(h), x)
    with pytest.raises(ValueError, match="divide"):
        split_heads(x, 5)


def torch_twin(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    """``torch.nn.MultiheadAttention`` holding the same weights as the course module."""
    C, H = ours.cfg.d_model, ours.cfg.n_heads
    ref = nn.MultiheadAttention(C, H, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    return ref


def test_multi_head_attention_equals_torch_multihead_attention_with_the_same_weights():
    ours = MultiHeadAttention(TransformerConfig(d_model=16, n_heads=4, positions="none")).eval()
    ref = torch_twin(ours)
    x = torch.randn(3, 6, 16)
    pad = padding_mask(torch.tensor([6, 4, 1]), 6)
    mask = causal_mask(6).unsqueeze(0) & pad[:, None, :]
    y, w = ours(x, mask=mask.unsqueeze(1), need_weights=True)
    want_y, want_w = ref(x, x, x, attn_mask=~causal_mask(6), key_padding_mask=~pad, average_attn_weights=False)
    torch.testing.assert_close(y, want_y, **TOL)
    torch.testing.assert_close(w, want_w, **TOL)


def test_functional_attention_equals_the_module_and_torch_with_the_same_weights():
    torch.manual_seed(0)
    module = MultiHeadAttention(TransformerConfig(d_model=12, n_heads=3, positions="none")).eval()
    torch_mha = torch_twin(module)
    x = torch.randn(2, 5, 12)
    pad = padding_mask(torch.tensor([5, 3]), 5)
    mask = (causal_mask(5) & pad[:, None, :]).unsqueeze(1)                       # [B, 1, T, T]
    y, w = multi_head_attention(x, module.qkv.weight, module.qkv.bias, module.out.weight, module.out.bias, 3, mask)
    assert y.shape == (2, 5, 12) and w.shape == (2, 3, 5, 5)
    want_y, want_w = module(x, mask=mask, need_weights=True)
    torch.testing.assert_close(y, want_y, **TOL)
    torch.testing.assert_close(w, want_w, **TOL)
    torch_y, torch_w = torch_mha(x, x, x, attn_mask=~causal_mask(5), key_padding_mask=~pad, average_attn_weights=False)
    torch.testing.assert_close(y, torch_y, **TOL)
    torch.testing.assert_close(w, torch_w, **TOL)


def test_functional_attention_without_biases_or_mask():
    g = torch.Generator().manual_seed(1)
    x, w_qkv, w_out = torch.randn(1, 4, 8, generator=g), torch.randn(24, 8, generator=g), torch.randn(8, 8, generator=g)
    y, w = multi_head_attention(x, w_qkv, None, w_out, None, 2)
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 2, 4), **TOL)
    # One head by hand: softmax(Q K^T / sqrt(d)) V, then the output projection.
    q, k, v = (x @ w_qkv.T).chunk(3, dim=-1)
    one, _ = multi_head_attention(x, w_qkv, None, w_out, None, 1)
    torch.testing.assert_close(one, torch.softmax(q @ k.transpose(1, 2) / 8 ** 0.5, dim=-1) @ v @ w_out.T, **TOL)


def small(positions="learned", **kw):
    return TransformerConfig(d_model=32, n_heads=4, n_layers=3, positions=positions, max_len=64, **kw)


@pytest.mark.parametrize("positions", ["learned", "relative", "none"])
def test_fast_path_equals_the_weight_returning_path_under_every_mask(positions):
    torch.manual_seed(0)
    model = GPT(small(positions), vocab_size=13).eval()
    idx = torch.randint(13, (3, 10))
    blocks = torch.arange(10) // 3                                      # steps of 3 tokens
    cases = {"causal": dict(), "bidirectional": dict(causal=False),
             "padding": dict(padding=padding_mask(torch.tensor([10, 7, 2]), 10)),
             "block": dict(causal=False, mask=block_causal_mask(blocks)),
             "block per row": dict(causal=False, mask=block_causal_mask(blocks).expand(3, 10, 10).clone())}
    for name, kw in cases.items():
        fast = model(idx, **kw)
        slow, weights = model(idx, need_weights=True, **kw)
        torch.testing.assert_close(fast, slow, **TOL, msg=name)
        assert len(weights) == 3 and weights[0].shape == (3, 4, 10, 10)
        torch.testing.assert_close(weights[1].sum(-1), torch.ones(3, 4, 10), **TOL)


def test_a_masked_out_token_cannot_change_the_output():
    torch.manual_seed(1)
    stack = Transformer(small("relative")).eval()
    x = torch.randn(2, 9, 32)
    blocks = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])                  # state, action, reward per step
    mask = block_causal_mask(blocks)
    changed = x.clone()
    changed[:, 7] += 3.0 * torch.randn(32)                              # a token of step 2 (not a constant: LayerNorm)
    a = stack(x, mask=mask).hidden
    b = stack(changed, mask=mask).hidden
    torch.testing.assert_close(a[:, :6], b[:, :6])                      # steps 0 and 1 cannot see it
    assert (a[:, 6:] - b[:, 6:]).abs().amax() > 1e-3                    # step 2 sees all of step 2
    pad = padding_mask(torch.tensor([9, 5]), 9)
    a = stack(x, padding=pad).hidden
    b = stack(changed, padding=pad).hidden
    torch.testing.assert_close(a[1, :5], b[1, :5])                      # padding of row 1 is invisible
    assert (a[0] - b[0]).abs().amax() > 1e-3                            # row 0's token 7 is real


@pytest.mark.parametrize("positions", ["learned", "relative"])
def test_cached_decoding_equals_recomputing_the_context(positions):
    torch.manual_seed(2)
    model = GPT(small(positions), vocab_size=11).eval()
    idx = torch.randint(11, (4, 24))
    full = model(idx)
    cache = model.new_cache()
    pieces = [model(idx[:, :7], cache=cache)] + [model(idx[:, t:t + 1], cache=cache) for t in range(7, 20)]
    pieces.append(model(idx[:, 20:], cache=cache))                      # several tokens at once after the cache
    torch.testing.assert_close(torch.cat(pieces, 1), full, **TOL)
    assert cache.length == 24 and cache.size == 24
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    sampled = model.generate(idx[:, :3], 12, generator=g1)
    recomputed = model.generate(idx[:, :3], 12, generator=g2, use_cache=False)
    assert torch.equal(sampled, recomputed)
    greedy = model.generate(idx[:, :3], 12, temperature=0)
    for t in range(3, 15):                                              # greedy = argmax of the full pass
        assert torch.equal(greedy[:, t], model(greedy[:, :t])[:, -1].argmax(-1))


def test_cache_keeps_the_selected_rows_and_a_window():
    cache = KVCache(1, max_size=3)
    for t in range(5):
        cache.append(0, torch.full((2, 1, 1, 2), float(t)), torch.zeros(2, 1, 1, 2))
    assert cache.size == 3 and cache.layers[0][0][0, 0, :, 0].tolist() == [2.0, 3.0, 4.0]
    cache.select(torch.tensor([1, 1, 0]))
    assert cache.layers[0][0].shape[0] == 3


def test_transformer_xl_memory_equals_the_whole_sequence_at_once():
    torch.manual_seed(3)
    stack = Transformer(small("relative", memory=64)).eval()
    x = torch.randn(2, 15, 32)
    whole = stack(x, causal=True).hidden
    memory, parts = None, []
    for start in range(0, 15, 5):                                       # three segments of 5
        out = stack(x[:, start:start + 5], causal=True, memory=memory)
        parts.append(out.hidden)
        memory = out.memory
    torch.testing.assert_close(torch.cat(parts, 1), whole, **TOL)
    assert memory[0].shape == (2, 15, 32) and not memory[0].requires_grad
    short = Transformer(small("relative", memory=5)).eval()             # a memory shorter than the past: a window
    out = short(x[:, :5], causal=True)
    out = short(x[:, 5:10], causal=True, memory=out.memory)
    assert out.memory[0].shape == (2, 5, 32)
    torch.testing.assert_close(out.memory[0], x[:, 5:10])               # layer 0's memory is its input


def test_relative_positions_depend_only_on_distance():
    torch.manual_seed(4)
    stack = Transformer(small("relative")).eval()
    x = torch.randn(1, 6, 32)
    shifted = torch.cat((torch.randn(1, 4, 32), x), 1)
    # the last 6 tokens of the longer sequence, kept from seeing the first 4, see exactly x, 4 places later
    mask = causal_mask(10)
    mask[4:, :4] = False
    torch.testing.assert_close(stack(shifted, mask=mask).hidden[:, 4:], stack(x, causal=True).hidden, **TOL)
    learned = GPT(small("learned"), 7).eval()
    idx = torch.randint(7, (1, 6))
    moved = torch.cat((torch.randint(7, (1, 4)), idx), 1)
    assert (learned(moved, mask=mask)[:, 4:] - learned(idx)).abs().amax() > 1e-4   # absolute positions differ


def test_sampling_rules():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]]).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    assert torch.all(sample_next_token(logits, temperature=0) == 1)
    top2 = sample_next_token(logits, top_k=2, generator=g)
    assert set(top2.tolist()) == {1, 3}
    p = torch.softmax(logits[0], -1)                                    # 0.032, 0.644, 0.087, 0.237
    nucleus = sample_next_token(logits, top_p=0.7, generator=g)        # 0.644 < 0.7: tokens 1 and 3
    assert set(nucleus.tolist()) == {1, 3} and p[1] < 0.7
    share = (sample_next_token(logits, generator=g) == 1).float().mean()
    assert abs(share - p[1]) < 0.05
    with pytest.raises(ValueError, match="temperature"):
        sample_next_token(logits, temperature=-1)


def test_config_and_input_errors_name_what_is_accepted():
    with pytest.raises(ConfigError, match="divide"):
        TransformerConfig(d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="relative"):
        TransformerConfig(memory=8)
    with pytest.raises(ConfigError, match="positions"):
        TransformerConfig(positions="rotary")
    model = GPT(small(), 5)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match=r"long \[B, T\]"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="mask must be bool"):
        model(torch.zeros(1, 4, dtype=torch.long), mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="memory or cache"):
        Transformer(small("relative", memory=4))(torch.randn(1, 2, 32), memory=[torch.zeros(1, 1, 32)] * 3,
                                                 cache=KVCache(3))


def test_gradients_flow_and_training_lowers_the_loss():
    torch.manual_seed(5)
    model = GPT(small(), 6)
    data = torch.arange(6).repeat(4, 4)[:, :20] % 6                    # 0 1 2 3 4 5 0 1 ...: fully predictable
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        logits = model(data[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 6), data[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_speed_command_measures_both_paths_and_refuses_bad_sizes(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "speed.json"
    cmd = [sys.executable, "-m", "course_lib", "transformer-speed", "--d-model", "16", "--layers", "1", "--heads",
           "2", "--batch", "2", "--seq", "8", "--context", "8", "--new-tokens", "3", "--repeats", "1", "--device",
           "cpu", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = json.loads(out.read_text())
    assert row["sample_same_tokens"] is True and row["train_parameters"] == row["train_torch_parameters"]
    assert row["train_ours_tokens_per_second"] > 0 and row["sample_cached_tokens_per_second"] > 0
    assert "nn.TransformerEncoder" in done.stdout
    bad = subprocess.run(cmd[:4] + ["--heads", "3"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "divide by --heads" in bad.stderr
