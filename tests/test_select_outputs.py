"""What select writes beside the star for the other tools: cryoDRGN's ind.pkl and, for a run
trained on a cryoSPARC file, a .cs subset that keeps every field and uid."""

import numpy as np
import pytest

from cryodiff.cli.main import main
from recon.io import read_metadata, read_particles
from recon.io.pkl import load_pickle_safely
from recon.synthetic import write_synthetic_dataset
from test_refinement_metadata import _cs

TINY = ["--zdim", "2", "-n", "1", "--enc-dim", "16", "--dec-dim", "16", "--enc-layers", "1", "--dec-layers", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def cs_run(tmp_path_factory):
    """A run trained on a .cs file of 60 simulated particles (box 16, 6 Å/px)."""
    root = tmp_path_factory.mktemp("cs_run")
    write_synthetic_dataset(root, n=60, box=16, apix=6.0, snr=1.0, seed=2, grid=2)
    meta = read_particles(root / "particles.star").meta
    cs = _cs(root / "particles.cs", meta.rotations, meta.shifts_px, meta.ctf, 6.0, box=16)
    assert main(["train-vae", str(cs), "-o", str(root / "run"), *TINY]) == 0
    return root, cs


def test_select_from_a_cs_run_writes_a_cs_subset_and_ind_pkl(cs_run, tmp_path):
    root, cs = cs_run
    rows = np.array([3, 7, 8, 40, 59])
    np.savetxt(tmp_path / "rows.txt", rows, fmt="%d")
    assert main(["select", str(root / "run"), "--ind-file", str(tmp_path / "rows.txt"), "-o", str(tmp_path / "sel.star")]) == 0

    original = np.load(cs)
    subset = np.load(tmp_path / "sel.cs")
    assert subset.dtype == original.dtype
    np.testing.assert_array_equal(subset["uid"], original["uid"][rows])
    np.testing.assert_array_equal(load_pickle_safely(tmp_path / "sel.ind.pkl"), rows)  # what cryoDRGN's --ind reads
    np.testing.assert_allclose(read_metadata(tmp_path / "sel.cs").rotations, read_metadata(cs).rotations[rows])


def test_the_cs_subset_reads_with_cryosparc_tools(cs_run, tmp_path):
    tools = pytest.importorskip("cryosparc.dataset")
    root, cs = cs_run
    np.savetxt(tmp_path / "rows.txt", [1, 2, 30], fmt="%d")
    assert main(["select", str(root / "run"), "--ind-file", str(tmp_path / "rows.txt"), "-o", str(tmp_path / "sel.star")]) == 0
    dataset = tools.Dataset.load(tmp_path / "sel.cs")
    assert list(dataset["uid"]) == list(np.load(cs)["uid"][[1, 2, 30]])


def test_a_star_run_writes_no_cs(tiny_vae_run, tmp_path):
    np.savetxt(tmp_path / "rows.txt", [0, 1], fmt="%d")
    assert main(["select", str(tiny_vae_run), "--ind-file", str(tmp_path / "rows.txt"), "-o", str(tmp_path / "sel.star")]) == 0
    assert (tmp_path / "sel.ind.pkl").is_file() and not (tmp_path / "sel.cs").exists()
