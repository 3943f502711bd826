"""GENIE (Dockhorn, Vahdat, Kreis 2022): second-order truncated-Taylor steps.

In the EDM/VE convention the probability-flow ODE is ``dx/dsigma = eps(x, sigma)``
with ``eps = (x - D(x, sigma)) / sigma`` (this is GENIE's ``x_bar = x / alpha``,
``gamma = sigma / alpha``; DDIM is Euler on it). The second truncated Taylor
method steps ``x' = x + h eps + h^2 / 2 * deps/dsigma`` with ``h = sigma' - sigma``
and the total derivative ``deps/dsigma = d_x eps . eps + d_sigma eps``: one
Jacobian-vector product of eps in the direction ``(eps, 1)``.

A :class:`GenieHead` distils that derivative so a step costs one denoiser
evaluation plus a small network; :func:`genie_distillation_loss` trains it on
exact JVP targets weighted by ``sigma^2`` (the paper's ``gamma_t^2``).
"""

import torch
from torch import nn
from torch.func import jvp

from .adapters import append_dims
from .blocks.embeddings import FourierEmbedding


def eps_and_derivative(denoise, x, sigma):
    """``(eps, deps/dsigma)`` along the ODE at ``x [N, ...]``, ``sigma [N]``, with an exact JVP."""

    def eps_fn(x_, s_):
        return (x_ - denoise(x_, s_)) / append_dims(s_, x_.ndim)

    eps = eps_fn(x, sigma)
    _, deps = jvp(eps_fn, (x, sigma), (eps, torch.ones_like(sigma)))
    return eps, deps


def _with_cond(denoise, cond):
    """``denoise`` with ``cond`` bound as its third argument."""
    return lambda x, sigma: denoise(x, sigma, cond)


def genie(denoise, x, sigmas, *, head=None, cond=None, callback=None):
    """GENIE sampler: one truncated-Taylor step per grid interval.

    ``head(x, sigma, eps) -> deps/dsigma`` replaces the exact JVP when given
    (one denoiser evaluation per step); with ``head=None`` each step costs one
    evaluation plus one JVP. Shapes, units, ``cond`` and ``callback`` as in
    :mod:`generative.samplers` (the callback's ``denoised`` is ``x - sigma eps``).
    """
    if cond is not None:
        denoise = _with_cond(denoise, cond)
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        sigma = torch.full((x.shape[0],), float(s), dtype=x.dtype, device=x.device)
        if head is None:
            eps, deps = eps_and_derivative(denoise, x, sigma)
        else:
            eps = (x - denoise(x, sigma)) / s
            deps = head(x, sigma, eps)
        h = s_next - s
        x_next = x + h * eps + 0.5 * h ** 2 * deps
        if callback is not None:
            callback({"i": i, "x": x_next, "sigma": s, "sigma_next": s_next, "denoised": x - s * eps})
        x = x_next
    return x


class GenieHead(nn.Module):
    """Small MLP predicting ``deps/dsigma`` from ``(x, sigma, eps)`` for vectors ``[N, d]``.

    It outputs ``net(...) / sigma`` so the network itself predicts the
    dimensionless ``sigma * deps/dsigma``; inputs are ``x / sqrt(sigma^2 + sigma_data^2)``,
    eps and a Fourier embedding of ``log(sigma) / 4``.
    """

    def __init__(self, dim, hidden=128, depth=2, sigma_data=0.5, embed_dim=32):
        super().__init__()
        self.sigma_data = sigma_data
        self.embed = FourierEmbedding(embed_dim)
        layers = [nn.Linear(2 * dim + embed_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x, sigma, eps):
        s = sigma[:, None]
        inp = torch.cat([x / torch.sqrt(s ** 2 + self.sigma_data ** 2), eps,
                         self.embed(sigma.log() / 4)], dim=1)
        return self.net(inp.to(self.net[0].weight.dtype)).to(x.dtype) / s


def genie_distillation_loss(head, denoise, x0, sigma, generator=None):
    """Per-example ``sigma^2 * ||head - deps/dsigma||^2`` (summed over dims) at ``x = x0 + sigma * noise``.

    ``sigma`` is ``[N]``; the JVP target is computed without gradients to ``denoise``.
    """
    noise = torch.randn(x0.shape, dtype=x0.dtype, generator=generator, device=x0.device)
    x = x0 + append_dims(sigma, x0.ndim) * noise
    with torch.no_grad():
        eps, target = eps_and_derivative(denoise, x, sigma)
    err = (head(x, sigma, eps) - target) ** 2 * append_dims(sigma, x0.ndim) ** 2
    return err.flatten(1).sum(1)
