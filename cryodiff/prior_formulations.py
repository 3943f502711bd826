"""The diffusion formulations a latent prior can be trained with: a lookup in the engine's table.

A prior works in standardised latent units ``u = (z - mean) / std`` (unit
variance per dimension, so ``sigma_data = 1``) with a residual MLP as the raw
network. The formulations, their losses, grids and solvers are the engine's
(:mod:`generative.formulations`):

``edm`` (default)
    EDM preconditioned denoiser, log-normal training noise levels (``p_mean``,
    ``p_std`` of the prior's settings), EDM loss weighting; PF-ODE solvers on
    the Karras grid 0.002..80.
``flow``
    Rectified flow: velocity network on ``(1 - t) u + t eps``, logit-normal
    training times; flow solvers on a uniform-in-t grid, or any EDM solver
    through the velocity-to-denoiser adapter.
``cld``
    Critically damped Langevin diffusion: a velocity score on ``(u, v)``, hybrid
    score matching; SSCS or Euler-Maruyama on the reverse SDE. No denoiser in
    the EDM convention, so log-likelihoods and PF-ODE paths need ``edm`` or ``flow``.

A formulation's wrapped network is the module whose weights ``prior.pt`` stores.
"""

from __future__ import annotations

from torch import nn

from generative.formulations import EDM, FORMULATIONS, Formulation
from generative.blocks.mlp import ResidualMLP

#: Names ``train-prior --formulation`` accepts, from the engine's table.
NAMES = tuple(FORMULATIONS)
#: Karras grid ends of the EDM-convention solvers, standardised units.
SIGMA_MIN, SIGMA_MAX = EDM.sigma_min, EDM.sigma_max


def formulation(name: str, p_mean: float = -1.2, p_std: float = 1.2) -> Formulation:
    """The engine's formulation ``name`` for standardised latents (``sigma_data = 1``; ``p_mean`` and
    ``p_std`` set EDM's log-normal training noise levels); ``ValueError`` naming the choices."""
    if name not in FORMULATIONS:
        raise ValueError(f"unknown formulation {name!r}; choose from {', '.join(NAMES)}")
    if name == "edm":
        return EDM(sigma_data=1.0, p_mean=p_mean, p_std=p_std)
    return FORMULATIONS[name]()


def build_network(form: Formulation, zdim: int, hidden: int, depth: int, embed_dim: int, classes: int = 0) -> nn.Module:
    """``form``'s trainable module around a residual MLP, for latents of dimension ``zdim`` (conditioned on
    one of ``classes`` conditions, or none, when ``classes`` > 0)."""
    in_dim, out_dim = form.net_dims(zdim)
    return form.wrap(ResidualMLP(in_dim, hidden, depth, embed_dim, out_dim=out_dim, classes=classes))


def solver_table() -> str:
    """The solvers of each formulation as ``cryodiff sample --help`` lists them, read from the engine's
    tables: default steps, network evaluations per step, stochastic ones marked, then the short names."""
    import textwrap

    from generative.solvers import get

    lines, short = [], []
    for name in NAMES:
        form = formulation(name)
        cells = []
        for solver, steps in form.solvers.items():
            entry = get(solver)
            cells.append(f"{solver} ({steps} steps, {entry.per_step}/step{', stochastic' if entry.stochastic else ''})")
        lines.append(textwrap.fill(", ".join(cells), 96, initial_indent=f"  {name:<5} ", subsequent_indent=" " * 8))
        short += [f"{alias} = {target}" + (f" ({name})" if name == "cld" else "") for alias, target in form.aliases.items()]
    return "\n".join(lines + [textwrap.fill(", ".join(dict.fromkeys(short)), 96, initial_indent="  short names: ",
                                             subsequent_indent=" " * 8)])


def formulation_table() -> str:
    """One line per formulation of the engine's table: its name and summary."""
    return "\n".join(f"  {name:<5} {cls.summary}" for name, cls in FORMULATIONS.items())
