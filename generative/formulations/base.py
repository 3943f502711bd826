"""What every formulation shares: resolving a solver name and drawing samples through the registry."""

from __future__ import annotations

from typing import ClassVar

import torch

from .. import solvers


class Formulation:
    """The face of a formulation (see :mod:`generative.formulations`).

    Subclasses set ``name``, ``summary`` (one line), ``solvers`` (solver -> default steps, the first the
    default), ``aliases`` (short names) and implement ``net_dims``, ``wrap``,
    ``loss``, ``denoiser``, ``grid`` and ``start``.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    solvers: ClassVar[dict[str, int]]
    aliases: ClassVar[dict[str, str]] = {}

    def resolve(self, solver: str | None, steps: int | None) -> tuple[str, int]:
        """``(solver, steps)`` with the short name resolved and the default steps filled in (no solver:
        the default one); ``ValueError`` naming the choices for a solver this formulation does not have."""
        solver = self.aliases.get(solver, solver) if solver else next(iter(self.solvers))
        if solver not in self.solvers:
            raise ValueError(f"solver {solver!r} is not a sampler of the {self.name} formulation; use one of {', '.join(self.solvers)}")
        steps = self.solvers[solver] if steps is None else steps
        if steps < 1:
            raise ValueError(f"{steps} steps; use 1 or more")
        return solver, steps

    @torch.no_grad()
    def draw(self, model, n: int, dim: int | tuple[int, ...], solver: str, steps: int, generator: torch.Generator,
             cond=None, callback=None) -> torch.Tensor:
        """``n`` samples ``[n, dim]`` (or ``[n, *dim]`` for a shape such as an image latent's ``(C, H, W)``;
        float32) of the trained ``model`` (as :meth:`wrap` made it) with the registered ``solver`` over
        ``steps`` intervals of :meth:`grid`; noise from ``generator``."""
        grid = self.grid(solver, steps)
        x_T = self.start(grid, n, dim, model, generator)
        options = solvers.options(solver, cond=cond, callback=callback, generator=generator)
        return self.data_part(solvers.sample(self.sampled(model), x_T, grid, solver, **options), dim)

    def data_part(self, state: torch.Tensor, dim) -> torch.Tensor:
        """The data in a solver's final state (all of it; CLD's state also holds velocities)."""
        return state

    def sampled(self, model):
        """What the solvers integrate: the denoiser (the velocity score for CLD)."""
        return self.denoiser(model)
