"""Multi-head attention for token sequences ``[N, L, D]``: self, cross and joint (SD3's MMDiT).

All three use :func:`torch.nn.functional.scaled_dot_product_attention` (softmax
of ``q k^T / sqrt(d_head)``), with an optional RMS normalisation of the queries
and keys per head (QK-norm: ``q / rms(q) * g`` with a learned gain ``g``, as SD3
uses to keep attention logits bounded at high resolution). ``mask`` is a
boolean ``[N, L_k]`` (True = attend) for padded keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[N, L, H * d]`` -> ``[N, H, L, d]``."""
    n, length, width = x.shape
    return x.reshape(n, length, heads, width // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """``[N, H, L, d]`` -> ``[N, L, H * d]``."""
    n, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * d)


def _attend(q, k, v, mask):
    key_mask = None if mask is None else mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)


class QKNorm(nn.Module):
    """RMS normalisation of queries and keys over each head's ``d_head`` values, with learned gains
    (or the identity when ``enabled`` is False)."""

    def __init__(self, head_dim: int, enabled: bool):
        super().__init__()
        self.q = nn.RMSNorm(head_dim, eps=1e-6) if enabled else nn.Identity()
        self.k = nn.RMSNorm(head_dim, eps=1e-6) if enabled else nn.Identity()

    def forward(self, q, k):
        return self.q(q), self.k(k)


class Attention(nn.Module):
    """Self-attention over ``x [N, L, dim]``, or cross-attention from ``x`` to ``context [N, L_c, context_dim]``.

    ``heads`` must divide ``dim``; ``qk_norm`` adds :class:`QKNorm`. Returns ``[N, L, dim]``.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, qk_norm: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide width {dim}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.norm = QKNorm(dim // heads, qk_norm)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        source = x if context is None else context
        q = _heads(self.q(x), self.heads)
        k, v = (_heads(t, self.heads) for t in self.kv(source).chunk(2, dim=-1))
        q, k = self.norm(q, k)
        return self.out(_merge(_attend(q, k, v, mask)))


class JointAttention(nn.Module):
    """SD3's joint attention: two streams ``x [N, L_x, dim_x]`` (image tokens) and ``c [N, L_c, dim_c]``
    (text tokens), each with its own query/key/value and output projections, attend over their
    concatenated sequence (one attention, every token sees every token). Returns ``(x', c')``.
    ``mask`` (``[N, L_c]``) masks padded text tokens as keys. ``context_out=False`` (the last block of
    an MMDiT, whose text stream is not read again) drops the text output projection and returns
    ``(x', None)``."""

    def __init__(self, dim_x: int, dim_c: int, heads: int, width: int | None = None, qk_norm: bool = False,
                 context_out: bool = True):
        super().__init__()
        width = width or dim_x
        if width % heads:
            raise ValueError(f"{heads} heads do not divide width {width}")
        self.heads = heads
        self.qkv_x, self.qkv_c = nn.Linear(dim_x, 3 * width), nn.Linear(dim_c, 3 * width)
        self.norm_x, self.norm_c = QKNorm(width // heads, qk_norm), QKNorm(width // heads, qk_norm)
        self.out_x = nn.Linear(width, dim_x)
        self.out_c = nn.Linear(width, dim_c) if context_out else None

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None):
        qx, kx, vx = (_heads(t, self.heads) for t in self.qkv_x(x).chunk(3, dim=-1))
        qc, kc, vc = (_heads(t, self.heads) for t in self.qkv_c(c).chunk(3, dim=-1))
        qx, kx = self.norm_x(qx, kx)
        qc, kc = self.norm_c(qc, kc)
        q, k, v = (torch.cat(pair, dim=2) for pair in ((qx, qc), (kx, kc), (vx, vc)))
        full_mask = None
        if mask is not None:
            full_mask = torch.cat([torch.ones(len(x), x.shape[1], dtype=torch.bool, device=x.device), mask], dim=1)
        out = _merge(_attend(q, k, v, full_mask))
        out_c = None if self.out_c is None else self.out_c(out[:, x.shape[1]:])
        return self.out_x(out[:, : x.shape[1]]), out_c
