"""Centred Fourier and Hartley transforms, the symmetrised Hartley lattice,
circular masks, phase-shift translation and Fourier-crop downsampling.

Conventions (those of cryoDRGN and RELION, see docs/conventions.md):

* Arrays are ``[..., y, x]`` for images and ``[..., z, y, x]`` for volumes.
* With an even box ``D`` the centre (rotation origin in real space, DC after
  the shift in Fourier space) is index ``D // 2``; voxel ``j`` sits at
  ``x = j - D / 2`` pixels.
* "Centred" transforms move that centre to the array origin before the FFT
  and the DC term back to ``D // 2`` after it, so a real-space shift of the
  object only changes the phase.
* The forward FFT is unnormalised and the inverse carries ``1 / N``
  (numpy/torch ``norm="backward"``).
* Frequencies are in cycles per pixel, from ``-0.5`` to ``0.5 - 1/D``; divide
  by the pixel size in Å to get 1/Å.
* The Hartley transform is ``H = Re F - Im F`` of the centred FFT. It is real,
  and is its own inverse up to ``1 / N``.

Everything works on torch tensors (CPU or GPU) and is differentiable. These few
lines are written here rather than taken from a library because the
teamtomo packages (torch-fourier-slice, torch-fourier-shift) work on
``rfft`` half-grids with their own centring, while the VAE needs full
centred grids and the odd, symmetrised Hartley lattice of cryoDRGN.
"""

from __future__ import annotations

import torch


def _last_dims(ndim: int) -> tuple[int, ...]:
    return tuple(range(-ndim, 0))


def fft_centered(x: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    """Centred FFT over the last ``ndim`` axes (DC at index ``D // 2``)."""
    dims = _last_dims(ndim)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims), dim=dims)


def ifft_centered(f: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    """Inverse of :func:`fft_centered`; returns a complex tensor."""
    dims = _last_dims(ndim)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(f, dim=dims), dim=dims), dim=dims)


def hartley_centered(x: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    """Centred Hartley transform ``Re F - Im F`` over the last ``ndim`` axes."""
    f = fft_centered(x, ndim)
    return f.real - f.imag


def ihartley_centered(h: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    """Inverse centred Hartley transform (the forward one divided by ``N``)."""
    n = 1
    for s in h.shape[-ndim:]:
        n *= s
    return hartley_centered(h, ndim) / n


def symmetrize_hartley(h: torch.Tensor) -> torch.Tensor:
    """Extend ``[..., D, D]`` centred Hartley images to the odd ``(D+1)²`` lattice.

    Index ``D`` (frequency +0.5) repeats index 0 (frequency -0.5) along each
    axis, so the lattice is symmetric about its centre, as in cryoDRGN.
    """
    h = torch.cat([h, h[..., :1, :]], dim=-2)
    return torch.cat([h, h[..., :, :1]], dim=-1)


def frequency_grid(box: int, ndim: int = 2, device=None, dtype=torch.float32) -> torch.Tensor:
    """Centred frequencies of a ``box``-sized grid in cycles/pixel.

    Returns ``[box, ..., box, ndim]`` with the last axis ordered ``(x, y[, z])``
    (x fastest in memory, the usual order for coordinates) and index ``box // 2``
    at frequency 0.
    """
    k = (torch.arange(box, device=device, dtype=dtype) - box // 2) / box
    axes = torch.meshgrid(*([k] * ndim), indexing="ij")  # (z,) y, x
    return torch.stack(axes[::-1], dim=-1)


def lattice_coords(box: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of the symmetrised ``(box+1)²`` Hartley lattice.

    Returns ``[(box+1)², 3]`` rows ``(kx, ky, 0)`` in cycles/pixel spanning
    ``[-0.5, 0.5]``, row-major over ``[y, x]``; rotate them with ``k @ R``.
    """
    k = torch.linspace(-0.5, 0.5, box + 1, device=device, dtype=dtype)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    return torch.stack([kx, ky, torch.zeros_like(kx)], dim=-1).reshape(-1, 3)


def circular_mask(box: int, radius: float | None = None, device=None) -> torch.Tensor:
    """Boolean ``[box+1, box+1]`` disc on the symmetrised lattice.

    ``radius`` is in lattice pixels (default ``box / 2``, i.e. Nyquist).
    """
    radius = box / 2 if radius is None else radius
    coords = lattice_coords(box, device=device)[:, :2] * box
    return (coords.pow(2).sum(-1) <= radius**2).reshape(box + 1, box + 1)


def training_mask(box: int, device=None) -> torch.Tensor:
    """Flat ``[(box+1)²]`` mask of the lattice points the VAE uses: the
    Nyquist disc without the DC term (as cryoDRGN). The kept points, in
    row-major order, are centrosymmetric: entry ``i`` sits at ``-k`` of entry
    ``M-1-i``."""
    mask = circular_mask(box, device=device).flatten()
    mask[(box + 1) ** 2 // 2] = False
    return mask


def soft_window(box: int, inner: float = 0.85, outer: float = 0.99, device=None) -> torch.Tensor:
    """``[box, box]`` real-space window: 1 inside ``inner`` and 0 outside
    ``outer`` (fractions of the half box, measured from the centre pixel
    ``box // 2``), falling linearly between them. Applied to particle images
    before the Fourier transform, it suppresses the box edges (cryoDRGN's
    default preprocessing)."""
    r = frequency_grid(box, device=device).norm(dim=-1) * 2  # fraction of the half box
    return ((outer - r) / (outer - inner)).clamp(0.0, 1.0)


def phase_shift(f: torch.Tensor, freqs: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Translate objects by ``shifts_px`` by multiplying their Fourier transform.

    Parameters
    ----------
    f
        ``[B, ...]`` complex values of centred Fourier transforms.
    freqs
        ``[..., 2]`` frequencies ``(kx, ky)`` in cycles/pixel at those values.
    shifts_px
        ``[B, 2]`` shifts ``(x, y)`` in pixels. The content moves by ``+shift``:
        pass a particle's re-centring shift (RELION origin) to centre it.
    """
    arg = torch.einsum("...c,bc->b...", freqs, shifts_px.to(freqs.dtype))
    return f * torch.polar(torch.ones_like(arg), -2 * torch.pi * arg)


def shift_images(images: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Translate real ``[B, D, D]`` images by ``[B, 2]`` (x, y) pixel shifts (periodic)."""
    box = images.shape[-1]
    freqs = frequency_grid(box, device=images.device, dtype=images.dtype)
    f = phase_shift(fft_centered(images), freqs, shifts_px)
    return ifft_centered(f).real


def fourier_crop(images: torch.Tensor, new_box: int) -> torch.Tensor:
    """Downsample ``[..., D, D]`` images (or ``ndim=3`` volumes) by cropping
    the centred Fourier transform to ``new_box``.

    Pixel values keep their scale (the mean intensity is preserved), so the
    new pixel size is ``apix * D / new_box``.
    """
    return _fourier_crop(images, new_box, ndim=2)


def fourier_crop_volume(volume: torch.Tensor, new_box: int) -> torch.Tensor:
    """3-D version of :func:`fourier_crop` for ``[..., D, D, D]`` volumes."""
    return _fourier_crop(volume, new_box, ndim=3)


def _fourier_crop(x: torch.Tensor, new_box: int, ndim: int) -> torch.Tensor:
    box = x.shape[-1]
    if new_box > box or new_box % 2:
        raise ValueError(f"new box {new_box} must be even and at most {box}")
    start = box // 2 - new_box // 2
    f = fft_centered(x, ndim)
    index = [slice(None)] * (f.ndim - ndim) + [slice(start, start + new_box)] * ndim
    return ifft_centered(f[tuple(index)], ndim).real * (new_box / box) ** ndim
