"""Temporal layers that turn an image network into a video network (Video LDM, Stable Video Diffusion).

Feature maps arrive frame by frame, ``h [N * T, C, H, W]`` with the ``T`` frames of a clip
consecutive (clip-major, as ``x.flatten(0, 1)`` of ``[N, T, C, H, W]`` gives). Each layer mixes
information along time only, and its last projection starts at zero, so a new layer returns
its input unchanged and a video model built from an image model starts as that image model.

* :class:`TemporalConv`: Video LDM's temporal convolution block, a residual block whose two
  convolutions are 3-D with kernel ``(3, 1, 1)`` (three frames, one pixel), reading the time
  embedding as the spatial residual blocks do;
* :class:`TemporalAttention`: self-attention across the ``T`` frames at every pixel, with a
  sinusoidal frame-index embedding so the order of frames is known;
* :class:`AlphaBlender`: ``alpha * spatial + (1 - alpha) * temporal``, where ``alpha`` is fixed,
  learned (``sigmoid`` of a parameter, so in (0, 1)), or learned with images: 1 for the frames
  of examples flagged image-only, which then pass through as the image model would give them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .embeddings import sinusoidal
from .transformer import TransformerBlock

BLEND_STRATEGIES = ("fixed", "learned", "learned_with_images")


def _norm(channels, groups):
    return nn.GroupNorm(min(groups, channels), channels)


def _clips(h: torch.Tensor, frames: int) -> torch.Tensor:
    """``[N * T, C, H, W]`` -> ``[N, C, T, H, W]``."""
    nt, c, height, width = h.shape
    if nt % frames:
        raise ValueError(f"{nt} feature maps are not whole clips of {frames} frames")
    return h.reshape(nt // frames, frames, c, height, width).transpose(1, 2)


def _frames(h: torch.Tensor) -> torch.Tensor:
    """``[N, C, T, H, W]`` -> ``[N * T, C, H, W]``."""
    return h.transpose(1, 2).flatten(0, 1)


class TemporalConv(nn.Module):
    """``h + conv2(SiLU(GN(conv1(SiLU(GN(h))) + Linear(emb))))`` with 3-D convolutions of kernel
    ``(3, 1, 1)`` over ``[N, C, T, H, W]`` (zero padding in time: the first and last frames see one
    neighbour). ``emb`` ``[N * T, embed_dim]`` (``embed_dim=None``: no embedding term, as in a
    decoder); ``conv2`` is zero-initialised."""

    def __init__(self, channels, embed_dim=None, groups=8):
        super().__init__()
        self.norm1 = _norm(channels, groups)
        self.conv1 = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
        self.emb = None if embed_dim is None else nn.Linear(embed_dim, channels)
        self.norm2 = _norm(channels, groups)
        self.conv2 = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, h, emb, frames):
        x = _clips(h, frames)
        y = self.conv1(nn.functional.silu(self.norm1(x)))
        if self.emb is not None:
            y = y + _clips(self.emb(emb)[:, :, None, None], frames)  # [N, C, T, 1, 1]
        return h + _frames(self.conv2(nn.functional.silu(self.norm2(y))))


class TemporalAttention(nn.Module):
    """Self-attention across frames at each pixel: the ``T`` feature vectors of a pixel, plus a
    projected sinusoidal embedding of the frame index, pass through a :class:`TransformerBlock`
    (self-attention and MLP); a zero-initialised output projection adds the result to ``h``."""

    def __init__(self, channels, heads=4, groups=8):
        super().__init__()
        self.norm = _norm(channels, groups)
        self.proj_in = nn.Linear(channels, channels)
        self.frame_embed = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.block = TransformerBlock(channels, heads)
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, h, emb, frames):
        x = _clips(self.norm(h), frames)  # [N, C, T, H, W]
        n, c, t, height, width = x.shape
        tokens = self.proj_in(x.permute(0, 3, 4, 2, 1).reshape(n * height * width, t, c))
        index = sinusoidal(torch.arange(t, device=h.device), c).to(tokens.dtype)
        tokens = self.proj_out(self.block(tokens + self.frame_embed(index)))
        out = tokens.reshape(n, height, width, t, c).permute(0, 3, 4, 1, 2).flatten(0, 1)  # [N * T, C, H, W]
        return h + out


class AlphaBlender(nn.Module):
    """``alpha * spatial + (1 - alpha) * temporal`` (see the module docstring).

    ``strategy``: one of :data:`BLEND_STRATEGIES`; ``alpha``: the fixed value, or the initial
    value of the learned one (stored as its logit). ``image_only`` (``[N * T]`` bool, one per
    frame) is read by ``"learned_with_images"`` only: those frames get ``alpha = 1``.
    """

    def __init__(self, strategy="learned_with_images", alpha=0.5):
        super().__init__()
        if strategy not in BLEND_STRATEGIES:
            raise ValueError(f"unknown blend strategy {strategy!r}; choose from {BLEND_STRATEGIES}")
        if not 0.0 < alpha < 1.0 and not (strategy == "fixed" and 0.0 <= alpha <= 1.0):
            raise ValueError(f"alpha {alpha} must be in (0, 1) ([0, 1] when fixed)")
        self.strategy = strategy
        if strategy == "fixed":
            self.register_buffer("fixed", torch.tensor(float(alpha)))
        else:
            self.logit = nn.Parameter(torch.tensor(math.log(alpha / (1 - alpha))))

    def alpha(self, image_only=None):
        """``alpha`` as a scalar tensor, or ``[N * T, 1, 1, 1]`` when image-only frames are set to 1."""
        if self.strategy == "fixed":
            return self.fixed
        alpha = torch.sigmoid(self.logit)
        if self.strategy == "learned_with_images" and image_only is not None:
            alpha = torch.where(image_only, torch.ones_like(alpha), alpha)[:, None, None, None]
        return alpha

    def forward(self, spatial, temporal, image_only=None):
        # spatial + (1 - alpha) (temporal - spatial): exactly ``spatial`` when alpha is 1 or temporal equals spatial
        return torch.lerp(spatial, temporal, (1 - self.alpha(image_only)).to(spatial.dtype))
