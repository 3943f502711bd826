"""cryodiff runs written as cryoDRGN 4.x folders: read back by import-cryodrgn (always) and by
cryoDRGN's own eval_vol (when cryoDRGN 4.3.1 is at hand, see tests/conftest.py)."""


import numpy as np
import pytest
import yaml

from cryodiff.cli.main import main
from recon.io import read_volume
from recon.io.cryodrgn_run import load_pickles_safely
from recon.run import load_run

Z = np.array([[0.0, 0.0, 0.0, 0.0], [0.8, -1.1, 0.3, 0.5], [-1.5, 0.4, 1.2, -0.7]], np.float32)


@pytest.fixture
def exported(tiny_vae_run, tmp_path):
    assert main(["export-cryodrgn", str(tiny_vae_run), "-o", str(tmp_path / "cd")]) == 0
    return tmp_path / "cd"


def test_the_folder_has_cryodrgn_layout(tiny_vae_run, exported):
    run = load_run(tiny_vae_run)
    config = yaml.safe_load((exported / "config.yaml").read_text())
    assert config["lattice_args"] == {"D": 17, "extent": 0.5, "ignore_DC": True}
    assert config["model_args"]["zdim"] == 4 and config["model_args"]["qdim"] == 16 and config["model_args"]["enc_mask"] == 8
    assert config["dataset_args"]["norm"] == [0.0, pytest.approx(run.config["normalization"]["std"])]
    assert {p.name for p in exported.iterdir() if not p.name.startswith(".")} == \
        {"config.yaml", "weights.1.pkl", "weights.pkl", "z.1.pkl", "z.pkl"}
    z_mu, z_logvar = load_pickles_safely(exported / "z.1.pkl")
    np.testing.assert_array_equal(z_mu, run.z_mu)
    np.testing.assert_array_equal(z_logvar, run.z_logvar)


def test_import_of_the_export_gives_the_same_volumes(tiny_vae_run, exported, tmp_path):
    assert main(["import-cryodrgn", str(exported), "-o", str(tmp_path / "back"), "--apix", "6"]) == 0
    original, back = load_run(tiny_vae_run), load_run(tmp_path / "back")
    for z in Z:
        np.testing.assert_array_equal(back.volume(z), original.volume(z))


def test_export_refuses_to_write_into_the_run(tiny_vae_run, fails_with_one_line, tmp_path):
    import shutil

    run = shutil.copytree(tiny_vae_run, tmp_path / "run")
    fails_with_one_line(["export-cryodrgn", str(run), "-o", str(run)], str(run))


def test_cryodrgn_eval_vol_of_the_export_equals_cryodiff_eval_vol(run_cryodrgn, tiny_vae_run, exported, tmp_path):
    np.savetxt(tmp_path / "z.txt", Z)
    run_cryodrgn("eval_vol", exported / "weights.pkl", "-c", exported / "config.yaml", "--zfile", tmp_path / "z.txt",
                 "-o", tmp_path / "theirs", "--Apix", 6)
    assert main(["eval-vol", str(tiny_vae_run), "--zfile", str(tmp_path / "z.txt"), "-o", str(tmp_path / "ours")]) == 0
    for i in range(len(Z)):
        theirs = read_volume(sorted((tmp_path / "theirs").glob("vol_*.mrc"))[i])[0]
        ours = read_volume(tmp_path / "ours" / f"vol_{i:03d}.mrc")[0]
        assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
