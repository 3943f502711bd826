"""Latent-space analysis of a trained VAE: the tools cryoDRGN users know.

Every function takes latents ``z`` as a float array ``[N, zdim]`` (a run's
``z_mu``) and returns numpy arrays; nothing is plotted or written here.
Particles are named by their *row* in ``z`` (the run's particle order; the
position in the particle file is ``run.indices[row]``)::

    from recon.analysis import pca, pc_traversal, kmeans_centres, graph_path
    fit = pca(run.z_mu)                   # projections, explained variance
    zs = pc_traversal(fit, 1, n=10)       # [10, zdim] along PC1, 5th..95th percentile
    labels, centres, rows = kmeans_centres(run.z_mu, 20)
    rows_on_path, length = graph_path(run.z_mu, rows[0], rows[5], k=10)

* :func:`pca`, :func:`pc_traversal`: principal components of ``z`` and
  latents along one of them.
* :func:`umap_embedding`: 2-D UMAP (needs ``umap-learn``), fitted on a sample above
  :data:`UMAP_FIT_LIMIT` particles.
* :func:`kmeans_centres`, :func:`nearest_rows`: k-means with each centre
  snapped to the particle nearest to it, so every centre is a real latent.
* :func:`knn_graph`, :func:`graph_path`: shortest path between two particles
  through a k-nearest-neighbour graph, which stays where particles are.
* :func:`direct_path`: straight line between two latents.
* :func:`latent_medoid`: the particle with the least total distance to the others.

Distances are Euclidean in latent units.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors, kneighbors_graph

from recon.errors import InputError


class LatentPCA(NamedTuple):
    """Principal components of latents ``[N, zdim]``.

    ``mean`` [zdim]; ``components`` [C, zdim], unit rows, PC1 first, with
    C = min(N, zdim); ``explained_variance_ratio`` [C], fraction of the total
    variance per PC; ``projections`` [N, C], coordinates of each particle along the PCs
    (``(z - mean) @ components.T``).
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    projections: np.ndarray


def pca(z: np.ndarray) -> LatentPCA:
    """Fit PCA on ``z`` [N, zdim] (all components, centred, not whitened).

    Each component's sign is fixed so that its largest coordinate is
    positive, which makes the result independent of the solver.
    """
    z = np.asarray(z, dtype=np.float64)
    fit = PCA(n_components=min(z.shape), svd_solver="full").fit(z)
    components = fit.components_
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])
    components = components * signs[:, None]
    return LatentPCA(fit.mean_, components, fit.explained_variance_ratio_, (z - fit.mean_) @ components.T)


def pc_traversal(fit: LatentPCA, k: int, n: int = 10, lo: float = 5.0, hi: float = 95.0, percentile_spacing: bool = False) -> np.ndarray:
    """``n`` latents ``[n, zdim]`` along principal component ``k`` (1-based).

    The points run from the ``lo``-th to the ``hi``-th percentile of the
    particles' projections on PC k, on the line through the mean of ``z``
    along that component (other PC coordinates 0). By default they are
    evenly spaced in value (cryoDRGN ``analyze``); with
    ``percentile_spacing`` at evenly spaced percentiles, so each step covers
    the same number of particles.
    """
    if not 1 <= k <= len(fit.components):
        c = len(fit.components)
        raise InputError("--pc", f"PC {k} does not exist (the latents have {c} dimensions)", f"choose a PC from 1 to {c}")
    proj = fit.projections[:, k - 1]
    if percentile_spacing:
        values = np.percentile(proj, np.linspace(lo, hi, n))
    else:
        values = np.linspace(*np.percentile(proj, (lo, hi)), n)
    return fit.mean + values[:, None] * fit.components[k - 1]


#: Above this many particles UMAP is fitted on a random sample of this many and places the others with
#: the fitted model's ``transform``: the fit's cost grows faster than linearly (umap-learn's
#: nearest-neighbour descent and layout), placing a point is a neighbour search and a short
#: optimisation. 100k points show every cluster a data set of this kind holds.
UMAP_FIT_LIMIT = 100_000
#: Above this many particles k-means runs on mini-batches (scikit-learn's ``MiniBatchKMeans``).
KMEANS_FULL_LIMIT = 200_000


def umap_embedding(z: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
                   fit_limit: int = UMAP_FIT_LIMIT, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """2-D UMAP embedding ``[N, 2]`` of ``z`` (umap-learn defaults, seeded).

    With more than ``fit_limit`` particles the embedding is fitted on a seeded random sample of
    ``fit_limit`` of them and the rest are placed by the fitted model (``transform``, in blocks
    of ``fit_limit``; ``progress(count)`` after each block, including the fitted sample).

    Distances in a UMAP plot are not meaningful beyond neighbourhoods; use it
    to see clusters, and PCA or the latents themselves to measure. The first
    call in a process spends ~15 s compiling numba code.
    """
    try:
        import umap
    except ImportError as err:
        raise InputError("umap-learn", f"UMAP is not available ({err})", "pip install umap-learn, or pass --skip-umap") from None
    z = np.asarray(z, dtype=np.float32)
    fit_rows = np.arange(len(z))
    if len(z) > fit_limit:
        fit_rows = np.sort(np.random.default_rng(seed).choice(len(z), size=fit_limit, replace=False))
    model = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(fit_rows) - 1), min_dist=min_dist, random_state=seed)
    out = np.empty((len(z), 2), np.float32)
    with warnings.catch_warnings():  # seeding makes UMAP single-threaded, and it says so
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        out[fit_rows] = model.fit_transform(z[fit_rows])
        if progress is not None:
            progress(len(fit_rows))
        rest = np.setdiff1d(np.arange(len(z)), fit_rows, assume_unique=True)
        for start in range(0, len(rest), fit_limit):
            block = rest[start : start + fit_limit]
            out[block] = model.transform(z[block])
            if progress is not None:
                progress(len(block))
    return out


def nearest_rows(z: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Row of ``z`` nearest to each of ``points`` ``[M, zdim]`` -> int ``[M]``."""
    nn = NearestNeighbors(n_neighbors=1).fit(z)
    return nn.kneighbors(np.asarray(points, dtype=np.float64), return_distance=False)[:, 0]


def kmeans_centres(z: np.ndarray, k: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means of ``z`` with each centre snapped to its nearest particle (on mini-batches
    above :data:`KMEANS_FULL_LIMIT` particles).

    Returns ``(labels [N], centres [k, zdim], rows [k])``: the cluster of
    each particle (0..k-1), the latents of the snapped centres and their rows
    in ``z`` (so ``centres == z[rows]``). Clusters are numbered in the order
    of their centres along PC1, so neighbouring numbers tend to be similar
    states.
    """
    z = np.asarray(z)
    if not 1 <= k <= len(z):
        raise InputError("--ksample", f"{k} clusters for {len(z)} particles", f"choose between 1 and {len(z)} clusters")
    if len(z) > KMEANS_FULL_LIMIT:  # Lloyd's full passes with 10 starts take minutes at a million particles
        fit = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=8192, random_state=seed).fit(z.astype(np.float64))
        fit.labels_ = fit.predict(z.astype(np.float64))
    else:
        fit = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z.astype(np.float64))
    order = np.argsort(fit.cluster_centers_ @ pca(z).components[0], kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    rows = nearest_rows(z, fit.cluster_centers_[order])
    return rank[fit.labels_], z[rows], rows


def knn_graph(z: np.ndarray, k: int = 10) -> csr_matrix:
    """Symmetric k-nearest-neighbour graph of ``z``: an edge joins two
    particles if either is among the other's ``k`` nearest, weighted by their
    Euclidean distance (identical latents get the smallest positive weight,
    since a sparse matrix drops zero weights). Sparse ``[N, N]``."""
    if not 1 <= k < len(z):
        raise InputError("-k", f"{k} neighbours for {len(z)} particles", f"choose between 1 and {len(z) - 1}")
    graph = kneighbors_graph(np.asarray(z, dtype=np.float64), k, mode="distance")
    graph.data = np.maximum(graph.data, np.finfo(np.float64).tiny)
    return graph.maximum(graph.T).tocsr()


def graph_path(z: np.ndarray, start: int, end: int, k: int = 10) -> tuple[np.ndarray, float]:
    """Shortest path from row ``start`` to row ``end`` of ``z`` through the
    k-nearest-neighbour graph (Dijkstra on :func:`knn_graph`).

    Returns ``(rows [M], length)``: the particles on the path, both ends
    included, and its length in latent units. Unlike a straight line, the
    path only steps between nearby particles, so it stays in populated parts
    of the latent space.
    """
    dist, pred = dijkstra(knn_graph(z, k), directed=False, indices=start, return_predecessors=True)
    if not np.isfinite(dist[end]):
        raise InputError(
            "-k",
            f"particles {start} and {end} are not connected in the {k}-nearest-neighbour graph",
            f"use more neighbours (e.g. -k {2 * k})",
        )
    rows = [end]
    while rows[-1] != start:
        rows.append(pred[rows[-1]])
    return np.asarray(rows[::-1], dtype=np.int64), float(dist[end])


def direct_path(z0: np.ndarray, z1: np.ndarray, n: int = 10) -> np.ndarray:
    """``n`` evenly spaced latents ``[n, zdim]`` on the line from ``z0`` to ``z1``, ends included."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) * np.asarray(z0, dtype=np.float64) + t * np.asarray(z1, dtype=np.float64)


def latent_medoid(z: np.ndarray, chunk: int = 2048) -> int:
    """Row of the particle whose summed Euclidean distance to all others is
    least (exact; O(N²·zdim) time, ``chunk`` rows of distances in memory)."""
    z = np.asarray(z, dtype=np.float64)
    sq = (z**2).sum(1)
    totals = np.empty(len(z))
    for start in range(0, len(z), chunk):
        block = z[start : start + chunk]
        d2 = sq[start : start + chunk, None] + sq[None, :] - 2 * block @ z.T
        totals[start : start + chunk] = np.sqrt(np.clip(d2, 0, None)).sum(1)
    return int(np.argmin(totals))
