"""Adapters from network parameterisations to the denoiser contract.

The contract every solver accepts is a callable ``denoise(x, sigma[, cond]) -> x0_hat``
in the EDM/VE convention ``x = x0 + sigma * eps``: ``x`` is ``[N, ...]``,
``sigma`` a ``[N]`` tensor of noise levels (data units, > 0), ``cond`` an
optional conditioning dict passed on to the network, and the result has the
shape of ``x``.

Networks trained in other conventions see a rescaled input and their own time
variable. ``time`` maps ``sigma [N]`` to whatever the network takes (sigma
itself by default; e.g. :func:`generative.schedules.vp_time` or
:func:`generative.schedules.flow_time`).

* eps prediction in VE or VP scaling (the eps target is the same in both);
* v prediction (Salimans & Ho) in VP scaling, ``v = alpha eps - s x0`` with
  ``z = alpha x0 + s eps``, ``alpha = 1 / sqrt(1 + sigma^2)``, ``s = sigma alpha``;
* rectified-flow velocity ``v = eps - x0`` with ``z = (1 - t) x0 + t eps``.
"""

import torch


def append_dims(v, ndim):
    """View a ``[N]`` tensor as ``[N, 1, ..., 1]`` with ``ndim`` dimensions."""
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def _identity(sigma):
    return sigma


def from_eps(net, scaling="ve", time=_identity):
    """Denoiser from ``net(z, time(sigma)) -> eps_hat``; ``scaling`` is ``"ve"`` (z = x) or ``"vp"`` (z = x / sqrt(1 + sigma^2))."""
    if scaling not in ("ve", "vp"):
        raise ValueError(f"unknown scaling {scaling!r}")

    def denoise(x, sigma, cond=None):
        s = append_dims(sigma, x.ndim)
        z = x if scaling == "ve" else x / torch.sqrt(1 + s ** 2)
        return x - s * (net(z, time(sigma)) if cond is None else net(z, time(sigma), cond))

    return denoise


def from_v(net, time=_identity):
    """Denoiser from a VP v-prediction ``net(z, time(sigma)) -> v_hat``."""

    def denoise(x, sigma, cond=None):
        s = append_dims(sigma, x.ndim)
        alpha = 1 / torch.sqrt(1 + s ** 2)
        z = alpha * x
        return alpha * z - s * alpha * (net(z, time(sigma)) if cond is None else net(z, time(sigma), cond))

    return denoise


def from_velocity(net, time=None):
    """Denoiser from a rectified-flow velocity ``net(z_t, t) -> v_hat``, ``t = sigma / (1 + sigma)``.

    ``time`` maps the flow time t to the network's input (t itself by default,
    e.g. ``lambda t: 1000 * t`` for SD3-style networks).
    """

    def denoise(x, sigma, cond=None):
        t = sigma / (1 + sigma)
        tt = append_dims(t, x.ndim)
        z = (1 - tt) * x
        t_in = t if time is None else time(t)
        return z - tt * (net(z, t_in) if cond is None else net(z, t_in, cond))

    return denoise


def guided(denoise_cond, denoise_uncond, scale):
    """Classifier-free guidance: ``D_u + scale (D_c - D_u)``.

    Equivalently the score ``s_u + scale (s_c - s_u)``; scale 1 is the
    conditional model, 0 the unconditional one. Bind conditions into the two
    denoisers (e.g. with ``functools.partial``).
    """

    def denoise(x, sigma):
        d_u = denoise_uncond(x, sigma)
        return d_u + scale * (denoise_cond(x, sigma) - d_u)

    return denoise
