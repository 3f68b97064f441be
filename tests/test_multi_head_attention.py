"""course_lib.nets.transformer.multi_head_attention, the functional multi-head attention the `attention` assignment
compares with: the same numbers as the library's MultiHeadAttention module and as torch's MultiheadAttention when
all three hold the same weights."""
import torch
from torch import nn

from course_lib.nets.transformer import (MultiHeadAttention, TransformerConfig, causal_mask, multi_head_attention,
                                         padding_mask)

TOL = dict(atol=1e-5, rtol=1e-4)


def test_functional_attention_equals_the_module_and_torch_with_the_same_weights():
    torch.manual_seed(0)
    module = MultiHeadAttention(TransformerConfig(d_model=12, n_heads=3, positions="none")).eval()
    torch_mha = nn.MultiheadAttention(12, 3, batch_first=True).eval()
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(module.qkv.weight)
        torch_mha.in_proj_bias.copy_(module.qkv.bias)
        torch_mha.out_proj.weight.copy_(module.out.weight)
        torch_mha.out_proj.bias.copy_(module.out.bias)
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
