"""The learned simulator (cryodiff.learned_simulator): its checks against ground truth, input
validation, and a tiny training run that uses its conditions.

The checks are tested on images simulated by recon (the same functions as ``cryodiff
simulate``): their power-spectrum minima sit at recon.ctf's zeros, a wrong defocus is caught,
and the in-plane angle is recovered. The model tests run at box 16 with a tiny network, so
the whole file stays well under 30 s on a loaded machine.
"""

import math

import numpy as np
import pytest
import torch

from cryodiff import learned_simulator as ls
from recon.ctf import electron_wavelength

torch.set_num_threads(1)

SETUP = ls.SimulationSetup()  # box 32, 3 Å/px, 300 kV, Cs 2.7 mm, 1.0-2.5 µm, SNR 10


@pytest.fixture(scope="module")
def noise_std():
    return ls.noise_std_for(SETUP, n=200)


@pytest.fixture(scope="module")
def particles(noise_std):
    """64 noisy particles at 1.5 µm defocus with random psi."""
    psi = np.random.default_rng(0).uniform(0.0, 360.0, 64)
    return 15000.0, psi, ls.simulate_particles(SETUP, 15000.0, psi, noise_std, seed=1)


def test_ctf_zeros_are_recon_ctf_sign_changes_and_match_the_formula_without_cs():
    setup = ls.SimulationSetup(cs_mm=0.0)
    df = 20000.0
    zeros = ls.ctf_zeros(setup, df, 3)
    curve = ls.ctf_curve(setup, df, zeros)
    assert np.abs(curve).max() < 1e-3
    # Cs = 0: gamma = -pi df lambda s^2 and CTF = sin(gamma - asin(w)) vanishes at gamma = asin(w) - k pi
    lam = electron_wavelength(setup.voltage_kv)
    k = np.arange(1, 4)
    s = np.sqrt((k * math.pi - math.asin(setup.amplitude_contrast)) / (math.pi * df * lam))
    np.testing.assert_allclose(zeros, s / setup.fourier_pixel, atol=2e-3)
    # at least two zeros below 10 Fourier pixels over the whole training range
    assert (ls.ctf_zeros(SETUP, SETUP.defocus_min_A, 5) < 10).sum() >= 2


def test_simulated_images_have_their_ctf_zeros_where_recon_puts_them(particles):
    df, _, images = particles
    result = ls.check_ctf_zeros(images, df, SETUP, count=3)
    assert result["missed"] == 0
    assert result["mean_abs_error_px"] < 0.2, result
    assert result["mean_abs_error_inv_A"] == pytest.approx(result["mean_abs_error_px"] / (32 * 3.0))
    assert abs(result["defocus_error_A"]) < 0.03 * df, result


def test_a_wrong_defocus_is_detected(particles):
    df, _, images = particles
    right = ls.check_ctf_zeros(images, df, SETUP)
    wrong = ls.check_ctf_zeros(images, 1.2 * df, SETUP)
    assert wrong["mean_abs_error_px"] > 0.3
    assert wrong["mean_abs_error_px"] > 3 * right["mean_abs_error_px"]
    assert abs(wrong["defocus_error_A"]) > 0.1 * df  # the fit still finds the true 1.5 µm


def test_psi_of_simulated_images_is_recovered_and_shuffled_labels_score_chance(particles):
    df, psi, images = particles
    result = ls.check_psi(images, df, psi, SETUP)
    assert result["mean_abs_error_deg"] < 1.0, result
    shuffled = ls.check_psi(images, df, np.random.default_rng(2).permutation(psi), SETUP)
    assert shuffled["mean_abs_error_deg"] > 60.0
    # the angle follows RELION's psi: a clean image at psi = 30 reads back as 30, wrapped angles too
    clean = ls.clean_particles(SETUP, df, [30.0, 400.0])
    np.testing.assert_allclose(ls.circular_error_deg(ls.estimate_psi(clean, df, SETUP), [30.0, 40.0]), 0, atol=0.3)


@pytest.mark.parametrize("defocus", [-15000.0, 0.0, float("nan"), float("inf"), "far"])
def test_bad_defocus_raises_value_error(defocus):
    with pytest.raises(ValueError, match="defocus_A"):
        ls.clean_particles(SETUP, defocus, 0.0)
    with pytest.raises(ValueError, match="defocus_A"):
        ls.ctf_zeros(SETUP, defocus)


def test_bad_inputs_raise_value_errors(particles):
    _, _, images = particles
    with pytest.raises(ValueError, match="psi_deg"):
        ls.clean_particles(SETUP, 15000.0, float("nan"))
    with pytest.raises(ValueError, match="do not match"):
        ls.clean_particles(SETUP, [15000.0, 16000.0], [0.0, 1.0, 2.0])
    bad = images.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        ls.check_ctf_zeros(bad, 15000.0, SETUP)
    with pytest.raises(ValueError, match="finite"):
        ls.estimate_psi(bad, 15000.0, SETUP)
    with pytest.raises(ValueError, match="snr"):
        ls.SimulationSetup(snr=-1.0)
    with pytest.raises(ValueError, match="defocus_min_A"):
        ls.SimulationSetup(defocus_min_A=30000.0)
    with pytest.raises(ValueError, match="n must"):
        ls.make_training_set(0)


@pytest.fixture(scope="module")
def tiny():
    """A tiny simulator trained briefly at box 16 (6 Å/px: the same frequencies in 1/Å as box 32)."""
    setup = ls.SimulationSetup(box=16, apix=6.0)
    data = ls.make_training_set(512, setup, seed=0)
    config = ls.ModelConfig(base=16, mults=(1, 2), embed_dim=16, time_embed_dim=32)
    sim, records = ls.train_learned_simulator(data, 150, batch_size=32, lr=3e-3, config=config, log_every=25)
    return sim, records, data


def test_tiny_training_lowers_the_loss_and_uses_the_conditions(tiny):
    sim, records, data = tiny
    assert records[-1]["loss"] < 0.8 * records[0]["loss"]
    # held-out particles, one noise draw at sigma 5 (data std 1), where the denoiser must guess
    # the particle from its conditions: it does better with the true in-plane angles than with
    # the same angles shuffled among the particles (150 steps learn psi, not yet the defocus)
    test = ls.make_training_set(256, data.setup, seed=9)
    x0 = sim.to_model(test.images)
    g = torch.Generator().manual_seed(0)
    sigma = torch.full((len(x0),), 5.0)
    x = x0 + 5.0 * torch.randn(x0.shape, generator=g)
    perm = np.random.default_rng(0).permutation(len(x0))
    sim.model.eval()
    with torch.no_grad():
        def error(defocus, psi):
            cond = sim.model.conditioner(sim.conditions(defocus, psi))
            return float(((sim.model.model(x, sigma, cond) - x0) ** 2).mean())
        true = error(test.defocus_A, test.psi_deg)
        wrong_psi = error(test.defocus_A, test.psi_deg[perm])
    assert true < 0.9 * wrong_psi, (true, wrong_psi)


def test_samples_have_the_right_shape_and_save_load_round_trips(tiny, tmp_path):
    sim, _, _ = tiny
    x = sim.sample([15000.0, 20000.0], 10.0, steps=3, seed=4)
    assert x.shape == (2, 16, 16) and torch.isfinite(x).all()
    path = tmp_path / "sim.pt"
    sim.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        sim.save(path)  # an existing file is kept
    assert [p.name for p in tmp_path.iterdir()] == ["sim.pt"]  # no temporary file left behind
    again = ls.LearnedSimulator.load(path)
    assert again.setup == sim.setup and again.config == sim.config
    torch.testing.assert_close(again.sample([15000.0, 20000.0], 10.0, steps=3, seed=4), x)
    with pytest.raises(ValueError, match="defocus_A"):
        sim.sample(-1.0, 0.0, n=2)
    with pytest.raises(ValueError, match="n must"):
        sim.sample(15000.0, 0.0, n=0)
    with pytest.warns(UserWarning, match="extrapolates"):
        sim.sample(40000.0, 0.0, steps=2)
