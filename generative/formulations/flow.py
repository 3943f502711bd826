"""Rectified flow (Esser et al. 2024, SD3) as a formulation: a velocity network on
``z_t = (1 - t) x0 + t eps``, logit-normal training times with an optional
shift, sampled by the ``flow`` solvers on a uniform-in-t grid or by any
``sigma`` solver through :func:`generative.adapters.from_velocity`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .. import solvers
from ..adapters import from_velocity
from ..flow import flow_matching_loss, logit_normal_times
from ..schedules import flow_sigmas, karras_sigmas
from .base import Formulation


@dataclass(frozen=True)
class RectifiedFlow(Formulation):
    """Velocity ``v(z_t, t[, cond])``, target ``eps - x0``; ``t = t_max * shift(sigmoid(u))``,
    ``u ~ N(mean, scale^2)``. ``t_max < 1`` trains on low noise only (SDXL's refiner)."""

    mean: float = 0.0
    scale: float = 1.0
    shift: float = 1.0
    t_max: float = 1.0
    sigma_min: float = 0.002  # Karras grid of the sigma-family solvers
    sigma_max: float = 80.0

    name: ClassVar[str] = "flow"
    summary: ClassVar[str] = "rectified flow: velocity on the straight path to noise, logit-normal times (Esser et al. 2024)"
    solvers: ClassVar[dict[str, int]] = {"flow_heun": 8, "flow_euler": 50, "dpmpp_2m": 25, "heun": 18, "euler": 50, "ddim": 50}
    aliases: ClassVar[dict[str, str]] = {"dpmpp": "dpmpp_2m"}

    def net_dims(self, dim: int) -> tuple[int, int]:
        return dim, dim

    def wrap(self, net) -> torch.nn.Module:
        """The velocity network itself."""
        return net

    def loss(self, model, x0: torch.Tensor, cond=None, generator=None) -> torch.Tensor:
        t = logit_normal_times(len(x0), self.mean, self.scale, self.shift, generator=generator, device=x0.device)
        if self.t_max != 1.0:
            t = self.t_max * t
        return flow_matching_loss(model, x0, t, generator=generator, cond=cond)

    def denoiser(self, model):
        return from_velocity(model)

    def grid(self, solver: str, steps: int) -> torch.Tensor:
        """The shifted uniform-in-t grid for ``flow`` solvers, the Karras grid for the others."""
        if solvers.get(solver).family == "flow":
            return flow_sigmas(steps, self.shift)
        return karras_sigmas(steps, self.sigma_min, self.sigma_max)

    def start(self, grid: torch.Tensor, n: int, dim, model, generator) -> torch.Tensor:
        """``grid[0] * eps``, ``[n, dim]`` (or ``[n, *dim]``) float32."""
        shape = (dim,) if isinstance(dim, int) else tuple(dim)
        return grid[0].float() * torch.randn(n, *shape, generator=generator)
