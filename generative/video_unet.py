"""A video UNet: a frozen image :class:`generative.blocks.UNet` with temporal layers after its blocks.

As Video LDM ("Align your Latents", Blattmann et al. 2023) and Stable Video Diffusion build
their video models: every spatial block of the image UNet is followed by a temporal layer
(:class:`generative.blocks.temporal.TemporalConv` after residual blocks,
:class:`~generative.blocks.temporal.TemporalAttention` after spatial transformers) and an
:class:`~generative.blocks.temporal.AlphaBlender` mixing the two. The image UNet's weights are
frozen (``requires_grad`` off) and only the temporal layers and blenders train; since the
temporal layers start as the identity, the video model starts as the image model, frame by frame.

Shapes: ``VideoUNet(x [N, T, C, H, W], c_noise [N], cond) -> [N, T, C_out, H, W]``. The ``cond``
entries of :mod:`generative.conditioning` are per clip and reach every frame:

* ``"vector"`` ``[N, image_vector + video_vector]``: the first ``image.vector_dim`` values go to
  the image UNet (pooled text, size micro-conditioning); the last ``video_vector_dim`` (SVD's fps,
  motion bucket and noise-augmentation level, embedded by the conditioner after the image
  embedders) are projected (zero-initialised) and added to the time embedding the temporal
  layers read, so they steer motion without changing a frozen image model;
* ``"tokens"`` ``[N, L, D]`` and ``"concat"`` ``[N, C_c, H, W]`` (image-to-video: the conditioning
  frame's latent, stacked onto every frame) are repeated for each frame;
* ``"image_only"`` ``[N]`` or ``[N, T]`` bool: frames of examples that are still images (trained
  with videos); the ``"learned_with_images"`` blender passes them through as the image model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .blocks.temporal import AlphaBlender, TemporalAttention, TemporalConv
from .blocks.unet import UNet


class VideoUNet(nn.Module):
    """Temporal layers around a frozen ``image`` UNet (see the module docstring).

    Args:
        image: the trained image :class:`UNet` (frozen here; pass a copy to keep it trainable elsewhere).
        blend: the :class:`AlphaBlender` strategy, ``"fixed"``, ``"learned"`` or ``"learned_with_images"``.
        alpha: the fixed alpha, or the initial learned one.
        heads: heads of the temporal attention layers.
        video_vector_dim: width of the video micro-conditioning at the end of ``cond["vector"]`` (0: none).
        groups: GroupNorm groups of the temporal layers.
    """

    def __init__(self, image: UNet, blend: str = "learned_with_images", alpha: float = 0.5, heads: int = 4,
                 video_vector_dim: int = 0, groups: int = 8):
        super().__init__()
        self.image = image.requires_grad_(False)
        embed_dim = image.embed[-1].out_features
        self.temporal = nn.ModuleDict()
        self.blend = nn.ModuleDict()
        for name, (kind, channels) in image.block_widths().items():
            key = name.replace(".", "_")
            self.temporal[key] = (TemporalConv(channels, embed_dim, groups) if kind == "res"
                                  else TemporalAttention(channels, heads, groups))
            self.blend[key] = AlphaBlender(blend, alpha)
        self.video_vector_dim = video_vector_dim
        self.video_vector = None
        if video_vector_dim:
            self.video_vector = nn.Linear(video_vector_dim, embed_dim)
            nn.init.zeros_(self.video_vector.weight)
            nn.init.zeros_(self.video_vector.bias)

    def temporal_parameters(self):
        """The parameters that train: temporal layers, blenders and the video-vector projection."""
        return [p for name, p in self.named_parameters() if not name.startswith("image.")]

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"a video UNet takes clips [N, T, C, H, W], not {tuple(x.shape)}")
        n, frames = x.shape[:2]
        cond = dict(cond or {})
        image_only = cond.pop("image_only", None)
        if image_only is not None:
            image_only = image_only.reshape(n, -1).expand(n, frames).reshape(-1).bool()
        extra = None
        vector = cond.get("vector")
        if self.video_vector_dim:
            if vector is None:
                raise ValueError(f"cond['vector'] must end with the {self.video_vector_dim} video conditioning values")
            cond["vector"], video = vector[:, :-self.video_vector_dim], vector[:, -self.video_vector_dim:]
            if cond["vector"].shape[1] == 0:
                del cond["vector"]
            extra = self.video_vector(video.to(x.dtype)).repeat_interleave(frames, 0)
        frame_cond = {key: value.repeat_interleave(frames, 0) for key, value in cond.items()}

        def after_block(name, h, emb):
            key = name.replace(".", "_")
            temporal_emb = emb if extra is None else emb + extra
            return self.blend[key](h, self.temporal[key](h, temporal_emb, frames), image_only)

        out = self.image(x.flatten(0, 1), c_noise.repeat_interleave(frames, 0), frame_cond, after_block=after_block)
        return out.reshape(n, frames, *out.shape[1:])


def noise_augment(latent: torch.Tensor, level: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The conditioning frame's latent ``[N, c, h, w]`` plus Gaussian noise of standard deviation
    ``level`` ``[N]`` (latent units), for ``cond["concat"]`` of image-to-video: SVD trains and
    samples with a noised conditioning frame (and the level as micro-conditioning), so that the
    model copies its content without relying on details the noise hides."""
    level = torch.as_tensor(level, dtype=latent.dtype).reshape(-1, *([1] * (latent.dim() - 1)))
    if (level < 0).any() or level.isnan().any():
        raise ValueError("noise augmentation levels must be >= 0")
    return latent + level * torch.randn(latent.shape, generator=generator, dtype=latent.dtype)


def with_concat_channels(image: UNet, channels: int) -> UNet:
    """A copy of ``image`` that also reads ``channels`` conditioning channels (``cond["concat"]``, e.g.
    the latent of an image-to-video conditioning frame): its input convolution gets that many more
    input channels with zero weights, so the copy computes what ``image`` computes until it trains
    (how SVD turns its image model into an image-to-video model)."""
    if image.concat_channels:
        raise ValueError(f"the UNet already reads {image.concat_channels} concat channels")
    wider = copy.deepcopy(image)
    old = wider.inp
    wider.inp = nn.Conv2d(old.in_channels + channels, old.out_channels, old.kernel_size, padding=old.padding)
    with torch.no_grad():
        wider.inp.weight.zero_()
        wider.inp.weight[:, :old.in_channels] = old.weight
        wider.inp.bias.copy_(old.bias)
    wider.concat_channels = channels
    return wider
