"""adaLN-Zero (DiT, Peebles & Xie 2023; SD3's MMDiT): a conditioning vector sets the shift, scale
and gate of each sub-block, from a linear layer initialised to zero, so every block starts as the
identity (its gated branch is multiplied by a zero gate)."""

from __future__ import annotations

import torch
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` with ``shift``, ``scale`` ``[N, D]`` broadcast over the tokens of ``x [N, L, D]``."""
    return x * (1 + scale[:, None]) + shift[:, None]


class AdaLNZero(nn.Module):
    """``cond [N, cond_dim] -> chunks`` tensors ``[N, dim]`` (e.g. shift, scale, gate for attention and for
    the MLP: 6) from ``Linear(SiLU(cond))``, weights and bias zero at initialisation."""

    def __init__(self, dim: int, cond_dim: int, chunks: int = 6):
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(cond_dim, chunks * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(nn.functional.silu(cond)).chunk(self.chunks, dim=-1)
