"""Embeddings of scalars (noise levels, times, sizes) as vectors networks read.

* :class:`FourierEmbedding`: random Fourier features of one scalar (EDM's
  ``c_noise``), fixed frequencies drawn at construction;
* :func:`sinusoidal`: the fixed transformer / SDXL timestep embedding, the
  form SDXL's size and crop micro-conditioning and SVD's fps use.
"""

import math

import torch
from torch import nn


class FourierEmbedding(nn.Module):
    """Random Fourier features ``[cos(2 pi f c), sin(2 pi f c)]`` of a scalar, ``f ~ N(0, scale^2)`` (fixed)."""

    def __init__(self, dim, scale=4.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, c):
        arg = 2 * math.pi * c.to(self.freqs.dtype)[:, None] * self.freqs
        return torch.cat([arg.cos(), arg.sin()], dim=1)


def sinusoidal(values: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Fixed sinusoidal embedding ``[N, dim]`` of scalars ``values [N]`` (``dim`` even): cosines then sines
    of ``values * f_k``, frequencies ``f_k = max_period^(-k / (dim / 2))`` (the transformer / SDXL timestep form)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    arg = values.float()[:, None] * freqs
    return torch.cat([arg.cos(), arg.sin()], dim=1)
