"""Paths between two latents, and how far a path strays from the data.

The path through a diffusion prior is :meth:`cryodiff.prior.Prior.interpolate`
(:mod:`cryodiff.interpolation`). :func:`path_metrics` scores any path ``[M, zdim]`` against the data latents:
the mean distance of its points to their ``k`` nearest data latents
(standardised units) and, with a prior, the prior's log-density along it.
:func:`linear_path` and :func:`graph_path_latents` give the two usual
alternatives (straight line; shortest path through the k-nearest-neighbour
graph of the particles) from :mod:`recon.analysis`.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from cryodiff.prior import Prior, standardisation
from recon.analysis import direct_path, graph_path
from recon.errors import InputError

def linear_path(z_a, z_b, n: int) -> np.ndarray:
    """``n`` evenly spaced latents ``[n, zdim]`` (float32) on the straight line from ``z_a`` to ``z_b``."""
    return direct_path(z_a, z_b, n).astype(np.float32)


def graph_path_latents(z: np.ndarray, start: int, end: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(rows [M], latents [M, zdim])`` of the shortest path from row ``start`` to ``end`` of ``z [N, zdim]``
    through its k-nearest-neighbour graph (:func:`recon.analysis.graph_path`); every point is a particle."""
    rows, _ = graph_path(z, start, end, k)
    return rows, np.asarray(z, dtype=np.float32)[rows]


def knn_distances(points: np.ndarray, data_z: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean Euclidean distance ``[M]`` of each of ``points [M, zdim]`` to its ``k`` nearest of ``data_z [N, zdim]``.

    Both are standardised by the mean and std of ``data_z`` per dimension (the
    prior's units when it was trained on ``data_z``). A data latent equal to
    the point itself (distance < 1e-9) is not counted, so a path through
    particles is measured like any other.
    """
    data_z = np.asarray(data_z, dtype=np.float64)
    if not 1 <= k < len(data_z):
        raise InputError("-k", f"{k} neighbours for {len(data_z)} latents", f"choose between 1 and {len(data_z) - 1}")
    mean, std = standardisation(data_z)
    nn = NearestNeighbors(n_neighbors=k + 1).fit((data_z - mean) / std)
    dist, _ = nn.kneighbors((np.asarray(points, dtype=np.float64) - mean) / std)
    keep = np.where(dist[:, :1] < 1e-9, dist[:, 1:], dist[:, :-1])
    return keep.mean(1)


def path_metrics(path: np.ndarray, data_z: np.ndarray, prior: Prior | None = None, k: int = 10,
                 steps: int = 64) -> dict:
    """How far ``path [M, zdim]`` (original units) strays from ``data_z [N, zdim]``.

    Returns a JSON-ready dict: ``points`` (M); ``knn_distance_mean`` and
    ``knn_distance_max``, the mean and largest over the points of
    :func:`knn_distances` (standardised units); ``length``, the summed step
    lengths in standardised units; with ``prior``, ``log_prob_mean`` and
    ``log_prob_min`` in nats (original units; ``Prior.log_prob`` with ``steps``).
    """
    path = np.asarray(path, dtype=np.float64)
    dist = knn_distances(path, data_z, k)
    _, std = standardisation(data_z)
    record = {"points": len(path), "knn_distance_mean": float(dist.mean()), "knn_distance_max": float(dist.max()),
              "length": float(np.linalg.norm(np.diff(path / std, axis=0), axis=1).sum())}
    if prior is not None:
        logp = prior.log_prob(path, steps=steps)
        record.update(log_prob_mean=float(logp.mean()), log_prob_min=float(logp.min()))
    return record
