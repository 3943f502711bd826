"""The latent landscape of a run in two dimensions: coordinates, clusters and density per particle.

:func:`landscape` projects the particle latents ``z`` [N, zdim] on their
first two principal components or on a 2-D UMAP embedding
(:mod:`recon.analysis`), clusters them with k-means (centres snapped to
particles) and counts the particles around each one, reusing what
``cryodiff analyze`` saved in ``RUN/analyze`` when it belongs to the same
latents (UMAP is slow for many particles). :meth:`Landscape.place`
puts any other latents (prior samples, path points) in the same plot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryodiff.analysis_report import pca_axis_labels
from cryodiff.analysis_record import read_record, saved_kmeans
from recon.analysis import LatentPCA, kmeans_centres, nearest_rows, pca, umap_embedding
from recon.io.safe_read import load_npy

KINDS = ("PCA", "UMAP")


@dataclass(frozen=True)
class Landscape:
    """Particle latents ``z`` [N, zdim] laid out in 2-D.

    ``xy`` [N, 2] plot coordinates (PC1, PC2 or UMAP1, UMAP2; a 1-D latent is
    plotted against a random spread in [0, 1]); ``axis_labels`` names them;
    ``labels`` [N] k-means cluster (0..K-1, numbered along PC1);
    ``centre_rows`` [K] the particle at each cluster centre; ``density`` [N]
    particles in the same bin of a 2-D histogram of ``xy``; ``bins`` bins per axis.
    """

    z: np.ndarray
    kind: str
    xy: np.ndarray
    axis_labels: tuple[str, str]
    labels: np.ndarray
    centre_rows: np.ndarray
    density: np.ndarray
    bins: int
    fit: LatentPCA

    def place(self, latents: np.ndarray) -> np.ndarray:
        """Plot coordinates ``[M, 2]`` of ``latents`` [M, zdim].

        PCA: their exact projection. UMAP has no exact map for new points, so
        each is drawn at its nearest particle (points far from the data look
        closer than they are; compare distances in PCA).
        """
        latents = np.asarray(latents, dtype=np.float64).reshape(-1, self.z.shape[1])
        if self.kind == "UMAP":
            return self.xy[nearest_rows(self.z, latents)]
        projected = (latents - self.fit.mean) @ self.fit.components[:2].T
        if projected.shape[1] == 1:
            return np.c_[projected, np.full(len(projected), 0.5)]
        return projected


def saved_analysis(run_path: Path, z: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """``umap`` [N, 2], ``labels`` [N] and ``rows`` [k] from ``run_path/analyze`` if its
    ``analysis.json`` fingerprint matches ``z``; the arrays it lacks are left out."""
    folder = Path(run_path) / "analyze"
    if read_record(folder, z) is None:
        return {}
    found = {}
    if (folder / "umap.npy").is_file():
        umap = load_npy(folder / "umap.npy", "the saved UMAP")  # declared size checked before reading
        if umap.shape == (len(z), 2):
            found["umap"] = umap
    kmeans = saved_kmeans(folder, z, k)
    if kmeans is not None:
        found["labels"], found["rows"] = kmeans
    return found


def histogram_density(xy: np.ndarray) -> tuple[np.ndarray, int]:
    """Particles in the bin of each point of ``xy`` [N, 2] in a square 2-D histogram, and the bins per axis
    (``clip(sqrt(N) / 2, 10, 60)``, as ``cryodiff analyze``'s density plot)."""
    bins = int(np.clip(np.sqrt(len(xy)) / 2, 10, 60))
    counts, xedges, yedges = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins)
    ix = np.clip(np.searchsorted(xedges, xy[:, 0], side="right") - 1, 0, bins - 1)
    iy = np.clip(np.searchsorted(yedges, xy[:, 1], side="right") - 1, 0, bins - 1)
    return counts[ix, iy].astype(np.int64), bins


def pca_xy(fit: LatentPCA, seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """PC1/PC2 coordinates ``[N, 2]`` of the particles and the axis names; a 1-D latent gets
    a seeded random spread in [0, 1] as its second coordinate."""
    if fit.projections.shape[1] == 1:
        spread = np.random.default_rng(seed).uniform(0, 1, len(fit.projections))
        return np.c_[fit.projections[:, 0], spread], ("z - mean", "random spread (no meaning)")
    return fit.projections[:, :2], pca_axis_labels(fit.explained_variance_ratio)


def landscape(z: np.ndarray, kind: str = "PCA", k: int = 20, run_path: Path | None = None, seed: int = 0) -> Landscape:
    """Lay out ``z`` [N, zdim] in ``kind`` coordinates (:data:`KINDS`) with ``k`` k-means clusters.

    With ``run_path``, a matching ``cryodiff analyze`` output in
    ``run_path/analyze`` supplies the UMAP embedding and, if it used the same
    number of clusters, the k-means labels. UMAP needs zdim >= 3.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    z = np.asarray(z, dtype=np.float32)
    saved = saved_analysis(run_path, z, k) if run_path is not None else {}
    fit = pca(z)
    if kind == "UMAP":
        if z.shape[1] < 3:
            raise ValueError(f"UMAP needs latents of 3 or more dimensions, these have {z.shape[1]}; use PCA")
        xy = saved["umap"] if "umap" in saved else umap_embedding(z, seed=seed)
        names = ("UMAP1", "UMAP2")
    else:
        xy, names = pca_xy(fit, seed)
    if "rows" in saved:
        labels, rows = saved["labels"], saved["rows"]
    else:
        labels, _, rows = kmeans_centres(z, k, seed=seed)
    density, bins = histogram_density(np.asarray(xy, dtype=np.float64))
    return Landscape(z, kind, np.asarray(xy, dtype=np.float64), names, labels, rows, density, bins, fit)
