"""Solvers for the probability-flow ODE and reverse SDE in the EDM/VE convention.

Every solver has the signature
``solver(denoise, x, sigmas, *, cond=None, callback=None, **options) -> x``:

* ``denoise(x, sigma) -> x0_hat`` is the denoiser contract
  (:mod:`generative.adapters`); it is called with ``sigma`` as a ``[N]`` tensor,
  and with ``cond`` as a third argument on every call when ``cond`` is given
  (a conditioning dict, :mod:`generative.conditioning`);
* ``x`` is ``[N, ...]``, already scaled to ``sigmas[0]`` (``x = x0 + sigmas[0] * eps``);
* ``sigmas`` is a 1-D tensor of noise levels (data units), decreasing for
  sampling; its last entry may be 0. ``len(sigmas) - 1`` steps are taken;
* ``callback({"i", "x", "sigma", "sigma_next", "denoised"})`` is called once per
  step, after it, with the step's index, the new state, the step's two noise
  levels and the step's first denoised estimate (as k-diffusion's samplers do).

The ODE is ``dx/dsigma = (x - D(x, sigma)) / sigma`` (= eps_hat). A step that
lands on sigma = 0 returns the denoised estimate where the formula would divide
by zero. Solver math runs in the dtype of ``x``. The solvers are registered,
with their cost and whether they are stochastic, in :mod:`generative.solvers`.
"""

import math

import torch


def call(denoise, x, sigma, cond=None):
    """``denoise(x, sigma[N])`` (with ``cond`` when given), ``sigma`` a scalar tensor broadcast to the batch."""
    sigma = sigma.to(x.dtype).expand(x.shape[0])
    return denoise(x, sigma) if cond is None else denoise(x, sigma, cond)


def report(callback, i, x, s, s_next, denoised) -> None:
    """Call ``callback`` (if any) with the state after step ``i``."""
    if callback is not None:
        callback({"i": i, "x": x, "sigma": s, "sigma_next": s_next, "denoised": denoised})


def euler(denoise, x, sigmas, *, cond=None, callback=None):
    """Euler on the PF-ODE, one evaluation per step (identical to deterministic DDIM)."""
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        den = call(denoise, x, s, cond)
        x = x + (s_next - s) * ((x - den) / s)
        report(callback, i, x, s, s_next, den)
    return x


def ddim(denoise, x, sigmas, *, eta=0.0, generator=None, cond=None, callback=None):
    """DDIM (Song et al. 2021) in VE coordinates; ``eta = 0`` is deterministic, ``eta = 1`` ancestral.

    A step re-noises the denoised estimate ``D`` to ``sigma'`` with part of the noise
    taken from the current ``eps_hat = (x - D) / sigma`` and part fresh:
    ``x' = D + sigma_down eps_hat + sigma_up z``, ``z ~ N(0, I)``, where
    ``sigma_up = eta (sigma'/sigma) sqrt(sigma^2 - sigma'^2)`` and
    ``sigma_down = sqrt(sigma'^2 - sigma_up^2)``. This is DDIM's
    ``sigma_t(eta)`` divided by ``sqrt(alpha_bar')``, so the same ``z`` gives the VP
    DDIM update; ``eta = 0`` is ``x' = D + (sigma'/sigma)(x - D)`` (exact when D is
    constant along the step) and ``eta = 1`` the ancestral step
    ``sigma_down = sigma'^2 / sigma``. Fresh noise is drawn from ``generator`` only
    on steps with ``eta > 0`` and ``sigma' > 0``; sampling only (decreasing ``sigmas``).
    """
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        den = call(denoise, x, s, cond)
        if eta == 0:
            x = den + (s_next / s) * (x - den)
        else:
            shrink = 1 - (s_next / s) ** 2  # written so that sigma_down^2 cannot round below 0
            s_up = eta * s_next * torch.sqrt(shrink)
            s_down = s_next * torch.sqrt(1 - eta ** 2 * shrink)
            x = den + (s_down / s) * (x - den)
            if s_next > 0:
                x = x + s_up * torch.randn(x.shape, dtype=x.dtype, generator=generator, device=x.device)
        report(callback, i, x, s, s_next, den)
    return x


def heun(denoise, x, sigmas, *, churn=0.0, churn_min=0.0, churn_max=math.inf, noise_scale=1.0,
         generator=None, cond=None, callback=None):
    """EDM Heun (Karras et al. 2022, Alg. 2); 2 evaluations per step, 1 on the step to sigma = 0.

    ``churn`` > 0 makes it stochastic: at ``churn_min <= sigma <= churn_max`` the
    noise level is first raised to ``sigma (1 + gamma)``, ``gamma = min(churn / n, sqrt(2) - 1)``,
    by adding fresh noise scaled by ``noise_scale``.
    """
    n = len(sigmas) - 1
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        gamma = min(churn / n, math.sqrt(2) - 1) if churn_min <= s <= churn_max else 0.0
        s_hat = s * (1 + gamma)
        if gamma > 0:
            noise = torch.randn(x.shape, dtype=x.dtype, generator=generator, device=x.device)
            x = x + noise_scale * torch.sqrt(s_hat ** 2 - s ** 2) * noise
        den = call(denoise, x, s_hat, cond)
        d = (x - den) / s_hat
        x_next = x + (s_next - s_hat) * d
        if s_next > 0:
            d_next = (x_next - call(denoise, x_next, s_next, cond)) / s_next
            x_next = x + (s_next - s_hat) * (d + d_next) / 2
        x = x_next
        report(callback, i, x, s_hat, s_next, den)
    return x


def dpmpp_2m(denoise, x, sigmas, *, cond=None, callback=None):
    """DPM-Solver++(2M) (Lu et al. 2022) in ``lambda = -log sigma``; first and last (to 0) steps are first order."""
    old_den, h_last = None, None
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        den = call(denoise, x, s, cond)
        if s_next == 0:
            x = den
            report(callback, i, x, s, s_next, den)
            break
        h = torch.log(s / s_next)
        d = den if old_den is None else den + (den - old_den) * h / (2 * h_last)
        x = (s_next / s) * x - torch.expm1(-h) * d
        old_den, h_last = den, h
        report(callback, i, x, s, s_next, den)
    return x


def euler_maruyama(denoise, x, sigmas, *, generator=None, cond=None, callback=None):
    """Euler-Maruyama on the reverse VE SDE ``dx = -2 sigma score dsigma + sqrt(2 sigma) dW``.

    Stochastic, strong order 1/2. The step to sigma = 0 returns the denoised estimate.
    """
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        den = call(denoise, x, s, cond)
        if s_next == 0:
            x = den
            report(callback, i, x, s, s_next, den)
            break
        ds = s - s_next
        noise = torch.randn(x.shape, dtype=x.dtype, generator=generator, device=x.device)
        x = x + 2 * ds / s * (den - x) + torch.sqrt(2 * s * ds) * noise
        report(callback, i, x, s, s_next, den)
    return x


def _flow_velocity(denoise, x, s, cond):
    """Flow state ``z = x / (1 + sigma)``, time ``t``, velocity ``(z - D) / t`` and ``D``."""
    t = s / (1 + s)
    z = x / (1 + s)
    den = call(denoise, x, s, cond)
    return z, t, (z - den) / t, den


def flow_euler(denoise, x, sigmas, *, cond=None, callback=None):
    """Euler in rectified-flow coordinates ``z = x / (1 + sigma)``, ``t = sigma / (1 + sigma)``.

    ``z' = z + (t' - t) v``. Algebraically identical to :func:`ddim`; use with
    :func:`generative.schedules.flow_sigmas` (shift lives in the grid).
    """
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        z, t, v, den = _flow_velocity(denoise, x, s, cond)
        t_next = s_next / (1 + s_next)
        x = (z + (t_next - t) * v) * (1 + s_next)
        report(callback, i, x, s, s_next, den)
    return x


def flow_heun(denoise, x, sigmas, *, cond=None, callback=None):
    """Heun in rectified-flow coordinates (trapezoidal velocity average; Euler on the step to t = 0)."""
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        z, t, v, den = _flow_velocity(denoise, x, s, cond)
        t_next = s_next / (1 + s_next)
        z_next = z + (t_next - t) * v
        if s_next > 0:
            v_next = _flow_velocity(denoise, z_next * (1 + s_next), s_next, cond)[2]
            z_next = z + (t_next - t) * (v + v_next) / 2
        x = z_next * (1 + s_next)
        report(callback, i, x, s, s_next, den)
    return x
