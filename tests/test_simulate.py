"""The simulator against independent physics: projections of its ground-truth
volumes computed by torch-fourier-slice, the requested SNR, and the files it
writes read back through the RELION reader."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from torch_fourier_slice import project_3d_to_2d

from recon import simulate as sim
from recon.io import read_particles, read_volume
from recon.synthetic import read_truth, write_synthetic_dataset


def _corr(a, b):
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_analytic_projection_equals_fourier_slice_projection_of_the_volume():
    """The image is the projection along z of the volume whose points sit at R @ r;
    torch-fourier-slice needs R transposed for that (GUIDE section 1)."""
    box = 48
    mol = sim.make_molecule()
    rots = Rotation.random(4, random_state=1).as_matrix()
    vol = torch.as_tensor(sim.render_volume(mol, 0.3, True, box))
    ours = sim.project(mol, np.full(4, 0.3), np.ones(4, bool), rots, np.zeros((4, 2)), box).numpy()
    theirs = project_3d_to_2d(vol, torch.as_tensor(rots, dtype=torch.float32).transpose(-1, -2)).numpy()
    for a, b in zip(ours, theirs):
        assert _corr(a, b) > 0.99
        assert a.sum() == pytest.approx(b.sum(), rel=3e-2)  # same units: a sum of voxels along z
    mirrored = project_3d_to_2d(vol.flip(0), torch.as_tensor(rots, dtype=torch.float32).transpose(-1, -2)).numpy()
    assert max(_corr(a, b) for a, b in zip(ours, mirrored)) < 0.9


def test_identity_projection_is_the_sum_along_z_and_displacement_moves_it():
    box = 32
    mol = sim.make_molecule()
    vol = sim.render_volume(mol, 0.7, False, box)
    img = sim.project(mol, [0.7], [False], np.eye(3)[None], np.array([[3.0, -2.0]]), box)[0].numpy()
    expected = np.roll(vol.sum(0), shift=(-2, 3), axis=(0, 1))
    np.testing.assert_allclose(img, expected, atol=2e-3 * expected.max())


def test_conformations_differ_where_expected():
    mol = sim.make_molecule()
    a, b = sim.render_volume(mol, 0.0, False, 32), sim.render_volume(mol, 1.0, False, 32)
    c = sim.render_volume(mol, 0.0, True, 32)
    assert _corr(a, b) < 0.9  # the domain moves
    assert 0.8 < _corr(a, c) < 0.99  # the subunit adds density
    assert sim.sample_states(20000, np.random.default_rng(0)).std() > 0.3  # multi-modal spread
    hist = np.histogram(sim.sample_states(20000, np.random.default_rng(0)), bins=10, range=(0, 1))[0]
    assert hist[1] > 2 * hist[3] and hist[8] > 2 * hist[6] and hist[5] > hist[3]  # three modes


def test_written_dataset_reads_back_with_truth(tmp_path):
    truth = write_synthetic_dataset(tmp_path, n=300, box=32, apix=4.0, snr=0.5, seed=3, grid=3)
    particles = read_particles(tmp_path / "particles.star")
    meta = particles.meta
    assert (len(particles), meta.box, meta.apix) == (300, 32, 4.0)
    np.testing.assert_allclose(meta.rotations, truth.rotations, atol=1e-5)
    np.testing.assert_allclose(meta.shifts_px, truth.shifts_px, atol=1e-5)
    np.testing.assert_allclose(meta.ctf, truth.ctf, rtol=1e-6, atol=1e-4)
    stored = read_truth(tmp_path / "truth.h5")
    np.testing.assert_array_equal(stored["subunit"].astype(bool), truth.subunit)
    assert len(stored["volumes"]["file"]) == 6
    vol, apix = read_volume(tmp_path / stored["volumes"]["file"][5])
    assert apix == pytest.approx(4.0) and vol.shape == (32, 32, 32)

    # SNR: the images minus the noise-free ones have the requested variance ratio.
    clean = sim.clean_images(sim.make_molecule(), truth, np.arange(300), 32).numpy()
    noise = particles.images[:] - clean
    assert clean.var() / noise.var() == pytest.approx(0.5, rel=0.05)
    assert abs(np.corrcoef(noise[:, :4, :4].ravel(), clean[:, :4, :4].ravel())[0, 1]) < 0.1


def test_stored_sign_convention_matches_cryodrgn():
    """Inverted images (cryoDRGN's default) equal CTF x projection."""
    box, rng = 32, np.random.default_rng(0)
    mol = sim.make_molecule()
    truth = sim.sample_truth(2, box, 3.0, rng)
    stored = sim.clean_images(mol, truth, np.arange(2), box)
    proj = sim.project(mol, truth.states, truth.subunit, truth.rotations, -truth.shifts_px, box)
    np.testing.assert_allclose((-stored).numpy(), sim.apply_ctf(proj, torch.as_tensor(truth.ctf)).numpy(), atol=1e-9)


def test_junk_particles_are_pure_noise_or_a_foreign_molecule(tmp_path):
    """--junk-fraction: the flagged particles hold no signal (noise junk) or the
    double ring (foreign junk), at the same noise level as the good ones."""
    truth = write_synthetic_dataset(tmp_path, n=400, box=32, apix=6.0, snr=0.5, seed=2, grid=2,
                                    junk_fraction=0.2, junk_kind="mixed")
    junk = read_truth(tmp_path / "truth.h5")["junk"]
    np.testing.assert_array_equal(junk, truth.junk)
    assert np.bincount(junk).tolist() == [320, 40, 40]
    images = np.asarray(read_particles(tmp_path / "particles.star").images[np.arange(400)])
    noise_var = read_truth(tmp_path / "truth.h5")["noise_std"] ** 2
    assert abs(images[junk == sim.JUNK_NOISE].var() / noise_var - 1) < 0.02
    assert images[junk == sim.GOOD].var() / noise_var == pytest.approx(1.5, rel=0.05)  # SNR 0.5
    clean = sim.clean_images(sim.make_molecule(), truth, np.arange(400), 32).numpy()
    assert np.abs(clean[junk == sim.JUNK_NOISE]).max() == 0
    foreign = np.flatnonzero(junk == sim.JUNK_FOREIGN)[0]
    good_twin = sim.clean_images(sim.make_molecule(), sim.ParticleTruth(
        truth.states, truth.subunit, truth.rotations, truth.shifts_px, truth.ctf, np.zeros(400, np.uint8)),
        np.array([foreign]), 32).numpy()[0]
    assert clean[foreign].std() > 0.5 * good_twin.std()  # similar mass ...
    assert _corr(clean[foreign], good_twin) < 0.5  # ... but another molecule in the same pose
