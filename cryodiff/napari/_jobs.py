"""The explorer's work, as plain functions that run in worker threads (no Qt, no napari).

Units: latents in the VAE's latent units; volumes ``[z, y, x]`` float32 in
the units of the input images; ``apix`` in Å per voxel; ``box`` in voxels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryodiff.napari._landscape import Landscape, landscape
from recon.errors import InputError

#: Path methods: PF-ODE interpolation through the prior, shortest path through the particles' k-NN graph, straight line.
PRIOR_PATH, GRAPH_PATH, LINE_PATH = "PF-ODE through the prior", "graph through the particles", "straight line"
#: Smallest box offered for decoding.
MIN_BOX = 8


@dataclass
class Loaded:
    """A run opened for exploring: the VAE run, its particle latents ``z`` [N, zdim], the prior and its
    folder (or None), the latent layout, and the reference that scores how well the particles support
    a decoded latent (:mod:`cryodiff.support`)."""

    run: object
    z: np.ndarray
    prior: object | None
    prior_path: Path | None
    land: Landscape
    support: object


@dataclass
class Decoded:
    """A volume ``[z, y, x]`` decoded at ``latent`` on a ``box``-voxel grid of ``apix`` Å, in ``seconds``,
    with the particles' :class:`cryodiff.support.Support` of the latent (one row)."""

    label: str
    latent: np.ndarray
    volume: np.ndarray
    box: int
    apix: float
    seconds: float
    support: object


@dataclass
class Samples:
    """``prior`` and ``gaussian`` latents [n, zdim], and the mean distance of each set to its 10 nearest
    particle latents (standardised units, :func:`cryodiff.paths.knn_distances`)."""

    prior: np.ndarray
    gaussian: np.ndarray
    prior_distance: float
    gaussian_distance: float
    seed: int


def load(run_path: str | Path, prior_path: str | Path | None, kind: str, k: int) -> Loaded:
    """Open the run and the prior (without ``prior_path``, :func:`cryodiff.prior.matching_prior` if any) and lay
    the latents out in ``kind`` coordinates with ``k`` clusters."""
    from cryodiff.prior import load_prior, matching_prior
    from cryodiff.support import support_reference
    from recon.run import load_run

    run = load_run(run_path)
    z = run.latents()
    prior_path = Path(prior_path) if prior_path else matching_prior(run.path, z)
    prior = None
    if prior_path is not None:
        prior = load_prior(prior_path)
        if prior.zdim != run.zdim:
            raise InputError(prior_path, f"the prior's latents have zdim {prior.zdim} but the VAE's have {run.zdim}",
                             "give the prior trained on this run's latents")
    return Loaded(run, z, prior, prior_path, landscape(z, kind, min(k, len(z)), run.path), support_reference(z, prior))


def decode_boxes(box: int) -> list[int]:
    """Boxes offered for decoding a run of box ``box``: the full box, then 3/4, 1/2 and 1/4 of it
    (even, at least :data:`MIN_BOX`), largest first."""
    sizes = {box} | {2 * round(box * f / 2) for f in (0.75, 0.5, 0.25)}
    return sorted((s for s in sizes if MIN_BOX <= s <= box), reverse=True)


def decode(run, latent: np.ndarray, box: int, label: str, support) -> Decoded:
    """The volume of ``run`` at ``latent`` on a ``box`` grid (``run.volume``), timed, and the latent's
    support against the reference ``support`` (:func:`cryodiff.support.score`)."""
    from cryodiff.support import score

    start = time.perf_counter()
    volume = run.volume(latent, box)
    seconds = time.perf_counter() - start
    return Decoded(label, np.asarray(latent), volume, box, run.apix_at(box), seconds, score(support, latent))


def sample_comparison(prior, z: np.ndarray, n: int, seed: int) -> Samples:
    """``n`` latents from the prior and ``n`` from N(0, I), with their distances to the particles."""
    from cryodiff.paths import knn_distances

    drawn, gaussian = prior.sample(n, seed=seed), prior.gaussian(n, seed=seed)
    k = min(10, len(z) - 1)
    return Samples(drawn, gaussian, float(knn_distances(drawn, z, k).mean()),
                   float(knn_distances(gaussian, z, k).mean()), seed)


def path_latents(method: str, z: np.ndarray, start: np.ndarray, end: np.ndarray, n: int, prior=None) -> np.ndarray:
    """Latents ``[M, zdim]`` from ``start`` to ``end`` by ``method`` (:data:`PRIOR_PATH`, :data:`GRAPH_PATH`
    or :data:`LINE_PATH`). ``n`` points for the PF-ODE and the line; the graph path joins the particles
    nearest the two ends and has one point per particle on it."""
    from cryodiff.paths import graph_path_latents, linear_path
    from recon.analysis import nearest_rows

    if method == PRIOR_PATH:
        if prior is None:
            raise InputError("prior", "the PF-ODE path needs a diffusion prior", "load a prior, or choose the graph path")
        return prior.interpolate(start, end, n)
    if method == GRAPH_PATH:
        rows = nearest_rows(z, np.stack([start, end]))
        if rows[0] == rows[1]:
            raise InputError("path", f"both ends are particle {rows[0]}", "choose two different points")
        return graph_path_latents(z, int(rows[0]), int(rows[1]), min(10, len(z) - 1))[1]
    if method == LINE_PATH:
        return linear_path(start, end, n)
    raise ValueError(f"unknown path method {method!r}")


def decode_path(run, latents: np.ndarray, box: int, support):
    """Generator: decode each of ``latents`` [M, zdim] on a ``box`` grid, yielding the number done;
    returns the volumes ``[M, z, y, x]`` float32 and the latents' support against the reference
    ``support`` (:func:`cryodiff.support.score`)."""
    from cryodiff.support import score

    volumes = []
    for latent in latents:
        volumes.append(run.volume(latent, box))
        yield len(volumes)
    return np.stack(volumes), score(support, latents)
