"""cryoDRGN's older Hartley-domain models (``domain: hartley``): cryoDRGN's own test model
``het_weights.pkl`` + ``het_config.yaml`` imports, and gives the volumes cryoDRGN 4.3.1 gives."""

import pickle
import shutil

import numpy as np
import pytest

from cryodiff.cli.main import main
from recon.io import read_volume
from recon.run import load_run

Z = np.array([np.zeros(8), np.linspace(-1.5, 1.5, 8)], np.float32)


@pytest.fixture
def het_workdir(formats_dir, tmp_path):
    """cryoDRGN's test model laid out as a train_vae folder; its latents (absent from the test
    inputs) are a few stand-in rows, which the volumes do not depend on."""
    data = formats_dir / "cryodrgn_tests"
    workdir = tmp_path / "het"
    workdir.mkdir()
    shutil.copy(data / "het_config.yaml", workdir / "config.yaml")
    shutil.copy(data / "het_weights.pkl", workdir / "weights.pkl")
    with open(workdir / "z.pkl", "wb") as fh:
        pickle.dump(np.zeros((4, 8), np.float32), fh)
        pickle.dump(np.zeros((4, 8), np.float32), fh)
    return workdir


def test_hartley_model_imports_and_decodes_a_real_map(het_workdir, tmp_path):
    assert main(["import-cryodrgn", str(het_workdir), "-o", str(tmp_path / "run"), "--apix", "1"]) == 0
    run = load_run(tmp_path / "run")
    assert run.model.arch.domain == "hartley" and run.box == 64
    volume = run.volume(Z[1])
    assert volume.shape == (64, 64, 64) and np.isfinite(volume).all() and volume.std() > 0


def test_hartley_volumes_equal_cryodrgn_eval_vol(run_cryodrgn, het_workdir, tmp_path):
    np.savetxt(tmp_path / "z.txt", Z)
    run_cryodrgn("eval_vol", het_workdir / "weights.pkl", "-c", het_workdir / "config.yaml", "--zfile", tmp_path / "z.txt",
                 "-o", tmp_path / "theirs", "--Apix", 1)
    assert main(["import-cryodrgn", str(het_workdir), "-o", str(tmp_path / "run"), "--apix", "1"]) == 0
    assert main(["eval-vol", str(tmp_path / "run"), "--zfile", str(tmp_path / "z.txt"), "-o", str(tmp_path / "ours")]) == 0
    theirs = sorted((tmp_path / "theirs").glob("vol_*.mrc"))
    for i in range(len(Z)):
        a, b = read_volume(theirs[i])[0], read_volume(tmp_path / "ours" / f"vol_{i:03d}.mrc")[0]
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
