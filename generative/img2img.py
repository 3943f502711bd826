"""Starting a sampler part-way down its grid: SDEdit (img2img) and a base-to-refiner hand-off.

SDXL's refiner is a second model trained on low noise levels only. It is used
two ways (Podell et al. 2023, sec. 2.5):

* :func:`sdedit`: noise a finished image (latent) ``x0`` to the level where the
  last ``strength`` fraction of the grid begins and run those steps with the
  refiner (Meng et al. 2022, SDEdit);
* :func:`handoff`: the base model runs the grid down to a noise level, the
  refiner takes the state from there (an ensemble of expert denoisers).

Both work with any registered solver of the ``sigma`` or ``flow`` family
(EDM/VE convention: ``x = x0 + sigma * eps``; rectified-flow grids are sigmas
too, see :mod:`generative.schedules`). ``denoise(x, sigma[, cond])`` is a
denoiser (:mod:`generative.adapters`).
"""

from __future__ import annotations

import torch

from .solvers import options, sample


def start_index(grid: torch.Tensor, strength: float) -> int:
    """Index of the grid level where the last ``round(strength * steps)`` of its ``steps = len(grid) - 1``
    intervals begin; ``strength`` in (0, 1] (1: the whole grid)."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength {strength} must lie in (0, 1]")
    steps = len(grid) - 1
    taken = max(1, round(strength * steps))
    return steps - taken


def sdedit(denoise, x0: torch.Tensor, grid: torch.Tensor, strength: float, solver: str = "heun", *,
           generator: torch.Generator | None = None, cond=None, callback=None) -> torch.Tensor:
    """Re-sample ``x0 [N, ...]`` from noise level ``grid[i]`` (:func:`start_index`) with ``denoise``.

    The start is ``x0 + grid[i] * eps``; at ``strength = 1`` it is ``grid[0] * eps`` exactly (what a
    full sample starts from: at the top of the grid the image carries no weight, as at flow time 1),
    so strength 1 is a full sample from the same noise. ``eps`` from ``generator``; stochastic
    solvers get the same generator after it.
    """
    grid = torch.as_tensor(grid).to(x0.dtype)
    i = start_index(grid, strength)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    x = grid[0] * noise if i == 0 else x0 + grid[i] * noise
    return sample(denoise, x, grid[i:], solver, **options(solver, cond=cond, callback=callback, generator=generator))


def handoff(base, refiner, x_T: torch.Tensor, grid: torch.Tensor, at_sigma: float, solver: str = "heun", *,
            generator: torch.Generator | None = None, cond=None, callback=None) -> torch.Tensor:
    """Sample from ``x_T`` (scaled to ``grid[0]``) with ``base`` down to the first grid level
    ``<= at_sigma``, then with ``refiner`` to the end of the grid."""
    grid = torch.as_tensor(grid).to(x_T.dtype)
    below = (grid <= at_sigma).nonzero()
    if len(below) == 0 or below[0].item() == 0:
        raise ValueError(f"hand-off level {at_sigma} is not inside the grid ({grid[0]:.3g} ... {grid[-1]:.3g})")
    i = below[0].item()
    kwargs = options(solver, cond=cond, callback=callback, generator=generator)
    x = sample(base, x_T, grid[: i + 1], solver, **kwargs)
    if i == len(grid) - 1:
        return x
    return sample(refiner, x, grid[i:], solver, **kwargs)

