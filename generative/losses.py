"""Training noise levels and loss weights for denoisers in the EDM/VE convention.

The denoising loss of a batch ``x0 [N, ...]`` at noise levels ``sigma [N]`` is
``weight(sigma) * mean_dims (D(x0 + sigma n, sigma) - x0)^2`` per example. Each
formulation pairs a sigma sampler with a weight (Karras et al. 2022, Table 1):

* EDM: ``ln sigma ~ N(p_mean, p_std^2)``, weight ``(sigma^2 + sd^2) / (sigma sd)^2``;
* VE: ``sigma`` log-uniform on ``[sigma_min, sigma_max]``, weight ``1 / sigma^2``;
* VP: ``t`` uniform on ``[t_min, 1]`` mapped to sigma, weight ``1 / sigma^2``.

Samplers return ``[n]`` tensors; pass a ``generator`` for reproducibility.
"""

import torch

from .adapters import append_dims
from .schedules import vp_sigma


def lognormal_sigmas(n, p_mean=-1.2, p_std=1.2, generator=None, device=None):
    """EDM training noise levels, ``ln sigma ~ N(p_mean, p_std^2)``."""
    return (p_mean + p_std * torch.randn(n, generator=generator, device=device)).exp()


def loguniform_sigmas(n, sigma_min=0.02, sigma_max=100.0, generator=None, device=None):
    """VE training noise levels, log-uniform on ``[sigma_min, sigma_max]``."""
    u = torch.rand(n, generator=generator, device=device)
    return sigma_min * (sigma_max / sigma_min) ** u


def vp_training_sigmas(n, t_min=1e-5, beta_min=0.1, beta_d=19.9, generator=None, device=None):
    """VP training noise levels ``sigma(t)``, t uniform on ``[t_min, 1]``."""
    t = t_min + (1 - t_min) * torch.rand(n, generator=generator, device=device)
    return vp_sigma(t, beta_min, beta_d).float()


def edm_weight(sigma_data=0.5):
    """EDM loss weight ``(sigma^2 + sigma_data^2) / (sigma sigma_data)^2``."""
    return lambda sigma: (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def inverse_variance_weight():
    """VE/VP loss weight ``1 / sigma^2`` (plain eps-matching)."""
    return lambda sigma: 1 / sigma ** 2


def denoising_loss(denoise, x0, sigma, weight, generator=None, cond=None):
    """Per-example weighted denoising loss ``[N]`` at ``x = x0 + sigma * noise`` (``cond`` passed to ``denoise``)."""
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    s = sigma.to(x0.dtype)
    x = x0 + append_dims(s, x0.ndim) * noise
    err = ((denoise(x, s) if cond is None else denoise(x, s, cond)) - x0) ** 2
    return weight(s) * err.flatten(1).mean(1)
