"""Probability-flow ODE encoding and log-likelihood (EDM/VE convention).

Along ``dx/dsigma = f(x, sigma) = (x - D(x, sigma)) / sigma`` the density obeys
``d log p_sigma(x(sigma)) / dsigma = -div f``, so integrating data ``x0`` at
``sigmas[0]`` up to ``sigmas[-1]``

    log p_{sigmas[0]}(x0) = log N(x_T; 0, sigmas[-1]^2 I) + int div f dsigma,

with ``div f = (d - tr dD/dx) / sigma``. The trace is exact (one JVP per
dimension) or Hutchinson's estimate with Rademacher probes held fixed along
the path. The prior ``N(0, sigma_max^2 I)`` ignores the data's mean and spread,
an error that vanishes as ``sigma_max`` grows (order ``|mean| / sigma_max``).
Heun steps throughout; the error is second order in the step size.
"""

import math

import torch
from torch.func import jvp

from .solvers import sample


def encode(denoise, x0, sigmas, solver="heun"):
    """Map data ``x0 [N, ...]`` at ``sigmas[0]`` (> 0) to noise at ``sigmas[-1]`` along the PF-ODE.

    ``sigmas`` is increasing; decoding is ``sample(denoise, x_T, sigmas.flip(0))``.
    """
    return sample(denoise, x0, sigmas, solver)


def _denoise_and_trace(denoise, x, sigma, probes, scale):
    """``D(x, sigma)`` and ``scale * sum_k v_k . (dD/dx) v_k`` (the trace of ``dD/dx``), ``[N]``."""
    trace = 0.0
    for v in probes:
        den, jv = jvp(lambda x_: denoise(x_, sigma), (x,), (v,))
        trace = trace + (v * jv).flatten(1).sum(1)
    return den, scale * trace


@torch.no_grad()
def log_likelihood(denoise, x0, sigmas, hutchinson_probes=None, generator=None):
    """``log p_{sigmas[0]}(x0)`` in nats, ``[N]``, for ``x0 [N, ...]``.

    Args:
        sigmas: increasing noise levels, ``sigmas[0] > 0`` (e.g. ``karras_sigmas(n).flip(0)[1:]``).
        hutchinson_probes: ``None`` for the exact trace (cost: one JVP per
            dimension per evaluation) or the number of Rademacher probes.
        generator: draws the probes.
    """
    x = x0
    dim = x0[0].numel()
    if hutchinson_probes is None:
        eye = torch.eye(dim, dtype=x0.dtype, device=x0.device)
        probes, scale = [e.reshape(x0.shape[1:]).expand_as(x0).clone() for e in eye], 1.0
    else:
        scale = 1.0 / hutchinson_probes
        probes = [torch.randint(0, 2, x0.shape, generator=generator, device=x0.device)
                  .to(x0.dtype) * 2 - 1 for _ in range(hutchinson_probes)]

    def drift(x_, s):
        sigma = torch.full((x_.shape[0],), float(s), dtype=x_.dtype, device=x_.device)
        den, trace = _denoise_and_trace(denoise, x_, sigma, probes, scale)
        return (x_ - den) / s, (dim - trace) / s

    delta = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        h = s_next - s
        d, div = drift(x, s)
        d_next, div_next = drift(x + h * d, s_next)
        x = x + h * (d + d_next) / 2
        delta = delta + h * (div + div_next) / 2
    s_max = float(sigmas[-1])
    prior = -0.5 * (x.flatten(1) ** 2).sum(1) / s_max ** 2 - dim * math.log(s_max * math.sqrt(2 * math.pi))
    return prior + delta
