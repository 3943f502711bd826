"""Denoising formulations in the EDM/VE convention (Karras et al. 2022, Table 1): EDM, VE and VP.

Each pairs a preconditioning (:mod:`generative.preconditioning`) that wraps a
network ``F(x, c_noise[, cond])`` into a denoiser ``D(x, sigma[, cond])``, a
training noise-level distribution and a loss weight (:mod:`generative.losses`),
and samples with any ``sigma``-family solver on the Karras grid
``sigma_max .. sigma_min`` (then 0). Data in the units in which the
``sigma_data`` given is their standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..losses import denoising_loss, edm_weight, inverse_variance_weight, lognormal_sigmas, loguniform_sigmas, vp_training_sigmas
from ..preconditioning import Preconditioned, edm, ve, vp
from ..schedules import karras_sigmas, vp_sigma
from .base import Formulation

#: Deterministic sigma-family solvers with their default steps (docs/prior.md measured these).
SIGMA_SOLVERS = {"dpmpp_2m": 25, "heun": 18, "euler": 50, "ddim": 50, "genie": 12}


@dataclass(frozen=True)
class EDM(Formulation):
    """EDM: ``ln sigma ~ N(p_mean, p_std^2)``, weight ``(sigma^2 + sd^2) / (sigma sd)^2``, EDM preconditioning."""

    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    name: ClassVar[str] = "edm"
    summary: ClassVar[str] = "EDM denoiser, log-normal training noise levels, EDM loss weights (Karras et al. 2022)"
    solvers: ClassVar[dict[str, int]] = SIGMA_SOLVERS
    aliases: ClassVar[dict[str, str]] = {"dpmpp": "dpmpp_2m"}

    def net_dims(self, dim: int) -> tuple[int, int]:
        """The network's input and output widths for data of ``dim`` values."""
        return dim, dim

    def wrap(self, net) -> torch.nn.Module:
        """The trainable denoiser module around ``net(x, c_noise[, cond])``."""
        return Preconditioned(net, self.preconditioning())

    def preconditioning(self):
        return edm(self.sigma_data)

    def training_sigmas(self, n: int, generator, device) -> torch.Tensor:
        return lognormal_sigmas(n, self.p_mean, self.p_std, generator=generator, device=device)

    def weight(self):
        return edm_weight(self.sigma_data)

    def loss(self, model, x0: torch.Tensor, cond=None, generator=None) -> torch.Tensor:
        """Per-example weighted denoising loss ``[N]`` of ``x0 [N, ...]``."""
        sigma = self.training_sigmas(len(x0), generator, x0.device)
        return denoising_loss(model, x0, sigma, self.weight(), generator=generator, cond=cond)

    def denoiser(self, model):
        """``D(x, sigma[, cond])``: the wrapped model itself."""
        return model

    def grid(self, solver: str, steps: int) -> torch.Tensor:
        """The Karras grid of ``steps`` intervals (float64, ending in 0)."""
        return karras_sigmas(steps, self.sigma_min, self.sigma_max, self.rho)

    def start(self, grid: torch.Tensor, n: int, dim, model, generator) -> torch.Tensor:
        """``grid[0] * eps``, ``[n, dim]`` (or ``[n, *dim]``) float32."""
        shape = (dim,) if isinstance(dim, int) else tuple(dim)
        return grid[0].float() * torch.randn(n, *shape, generator=generator)


@dataclass(frozen=True)
class VE(EDM):
    """VE (Song et al. 2021): sigma log-uniform on ``[0.02, 100]``, weight ``1 / sigma^2``."""

    sigma_min: float = 0.02
    sigma_max: float = 100.0
    name: ClassVar[str] = "ve"
    summary: ClassVar[str] = "VE denoiser, log-uniform noise levels, 1/sigma^2 weights (Song et al. 2021)"

    def preconditioning(self):
        return ve()

    def training_sigmas(self, n, generator, device):
        return loguniform_sigmas(n, self.sigma_min, self.sigma_max, generator=generator, device=device)

    def weight(self):
        return inverse_variance_weight()


@dataclass(frozen=True)
class VP(EDM):
    """VP (Song et al. 2021): ``t ~ U(1e-5, 1)`` mapped to sigma, weight ``1 / sigma^2``, eps prediction."""

    sigma_min: float = 0.002
    sigma_max: float = float(vp_sigma(1.0))  # sigma at VP time 1 (beta_min 0.1, beta_d 19.9): 152.2
    name: ClassVar[str] = "vp"
    summary: ClassVar[str] = "VP eps prediction, uniform VP times, 1/sigma^2 weights (Song et al. 2021)"

    def preconditioning(self):
        return vp()

    def training_sigmas(self, n, generator, device):
        return vp_training_sigmas(n, generator=generator, device=device)

    def weight(self):
        return inverse_variance_weight()
