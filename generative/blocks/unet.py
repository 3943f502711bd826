"""A small UNet for images, with optional vector conditioning for classifier-free guidance.

``UNet(x [N, C, H, W], c_noise [N], cond=None) -> [N, C_out, H, W]``; ``H`` and
``W`` must be divisible by ``2 ** (len(mults) - 1)``. ``c_noise`` is the scalar
noise conditioning of the preconditioning (as for
:class:`generative.blocks.mlp.ResidualMLP`). With ``vector_dim``, the
conditioning dict's ``"vector"`` ``[N, vector_dim]`` (e.g. a class embedding
from :class:`generative.conditioning.ClassEmbedder`) is projected and added to
the time embedding; no ``cond`` (or a zero vector, what
:meth:`generative.conditioning.Conditioner.unconditional` gives) is the
unconditional model. :class:`generative.preconditioning.Preconditioned` passes
``cond`` through.
"""

import torch
from torch import nn

from .embeddings import FourierEmbedding


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


class UNet(nn.Module):
    """UNet with one residual block per resolution on the way down and up, two in the middle.

    Args:
        in_channels, out_channels: image channels in and out.
        base: channels at full resolution; level ``i`` has ``base * mults[i]``.
        mults: channel multipliers; every level after the first halves ``H`` and ``W``
            (strided 3x3 convolution down, nearest-neighbour upsampling plus 3x3 convolution up).
        time_embed_dim: width of the Fourier embedding of ``c_noise`` and its MLP.
        vector_dim: ``None`` for an unconditional network, else the width of ``cond["vector"]``,
            projected linearly and added to the time embedding.
        embed_scale: standard deviation of the Fourier frequencies.
        groups: GroupNorm groups (fewer where a layer has fewer channels).
    """

    def __init__(self, in_channels, out_channels, base=32, mults=(1, 2), time_embed_dim=128,
                 vector_dim=None, embed_scale=4.0, groups=8):
        super().__init__()
        self.vector_dim = vector_dim
        e = time_embed_dim
        self.embed = nn.Sequential(FourierEmbedding(e, embed_scale), nn.Linear(e, e), nn.SiLU(),
                                   nn.Linear(e, e))
        self.vector_embed = None if vector_dim is None else nn.Linear(vector_dim, e)
        widths = [base * m for m in mults]
        self.inp = nn.Conv2d(in_channels, widths[0], 3, padding=1)
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

    def embedding(self, c_noise, cond=None):
        """Time embedding ``[N, time_embed_dim]`` plus the projected ``cond["vector"]`` (zeros without one)."""
        emb = self.embed(c_noise)
        vector = None if cond is None else cond.get("vector")
        if self.vector_embed is not None:
            if vector is None:
                vector = emb.new_zeros(len(emb), self.vector_dim)
            emb = emb + self.vector_embed(vector.to(emb.dtype))
        elif vector is not None:
            raise ValueError("a conditioning vector given to an unconditional UNet (vector_dim=None)")
        return emb

    def forward(self, x, c_noise, cond=None):
        dtype = x.dtype
        x = x.to(self.inp.weight.dtype)
        emb = nn.functional.silu(self.embedding(c_noise, cond))
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        for block in self.mid:
            h = block(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.out(h).to(dtype)
