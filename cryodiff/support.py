"""How well the particles support a latent: the prior's log-density there and the particles near it.

The decoder answers at any latent, also where no particle is; a volume decoded
far from the data is the network's extrapolation, not a conformation the data
show. Every volume cryodiff decodes carries two numbers against the particles'
own:

* ``neighbours``: particle latents within ``radius`` of it, in standardised
  units (each dimension divided by the particles' standard deviation);
  ``radius`` is the median distance from a particle to its
  :data:`RADIUS_NEIGHBOURS`-th nearest other particle, so a typical particle has
  about that many;
* ``log_density``: with a diffusion prior (EDM or flow), ``log p(z)`` in nats in
  the original latent units (:meth:`cryodiff.prior.Prior.log_prob`, Heun with
  :data:`DENSITY_STEPS` intervals).

Each is also given as a percentile: the percentage of particles (seeded random
subsets: :data:`CALIBRATION_NEIGHBOURS` for the neighbours, whose count does not
include the particle itself, and :data:`CALIBRATION_DENSITY` for the density,
whose exact-divergence integral costs about 10 ms per particle on 2 CPU cores
at zdim 8) whose own value is lower. A latent is ``supported`` unless either
percentile is below :data:`FLAG_PERCENTILE`: less supported than 99 % of the
particles. Both percentiles compare like with like (the same estimator on the
particles and the query), so the Heun bias of the density cancels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from cryodiff.prior import Prior, standardisation

#: The neighbour radius is the median distance from a particle to its this-many-th nearest other particle.
RADIUS_NEIGHBOURS = 20
#: Particles (seeded random subsets) whose own neighbour counts and log-densities calibrate the percentiles.
CALIBRATION_NEIGHBOURS, CALIBRATION_DENSITY = 2000, 256
#: Flagged below this percentile of the particles on either score.
FLAG_PERCENTILE = 1.0
#: Heun intervals of the prior's log-density: the same for particles and queries, so its bias
#: (+1 nat on a 4-D mixture at 16, docs/prior.md) shifts both and leaves the percentile.
DENSITY_STEPS = 16
#: Columns of support.csv.
COLUMNS = ("volume", "log_density", "density_percentile", "neighbours", "radius", "neighbour_percentile", "supported")


@dataclass(frozen=True)
class SupportReference:
    """The particles' latents ``[N, zdim]`` standardised (``mean``, ``std`` ``[zdim]``) in a k-d tree,
    the neighbour ``radius`` (standardised units), the calibration particles' neighbour counts and,
    with a prior that has a denoiser, their log-densities (nats), both sorted ascending."""

    tree: cKDTree
    mean: np.ndarray
    std: np.ndarray
    radius: float
    particle_neighbours: np.ndarray
    prior: Prior | None
    particle_log_density: np.ndarray | None


@dataclass(frozen=True)
class Support:
    """Scores of ``M`` latents: ``log_density`` (nats; NaN without a usable prior), its
    ``density_percentile`` (NaN likewise), ``neighbours`` within ``radius`` (standardised units), its
    ``neighbour_percentile``, and ``supported`` (bool); arrays of length ``M``."""

    log_density: np.ndarray
    density_percentile: np.ndarray
    neighbours: np.ndarray
    radius: float
    neighbour_percentile: np.ndarray
    supported: np.ndarray

    def describe(self, i: int) -> str:
        """One line on latent ``i``, e.g. ``log p -3.1 nats (42nd percentile of particles), 37 particles within 0.52``."""
        parts = []
        if np.isfinite(self.log_density[i]):
            parts.append(f"log p {self.log_density[i]:.3g} nats ({_ordinal(self.density_percentile[i])} percentile of particles)")
        parts.append(f"{self.neighbours[i]} particles within {self.radius:.3g} "
                     f"({_ordinal(self.neighbour_percentile[i])} percentile)")
        return ", ".join(parts)


def _ordinal(percentile: float) -> str:
    value = int(np.floor(percentile))
    suffix = "th" if 10 <= value % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
    return f"{value}{suffix}"


def _percentile(sorted_reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Percentage of ``sorted_reference`` strictly below each of ``values``."""
    return 100.0 * np.searchsorted(sorted_reference, values, side="left") / len(sorted_reference)


def support_reference(z: np.ndarray, prior: Prior | None = None, seed: int = 0) -> SupportReference:
    """The reference of the particle latents ``z [N, zdim]`` (N >= 2), with ``prior``'s density if it has one.

    A CLD prior has no denoiser and so no log-density here: its percentiles are
    NaN and only the neighbours decide.
    """
    z = np.asarray(z, dtype=np.float64)
    mean, std = standardisation(z)
    tree = cKDTree((z - mean) / std)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(z), min(CALIBRATION_NEIGHBOURS, len(z)), replace=False))
    k = min(RADIUS_NEIGHBOURS, len(z) - 1)
    distances, _ = tree.query(tree.data[rows], k=k + 1)  # the first is the particle itself
    radius = float(np.median(distances[:, -1]))
    counts = tree.query_ball_point(tree.data[rows], radius, return_length=True) - 1
    density = None
    if prior is not None and prior.denoiser is not None:
        rows = np.sort(rng.choice(len(z), min(CALIBRATION_DENSITY, len(z)), replace=False))
        density = np.sort(prior.log_prob(z[rows], steps=DENSITY_STEPS, seed=seed))
    return SupportReference(tree, mean, std, radius, np.sort(counts), prior, density)


def score(reference: SupportReference, latents: np.ndarray) -> Support:
    """The :class:`Support` of ``latents [M, zdim]`` (original units) against ``reference``."""
    latents = np.atleast_2d(np.asarray(latents, dtype=np.float64))
    counts = np.asarray(reference.tree.query_ball_point((latents - reference.mean) / reference.std, reference.radius,
                                                        return_length=True)).reshape(len(latents))
    neighbour_percentile = _percentile(reference.particle_neighbours, counts)
    if reference.particle_log_density is not None:
        log_density = reference.prior.log_prob(latents, steps=DENSITY_STEPS)
        density_percentile = _percentile(reference.particle_log_density, log_density)
    else:
        log_density = density_percentile = np.full(len(latents), np.nan)
    supported = (neighbour_percentile >= FLAG_PERCENTILE) & ~(density_percentile < FLAG_PERCENTILE)
    return Support(log_density, density_percentile, counts.astype(int), reference.radius, neighbour_percentile, supported)


def write_support_csv(path, support: Support, names: list[str]) -> None:
    """``support.csv``: one row per volume (``names``), the :data:`COLUMNS`; ``supported`` is yes/no."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i, name in enumerate(names):
            writer.writerow([name, f"{support.log_density[i]:.6g}", f"{support.density_percentile[i]:.4g}",
                             int(support.neighbours[i]), f"{support.radius:.6g}", f"{support.neighbour_percentile[i]:.4g}",
                             "yes" if support.supported[i] else "no"])
