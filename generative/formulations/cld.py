"""Critically damped Langevin diffusion (Dockhorn et al. 2022) as a formulation: a velocity score
on the joint state ``(x, v)`` (:class:`generative.cld.VelocityScore`), hybrid score matching, and
the ``cld`` solvers on :func:`generative.cld.cld_times`. It has no denoiser in the EDM
convention, so PF-ODE likelihoods and paths need another formulation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..cld import CLD, VelocityScore, cld_times, cld_training_times, hsm_loss
from .base import Formulation


@dataclass(frozen=True)
class CriticallyDamped(Formulation):
    """CLD with ``process`` (defaults of the paper); training times ``U(t_min_train, 1)``; sampling
    from the stationary law at t = 1 down to ``t_min`` with quadratic striding."""

    process: CLD = field(default_factory=CLD)
    t_min: float = 1e-3
    t_min_train: float = 1e-5

    name: ClassVar[str] = "cld"
    summary: ClassVar[str] = ("critically damped Langevin diffusion: velocity score on (x, v), hybrid score matching "
                              "(Dockhorn et al. 2022)")
    solvers: ClassVar[dict[str, int]] = {"cld_sscs": 100, "cld_em": 400}
    aliases: ClassVar[dict[str, str]] = {"sscs": "cld_sscs", "euler_maruyama": "cld_em", "em": "cld_em"}

    def net_dims(self, dim: int) -> tuple[int, int]:
        """The network sees ``(x, v)`` (``2 dim`` values) and predicts ``eps_v`` (``dim``)."""
        return 2 * dim, dim

    def wrap(self, net) -> torch.nn.Module:
        return VelocityScore(net, self.process)

    def loss(self, model, x0: torch.Tensor, cond=None, generator=None) -> torch.Tensor:
        t = cld_training_times(len(x0), self.t_min_train, generator=generator)
        return hsm_loss(model.eps, x0, t, model.process, generator=generator, cond=cond)

    def denoiser(self, model):
        """None: CLD has no EDM-convention denoiser."""
        return None

    def sampled(self, model):
        return model

    def grid(self, solver: str, steps: int) -> torch.Tensor:
        return cld_times(steps, self.t_min)

    def start(self, grid, n, dim, model, generator):
        """``cat(x_T, v_T)`` drawn from the stationary law, ``[n, 2 dim]`` (vectors only)."""
        if not isinstance(dim, int):
            raise ValueError("the CLD formulation samples vectors [n, dim]; give dim as an int")
        return torch.cat(model.process.prior(n, dim, generator=generator), dim=1)

    def data_part(self, state, dim):
        """``x`` of the final ``(x, v)``."""
        return state[:, :dim]
