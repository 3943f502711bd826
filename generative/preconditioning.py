"""Network preconditioning (Karras et al. 2022, Table 1): raw network F -> denoiser D.

``D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))``
in the EDM/VE convention ``x = x0 + sigma * eps``. A preconditioning is a
function ``sigma [N] -> (c_skip, c_out, c_in, c_noise)`` of ``[N]`` tensors;
:class:`Preconditioned` applies one to a network ``F(x, c_noise)``.
"""

import torch
from torch import nn

from .adapters import append_dims


def edm(sigma_data=0.5):
    """EDM: unit-variance input and target at every sigma; ``c_noise = log(sigma) / 4``."""

    def coefficients(sigma):
        total = sigma ** 2 + sigma_data ** 2
        return (sigma_data ** 2 / total, sigma * sigma_data / total.sqrt(),
                1 / total.sqrt(), sigma.log() / 4)

    return coefficients


def ve():
    """VE (Song et al. 2021): ``D = x + sigma F(x, log(sigma / 2))``."""

    def coefficients(sigma):
        one = torch.ones_like(sigma)
        return one, sigma, one, (sigma / 2).log()

    return coefficients


def vp(beta_min=0.1, beta_d=19.9, m=1000):
    """VP (Song et al. 2021): eps prediction, ``D = x - sigma F(x / sqrt(1 + sigma^2), (m - 1) t(sigma))``."""

    def coefficients(sigma):
        t = (torch.sqrt(beta_min ** 2 + 2 * beta_d * torch.log1p(sigma ** 2)) - beta_min) / beta_d
        return torch.ones_like(sigma), -sigma, 1 / torch.sqrt(1 + sigma ** 2), (m - 1) * t

    return coefficients


class Preconditioned(nn.Module):
    """Denoiser module ``D(x [N, ...], sigma [N][, cond]) -> [N, ...]`` wrapping ``net(x, c_noise [N][, cond])``."""

    def __init__(self, net, coefficients):
        super().__init__()
        self.net = net
        self.coefficients = coefficients

    def forward(self, x, sigma, cond=None):
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        nd = x.ndim
        inp = append_dims(c_in, nd) * x
        out = self.net(inp, c_noise) if cond is None else self.net(inp, c_noise, cond)
        return append_dims(c_skip, nd) * x + append_dims(c_out, nd) * out
