"""The solver registry: one name per sampling algorithm, what it costs, and :func:`sample`.

Each :class:`Solver` states its family (the state and grid it integrates on),
the network evaluations it takes for ``n`` steps and whether it draws noise:

* ``sigma``: the EDM/VE state ``x = x0 + sigma eps`` on a decreasing noise-level
  grid (:mod:`generative.samplers`; any grid of :mod:`generative.schedules`);
  the model is a denoiser ``D(x, sigma[, cond])``;
* ``flow``: the same state and denoiser, stepped in rectified-flow coordinates;
  meant for :func:`generative.schedules.flow_sigmas` grids;
* ``cld``: critically damped Langevin diffusion's joint state ``cat(x, v)``
  ``[N, 2d]`` on a decreasing time grid (:func:`generative.cld.cld_times`); the
  model is a velocity score ``score(x, v, t[, cond])`` (e.g.
  :class:`generative.cld.VelocityScore`, whose ``process`` is used unless
  ``process=`` is given). The returned state is ``cat(x, v)`` at the last time.

Every solver takes ``cond=None`` (passed to the model on every call) and
``callback=None`` (called once per step with a dict holding ``i`` and the new
state ``x``), as k-diffusion's samplers take ``extra_args`` and ``callback``.
Stochastic solvers take ``generator=``. Add a solver with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import cld, samplers
from .genie import genie

FAMILIES = ("sigma", "flow", "cld")


@dataclass(frozen=True)
class Solver:
    """A registered sampler: ``run(model, x, grid, **options) -> x``, its family (:data:`FAMILIES`),
    network evaluations per step (one fewer on a last step to sigma 0 when ``last_step_cheaper``),
    whether it draws noise, and one line saying what it is."""

    name: str
    run: Callable
    family: str
    per_step: int
    stochastic: bool
    summary: str
    last_step_cheaper: bool = False

    def evaluations(self, steps: int) -> int:
        """Network evaluations for ``steps`` steps of a grid ending at sigma 0."""
        return self.per_step * steps - (1 if self.last_step_cheaper else 0)


#: Every registered solver by name.
SOLVERS: dict[str, Solver] = {}


def register(name: str, run: Callable, family: str, per_step: int, stochastic: bool, summary: str,
             last_step_cheaper: bool = False) -> Solver:
    """Add a solver to :data:`SOLVERS` (a name may be registered once)."""
    if name in SOLVERS:
        raise ValueError(f"solver {name!r} is already registered")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    SOLVERS[name] = Solver(name, run, family, per_step, stochastic, summary, last_step_cheaper)
    return SOLVERS[name]


def get(name: str) -> Solver:
    """The registered solver ``name``; ``ValueError`` listing the names otherwise."""
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose from {', '.join(sorted(SOLVERS))}")
    return SOLVERS[name]


def options(solver: str, *, cond=None, callback=None, generator=None) -> dict:
    """The keyword options :func:`sample` passes to ``solver``: ``cond`` and ``callback``, and ``generator``
    only for a stochastic solver (deterministic ones take none)."""
    out = {"cond": cond, "callback": callback}
    if get(solver).stochastic:
        out["generator"] = generator
    return out


def _on_joint_state(sampler: Callable) -> Callable:
    """A CLD sampler ``sampler(score, x, v, times, process, ...)`` run on the joint state ``cat(x, v)``."""

    def run(score, state, times, *, process=None, generator=None, cond=None, callback=None):
        x, v = state.chunk(2, dim=1)
        process = score.process if process is None else process
        options = {"cond": cond, "callback": callback} | ({} if generator is None else {"generator": generator})
        return torch.cat(sampler(score, x, v, times, process, **options), dim=1)

    return run


@torch.no_grad()
def sample(model, x_T, grid, solver: str = "heun", **options):
    """Integrate from ``grid[0]`` to ``grid[-1]`` with the registered ``solver``.

    Args:
        model: a denoiser ``D(x, sigma[N][, cond]) -> x0_hat`` (EDM/VE convention) for the
            ``sigma`` and ``flow`` families, a velocity score for ``cld``.
        x_T: ``[N, ...]`` start state: scaled to ``grid[0]`` (e.g. ``grid[0] * randn``), or
            ``cat(x, v)`` from :meth:`generative.cld.CLD.prior` for ``cld``.
        grid: 1-D tensor: noise levels, decreasing to sample (last may be 0), increasing (all > 0)
            to encode with a deterministic solver; CLD times decreasing to ``t_min > 0``.
            Noise levels are cast to the dtype of ``x_T``; CLD times stay float64.
        solver: a name in :data:`SOLVERS`.
        options: the solver's keyword options: ``cond``, ``callback``, ``generator`` (stochastic
            solvers) and its own (see each solver).

    Returns:
        The state at ``grid[-1]``, shape of ``x_T``.
    """
    entry = get(solver)
    grid = torch.as_tensor(grid)
    if grid.ndim != 1 or len(grid) < 2:
        raise ValueError("the grid must be a 1-D tensor with at least 2 entries")
    if entry.family != "cld":
        grid = grid.to(x_T.dtype)
    return entry.run(model, x_T, grid, **options)


register("euler", samplers.euler, "sigma", 1, False, "Euler on the PF-ODE (= deterministic DDIM)")
register("ddim", samplers.ddim, "sigma", 1, False, "DDIM; eta > 0 adds fresh noise (ancestral at eta = 1)")
register("heun", samplers.heun, "sigma", 2, False, "EDM Heun, 2nd order; churn > 0 adds noise", last_step_cheaper=True)
register("dpmpp_2m", samplers.dpmpp_2m, "sigma", 1, False, "DPM-Solver++(2M), multistep 2nd order")
register("genie", genie, "sigma", 1, False, "GENIE truncated Taylor, 2nd order; plus one JVP per step, or a distilled head")
register("euler_maruyama", samplers.euler_maruyama, "sigma", 1, True, "Euler-Maruyama on the reverse VE SDE")
register("flow_euler", samplers.flow_euler, "flow", 1, False, "Euler in rectified-flow coordinates")
register("flow_heun", samplers.flow_heun, "flow", 2, False, "Heun in rectified-flow coordinates", last_step_cheaper=True)
register("cld_sscs", _on_joint_state(cld.sample_sscs), "cld", 1, True,
         "CLD symmetric splitting (SSCS): exact linear half-steps around a score step")
register("cld_em", _on_joint_state(cld.sample_cld_euler_maruyama), "cld", 1, True, "Euler-Maruyama on CLD's reverse SDE")
register("cld_heun", _on_joint_state(cld.sample_cld_pf_ode), "cld", 2, False, "Heun on CLD's probability-flow ODE")
