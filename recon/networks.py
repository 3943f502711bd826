"""Multilayer perceptrons shared by the VAE's encoder and decoder.

The layer layout matches cryoDRGN's ``ResidLinearMLP`` (an input layer, then
``nlayers`` residual hidden layers, then an output layer, ReLU between), so a
cryoDRGN state dict maps onto these modules one to one (``main.<i>...``).
"""

from __future__ import annotations

import torch
from torch import nn


class ResidLinear(nn.Module):
    """``y = W x + b + x`` (input and output widths equal)."""

    def __init__(self, width_in: int, width_out: int):
        super().__init__()
        self.linear = nn.Linear(width_in, width_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + x


def _layer(width_in: int, width_out: int) -> nn.Module:
    return ResidLinear(width_in, width_out) if width_in == width_out else nn.Linear(width_in, width_out)


class ResidLinearMLP(nn.Module):
    """MLP ``in -> hidden (x nlayers, residual) -> out`` with ReLU activations.

    ``forward(x, extra)`` optionally appends a per-item vector ``extra``
    ``[B, E]`` to every row of ``x`` ``[B, M, in - E]`` without materialising
    the concatenation: the first layer is split into its ``x`` and ``extra``
    columns, and the ``extra`` part is computed once per item. This is how the
    decoder takes the latent ``z`` for every frequency of a slice.
    """

    def __init__(self, in_dim: int, nlayers: int, hidden_dim: int, out_dim: int):
        super().__init__()
        layers: list[nn.Module] = [_layer(in_dim, hidden_dim), nn.ReLU()]
        for _ in range(nlayers):
            layers += [ResidLinear(hidden_dim, hidden_dim), nn.ReLU()]
        layers.append(_layer(hidden_dim, out_dim))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if extra is None:
            return self.main(x)
        first = self.main[0]
        if isinstance(first, ResidLinear):  # rare: input width equals hidden width
            extra = extra.view(extra.shape[0], *([1] * (x.ndim - 2)), extra.shape[-1])
            return self.main(torch.cat([x, extra.expand(*x.shape[:-1], extra.shape[-1])], dim=-1))
        n = x.shape[-1]
        weight = first.weight
        h = x @ weight[:, :n].T
        per_item = torch.addmm(first.bias, extra, weight[:, n:].T)  # [B, hidden]
        h = h + per_item.view(per_item.shape[0], *([1] * (x.ndim - 2)), per_item.shape[-1])
        return self.main[1:](h)
