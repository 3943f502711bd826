"""Rectified flow (Esser et al. 2024, SD3): linear path, velocity target, logit-normal times.

Path ``z_t = (1 - t) x0 + t eps`` for t in [0, 1] (t = 1 is pure noise), target
velocity ``v = eps - x0``. A trained ``velocity(z, t)`` network becomes a
denoiser with :func:`generative.adapters.from_velocity` and samples on
:func:`generative.schedules.flow_sigmas` grids.
"""

import torch

from .adapters import append_dims
from .schedules import flow_shift


def logit_normal_times(n, mean=0.0, scale=1.0, shift=1.0, generator=None, device=None):
    """Training times ``t = shift(sigmoid(u))``, ``u ~ N(mean, scale^2)``, ``[n]`` in (0, 1).

    ``shift`` applies the SD3 resolution shift (see
    :func:`generative.schedules.resolution_shift`); 1 leaves t unchanged.
    """
    u = mean + scale * torch.randn(n, generator=generator, device=device)
    return flow_shift(torch.sigmoid(u), shift)


def flow_matching_loss(velocity, x0, t, generator=None, cond=None):
    """Per-example ``mean_dims (velocity(z_t, t) - (eps - x0))^2``, ``[N]``, for times ``t [N]``
    (``cond`` passed to ``velocity``)."""
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    tt = append_dims(t.to(x0.dtype), x0.ndim)
    z = (1 - tt) * x0 + tt * noise
    v = velocity(z, t) if cond is None else velocity(z, t, cond)
    return ((v - (noise - x0)) ** 2).flatten(1).mean(1)
