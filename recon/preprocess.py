"""Particle images to the normalised Hartley values the VAE trains on.

For each image: multiply by -1 (unless ``invert=False``; cryoDRGN's default,
see docs/formats.md#contrast), multiply by a soft circular window (unless
``window=False``), Fourier transform (centred), re-centre by the particle's
shift with a phase ramp, take ``Re - Im``, extend to the symmetrised
``(D+1)²`` lattice, keep the Nyquist disc without DC and divide by one global
standard deviation.
"""

from __future__ import annotations

import numpy as np
import torch

from recon.fourier import fft_centered, frequency_grid, phase_shift, soft_window, symmetrize_hartley, training_mask


def hartley_images(
    images: torch.Tensor, shifts_px: torch.Tensor | None, *, invert: bool = True, window: bool = True
) -> torch.Tensor:
    """``[B, D, D]`` real images -> ``[B, D+1, D+1]`` symmetrised Hartley images.

    ``shifts_px`` ``[B, 2]`` are the (x, y) re-centring shifts in pixels.
    """
    x = -images if invert else images
    if window:
        x = x * soft_window(images.shape[-1], device=images.device)
    f = fft_centered(x)
    if shifts_px is not None:
        f = phase_shift(f, frequency_grid(images.shape[-1], device=images.device), shifts_px)
    return symmetrize_hartley(f.real - f.imag)


def masked(hartley: torch.Tensor) -> torch.Tensor:
    """``[B, D+1, D+1]`` -> ``[B, M]`` values in the training mask (Nyquist disc
    without DC, row-major; :func:`recon.fourier.training_mask`)."""
    box = hartley.shape[-1] - 1
    return hartley.flatten(-2)[:, training_mask(box, device=hartley.device)]


def estimate_scale(images, *, invert: bool = True, window: bool = True, max_images: int = 2000, seed: int = 0) -> float:
    """Standard deviation of the (untranslated) Hartley values in the training
    mask, from up to ``max_images`` randomly chosen particles.

    ``images`` is indexable by integer arrays (e.g. :class:`recon.io.ImageStack`).
    The mean is taken as 0, as in cryoDRGN.
    """
    n = len(images)
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max_images), replace=False))
    total, count = 0.0, 0
    for start in range(0, len(pick), 256):
        batch = torch.as_tensor(np.asarray(images[pick[start : start + 256]], dtype=np.float32))
        values = masked(hartley_images(batch, None, invert=invert, window=window)).double()
        total += float(values.pow(2).sum())
        count += values.numel()
    return float(np.sqrt(total / count))
