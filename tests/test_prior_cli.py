"""cryodiff train-prior and sample end to end: a cryodiff run, a cryoDRGN
z.pkl, N(0, I) contrast, decoded volumes, and one line with exit status 2 for
each kind of bad input."""

import json
import pickle

import numpy as np
import pytest
import torch

from cryodiff.cli.main import main
from generative.mixtures import GaussianMixture
from recon.io import read_volume
from recon.run import load_run

ZDIM = 4  # of the tiny VAE run in tests/conftest.py


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_dir(tiny_vae_run):
    """A VAE with zdim 4 trained for one epoch on 96 tiny particles (tests/conftest.py)."""
    return tiny_vae_run


@pytest.fixture(scope="module")
def two_modes():
    """A 2-D law with two well separated modes (70% / 30%) in non-standard units."""
    return GaussianMixture.isotropic([0.7, 0.3], [[4.0, -1.0], [-2.0, 3.0]], [0.5, 0.4])


def test_cryodrgn_pkl_to_samples_and_gaussian_contrast(two_modes, tmp_path):
    z, _ = two_modes.sample(2000, generator=torch.Generator().manual_seed(0))
    with open(tmp_path / "z.9.pkl", "wb") as f:
        pickle.dump(z.numpy().astype(np.float32), f)
        pickle.dump(np.zeros((2000, 2), np.float32), f)
    assert main(["train-prior", str(tmp_path / "z.9.pkl"), "-o", str(tmp_path / "prior"), "--steps", "300", "-b", "256"]) == 0
    record = json.loads((tmp_path / "prior" / "prior.json").read_text())
    assert record["zdim"] == 2 and record["n_latents"] == 2000 and record["steps_done"] == 300
    np.testing.assert_allclose(record["mean"], z.mean(0).numpy(), rtol=1e-5, atol=1e-5)
    logged = [json.loads(line)["step"] for line in (tmp_path / "prior" / "log.jsonl").read_text().splitlines()]
    assert logged == [100, 200, 300]

    out = tmp_path / "samples.txt"
    argv = ["sample", str(tmp_path / "prior"), "-n", "500", "-o", str(out), "--solver", "dpmpp_2m", "--compare-gaussian"]
    assert main(argv) == 0
    samples, gaussian = np.loadtxt(out), np.loadtxt(tmp_path / "samples.gaussian.txt")
    assert samples.shape == gaussian.shape == (500, 2)
    fractions = np.bincount(two_modes.assign(torch.from_numpy(samples)).numpy(), minlength=2) / 500
    assert abs(fractions[0] - 0.7) < 0.06, fractions
    # nearly every prior sample lies near a mode (log-density > -8, within about 3.7 stds); N(0, I) draws do not
    def near(x):
        return (two_modes.log_prob(torch.from_numpy(x)) > -8).double().mean().item()

    assert near(samples) > 0.95 and near(gaussian) < 0.05
    assert abs(gaussian.mean()) < 0.15 and abs(gaussian.std() - 1) < 0.1
    assert main(argv) == 0
    np.testing.assert_array_equal(np.loadtxt(out), samples)  # same seed, same latents


def test_run_directory_to_volumes(run_dir, tmp_path):
    prior, vols = tmp_path / "prior", tmp_path / "vols"
    assert main(["train-prior", str(run_dir), "-o", str(prior), "--steps", "20", "-b", "32"]) == 0
    assert main(["train-prior", str(run_dir), "-o", str(prior), "--steps", "30", "-b", "32", "--resume"]) == 0
    assert json.loads((prior / "prior.json").read_text())["steps_done"] == 30
    argv = ["sample", str(prior), "-n", "3", "-o", str(tmp_path / "z.npy"), "--compare-gaussian",
            "--volumes", str(vols), "--run", str(run_dir), "-D", "8", "--steps", "4"]
    assert main(argv) == 0
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (3, ZDIM) and np.load(tmp_path / "z.gaussian.npy").shape == (3, ZDIM)
    run_ = load_run(run_dir)
    for i in range(3):
        vol, apix = read_volume(vols / f"vol_{i:03d}.mrc")
        np.testing.assert_allclose(vol, run_.volume(z[i], box=8), rtol=1e-5, atol=1e-6)
        assert apix == pytest.approx(run_.apix_at(8))
        assert (vols / "gaussian" / f"vol_{i:03d}.mrc").is_file()
    np.testing.assert_allclose(np.loadtxt(vols / "z.txt"), z, rtol=1e-6)


def test_bad_inputs_exit_2_with_one_line(run_dir, tmp_path, capsys, fails_with_one_line):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Exploit()))
    fails_with_one_line(["train-prior", str(tmp_path / "missing.pkl"), "-o", str(tmp_path / "p")], "file not found")
    fails_with_one_line(["train-prior", str(tmp_path / "evil.pkl"), "-o", str(tmp_path / "p")], "refusing to unpickle")
    fails_with_one_line(["train-prior", str(run_dir), "-o", str(tmp_path / "p"), "--steps", "0"], "--steps")
    assert not (tmp_path / "p").exists()
    np.save(tmp_path / "z3.npy", np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32))
    prior = tmp_path / "prior3"
    assert main(["train-prior", str(tmp_path / "z3.npy"), "-o", str(prior), "--steps", "5", "-b", "16"]) == 0
    capsys.readouterr()
    fails_with_one_line(["train-prior", str(tmp_path / "z3.npy"), "-o", str(prior), "--steps", "5"], "already holds a prior", "--resume")
    out = str(tmp_path / "s.txt")
    fails_with_one_line(["sample", str(prior), "-n", "2", "-o", out, "--volumes", str(tmp_path / "v"), "--run", str(run_dir)],
                        "zdim 4", "zdim 3")
    fails_with_one_line(["sample", str(prior), "-n", "2", "-o", out, "--volumes", str(tmp_path / "v")], "--run")
    fails_with_one_line(["sample", str(prior), "-n", "2", "-o", str(tmp_path / "s.csv")], ".txt or .npy")
    fails_with_one_line(["sample", str(tmp_path / "nothing"), "-n", "2", "-o", out], "not a cryodiff prior")
    fails_with_one_line(["sample", str(prior), "-n", "0", "-o", out], "-n")
