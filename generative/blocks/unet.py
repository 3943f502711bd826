"""A small UNet for images, with optional vector, token (cross-attention) and channel conditioning.

``UNet(x [N, C, H, W], c_noise [N], cond=None) -> [N, C_out, H, W]``; ``H`` and
``W`` (not necessarily equal) must be divisible by ``2 ** (len(mults) - 1)``.
``c_noise`` is the scalar noise conditioning of the preconditioning (as for
:class:`generative.blocks.mlp.ResidualMLP`). The conditioning dict (see
:mod:`generative.conditioning`) is read as in SDXL / SVD:

* ``vector_dim``: ``cond["vector"]`` ``[N, vector_dim]`` (a class embedding, a
  pooled text embedding plus size and crop micro-conditioning) is projected and
  added to the time embedding;
* ``attention_levels`` and ``context_dim``: the levels listed get a
  :class:`SpatialTransformer` after their residual block on the way down and up,
  and one sits between the two middle blocks; its cross-attention reads
  ``cond["tokens"]`` ``[N, L, context_dim]`` (without ``context_dim`` the blocks
  only self-attend);
* ``concat_channels``: ``cond["concat"]`` ``[N, concat_channels, H, W]`` is
  stacked onto the input channels.

A missing entry is the zero conditioning (what
:meth:`generative.conditioning.Conditioner.unconditional` gives): a zero vector,
one zero token (cross-attention to zero tokens of any length gives the same
output: all keys and values are the biases), zero channels. No ``cond`` is
the unconditional model. Without these options the network, its parameter
names and its outputs are those of the plain UNet; the attention blocks are
built after it and start as the identity (zero-initialised output projection),
so for one seed the attention UNet at initialisation equals the plain one.
:class:`generative.preconditioning.Preconditioned` passes ``cond`` through.
"""

import torch
from torch import nn

from .embeddings import FourierEmbedding
from .transformer import TransformerBlock


def _norm(channels, groups):
    return nn.GroupNorm(min(groups, channels), channels)


class ResBlock(nn.Module):
    """``skip(x) + conv(SiLU(GN(conv(SiLU(GN(x))) + Linear(emb)))))``, zero-initialised last conv."""

    def __init__(self, in_channels, out_channels, embed_dim, groups):
        super().__init__()
        self.norm1 = _norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(embed_dim, out_channels)
        self.norm2 = _norm(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = (nn.Identity() if in_channels == out_channels
                     else nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x, emb):
        h = self.conv1(nn.functional.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(nn.functional.silu(self.norm2(h)))


class SpatialTransformer(nn.Module):
    """SDXL's transformer on a feature map: ``h [N, C, H, W]`` -> ``h + proj_out(block(proj_in(GN(h))))``,
    the block (:class:`TransformerBlock`, width ``C``) acting on the ``H * W`` positions as tokens
    (row-major); ``proj_out`` is zero-initialised, so the module starts as the identity."""

    def __init__(self, channels, heads, context_dim, groups):
        super().__init__()
        self.norm = _norm(channels, groups)
        self.proj_in = nn.Linear(channels, channels)
        self.block = TransformerBlock(channels, heads, context_dim)
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, h, context=None):
        n, c, height, width = h.shape
        tokens = self.proj_in(self.norm(h).flatten(2).transpose(1, 2))  # [N, H * W, C]
        tokens = self.proj_out(self.block(tokens, context))
        return h + tokens.transpose(1, 2).reshape(n, c, height, width)


class UNet(nn.Module):
    """UNet with one residual block per resolution on the way down and up, two in the middle; at
    ``attention_levels`` a :class:`SpatialTransformer` follows the level's block (down and up, before the
    skip connection is taken) and one sits between the two middle blocks.

    Args:
        in_channels, out_channels: image channels in and out.
        base: channels at full resolution; level ``i`` has ``base * mults[i]``.
        mults: channel multipliers; every level after the first halves ``H`` and ``W``
            (strided 3x3 convolution down, nearest-neighbour upsampling plus 3x3 convolution up).
        time_embed_dim: width of the Fourier embedding of ``c_noise`` and its MLP.
        vector_dim: ``None`` for no vector conditioning, else the width of ``cond["vector"]``,
            projected linearly and added to the time embedding.
        embed_scale: standard deviation of the Fourier frequencies.
        groups: GroupNorm groups (fewer where a layer has fewer channels).
        context_dim: ``None`` for no token conditioning, else the width of ``cond["tokens"]``,
            which the attention blocks cross-attend to (needs ``attention_levels``).
        attention_levels: indices into ``mults`` of the levels with a :class:`SpatialTransformer`
            (down and up; one more in the middle if any); ``heads`` must divide their widths.
        heads: attention heads of those blocks.
        concat_channels: channels of ``cond["concat"]`` stacked onto the input (0: none).
    """

    def __init__(self, in_channels, out_channels, base=32, mults=(1, 2), time_embed_dim=128,
                 vector_dim=None, embed_scale=4.0, groups=8, context_dim=None, attention_levels=(),
                 heads=4, concat_channels=0):
        super().__init__()
        levels = sorted(set(attention_levels))
        if any(not 0 <= i < len(mults) for i in levels):
            raise ValueError(f"attention_levels {tuple(attention_levels)} are not levels of mults {tuple(mults)}")
        if context_dim is not None and not levels:
            raise ValueError("context_dim needs attention_levels (blocks that cross-attend to the tokens)")
        self.vector_dim, self.context_dim, self.concat_channels = vector_dim, context_dim, concat_channels
        e = time_embed_dim
        self.embed = nn.Sequential(FourierEmbedding(e, embed_scale), nn.Linear(e, e), nn.SiLU(),
                                   nn.Linear(e, e))
        self.vector_embed = None if vector_dim is None else nn.Linear(vector_dim, e)
        widths = [base * m for m in mults]
        self.inp = nn.Conv2d(in_channels + concat_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = widths[0]
        for i, w in enumerate(widths):
            self.down.append(ResBlock(ch, w, e, groups))
            ch = w
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        self.mid = nn.ModuleList([ResBlock(ch, ch, e, groups), ResBlock(ch, ch, e, groups)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(widths))):
            self.up.append(ResBlock(ch + widths[i], widths[i], e, groups))
            ch = widths[i]
            if i > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                   nn.Conv2d(ch, ch, 3, padding=1)))
        self.out = nn.Sequential(_norm(ch, groups), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

        def transformer(width):
            return SpatialTransformer(width, heads, context_dim, groups)

        # built last, so that the layers above are initialised as in the plain UNet
        self.down_attn = nn.ModuleDict({str(i): transformer(widths[i]) for i in levels})
        self.mid_attn = transformer(widths[-1]) if levels else None
        self.up_attn = nn.ModuleDict({str(i): transformer(widths[i]) for i in levels})

    def embedding(self, c_noise, cond=None):
        """Time embedding ``[N, time_embed_dim]`` plus the projected ``cond["vector"]`` (zeros without one)."""
        emb = self.embed(c_noise)
        vector = None if cond is None else cond.get("vector")
        if self.vector_embed is not None:
            if vector is None:
                vector = emb.new_zeros(len(emb), self.vector_dim)
            emb = emb + self.vector_embed(vector.to(emb.dtype))
        elif vector is not None:
            raise ValueError("a conditioning vector given to a UNet without vector_dim")
        return emb

    def context(self, cond, n, dtype):
        """``cond["tokens"]`` ``[N, L, context_dim]`` in ``dtype``, one zero token without it, None without ``context_dim``."""
        tokens = None if cond is None else cond.get("tokens")
        if self.context_dim is None:
            if tokens is not None:
                raise ValueError("conditioning tokens given to a UNet without context_dim")
            return None
        if tokens is None:
            return torch.zeros(n, 1, self.context_dim, dtype=dtype, device=self.inp.weight.device)
        return tokens.to(dtype)

    def stack(self, x, cond):
        """``x`` with ``cond["concat"]`` (zeros without it) stacked onto its channels when ``concat_channels``."""
        concat = None if cond is None else cond.get("concat")
        if not self.concat_channels:
            if concat is not None:
                raise ValueError("conditioning channels given to a UNet without concat_channels")
            return x
        if concat is None:
            concat = x.new_zeros(len(x), self.concat_channels, *x.shape[2:])
        return torch.cat([x, concat.to(x.dtype)], dim=1)

    def block_widths(self):
        """``{name: (kind, channels)}`` of the blocks :meth:`forward` reports to ``after_block``, in call
        order: ``kind`` is ``"res"`` (a :class:`ResBlock`) or ``"attn"`` (a :class:`SpatialTransformer`)."""
        widths = [block.conv2.out_channels for block in self.down]
        names = {}
        for i, w in enumerate(widths):
            names[f"down.{i}"] = ("res", w)
            if str(i) in self.down_attn:
                names[f"down_attn.{i}"] = ("attn", w)
        names["mid.0"] = ("res", widths[-1])
        if self.mid_attn is not None:
            names["mid_attn"] = ("attn", widths[-1])
        names["mid.1"] = ("res", widths[-1])
        for i in reversed(range(len(widths))):
            names[f"up.{i}"] = ("res", widths[i])
            if str(i) in self.up_attn:
                names[f"up_attn.{i}"] = ("attn", widths[i])
        return names

    def forward(self, x, c_noise, cond=None, after_block=None):
        """``after_block(name, h, emb)``, if given, replaces the output ``h`` of every residual and
        attention block (names and widths in :meth:`block_widths`; ``emb`` the SiLU of the time plus
        vector embedding the residual blocks read): a video model inserts its temporal layers there."""
        tap = after_block or (lambda name, h, emb: h)
        dtype = x.dtype
        x = self.stack(x.to(self.inp.weight.dtype), cond)
        emb = nn.functional.silu(self.embedding(c_noise, cond))
        context = self.context(cond, len(x), x.dtype)
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = tap(f"down.{i}", block(h, emb), emb)
            if str(i) in self.down_attn:
                h = tap(f"down_attn.{i}", self.down_attn[str(i)](h, context), emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = tap("mid.0", self.mid[0](h, emb), emb)
        if self.mid_attn is not None:
            h = tap("mid_attn", self.mid_attn(h, context), emb)
        h = tap("mid.1", self.mid[1](h, emb), emb)
        for i, block in enumerate(self.up):
            level = len(self.up) - 1 - i
            h = tap(f"up.{level}", block(torch.cat([h, skips.pop()], dim=1), emb), emb)
            if str(level) in self.up_attn:
                h = tap(f"up_attn.{level}", self.up_attn[str(level)](h, context), emb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.out(h).to(dtype)
