"""cryodiff analyze, traverse and select end to end on a tiny trained run, and
one clear line with exit status 2 for each kind of bad input."""

import json
import shutil

import numpy as np
import pytest
import torch

from cryodiff.cli.main import main
from recon.io import read_metadata, read_particles, read_volume
from recon.run import load_run
from recon.synthetic import write_synthetic_dataset
from recon.training import TrainingData, TrainSettings, train_vae
from recon.vae import Architecture

BOX, ZDIM, K = 16, 4, 4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A VAE trained for 2 epochs on particles 20..319 of a 320-particle file,
    so the run's rows (0..299) differ from the particle indices."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("analyze")
    write_synthetic_dataset(root / "data", n=320, box=BOX, apix=6.0, snr=1.0, seed=0, grid=2)
    star = root / "data" / "particles.star"
    particles = read_particles(star)
    indices = np.arange(20, 320)
    meta = particles.meta.subset(indices)
    rotations, shifts = meta.require_poses()
    data = TrainingData(
        images=particles.images, indices=indices, rotations=rotations, shifts_px=shifts, ctf=meta.ctf, box=BOX, apix=6.0,
        source={"particles": str(star), "datadir": None, "poses": None, "ctf": None, "ind": None},
    )
    arch = Architecture(box=BOX, zdim=ZDIM, enc_dim=32, enc_layers=2, dec_dim=32, dec_layers=2)
    train_vae(data, arch, TrainSettings(epochs=2, batch_size=32, lr=1e-3), root / "run")
    yield root / "run"
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def analysed(run_dir):
    assert main(["analyze", str(run_dir), "--ksample", str(K), "--n-per-pc", "3", "--skip-umap", "-D", "8"]) == 0
    return run_dir / "analyze"


def test_analyze_writes_arrays_volumes_plots_and_summary(run_dir, analysed):
    z = load_run(run_dir).z_mu
    n = len(z)
    assert np.load(analysed / "pca.npy").shape == (n, ZDIM)
    assert not (analysed / "umap.npy").exists()
    labels = np.load(analysed / f"kmeans{K}" / "labels.npy")
    assert labels.shape == (n,) and set(labels) == set(range(K))
    rows = np.loadtxt(analysed / f"kmeans{K}" / "centers_ind.txt", dtype=int)
    centres = np.loadtxt(analysed / f"kmeans{K}" / "centers.txt")
    assert rows.shape == (K,) and centres.shape == (K, ZDIM)
    np.testing.assert_allclose(centres, z[rows], rtol=1e-6, atol=1e-6)  # centres are particles
    np.testing.assert_array_equal(labels[rows], np.arange(K))
    for folder, count in ((f"kmeans{K}", K), ("pc1", 3), ("pc2", 3)):
        vols = sorted((analysed / folder).glob("vol_*.mrc"))
        assert [v.name for v in vols] == [f"vol_{i:03d}.mrc" for i in range(count)]
    vol, apix = read_volume(analysed / "pc1" / "vol_002.mrc")
    assert vol.shape == (8, 8, 8) and apix == pytest.approx(6.0 * BOX / 8)
    assert np.loadtxt(analysed / "pc1" / "z.txt").shape == (3, ZDIM)
    for png in ("z_pca.png", "z_pca_hexbin.png", "pca_variance.png", "cluster_counts.png"):
        assert (analysed / png).stat().st_size > 5000
        assert f"({png})" in (analysed / "summary.md").read_text()
    html = (analysed / "summary.html").read_text()
    assert html.count("data:image/png;base64,") == 8 and "UMAP was skipped" in html  # 4 plots, training, 3 galleries
    for png in ("training.png", f"kmeans{K}_volumes.png", "pc1_volumes.png", "pc2_volumes.png"):
        assert (analysed / png).stat().st_size > 5000 and f"({png})" in (analysed / "summary.md").read_text()
    record = json.loads((analysed / "analysis.json").read_text())
    assert record["ksample"] == K and record["n_particles"] == n


def test_rerun_removes_volumes_that_no_longer_match(run_dir, tmp_path):
    out = tmp_path / "a"
    assert main(["analyze", str(run_dir), "-o", str(out), "--ksample", "3", "--pc", "1", "--n-per-pc", "2", "--skip-umap", "-D", "8"]) == 0
    assert len(list((out / "kmeans3").glob("vol_*.mrc"))) == 3
    assert main(["analyze", str(run_dir), "-o", str(out), "--ksample", "3", "--pc", "1", "--n-per-pc", "2", "--skip-umap", "--skip-vol"]) == 0
    assert len(list((out / "kmeans3").glob("vol_*.mrc"))) == 3  # same centres: kept
    assert main(["analyze", str(run_dir), "-o", str(out), "--ksample", "2", "--pc", "1", "--n-per-pc", "3", "--skip-umap", "--skip-vol"]) == 0
    assert len(list((out / "kmeans3").glob("vol_*.mrc"))) == 3  # another K goes beside it, as cryoDRGN's kmeans20/
    assert not list((out / "kmeans2").glob("vol_*.mrc")) and (out / "kmeans2" / "labels.npy").is_file()
    assert not list((out / "pc1").glob("vol_*.mrc"))  # other latents along PC1: removed
    assert json.loads((out / "analysis.json").read_text())["kmeans"] == [2, 3]


def test_traverse_pc_graph_and_direct(run_dir, analysed, tmp_path):
    z = load_run(run_dir).z_mu
    assert main(["traverse", str(run_dir), "--pc", "1", "-n", "4", "-D", "8"]) == 0
    pc = run_dir / "traverse" / "pc1"
    assert np.loadtxt(pc / "z.txt").shape == (4, ZDIM) and len(list(pc.glob("vol_*.mrc"))) == 4

    i, j = np.loadtxt(analysed / f"kmeans{K}" / "centers_ind.txt", dtype=int)[[0, -1]]
    assert main(["traverse", str(run_dir), "--graph", str(i), str(j), "-k", "8", "-o", str(tmp_path / "g"), "-D", "8"]) == 0
    path = np.loadtxt(tmp_path / "g" / "path_ind.txt", dtype=int, ndmin=1)
    assert path[0] == i and path[-1] == j and len(set(path)) == len(path)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "g" / "z.txt", ndmin=2), z[path], rtol=1e-6, atol=1e-6)
    assert len(list((tmp_path / "g").glob("vol_*.mrc"))) == len(path)

    assert main(["traverse", str(run_dir), "--direct", str(i), str(j), "-n", "5", "-o", str(tmp_path / "g"), "--skip-vol"]) == 0
    line = np.loadtxt(tmp_path / "g" / "z.txt")
    np.testing.assert_allclose(line[[0, -1]], z[[i, j]], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.diff(line, 2, axis=0), 0, atol=1e-6)
    assert not (tmp_path / "g" / "path_ind.txt").exists()  # left from the graph path: removed
    assert not list((tmp_path / "g").glob("vol_*.mrc"))  # other latents: old volumes removed


def test_select_clusters_writes_star_and_indices(run_dir, analysed, tmp_path):
    run_ = load_run(run_dir)
    labels = np.load(analysed / f"kmeans{K}" / "labels.npy")
    out = tmp_path / "subset.star"
    assert main(["select", str(run_dir), "--clusters", "0", "2", "-o", str(out)]) == 0
    expected = np.sort(run_.indices[np.isin(labels, [0, 2])])
    written = np.loadtxt(tmp_path / "subset.ind.txt", dtype=int)
    np.testing.assert_array_equal(written, expected)
    original = read_metadata(run_.config["data"]["particles"])
    subset = read_metadata(out)
    assert [n.split("@")[0] for n in subset.image_names] == [original.image_names[i].split("@")[0] for i in expected]
    np.testing.assert_array_equal(read_particles(out).images[:], read_particles(original.source).images[expected])
    np.testing.assert_allclose(subset.rotations, original.rotations[expected], atol=1e-5)
    np.testing.assert_allclose(subset.shifts_px, original.shifts_px[expected], atol=1e-4)
    np.testing.assert_allclose(subset.ctf[:, 2:], original.ctf[expected][:, 2:], atol=1e-3)

    assert main(["select", str(run_dir), "--clusters", "0", "2", "--invert-selection", "-o", str(tmp_path / "rest.star")]) == 0
    rest = np.loadtxt(tmp_path / "rest.ind.txt", dtype=int)
    np.testing.assert_array_equal(np.sort(np.r_[rest, written]), run_.indices)

    np.savetxt(tmp_path / "rows.txt", [5, 1, 5], fmt="%d")
    assert main(["select", str(run_dir), "--ind-file", str(tmp_path / "rows.txt"), "-o", str(tmp_path / "two.star")]) == 0
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "two.ind.txt", dtype=int), run_.indices[[1, 5]])


def test_bad_inputs_exit_2_with_one_line(run_dir, analysed, tmp_path, fails_with_one_line):
    fails_with_one_line(["analyze", str(tmp_path / "missing")], "not a cryodiff VAE run")
    fails_with_one_line(["analyze", str(run_dir), "--ksample", "1000", "--skip-vol"], "1000 clusters for 300 particles")
    fails_with_one_line(["analyze", str(run_dir), "-D", "9"], "9 is not an even box size")
    fails_with_one_line(["select", str(run_dir), "--clusters", "1", "--analysis", str(tmp_path), "-o", str(tmp_path / "s.star")],
                        "no k-means analysis here", "run cryodiff analyze")
    fails_with_one_line(["select", str(run_dir), "--clusters", "7", "-o", str(tmp_path / "s.star")], "cluster 7 does not exist")
    fails_with_one_line(["select", str(run_dir), "--clusters", "1", "-o", str(tmp_path / "s.txt")], "must end with .star")
    fails_with_one_line(["traverse", str(run_dir), "--graph", "0", "300"], "particle 300 is outside 0..299")
    fails_with_one_line(["traverse", str(run_dir), "--direct", "-1", "3"], "--direct", "-1 is not 0 or more")
    fails_with_one_line(["traverse", str(run_dir), "--pc", "5"], "PC 5 does not exist")

    stale = tmp_path / "stale"
    shutil.copytree(analysed, stale, ignore=shutil.ignore_patterns("*.mrc", "*.png"))
    record = json.loads((stale / "analysis.json").read_text())
    (stale / "analysis.json").write_text(json.dumps(record | {"latents_sha256": "0" * 64}))
    fails_with_one_line(["select", str(run_dir), "--clusters", "1", "--analysis", str(stale), "-o", str(tmp_path / "s.star")],
                        "made from other latents")


def test_selected_star_works_from_another_folder_and_working_directory(run_dir, analysed, tmp_path, monkeypatch):
    """The written star names its stacks relative to its own folder: backproject finds them
    from anywhere, without --datadir."""
    out = tmp_path / "deep" / "er" / "class.star"
    assert main(["select", str(run_dir), "--clusters", "0", "1", "-o", str(out)]) == 0
    name = read_metadata(out).image_names[0]
    assert not name.split("@")[1].startswith("/") and ".." in name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["backproject", str(out), "-o", "map.mrc", "--reg", "1"]) == 0
    assert read_volume(elsewhere / "map.mrc")[0].shape == (BOX, BOX, BOX)
    assert main(["select", str(run_dir), "--clusters", "0", "--absolute-paths", "-o", "abs.star"]) == 0
    assert read_metadata(elsewhere / "abs.star").image_names[0].split("@")[1].startswith("/")


def test_select_drops_the_worst_scores(run_dir, tmp_path, fails_with_one_line):
    import h5py

    run_ = load_run(run_dir)
    scores = np.random.default_rng(0).normal(size=len(run_.indices))
    order = np.random.default_rng(1).permutation(len(scores))  # score files need not be in run order
    with h5py.File(tmp_path / "scores.h5", "w") as h5:
        h5["log_prob"], h5["indices"] = scores[order], run_.indices[order]
    out = tmp_path / "clean.star"
    assert main(["select", str(run_dir), "--scores", str(tmp_path / "scores.h5"), "--drop-worst", "10", "-o", str(out)]) == 0
    kept = np.loadtxt(tmp_path / "clean.ind.txt", dtype=int)
    expected = np.sort(run_.indices[scores >= np.percentile(scores, 10)])
    np.testing.assert_array_equal(kept, expected)
    assert len(kept) == 270
    assert main(["select", str(run_dir), "--scores", str(tmp_path / "scores.h5"), "--min-log-prob", "0", "-o", str(out)]) == 0
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "clean.ind.txt", dtype=int), np.sort(run_.indices[scores >= 0]))
    fails_with_one_line(["select", str(run_dir), "--drop-worst", "5", "-o", str(out)], "--scores")
    fails_with_one_line(["select", str(run_dir), "--scores", str(tmp_path / "scores.h5"), "--drop-worst", "100", "-o", str(out)],
                        "--drop-worst", "above 0 and below 100")
    fails_with_one_line(["select", str(run_dir), "-o", str(out)], "no particles chosen")
