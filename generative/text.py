"""A small text encoder trained with the diffusion model (closed vocabulary; no pretrained CLIP or T5).

``TextEncoder(ids [N, L]) -> (tokens [N, L, dim], pooled [N, dim])``: integer token
ids (``0`` is padding, ``L <= length``) are embedded, a learned position embedding
is added, ``depth`` pre-LayerNorm transformer blocks
(:class:`generative.blocks.transformer.TransformerBlock`, self-attention only, padded
positions masked as keys) and a final LayerNorm follow. ``tokens`` is the final
sequence at every position (padded ones included: they are what a network
cross-attends to, as with CLIP's padded output); ``pooled`` is the mean of
``tokens`` over the non-padded positions, zeros for a sequence of padding only
(which then attends to all its positions, so nothing is undefined). Since
padded keys are masked and pooling skips them, the non-padded outputs and
``pooled`` do not depend on how much padding follows.
:class:`generative.conditioning.TextEmbedder` puts both into the conditioning dict.
"""

import torch
from torch import nn

from .blocks.transformer import TransformerBlock

PAD = 0


class TextEncoder(nn.Module):
    """Token ids ``[N, L]`` (``L <= length``, pad id 0) -> ``(tokens [N, L, dim], pooled [N, dim])`` (module doc)."""

    def __init__(self, vocab_size: int, dim: int = 64, depth: int = 2, heads: int = 4, length: int = 32):
        super().__init__()
        self.length = length
        self.token = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.position = nn.Parameter(0.02 * torch.randn(length, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.shape[1] > self.length:
            raise ValueError(f"{ids.shape[1]} tokens exceed the encoder's length {self.length}")
        real = ids != PAD
        mask = real | ~real.any(1, keepdim=True)  # a sequence of padding only attends to all of it
        h = self.token(ids) + self.position[: ids.shape[1]]
        for block in self.blocks:
            h = block(h, mask=mask)
        tokens = self.norm(h)
        weights = real.to(tokens.dtype)[..., None]
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)
        return tokens, pooled
