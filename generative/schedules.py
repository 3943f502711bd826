"""Noise-level grids (``sigmas``) and the time parameterisations behind them.

Every grid is a decreasing 1-D float64 tensor of EDM/VE noise levels sigma
(data units, ``x = x0 + sigma * eps``) ending in 0, with ``n + 1`` entries for
``n`` solver steps. Other parameterisations map onto sigma:

* VP (Song et al. 2021): ``alpha(t) = 1 / sqrt(1 + sigma(t)^2)`` with
  ``sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)``, t in [0, 1].
* Rectified flow (SD3): ``z_t = (1 - t) x0 + t eps``, t in [0, 1), which is
  ``x = z_t / (1 - t)`` at ``sigma = t / (1 - t)``.
"""

import math

import torch


def _append_zero(sigmas):
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(n, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    """EDM grid: ``sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho``, then 0."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def vp_sigma(t, beta_min=0.1, beta_d=19.9):
    """VP noise level ``sigma(t)`` for t in [0, 1] (tensor or float)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.sqrt(torch.expm1(0.5 * beta_d * t ** 2 + beta_min * t))


def vp_time(sigma, beta_min=0.1, beta_d=19.9):
    """Inverse of :func:`vp_sigma`: the VP time t of noise level sigma."""
    sigma = torch.as_tensor(sigma)
    log1p_s2 = torch.log1p(sigma ** 2)
    return (torch.sqrt(beta_min ** 2 + 2 * beta_d * log1p_s2) - beta_min) / beta_d


def vp_sigmas(n, t_min=1e-3, t_max=1.0, beta_min=0.1, beta_d=19.9):
    """VP grid uniform in t from ``t_max`` down to ``t_min`` (``n`` points), then 0."""
    t = torch.linspace(t_max, t_min, n, dtype=torch.float64)
    return _append_zero(vp_sigma(t, beta_min, beta_d))


def flow_shift(t, shift):
    """SD3 timestep shift ``shift * t / (1 + (shift - 1) t)``; shift > 1 spends more time at high noise."""
    return shift * t / (1 + (shift - 1) * t)


def resolution_shift(num_pixels, base_pixels):
    """SD3 resolution-dependent shift ``sqrt(num_pixels / base_pixels)`` for :func:`flow_shift`."""
    return math.sqrt(num_pixels / base_pixels)


def flow_time(sigma):
    """Rectified-flow time ``t = sigma / (1 + sigma)`` of noise level sigma."""
    return sigma / (1 + sigma)


def flow_sigma(t):
    """Noise level ``sigma = t / (1 - t)`` of rectified-flow time t < 1."""
    return t / (1 - t)


def flow_sigmas(n, shift=1.0, t_max=0.999, t_min=None):
    """Rectified-flow grid: ``n`` flow times linear from ``t_max`` to ``t_min``, shifted, as sigmas, then 0.

    ``t_min`` defaults to ``t_max / n`` (the last step then spans the same flow time
    as the others). ``t_max`` must be < 1 since t = 1 is sigma = infinity; diffusers'
    ``FlowMatchEulerDiscreteScheduler`` starts at t = 1 instead.
    """
    if not 0 < t_max < 1:
        raise ValueError("t_max must lie in (0, 1)")
    t_min = t_max / n if t_min is None else t_min
    t = flow_shift(torch.linspace(t_max, t_min, n, dtype=torch.float64), shift)
    return _append_zero(flow_sigma(t))
