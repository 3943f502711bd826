"""SD3's multimodal diffusion transformer (MMDiT; Esser et al. 2024) for image latents.

``MMDiT(x [N, C, H, W], t [N], cond) -> [N, C_out, H, W]``:

* the latent is cut into ``patch x patch`` patches (a strided convolution), one
  token each, plus a fixed 2-D sine-cosine position embedding cropped from the
  centre of a larger grid (:func:`centre_crop`), so any ``H x W`` up to
  ``pos_grid * patch`` works (several aspect ratios in one model);
* the text tokens ``cond["tokens"] [N, L, context_dim]`` are projected to the
  model width and keep their own weights in every block (:class:`MMDiTBlock`);
  the two streams meet only in a joint attention over the concatenated sequence
  (:class:`generative.blocks.attention.JointAttention`, per-head RMS QK-norm);
* every block is modulated by adaLN-Zero from ``sinusoidal(time_scale * t)``
  through an MLP plus the pooled text ``cond["vector"] [N, vector_dim]`` through
  another MLP; the last block is "context pre-only": it reads the text but does
  not update it (its text output would never be used).

``t`` is the rectified-flow time in [0, 1] (``time_scale = 1000`` as SD3, so
the embedding sees 0..1000). Widths follow SD3 (MLP ratio 4, tanh GELU, layer
norms without affine parameters, eps 1e-6); ``tests/engine/test_mmdit.py``
maps a small MMDiT into diffusers' ``SD3Transformer2DModel`` and checks equal
outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import JointAttention
from .embeddings import sinusoidal
from .modulation import AdaLNZero, modulate


def sincos_grid(size: int, dim: int, base_size: int | None = None) -> torch.Tensor:
    """Fixed 2-D position embedding ``[size, size, dim]`` of a square grid of patches, ``[row, column]``.

    The first ``dim / 2`` values encode the column (x) index, the last ``dim / 2`` the row (y)
    index, each as ``[sin(p w_k), cos(p w_k)]`` with ``w_k = 10000^(-k / (dim / 4))``. Positions
    are patch indices times ``base_size / size`` (``base_size`` defaults to ``size``), i.e. SD3's
    grid, whose positions are in units of its training-resolution grid. ``dim`` divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"position embedding width {dim} must be divisible by 4")
    positions = torch.arange(size, dtype=torch.float64) * ((base_size or size) / size)
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    angles = positions[:, None] * omega  # [size, dim / 4]
    one_d = torch.cat([angles.sin(), angles.cos()], dim=1)  # [size, dim / 2]
    rows = one_d[:, None, :].expand(size, size, dim // 2)
    columns = one_d[None, :, :].expand(size, size, dim // 2)
    return torch.cat([columns, rows], dim=-1).float()


def centre_crop(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height x width`` window of a ``[G, G, dim]`` grid as ``[height * width, dim]``
    (rows first); the top-left corner is at ``((G - height) // 2, (G - width) // 2)``."""
    size = grid.shape[0]
    if height > size or width > size:
        raise ValueError(f"{height} x {width} patches exceed the {size} x {size} position grid; "
                         f"build the model with a larger pos_grid")
    top, left = (size - height) // 2, (size - width) // 2
    return grid[top:top + height, left:left + width].reshape(height * width, -1)


def _mlp(dim: int, ratio: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, ratio * dim), nn.GELU(approximate="tanh"), nn.Linear(ratio * dim, dim))


def _norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


class MMDiTBlock(nn.Module):
    """One MMDiT block over image tokens ``x [N, L_x, dim]`` and text tokens ``c [N, L_c, dim]`` with
    conditioning ``y [N, dim]``; returns ``(x', c')`` (``c'`` is None when ``context_pre_only``).

    Per stream: ``h = LN(s) * (1 + scale) + shift`` -> joint attention -> ``s + gate * attn``, then
    ``s + gate' * MLP(LN(s) * (1 + scale') + shift')``; shifts, scales and gates from adaLN-Zero
    (``AdaLNZero`` chunks in the order shift, scale, gate for attention, then for the MLP). A
    context-pre-only block only shifts and scales the text before attention (2 chunks)."""

    def __init__(self, dim: int, heads: int, context_pre_only: bool = False, qk_norm: bool = True,
                 mlp_ratio: int = 4):
        super().__init__()
        self.context_pre_only = context_pre_only
        self.mod_x = AdaLNZero(dim, dim, 6)
        self.mod_c = AdaLNZero(dim, dim, 2 if context_pre_only else 6)
        self.norm = _norm(dim)
        self.attn = JointAttention(dim, dim, heads, qk_norm=qk_norm, context_out=not context_pre_only)
        self.mlp_x = _mlp(dim, mlp_ratio)
        self.mlp_c = None if context_pre_only else _mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, c: torch.Tensor, y: torch.Tensor):
        shift, scale, gate, shift2, scale2, gate2 = self.mod_x(y)
        c_mod = self.mod_c(y)
        attn_x, attn_c = self.attn(modulate(self.norm(x), shift, scale), modulate(self.norm(c), c_mod[0], c_mod[1]))
        x = x + gate[:, None] * attn_x
        x = x + gate2[:, None] * self.mlp_x(modulate(self.norm(x), shift2, scale2))
        if self.context_pre_only:
            return x, None
        c = c + c_mod[2][:, None] * attn_c
        c = c + c_mod[5][:, None] * self.mlp_c(modulate(self.norm(c), c_mod[3], c_mod[4]))
        return x, c


class MMDiT(nn.Module):
    """SD3-style MMDiT velocity (or denoiser) network for latents ``[N, in_channels, H, W]``.

    Args:
        in_channels, out_channels: latent channels in and out (``out_channels`` defaults to ``in_channels``).
        context_dim: width of the text tokens ``cond["tokens"]``.
        vector_dim: width of ``cond["vector"]`` (pooled text, micro-conditioning).
        dim: model width (``heads`` must divide it); depth: number of blocks (the last is context pre-only).
        patch: patch side in latent pixels (``H`` and ``W`` divisible by it).
        pos_grid: side of the position-embedding grid in patches (largest ``H / patch``, ``W / patch``).
        pos_base: SD3's ``base_size``: positions are scaled by ``pos_base / pos_grid`` (default: no scaling).
        qk_norm: per-head RMS normalisation of queries and keys.
        time_scale: the time embedding reads ``time_scale * t`` (SD3: t in [0, 1] times 1000).
        embed_dim: width of the sinusoidal time embedding before its MLP (SD3: 256).
    """

    def __init__(self, in_channels: int, context_dim: int, vector_dim: int, dim: int = 96, depth: int = 4,
                 heads: int = 4, patch: int = 2, pos_grid: int = 16, pos_base: int | None = None,
                 out_channels: int | None = None, qk_norm: bool = True, time_scale: float = 1000.0,
                 embed_dim: int = 256, mlp_ratio: int = 4):
        super().__init__()
        if depth < 1:
            raise ValueError("an MMDiT needs at least one block")
        self.patch, self.out_channels = patch, out_channels or in_channels
        self.time_scale, self.embed_dim = time_scale, embed_dim
        self.patchify = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.register_buffer("pos", sincos_grid(pos_grid, dim, pos_base), persistent=False)
        self.time_embed = nn.Sequential(nn.Linear(embed_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.vector_embed = nn.Sequential(nn.Linear(vector_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.context_embed = nn.Linear(context_dim, dim)
        self.blocks = nn.ModuleList(MMDiTBlock(dim, heads, context_pre_only=i == depth - 1, qk_norm=qk_norm,
                                               mlp_ratio=mlp_ratio) for i in range(depth))
        self.final_mod = AdaLNZero(dim, dim, 2)
        self.final_norm = _norm(dim)
        self.unpatchify = nn.Linear(dim, patch * patch * self.out_channels)
        nn.init.zeros_(self.unpatchify.weight)
        nn.init.zeros_(self.unpatchify.bias)

    def conditioning(self, t: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        """The adaLN input ``[N, dim]``: MLP(sinusoidal(time_scale * t)) + MLP(vector)."""
        return self.time_embed(sinusoidal(self.time_scale * t, self.embed_dim)) + self.vector_embed(vector)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(self.patchify.weight.dtype)
        n, _, height, width = x.shape
        p = self.patch
        if height % p or width % p:
            raise ValueError(f"latent {height} x {width} is not divisible by the patch size {p}")
        h, w = height // p, width // p
        tokens = self.patchify(x).flatten(2).transpose(1, 2) + centre_crop(self.pos, h, w)
        y = self.conditioning(t, cond["vector"].to(x.dtype))
        c = self.context_embed(cond["tokens"].to(x.dtype))
        for block in self.blocks:
            tokens, c = block(tokens, c, y)
        shift, scale = self.final_mod(y)
        out = self.unpatchify(modulate(self.final_norm(tokens), shift, scale))  # [N, h * w, p * p * C]
        out = out.reshape(n, h, w, p, p, self.out_channels).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(n, self.out_channels, height, width).to(dtype)
