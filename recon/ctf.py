"""The contrast transfer function, batched and differentiable, at arbitrary
frequencies.

Formula and units follow cryoDRGN 4.3.1 so CTF parameters ([N, 9] arrays in
its column order) mean the same thing here::

    lambda = 12.2639 / sqrt(V + 0.97845e-6 V^2)          (Å, V in volts)
    df(theta) = (dfU + dfV)/2 + (dfU - dfV)/2 cos 2(theta - dfAng)
    gamma = 2 pi (-1/2 df lambda s^2 + 1/4 Cs lambda^3 s^4) - phase_shift
    CTF = sqrt(1 - w^2) sin(gamma) - w cos(gamma)     [x exp(-B s^2 / 4)]

with ``s`` in 1/Å, defocus in Å (positive = underfocus), ``theta`` the angle of
the frequency from the +x axis, Cs in mm (x 1e7 -> Å), ``w`` the amplitude
contrast fraction and the phase shift in degrees. In this sign convention the
CTF is negative at low frequency. RELION uses slightly different wavelength
constants (12.2643247, 0.978466e-6): the wavelengths differ by ~0.02 %, far
below defocus uncertainty; we keep cryoDRGN's for exact interoperability.

Written here rather than taken from ``torch-ctf`` because that package renders
CTFs on regular image grids only (and with the opposite overall sign), while
the VAE needs the CTF at arbitrary (masked, per-particle, rotated)
frequencies. ``tests/test_ctf.py`` checks this function against
``torch_ctf.calculate_ctf_2d`` on a grid.
"""

from __future__ import annotations

import math

import torch

from recon.ctf_columns import CTF_APIX, CTF_DEFOCUS_U, CTF_PHASE_SHIFT
from recon.ctf_columns import CTF_COLUMNS as CTF_COLUMNS  # re-exported: the names of the columns


def electron_wavelength(voltage_kv: torch.Tensor | float) -> torch.Tensor | float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV."""
    volts = voltage_kv * 1000.0
    if isinstance(volts, torch.Tensor):
        return 12.2639 / torch.sqrt(volts + 0.97845e-6 * volts**2)
    return 12.2639 / math.sqrt(volts + 0.97845e-6 * volts**2)


def compute_ctf(
    freqs: torch.Tensor,
    defocus_u: torch.Tensor,
    defocus_v: torch.Tensor,
    defocus_angle: torch.Tensor,
    voltage: torch.Tensor,
    cs: torch.Tensor,
    amplitude_contrast: torch.Tensor,
    phase_shift: torch.Tensor | float = 0.0,
    bfactor: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """CTF values at frequencies ``freqs``.

    Parameters
    ----------
    freqs
        ``[..., M, 2]`` spatial frequencies ``(sx, sy)`` in 1/Å (cycles per
        pixel divided by the pixel size). A leading batch axis ``B`` is
        broadcast against the parameters.
    defocus_u, defocus_v
        Defocus in Å, positive for underfocus; shape ``[B]`` (or scalar).
    defocus_angle
        Astigmatism angle in degrees from the +x axis, ``[B]``.
    voltage
        Accelerating voltage in kV, ``[B]``.
    cs
        Spherical aberration in mm, ``[B]``.
    amplitude_contrast
        Amplitude contrast fraction ``w`` in [0, 1), ``[B]``.
    phase_shift
        Extra phase shift in degrees (phase plates), ``[B]`` or scalar.
    bfactor
        Optional envelope B-factor in Å².

    Returns
    -------
    ``[B, M]`` (or ``freqs.shape[:-1]`` when parameters are scalars).
    """

    def col(p):
        p = torch.as_tensor(p, dtype=freqs.dtype, device=freqs.device)
        return p.reshape(*p.shape, *([1] * (freqs.ndim - 1 - (freqs.ndim > 2))))

    dfu, dfv, ang = col(defocus_u), col(defocus_v), col(defocus_angle) * (math.pi / 180)
    lam = electron_wavelength(col(voltage))
    cs_a = col(cs) * 1e7
    w = col(amplitude_contrast)
    phase = col(phase_shift) * (math.pi / 180)

    sx, sy = freqs[..., 0], freqs[..., 1]
    s2 = sx**2 + sy**2
    df = 0.5 * (dfu + dfv + (dfu - dfv) * torch.cos(2 * (torch.atan2(sy, sx) - ang)))
    gamma = 2 * math.pi * (-0.5 * df * lam * s2 + 0.25 * cs_a * lam**3 * s2**2) - phase
    ctf = torch.sqrt(1 - w**2) * torch.sin(gamma) - w * torch.cos(gamma)
    if bfactor is not None:
        ctf = ctf * torch.exp(-col(bfactor) / 4 * s2)
    return ctf


def ctf_from_params(freqs_px: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """CTF for ``[B, 9]`` parameter rows (columns of :mod:`recon.ctf_columns`).

    ``freqs_px`` are ``[M, 2]`` or ``[B, M, 2]`` frequencies in cycles/pixel;
    each row's pixel size (Å/px) converts them to 1/Å. Returns ``[B, M]``.
    """
    params = params.to(freqs_px.dtype)
    apix = params[:, CTF_APIX].reshape(-1, 1, 1)
    freqs = (freqs_px if freqs_px.ndim == 3 else freqs_px.unsqueeze(0)) / apix
    # the columns from defocus U to the phase shift are compute_ctf's arguments, in order
    return compute_ctf(freqs, *params[:, CTF_DEFOCUS_U : CTF_PHASE_SHIFT + 1].T)
