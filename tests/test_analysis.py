"""Latent-space analysis against known ground truth: synthetic latents with a
dominant direction, separated blobs and a curved manifold."""

import sys

import numpy as np
import pytest

from recon.analysis import (
    direct_path,
    graph_path,
    kmeans_centres,
    knn_graph,
    latent_medoid,
    pc_traversal,
    pca,
    umap_embedding,
)
from recon.errors import InputError


def blobs(n_per=60, seed=0):
    """Three tight blobs along x (centres -10, 0, 10) in 4-D; labels 0, 1, 2."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, 4))
    centres[:, 0] = [10.0, -10.0, 0.0]  # deliberately not in x order
    z = np.concatenate([c + 0.3 * rng.normal(size=(n_per, 4)) for c in centres])
    return z.astype(np.float32), np.repeat([2, 0, 1], n_per)


def semicircle(n=200, seed=0):
    """Points on the upper unit semicircle at jittered, increasing angles 0..pi
    (no gaps), slightly off the plane, in 3-D."""
    rng = np.random.default_rng(seed)
    step = np.pi / (n - 1)
    angle = np.linspace(0, np.pi, n) + np.r_[0.0, rng.uniform(-0.3 * step, 0.3 * step, n - 2), 0.0]
    z = np.stack([np.cos(angle), np.sin(angle), 0.01 * rng.normal(size=n)], 1)
    return z, angle


def test_pca_recovers_the_dominant_direction():
    rng = np.random.default_rng(1)
    u = rng.normal(size=6)
    u /= np.linalg.norm(u)
    z = 3.0 * rng.normal(size=(500, 1)) * u + 0.1 * rng.normal(size=(500, 6)) + 5.0
    fit = pca(z)
    assert abs(fit.components[0] @ u) > 0.999
    assert fit.explained_variance_ratio[0] > 0.98 and fit.explained_variance_ratio.sum() == pytest.approx(1.0)
    assert fit.projections.shape == (500, 6)
    np.testing.assert_allclose(fit.projections, (z - z.mean(0)) @ fit.components.T, atol=1e-9)
    largest = fit.components[np.arange(6), np.abs(fit.components).argmax(1)]
    assert (largest > 0).all()  # sign convention


def test_pc_traversal_runs_along_the_component_between_percentiles():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(1000, 3)) * [4.0, 1.0, 0.2]
    fit = pca(z)
    path = pc_traversal(fit, 1, n=7)
    t = (path - fit.mean) @ fit.components.T
    np.testing.assert_allclose(t[:, 1:], 0, atol=1e-9)  # on the PC1 line through the mean
    lo, hi = np.percentile(fit.projections[:, 0], (5, 95))
    np.testing.assert_allclose(t[:, 0], np.linspace(lo, hi, 7), atol=1e-9)
    by_percentile = pc_traversal(fit, 2, n=5, percentile_spacing=True)
    t2 = (by_percentile - fit.mean) @ fit.components[1]
    np.testing.assert_allclose(t2, np.percentile(fit.projections[:, 1], [5, 27.5, 50, 72.5, 95]), atol=1e-9)
    with pytest.raises(InputError, match="PC 4 does not exist"):
        pc_traversal(fit, 4)


def test_kmeans_centres_are_particles_one_per_blob_numbered_along_pc1():
    z, truth = blobs()
    labels, centres, rows = kmeans_centres(z, 3)
    np.testing.assert_array_equal(centres, z[rows])
    np.testing.assert_array_equal(labels[rows], [0, 1, 2])
    # PC1 is +-x, so the clusters come out in x order or exactly reversed
    assert np.array_equal(labels, truth) or np.array_equal(labels, 2 - truth)
    with pytest.raises(InputError, match="clusters for 180 particles"):
        kmeans_centres(z, 181)


def test_graph_path_follows_the_curve_not_the_chord():
    z, angle = semicircle()
    rows, length = graph_path(z, 0, len(z) - 1, k=5)
    assert rows[0] == 0 and rows[-1] == len(z) - 1
    radius = np.linalg.norm(z[rows, :2], axis=1)
    assert radius.min() > 0.97  # never cuts inside the circle
    assert np.all(np.diff(angle[rows]) > 0)  # walks along the arc in order
    assert length == pytest.approx(np.pi, rel=0.03)  # arc length, not the chord (2)
    chord = direct_path(z[0], z[-1], 11)
    assert np.linalg.norm(chord[5, :2]) < 0.05


def test_graph_path_reports_disconnected_particles():
    z, _ = blobs()
    with pytest.raises(InputError, match=r"not connected.*Fix: use more neighbours \(e.g. -k 6\)"):
        graph_path(z, 0, len(z) - 1, k=3)


def test_knn_graph_is_symmetric_and_keeps_identical_latents_connected():
    z = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    graph = knn_graph(z, 1)
    assert (graph != graph.T).nnz == 0
    rows, length = graph_path(z, 1, 4, k=1)
    np.testing.assert_array_equal(rows, [1, 0, 2, 3, 4])
    assert length == pytest.approx(3.0)
    with pytest.raises(InputError, match="5 neighbours for 5 particles"):
        knn_graph(z, 5)


def test_direct_path_is_linear_with_exact_ends():
    z0, z1 = np.array([1.0, -2.0, 0.5]), np.array([3.0, 2.0, -1.5])
    path = direct_path(z0, z1, 6)
    assert path.shape == (6, 3)
    np.testing.assert_allclose(path[[0, -1]], [z0, z1])
    np.testing.assert_allclose(np.diff(path, 2, axis=0), 0, atol=1e-12)


def test_latent_medoid_matches_brute_force():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(301, 5))
    brute = np.argmin(np.linalg.norm(z[:, None] - z[None], axis=-1).sum(1))
    assert latent_medoid(z, chunk=64) == brute
    assert latent_medoid(np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])) == 2


def test_umap_missing_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(InputError, match="pip install umap-learn, or pass --skip-umap"):
        umap_embedding(np.zeros((10, 3)))


@pytest.mark.slow
def test_umap_keeps_blobs_apart():
    pytest.importorskip("umap")
    z, truth = blobs()
    emb = umap_embedding(z)
    assert emb.shape == (len(z), 2) and emb.dtype == np.float32
    means = np.array([emb[truth == i].mean(0) for i in range(3)])
    spread = max(np.linalg.norm(emb[truth == i] - means[i], axis=1).max() for i in range(3))
    gaps = [np.linalg.norm(means[a] - means[b]) for a, b in ((0, 1), (1, 2), (0, 2))]
    assert min(gaps) > spread


def test_umap_fitted_on_a_sample_places_the_rest_with_their_blob():
    pytest.importorskip("umap")
    z, truth = blobs(n_per=200)
    counted = []
    emb = umap_embedding(z, fit_limit=150, progress=counted.append)
    assert sum(counted) == len(z) and len(counted) == 1 + int(np.ceil((len(z) - 150) / 150))
    means = np.array([emb[truth == i].mean(0) for i in range(3)])
    nearest = np.argmin(np.linalg.norm(emb[:, None] - means[None], axis=2), 1)
    np.testing.assert_array_equal(nearest, truth)  # every placed particle lands with its own blob


def test_kmeans_on_mini_batches_above_the_limit_finds_the_blobs(monkeypatch):
    import recon.analysis

    monkeypatch.setattr(recon.analysis, "KMEANS_FULL_LIMIT", 100)
    z, truth = blobs(n_per=400)
    labels, centres, rows = kmeans_centres(z, 3)
    np.testing.assert_array_equal(centres, z[rows])
    assert np.array_equal(labels, truth) or np.array_equal(labels, 2 - truth)
