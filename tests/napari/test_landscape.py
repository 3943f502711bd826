"""The explorer's computations without a viewer: layout, reuse of cryodiff analyze, boxes, finding the prior."""

import json
import shutil

import numpy as np
import pytest

from cryodiff.napari._jobs import decode_boxes
from cryodiff.prior import matching_prior
from cryodiff.napari._landscape import histogram_density, landscape
from recon.analysis import pca
from recon.run import load_run


@pytest.fixture
def run_copy(tiny_vae_run, tmp_path):
    """A copy of the tiny run that a test may add files to."""
    return shutil.copytree(tiny_vae_run, tmp_path / "run")


def test_pca_layout_and_placing_latents(tiny_vae_run):
    z = load_run(tiny_vae_run).z_mu
    land = landscape(z, "PCA", 5)
    np.testing.assert_allclose(land.xy, pca(z).projections[:, :2], rtol=1e-6)
    np.testing.assert_allclose(land.place(z[:7]), land.xy[:7], atol=1e-9)
    assert land.axis_labels[0].startswith("PC1 (") and len(land.centre_rows) == 5
    assert set(np.unique(land.labels)) == set(range(5))


def test_saved_analysis_is_reused(run_copy):
    from cryodiff.cli.main import main

    assert main(["analyze", str(run_copy), "--ksample", "5", "--skip-vol", "--skip-umap", "--pc", "0"]) == 0
    z = load_run(run_copy).z_mu
    umap = np.random.default_rng(1).standard_normal((len(z), 2)).astype(np.float32)
    np.save(run_copy / "analyze" / "umap.npy", umap)
    labels = (np.load(run_copy / "analyze" / "kmeans5" / "labels.npy") + 1) % 5  # not what k-means would give
    np.save(run_copy / "analyze" / "kmeans5" / "labels.npy", labels)
    land = landscape(z, "UMAP", 5, run_copy)
    np.testing.assert_array_equal(land.xy, umap)
    np.testing.assert_array_equal(land.labels, labels)
    assert land.axis_labels == ("UMAP1", "UMAP2")
    # UMAP places a new latent at its nearest particle
    np.testing.assert_array_equal(land.place(z[3] + 1e-4), umap[3:4])
    # other latents: the saved analysis does not belong to them
    assert not np.array_equal(landscape(z[:-1], "PCA", 5, run_copy).labels, labels[:-1])


def test_histogram_density_counts_the_bin():
    xy = np.array([[0.0, 0.0], [0.01, 0.0], [1.0, 1.0], [0.5, 0.5]])
    density, bins = histogram_density(xy)
    assert bins == 10
    np.testing.assert_array_equal(density, [2, 2, 1, 1])


def test_decode_boxes():
    assert decode_boxes(64) == [64, 48, 32, 16]
    assert decode_boxes(16) == [16, 12, 8]
    assert decode_boxes(90) == [90, 68, 44, 22]  # even sizes, rounded half to even


def test_matching_prior_is_found_beside_the_run(run_copy, tiny_prior):
    z = load_run(run_copy).z_mu
    assert matching_prior(run_copy, z) is None
    shutil.copytree(tiny_prior, run_copy / "prior")
    assert matching_prior(run_copy, z) == run_copy / "prior"
    record = json.loads((run_copy / "prior" / "prior.json").read_text())
    record["mean"] = [m + 1.0 for m in record["mean"]]  # a prior of other latents
    (run_copy / "prior" / "prior.json").write_text(json.dumps(record))
    assert matching_prior(run_copy, z) is None
