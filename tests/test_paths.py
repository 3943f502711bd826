"""PF-ODE interpolation, path metrics and particle scores against a known 2-D
two-mode mixture; cryodiff interpolate and score-particles end to end on a
tiny VAE run, and one line with exit status 2 for each kind of bad input."""

import json

import h5py
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cryodiff.cli.main import main
from cryodiff.interpolation import slerp
from cryodiff.paths import graph_path_latents, knn_distances, linear_path, path_metrics
from cryodiff.prior import train_prior
from generative.mixtures import GaussianMixture
from recon.io import read_volume
from recon.run import load_run

MEANS = [[1.5, 0.5], [-1.5, -0.5]]
ZDIM = 4  # of the tiny VAE run in tests/conftest.py


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def two_modes():
    """Two equal modes 5.7 standard deviations apart: almost no particles in between."""
    return GaussianMixture.isotropic([0.5, 0.5], MEANS, [0.55, 0.55])


@pytest.fixture(scope="module")
def trained(two_modes, tmp_path_factory):
    """1,500 latents of the mixture and a prior trained on them for 1,000 steps (about 8 s)."""
    z = two_modes.sample(1500, generator=torch.Generator().manual_seed(0))[0].numpy().astype(np.float32)
    out = tmp_path_factory.mktemp("paths") / "prior"
    return train_prior(z, out, steps=1000, batch_size=256), z, out


@pytest.fixture(scope="module")
def ends(trained):
    """Rows of the latents nearest the two modes' centres."""
    _, z, _ = trained
    return [int(np.argmin(((z - m) ** 2).sum(1))) for m in MEANS]


def test_pf_ode_path_stays_near_the_data_and_returns_to_its_ends(two_modes, trained, ends):
    prior, z, _ = trained
    a, b = ends
    path = prior.interpolate(z[a], z[b], 12)
    assert path.shape == (12, 2) and path.dtype == np.float32
    np.testing.assert_allclose(path[[0, -1]], z[[a, b]], atol=5e-3)  # encode -> decode round trip
    line = linear_path(z[a], z[b], 12)
    rows, graph = graph_path_latents(z, a, b, 10)
    assert rows[0] == a and rows[-1] == b
    np.testing.assert_array_equal(graph, z[rows])
    metrics = {name: path_metrics(p, z, prior, steps=24) for name, p in (("prior", path), ("linear", line), ("graph", graph))}
    print(json.dumps(metrics, indent=1))
    assert metrics["prior"]["knn_distance_mean"] < 0.75 * metrics["linear"]["knn_distance_mean"]
    assert metrics["prior"]["log_prob_mean"] > metrics["linear"]["log_prob_mean"] + 0.5
    # the true density agrees: the PF-ODE path runs through likelier latents than the straight line
    true_path, true_line = (two_modes.log_prob(torch.from_numpy(p).double()).numpy() for p in (path, line))
    assert true_path.mean() > true_line.mean() + 0.5, (true_path.mean(), true_line.mean())


def test_slerp_keeps_the_ends_and_the_norm():
    x_a, x_b = torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    path = slerp(x_a, x_b, 5)
    torch.testing.assert_close(path[[0, -1]], torch.stack([x_a, x_b]))
    torch.testing.assert_close(path.norm(dim=1), torch.full((5,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(path[2], torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) * 3 / np.sqrt(2))
    torch.testing.assert_close(slerp(x_a, 2 * x_a, 3)[1], 1.5 * x_a)  # parallel: linear


def test_knn_distances_match_brute_force_and_skip_the_point_itself():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 3)) * [1.0, 2.0, 0.5] + 4.0
    points = np.concatenate([data[:3], rng.normal(size=(2, 3))])
    u, p = (data - data.mean(0)) / data.std(0), (points - data.mean(0)) / data.std(0)
    dist = np.sort(np.linalg.norm(p[:, None] - u[None], axis=2), axis=1)
    expected = np.concatenate([dist[:3, 1:5].mean(1), dist[3:, :4].mean(1)])
    np.testing.assert_allclose(knn_distances(points, data, k=4), expected, rtol=1e-10)


def test_score_particles_ranks_injected_outliers_low(two_modes, trained, tmp_path):
    prior, _, prior_dir = trained
    inliers = two_modes.sample(570, generator=torch.Generator().manual_seed(1))[0].numpy()
    box = np.random.default_rng(2).uniform([-5.0, -4.0], [5.0, 4.0], size=(400, 2))
    outliers = box[two_modes.log_prob(torch.from_numpy(box)).numpy() < -12][:30]  # 5%, far from both modes
    assert len(outliers) == 30
    z = np.concatenate([inliers, outliers]).astype(np.float32)
    order = np.random.default_rng(3).permutation(len(z))
    np.save(tmp_path / "z.npy", z[order])
    is_outlier = (np.arange(len(z)) >= len(inliers))[order]
    argv = ["score-particles", str(prior_dir), "--latents", str(tmp_path / "z.npy"), "-o", str(tmp_path / "scores.h5"),
            "--steps", "24", "-b", "256"]
    assert main(argv) == 0
    with h5py.File(tmp_path / "scores.h5", "r") as h5:
        log_prob, indices = h5["log_prob"][()], h5["indices"][()]
    np.testing.assert_array_equal(indices, np.arange(len(z)))
    np.testing.assert_allclose(log_prob[:5], prior.log_prob(z[order][:5], steps=24), rtol=1e-5)
    auc = roc_auc_score(is_outlier, -log_prob)
    print("AUC", auc)
    assert auc > 0.95, auc
    # Hutchinson's estimate with one probe: noisier scores, the same ranking of outliers
    assert main(argv[:4] + ["-o", str(tmp_path / "probed.h5"), "--steps", "24", "-b", "256", "--probes", "1"]) == 0
    with h5py.File(tmp_path / "probed.h5", "r") as h5:
        probed = h5["log_prob"][()]
        assert h5.attrs["probes"] == 1
    assert 0 < np.abs(probed - log_prob).mean() < 1.0
    assert roc_auc_score(is_outlier, -probed) > 0.95


@pytest.fixture(scope="module")
def vae_run(tiny_vae_run, tmp_path_factory):
    """The tiny VAE of tests/conftest.py and a prior of 30 steps on its latents."""
    prior = tmp_path_factory.mktemp("tiny_prior") / "prior"
    train_prior(load_run(tiny_vae_run).z_mu, prior, steps=30, batch_size=32)
    return tiny_vae_run, prior


def test_interpolate_writes_three_paths_metrics_and_volumes(vae_run, tmp_path):
    run_dir, prior_dir = vae_run
    out = tmp_path / "path"
    argv = ["interpolate", str(prior_dir), "--run", str(run_dir), "--from", "3", "--to", "40", "-n", "4", "-o", str(out),
            "--volumes", "-D", "8", "-k", "5", "--steps", "8"]
    assert main(argv) == 0
    run_ = load_run(run_dir)
    z_prior, z_linear, z_graph = (np.loadtxt(out / f"z_{name}.txt", ndmin=2) for name in ("prior", "linear", "graph"))
    assert z_prior.shape == z_linear.shape == (4, ZDIM)
    np.testing.assert_allclose(z_linear[[0, -1]], run_.z_mu[[3, 40]], rtol=1e-6, atol=1e-7)
    record = json.loads((out / "metrics.json").read_text())
    assert record["graph_rows"][0] == 3 and record["graph_rows"][-1] == 40
    np.testing.assert_allclose(z_graph, run_.z_mu[record["graph_rows"]], rtol=1e-6, atol=1e-7)
    for name in ("prior", "linear", "graph"):
        metrics = record["paths"][name]
        assert set(metrics) == {"points", "knn_distance_mean", "knn_distance_max", "length", "log_prob_mean", "log_prob_min"}
        assert np.isfinite(list(metrics.values())).all()
    assert record["paths"]["prior"]["points"] == 4 and record["paths"]["graph"]["points"] == len(z_graph)
    for i in range(4):
        vol, apix = read_volume(out / f"vol_{i:03d}.mrc")
        np.testing.assert_allclose(vol, run_.volume(z_prior[i], box=8), rtol=1e-4, atol=1e-5)
        assert apix == pytest.approx(run_.apix_at(8))


def test_score_particles_of_a_run_keeps_its_indices(vae_run, tmp_path):
    run_dir, prior_dir = vae_run
    assert main(["score-particles", str(prior_dir), "--run", str(run_dir), "-o", str(tmp_path / "s.h5"), "--steps", "8"]) == 0
    run_ = load_run(run_dir)
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        np.testing.assert_array_equal(h5["indices"][()], run_.indices)
        assert h5["log_prob"].shape == (96,) and np.isfinite(h5["log_prob"][()]).all()


def test_bad_inputs_exit_2_with_one_line(vae_run, tmp_path, fails_with_one_line):
    run_dir, prior_dir = vae_run
    out = str(tmp_path / "out")
    base = ["interpolate", str(prior_dir), "--run", str(run_dir), "-o", out]
    fails_with_one_line(base + ["--from", "0", "--to", "96"], "--to", "row 96", "0 to 95")
    fails_with_one_line(base + ["--from", "-1", "--to", "5"], "--from")
    fails_with_one_line(base + ["--from", "5", "--to", "5"], "itself")
    fails_with_one_line(base + ["--from", "0", "--to", "5", "-n", "1"], "-n")
    fails_with_one_line(["interpolate", str(tmp_path / "none"), "--run", str(run_dir), "--from", "0", "--to", "1", "-o", out],
                        "not a cryodiff prior")
    scores = str(tmp_path / "s.h5")
    fails_with_one_line(["score-particles", str(tmp_path / "none"), "--run", str(run_dir), "-o", scores], "not a cryodiff prior")
    fails_with_one_line(["score-particles", str(prior_dir), "--run", str(run_dir), "-o", str(tmp_path / "s.txt")], ".h5")
    np.save(tmp_path / "z2.npy", np.zeros((20, 2), np.float32))
    fails_with_one_line(["score-particles", str(prior_dir), "--latents", str(tmp_path / "z2.npy"), "-o", scores], "zdim 2", "zdim 4")
    fails_with_one_line(["score-particles", str(prior_dir), "--run", str(run_dir), "-o", scores, "--steps", "0"], "--steps")
    assert not (tmp_path / "s.h5").exists()
