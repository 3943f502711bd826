"""A temporal decoder: the image autoencoder's decoder with temporal convolutions, for clips.

Latents of a clip decoded frame by frame flicker: each frame's latent (sampled by a video
diffusion model, or encoded from a noisy frame) carries its own small errors, and the image
decoder turns them into frame-to-frame changes where the scene is still. Video LDM fine-tunes
the decoder on videos with temporal layers so that it decodes a clip as a whole. Here a
:class:`generative.blocks.temporal.TemporalConv` and an
:class:`~generative.blocks.temporal.AlphaBlender` follow each residual block of a frozen
:class:`generative.autoencoder.AutoencoderKL` decoder; only they train, and they start as the
identity (the decoder starts as the image decoder). :func:`flicker` measures the result.

Shapes: latents ``[N, T, c, h, w]`` -> clips ``[N, T, C, h f, w f]``.
"""

from __future__ import annotations

import torch
from torch import nn

from .autoencoder import AutoencoderKL, ResBlock
from .blocks.temporal import AlphaBlender, TemporalConv


class TemporalDecoder(nn.Module):
    """``autoencoder``'s decoder (frozen) with a temporal convolution after each residual block."""

    def __init__(self, autoencoder: AutoencoderKL, blend: str = "learned", alpha: float = 0.5, groups: int = 8):
        super().__init__()
        self.autoencoder = autoencoder.requires_grad_(False)
        self.temporal = nn.ModuleDict()
        self.blend = nn.ModuleDict()
        for i, layer in enumerate(autoencoder.decoder):
            if isinstance(layer, ResBlock):
                channels = layer.block[-1].out_channels
                self.temporal[str(i)] = TemporalConv(channels, None, groups)
                self.blend[str(i)] = AlphaBlender(blend, alpha)

    def temporal_parameters(self):
        """The parameters that train: temporal convolutions and blenders."""
        return [p for name, p in self.named_parameters() if not name.startswith("autoencoder.")]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Clips ``[N, T, C, H, W]`` from unscaled latents ``[N, T, c, h, w]``."""
        if z.dim() != 5:
            raise ValueError(f"a temporal decoder takes latent clips [N, T, c, h, w], not {tuple(z.shape)}")
        n, frames = z.shape[:2]
        h = z.flatten(0, 1)
        for i, layer in enumerate(self.autoencoder.decoder):
            h = layer(h)
            if str(i) in self.temporal:
                h = self.blend[str(i)](h, self.temporal[str(i)](h, None, frames))
        return h.reshape(n, frames, *h.shape[1:])

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Clips from scaled latents (as ``autoencoder.to_latent`` gives, frame by frame)."""
        return self.decode(z / self.autoencoder.scale_factor)


def flicker(clips: torch.Tensor) -> torch.Tensor:
    """Mean absolute change between consecutive frames ``[N]`` (image units): on clips of a still
    scene, all of it is flicker."""
    return (clips[:, 1:] - clips[:, :-1]).abs().flatten(1).mean(1)
