"""Diffusion formulations: what a network learns and how the result is sampled.

Every formulation is a small frozen dataclass with one face:

* ``net_dims(dim) -> (in, out)``: the widths of the raw network for data of ``dim`` values;
* ``wrap(net)``: the trainable module around a raw network ``net(x, c_noise[, cond])``;
* ``loss(model, x0, cond=None, generator=None) -> [N]``: the per-example training loss;
* ``denoiser(model)``: ``D(x, sigma[, cond])`` in the EDM/VE convention (None for CLD);
* ``solvers`` (registered solver -> default steps; the first is the default),
  ``aliases`` (short names), ``resolve(solver, steps)``;
* ``grid(solver, steps)``: the sampling grid; ``draw(model, n, dim, solver, steps, generator)``.

:data:`FORMULATIONS` names the ones a product may offer; :class:`VE` and :class:`VP`
are Karras et al.'s other two denoising set-ups.
"""

from .base import Formulation
from .cld import CriticallyDamped
from .denoising import EDM, VE, VP
from .flow import RectifiedFlow

#: Formulation name -> class (construct with its settings, e.g. ``EDM(sigma_data=1.0)``).
FORMULATIONS = {"edm": EDM, "flow": RectifiedFlow, "cld": CriticallyDamped}

__all__ = ["EDM", "FORMULATIONS", "VE", "VP", "CriticallyDamped", "Formulation", "RectifiedFlow"]
