"""Positional encodings of 3-D frequency coordinates for the decoder.

Coordinates are in cycles/pixel, within ``[-0.5, 0.5]`` on each axis. Every
encoding returns ``[..., 6 * pe_dim]`` features, in the same layout and
scaling as cryoDRGN so trained weights carry over:

* ``gaussian`` (default): ``3 * pe_dim`` random frequency vectors drawn from
  ``N(0, feat_sigma²)`` per component, scaled by ``D / 2``;
  features ``[sin(k . f_1..n), cos(k . f_1..n)]``. The frequencies are a
  buffer saved with the model.
* ``geom_ft``, ``geom_full``, ``geom_lowf``, ``geom_nohighf``, ``linear_lowf``:
  per-axis sinusoids at ``pe_dim`` geometrically (or linearly) spaced
  wavelengths (cryoDRGN's options of the same names); features per axis
  ``[x: sin, cos | y: sin, cos | z: sin, cos]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PE_TYPES = ("gaussian", "geom_ft", "geom_full", "geom_lowf", "geom_nohighf", "linear_lowf")


def _axis_frequencies(pe_type: str, pe_dim: int, box: int) -> torch.Tensor:
    half, even = box // 2, 2 * (box // 2)
    steps = torch.arange(pe_dim, dtype=torch.float32) / max(pe_dim - 1, 1)
    if pe_type == "geom_ft":  # wavelengths 2/D .. 1 (in units of 2 pi)
        return even * math.pi * (2.0 / even) ** steps
    if pe_type == "geom_full":  # wavelengths 2/D .. 2 pi
        return even * math.pi * (1.0 / even / math.pi) ** steps
    if pe_type == "geom_lowf":  # wavelengths 2/D * 2 pi .. 2 pi
        return half * (1.0 / half) ** steps
    if pe_type == "geom_nohighf":  # wavelengths 2/D * 2 pi .. 1
        return half * (2.0 * math.pi / half) ** steps
    if pe_type == "linear_lowf":
        return torch.arange(1, pe_dim + 1, dtype=torch.float32)
    raise ValueError(f"unknown positional encoding {pe_type!r}; choose from {', '.join(PE_TYPES)}")


class PositionalEncoding(nn.Module):
    """Map ``[..., 3]`` frequency coordinates to ``[..., 6 * pe_dim]`` features."""

    def __init__(self, pe_type: str, pe_dim: int, box: int, feat_sigma: float = 0.5):
        super().__init__()
        self.pe_type, self.pe_dim, self.box = pe_type, pe_dim, box
        if pe_type == "gaussian":
            self.register_buffer("rand_freqs", torch.randn(3 * pe_dim, 3) * feat_sigma)
        else:
            self.register_buffer("axis_freqs", _axis_frequencies(pe_type, pe_dim, box))

    @property
    def out_dim(self) -> int:
        return 6 * self.pe_dim

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        if self.pe_type == "gaussian":
            k = coords @ (self.rand_freqs.T * (self.box // 2))  # [..., 3 pe_dim]
            return torch.cat([torch.sin(k), torch.cos(k)], dim=-1)
        k = coords.unsqueeze(-1) * self.axis_freqs  # [..., 3, pe_dim]
        return torch.cat([torch.sin(k), torch.cos(k)], dim=-1).flatten(-2)
