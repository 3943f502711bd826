"""Shared network blocks against hand-written references and exact invariances."""

import math

import pytest
import torch

from generative.blocks.attention import Attention, JointAttention
from generative.blocks.modulation import AdaLNZero, modulate


def _reference_attention(x, context, att, mask=None):
    """Softmax attention written out with the module's weights (no scaled_dot_product_attention)."""
    heads, dim = att.heads, att.q.out_features
    d = dim // heads
    q = (x @ att.q.weight.T + att.q.bias).reshape(len(x), -1, heads, d).transpose(1, 2)
    kv = context @ att.kv.weight.T + att.kv.bias
    k, v = (t.reshape(len(x), -1, heads, d).transpose(1, 2) for t in kv.chunk(2, dim=-1))
    logits = q @ k.transpose(-1, -2) / math.sqrt(d)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(len(x), -1, dim)
    return out @ att.out.weight.T + att.out.bias


def test_self_and_cross_attention_match_the_written_out_formula():
    torch.manual_seed(0)
    att = Attention(16, 4)
    x = torch.randn(3, 7, 16)
    torch.testing.assert_close(att(x), _reference_attention(x, x, att), atol=1e-5, rtol=1e-5)
    cross = Attention(16, 4, context_dim=10)
    c = torch.randn(3, 5, 10)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])
    torch.testing.assert_close(cross(x, c, mask), _reference_attention(x, c, cross, mask), atol=1e-5, rtol=1e-5)


def test_masked_keys_are_ignored_and_tokens_permute():
    torch.manual_seed(1)
    cross = Attention(8, 2, context_dim=6)
    x, c = torch.randn(2, 4, 8), torch.randn(2, 3, 6)
    padded = torch.cat([c, 100 * torch.randn(2, 2, 6)], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 2] * 2)
    torch.testing.assert_close(cross(x, padded, mask), cross(x, c), atol=1e-5, rtol=1e-5)
    perm = torch.randperm(4)
    att = Attention(8, 2)
    torch.testing.assert_close(att(x[:, perm]), att(x)[:, perm], atol=1e-5, rtol=1e-5)


def test_joint_attention_is_one_attention_over_both_streams():
    """With the same weights in both streams, joint attention is self-attention over the concatenated tokens."""
    torch.manual_seed(2)
    joint = JointAttention(8, 8, heads=2)
    with torch.no_grad():
        joint.qkv_c.load_state_dict(joint.qkv_x.state_dict())
        joint.out_c.load_state_dict(joint.out_x.state_dict())
    single = Attention(8, 2)
    with torch.no_grad():
        w, b = joint.qkv_x.weight, joint.qkv_x.bias
        single.q.weight.copy_(w[:8]), single.q.bias.copy_(b[:8])
        single.kv.weight.copy_(w[8:]), single.kv.bias.copy_(b[8:])
        single.out.load_state_dict(joint.out_x.state_dict())
    x, c = torch.randn(3, 5, 8), torch.randn(3, 4, 8)
    out_x, out_c = joint(x, c)
    both = single(torch.cat([x, c], dim=1))
    torch.testing.assert_close(torch.cat([out_x, out_c], dim=1), both, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("qk_norm", [True, False])
def test_qk_norm_makes_attention_blind_to_the_scale_of_queries_and_keys(qk_norm):
    torch.manual_seed(3)
    att = Attention(8, 2, qk_norm=qk_norm)
    x = torch.randn(2, 6, 8)
    before = att(x)
    with torch.no_grad():
        att.q.weight.mul_(10), att.q.bias.mul_(10)
    after = att(x)
    assert torch.allclose(before, after, atol=1e-4) == qk_norm


def test_adaln_zero_starts_as_the_identity():
    block = AdaLNZero(8, 5, chunks=6)
    chunks = block(torch.randn(3, 5))
    assert len(chunks) == 6 and all(c.shape == (3, 8) and not c.any() for c in chunks)
    x = torch.randn(3, 4, 8)
    shift, scale = torch.randn(3, 8), torch.randn(3, 8)
    torch.testing.assert_close(modulate(x, shift, scale), x * (1 + scale[:, None]) + shift[:, None])
    torch.testing.assert_close(modulate(x, chunks[0], chunks[1]), x)
