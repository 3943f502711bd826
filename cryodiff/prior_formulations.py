"""The three diffusion formulations a latent prior can be trained with.

Each works in standardised latent units ``u = (z - mean) / std`` (unit variance
per dimension) and pairs a network, a training loss and samplers from the
engine (:mod:`generative`):

``edm`` (default)
    EDM preconditioned denoiser (``sigma_data = 1``), log-normal training noise
    levels, EDM loss weighting (Karras et al. 2022). Deterministic PF-ODE
    solvers on the Karras grid 0.002..80.
``flow``
    Rectified flow (Esser et al. 2024): velocity network on the linear path
    ``(1 - t) u + t eps``, logit-normal training times. Sampled with the flow
    solvers on a uniform-in-t grid, or with any EDM solver through
    :func:`generative.adapters.from_velocity`.
``cld``
    Critically damped Langevin diffusion (Dockhorn et al. 2022): a velocity
    score on the joint state ``(u, v)``, hybrid score matching, defaults of
    :class:`generative.CLD`. Sampled with SSCS or Euler-Maruyama on the reverse
    SDE; it has no denoiser in the EDM convention, so log-likelihoods and
    PF-ODE paths need an ``edm`` or ``flow`` prior.

A formulation's network is the module whose weights ``prior.pt`` stores.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from generative.adapters import from_velocity
from generative.cld import CLD, VelocityScore, cld_times, cld_training_times, hsm_loss, sample_cld_euler_maruyama, sample_sscs
from generative.flow import flow_matching_loss, logit_normal_times
from generative.losses import denoising_loss, edm_weight, lognormal_sigmas
from generative.networks import ResidualMLP
from generative.preconditioning import Preconditioned, edm
from generative.samplers import sample
from generative.schedules import flow_sigmas, karras_sigmas

FORMULATIONS = ("edm", "flow", "cld")
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0  # Karras grid ends, standardised units
#: Solvers per formulation with their default number of steps (grid intervals),
#: chosen from the error-vs-steps measurements in docs/prior.md.
SOLVER_STEPS = {
    "edm": {"dpmpp_2m": 25, "heun": 18, "euler": 50, "ddim": 50, "genie": 12},
    "flow": {"flow_heun": 8, "flow_euler": 50, "dpmpp_2m": 25, "heun": 18, "euler": 50, "ddim": 50},
    "cld": {"sscs": 100, "euler_maruyama": 400},
}
#: Short solver names accepted everywhere.
SOLVER_ALIASES = {"dpmpp": "dpmpp_2m", "em": "euler_maruyama"}


def build_network(formulation: str, zdim: int, hidden: int, depth: int, embed_dim: int) -> nn.Module:
    """The trainable module of ``formulation`` for latents of dimension ``zdim``."""
    if formulation == "edm":
        return Preconditioned(ResidualMLP(zdim, hidden, depth, embed_dim), edm(1.0))
    if formulation == "flow":
        return ResidualMLP(zdim, hidden, depth, embed_dim)  # velocity(z_t, t)
    if formulation == "cld":
        return VelocityScore(ResidualMLP(2 * zdim, hidden, depth, embed_dim, out_dim=zdim), CLD())
    raise ValueError(f"unknown formulation {formulation!r}; choose from {FORMULATIONS}")


def training_loss(formulation: str, model: nn.Module, u: torch.Tensor, g: torch.Generator,
                  p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Per-latent training loss ``[B]`` of a batch ``u [B, zdim]`` (noise drawn from ``g``);
    ``p_mean``/``p_std`` set the EDM log-normal training noise levels."""
    if formulation == "edm":
        sigma = lognormal_sigmas(len(u), p_mean, p_std, generator=g)
        return denoising_loss(model, u, sigma, edm_weight(1.0), generator=g)
    if formulation == "flow":
        return flow_matching_loss(model, u, logit_normal_times(len(u), generator=g), generator=g)
    return hsm_loss(model.eps, u, cld_training_times(len(u), generator=g), model.process, generator=g)


def denoiser(formulation: str, model: nn.Module) -> Callable | None:
    """``D(u, sigma) -> u0_hat`` in the EDM/VE convention, or ``None`` for ``cld``."""
    if formulation == "edm":
        return model
    if formulation == "flow":
        return from_velocity(model)
    return None


def solver_steps(formulation: str, solver: str, steps: int | None) -> tuple[str, int]:
    """``(solver, steps)`` with aliases resolved and the default steps filled in;
    ``ValueError`` naming the choices for a solver the formulation does not have."""
    solver = SOLVER_ALIASES.get(solver, solver)
    choices = SOLVER_STEPS[formulation]
    if solver not in choices:
        raise ValueError(f"solver {solver!r} is not a sampler of the {formulation} formulation; use one of {', '.join(choices)}")
    steps = choices[solver] if steps is None else steps
    if steps < 1:
        raise ValueError(f"{steps} steps; use 1 or more")
    return solver, steps


@torch.no_grad()
def draw(formulation: str, model: nn.Module, n: int, zdim: int, solver: str, steps: int, seed: int) -> torch.Tensor:
    """``n`` samples ``[n, zdim]`` in standardised units with ``solver`` over ``steps`` intervals.

    EDM-convention solvers run on the Karras grid 0.002..80 (rho 7); ``flow_*``
    solvers on the uniform-in-t grid 0.999..0 (sigma = t / (1 - t)); CLD solvers
    on :func:`generative.cld_times` (quadratic striding, 1 to 0.001) from the
    stationary law. The same seed gives the same samples.
    """
    g = torch.Generator().manual_seed(seed)
    if formulation == "cld":
        x, v = model.process.prior(n, zdim, generator=g)
        run = sample_sscs if solver == "sscs" else sample_cld_euler_maruyama
        return run(model, x, v, cld_times(steps), model.process, generator=g)[0]
    sigmas = flow_sigmas(steps) if solver.startswith("flow_") else karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX)
    sigmas = sigmas.float()
    x_T = sigmas[0] * torch.randn(n, zdim, generator=g)
    return sample(denoiser(formulation, model), x_T, sigmas, solver)
