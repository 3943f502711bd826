"""Homogeneous reconstruction by Fourier-space insertion with CTF weighting.

For every particle the (inverted, re-centred) image's Fourier transform is
multiplied by its CTF and inserted as a central slice into a 3-D transform
(``torch_fourier_slice.insert_central_slices_rfft_3d``, trilinear insertion on
a twice-oversampled grid); the squared CTF is inserted the same way. The
volume is then the regularised ratio

    V(k) = sum_i CTF_i(k) F_i(k) / (sum_i CTF_i(k)^2 + reg * mean CTF^2 weight)

corrected for the insertion kernel (sinc²) and cropped back to the box.
Each particle goes to the half map its ``halves`` entry names (0 or 1: the
gold-standard half sets of the refinement that made the poses, see
:meth:`recon.io.ParticleMetadata.half_sets`); without one, particles with even
index go to half map 1 and odd ones to half map 2. The full map uses both.

Rotations follow cryoDRGN's convention (the image is the projection of the
volume whose points sit at ``R @ r``); torch-fourier-slice's matrices rotate
the sampling slice instead, so it receives ``R.T``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch_fourier_slice import insert_central_slices_rfft_3d_multichannel
from torch_fourier_slice.volume_utils import separable_sinc2_correction

from recon.ctf import ctf_from_params

PAD_FACTOR = 2


@dataclass
class Reconstruction:
    """Full map and half maps ``[z, y, x]`` (float32) and the pixel size in Å."""

    volume: np.ndarray
    half1: np.ndarray
    half2: np.ndarray
    apix: float


class _Accumulator:
    """Running sums of CTF-weighted slices for one (half) map."""

    def __init__(self, padded: int):
        self.shape = (padded, padded, padded)
        self.numerator = torch.zeros(padded, padded, padded // 2 + 1, dtype=torch.complex64)
        self.ctf2 = torch.zeros(padded, padded, padded // 2 + 1, dtype=torch.complex64)

    def insert(self, slices: torch.Tensor, ctf2: torch.Tensor, rot_t: torch.Tensor) -> None:
        if len(slices) == 0:
            return
        both = torch.stack([slices, ctf2.to(torch.complex64)], dim=1)  # [B, 2, h, w]
        sums, _ = insert_central_slices_rfft_3d_multichannel(both, self.shape, rot_t, fftfreq_max=0.5)
        self.numerator += sums[0]
        self.ctf2 += sums[1]

    def __iadd__(self, other: "_Accumulator") -> "_Accumulator":
        self.numerator += other.numerator
        self.ctf2 += other.ctf2
        return self

    def volume(self, box: int, reg: float) -> np.ndarray:
        ctf2 = self.ctf2.real
        populated = ctf2 > 0
        floor = reg * ctf2[populated].mean() if populated.any() else 1.0
        dft = torch.where(populated, self.numerator / (ctf2 + floor), 0)
        vol = torch.fft.irfftn(torch.fft.ifftshift(dft, dim=(-3, -2)), dim=(-3, -2, -1), s=self.shape)
        vol = torch.fft.fftshift(vol, dim=(-3, -2, -1))
        vol = vol / separable_sinc2_correction(vol.shape)
        p = (self.shape[0] - box) // 2
        return vol[p : p + box, p : p + box, p : p + box].float().numpy()


def gold_standard_halves(file_halves: np.ndarray | None, n: int, indices: np.ndarray) -> np.ndarray:
    """Half set (0/1) of each of ``n`` particles: ``file_halves`` [n], the refinement's own half sets
    (:meth:`recon.io.ParticleMetadata.half_sets`), when the file has them; else the particles of the
    selection ``indices`` alternate between the halves in selection order, so that a selection of
    every other particle still fills both halves (particles outside the selection: 0)."""
    if file_halves is not None:
        return np.asarray(file_halves, dtype=np.int8)
    halves = np.zeros(n, np.int8)
    halves[np.asarray(indices)] = np.arange(len(indices)) % 2
    return halves


def _rfft_frequencies(padded: int) -> torch.Tensor:
    """``[P, P//2+1, 2]`` (kx, ky) in cycles/pixel of the y-shifted rfft grid."""
    ky = (torch.arange(padded) - padded // 2) / padded
    kx = torch.arange(padded // 2 + 1) / padded
    gy, gx = torch.meshgrid(ky, kx, indexing="ij")
    return torch.stack([gx, gy], -1)


def backproject(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    rotations: np.ndarray,
    shifts_px: np.ndarray | None,
    ctf: np.ndarray | None,
    box: int,
    apix: float,
    *,
    invert: bool = True,
    reg: float = 0.1,
    progress: Callable[[int], None] | None = None,
    halves: np.ndarray | None = None,
) -> Reconstruction:
    """Reconstruct a map and half maps from particle images with known poses.

    Parameters
    ----------
    batches
        Iterable of ``(indices [B], images [B, D, D])``: particle indices into
        the metadata arrays and the raw images (``[y, x]``).
    rotations
        ``[N, 3, 3]`` rotations, cryoDRGN convention.
    shifts_px
        ``[N, 2]`` re-centring shifts ``(x, y)`` in pixels, or None.
    ctf
        ``[N, 9]`` CTF parameters (cryoDRGN order), or None for no CTF.
    box, apix
        Box size in pixels and pixel size in Å.
    invert
        Multiply images by -1 first (the default, as cryoDRGN; see
        :mod:`recon.simulate` for the sign convention).
    reg
        Regulariser, as a fraction of the mean summed CTF² weight.
    progress
        Called with the number of images done after each batch.
    halves
        ``[N]`` half set (0 or 1) of each particle, indexed like ``rotations``;
        None: even particle index to half 1, odd to half 2.
    """
    padded = PAD_FACTOR * box
    pad = (padded - box) // 2
    freqs = _rfft_frequencies(padded)
    accumulators = (_Accumulator(padded), _Accumulator(padded))
    for indices, images in batches:
        indices = np.asarray(indices)
        x = torch.as_tensor(images, dtype=torch.float32) * (-1.0 if invert else 1.0)
        x = F.pad(x, [pad] * 4)
        f = torch.fft.fftshift(torch.fft.rfftn(torch.fft.ifftshift(x, dim=(-2, -1)), dim=(-2, -1)), dim=(-2,))
        if shifts_px is not None:
            s = torch.as_tensor(shifts_px[indices], dtype=torch.float32)
            f = f * torch.exp(-2j * torch.pi * torch.einsum("hwc,bc->bhw", freqs, s))
        if ctf is not None:
            c = ctf_from_params(freqs.reshape(-1, 2), torch.as_tensor(ctf[indices], dtype=torch.float32))
            c = c.reshape(len(indices), *freqs.shape[:2])
        else:
            c = torch.ones(len(indices), *freqs.shape[:2])
        rot_t = torch.as_tensor(rotations[indices], dtype=torch.float32).transpose(-1, -2)
        which = indices % 2 if halves is None else np.asarray(halves)[indices]
        for half, acc in enumerate(accumulators):
            sel = torch.as_tensor(which == half)
            acc.insert(f[sel] * c[sel], c[sel] ** 2, rot_t[sel])
        if progress is not None:
            progress(len(indices))
    half1, half2 = (acc.volume(box, reg) for acc in accumulators)
    full = accumulators[0]
    full += accumulators[1]
    return Reconstruction(full.volume(box, reg), half1, half2, apix)
