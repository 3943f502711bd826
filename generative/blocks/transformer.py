"""The pre-LayerNorm transformer block shared by the UNet's spatial transformers and the text encoder."""

from torch import nn

from .attention import Attention


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block on tokens ``x [N, L, dim]``, three residual steps:
    ``x + SelfAttention(LN(x))``; with ``context_dim``, ``x + CrossAttention(LN(x), context [N, L_c, context_dim])``;
    ``x + FF(LN(x))`` with ``FF = Linear(dim, 4 dim), GELU, Linear(4 dim, dim)``. ``mask`` ``[N, L]``
    (True = attend) masks padded keys of the self-attention. Returns ``[N, L, dim]``."""

    def __init__(self, dim, heads, context_dim=None):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = self.cross = None
        if context_dim is not None:
            self.norm2, self.cross = nn.LayerNorm(dim), Attention(dim, heads, context_dim=context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, context=None, mask=None):
        x = x + self.attn(self.norm1(x), mask=mask)
        if self.cross is not None:
            x = x + self.cross(self.norm2(x), context)
        return x + self.ff(self.norm3(x))
