"""State populations from image likelihoods (cryodiff.state_likelihood) against known truth:
pure white noise of known power, and particles drawn from two known images in known shares."""

import numpy as np
import pytest
import torch

from cryodiff.state_likelihood import image_mixture, noise_power, responsibilities, state_log_likelihoods
from recon.fourier import soft_window
from recon.preprocess import hartley_images, masked
from recon.run import load_run
from recon.training import TrainingData

BOX = 16


@pytest.fixture()
def run(tiny_vae_run):
    return load_run(tiny_vae_run)


def _data(images: np.ndarray) -> TrainingData:
    n = len(images)
    rotations = np.stack([np.eye(3, dtype=np.float32)] * n)
    return TrainingData(images.astype(np.float32), np.arange(n), rotations, np.zeros((n, 2), np.float32), None, BOX, 6.0)


def _blob(y: float, x: float) -> np.ndarray:
    grid = np.arange(BOX) - BOX // 2
    return np.exp(-((grid[:, None] - y) ** 2 + (grid[None, :] - x) ** 2) / 8.0)


def _state_images(run, patterns: list[np.ndarray]) -> torch.Tensor:
    """The patterns as the VAE sees them: ``[K, M]`` masked, normalised Hartley values."""
    training = run.config["training"]
    hartley = hartley_images(torch.as_tensor(np.stack(patterns), dtype=torch.float32), None,
                             invert=training["invert"], window=training["window"])
    return masked(hartley) / float(run.config["normalization"]["std"])


def _decoder_of(states: torch.Tensor):
    """A stand-in for ``decode_slices``: latent ``[k, ...]`` gives state ``k``'s image, whatever the pose."""
    return lambda rotations, z: states[z[:, 0].round().long()]


def test_noise_power_of_white_noise_is_its_known_spectrum(run, monkeypatch):
    """White Gaussian noise (sd 2) and a decoder predicting nothing: every shell's power is 4 x the
    sum of the squared window over the image, over the run's normalisation squared."""
    n = 600
    images = 2.0 * np.random.default_rng(1).standard_normal((n, BOX, BOX))
    monkeypatch.setattr(run.model, "decode_slices", _decoder_of(torch.zeros(1, run.model.n_pixels)))
    power = noise_power(run, _data(images), np.zeros((n, run.zdim), np.float32), particles=n)
    expected = 4.0 * float(soft_window(BOX).pow(2).sum()) / float(run.config["normalization"]["std"]) ** 2
    np.testing.assert_allclose(power[1:], expected, rtol=0.15)  # shell 0 (DC) is outside the mask


def test_image_likelihoods_recover_known_shares_of_two_states(run, monkeypatch):
    """2,000 particles, 30 % of them image A and 70 % image B, under white noise: the mixture's weights
    are the true shares to within sampling error, and nearly every particle is most likely its own state."""
    rng = np.random.default_rng(2)
    n, sd = 2000, 3.0
    patterns = [_blob(-2, -1) * 4.0, _blob(2, 1) * 4.0]
    truth = (rng.random(n) < 0.7).astype(int)
    images = np.stack(patterns)[truth] + sd * rng.standard_normal((n, BOX, BOX))
    monkeypatch.setattr(run.model, "decode_slices", _decoder_of(_state_images(run, patterns)))
    z = np.zeros((n, run.zdim), np.float32)
    z[:, 0] = truth
    data = _data(images)
    power = noise_power(run, data, z, particles=n)
    modes = np.zeros((2, run.zdim), np.float32)
    modes[1, 0] = 1.0
    log_likelihoods = state_log_likelihoods(run, data, modes, power)
    # a particle's expected log-likelihood under its own state is -1/2 per Fourier pixel
    own = log_likelihoods[np.arange(n), truth]
    assert own.mean() == pytest.approx(-0.5 * run.model.n_pixels, rel=0.05)
    mixture = image_mixture(log_likelihoods, np.zeros(n, int))
    share = np.mean(truth)
    assert abs(mixture.weights[1] - share) < 3 * np.sqrt(share * (1 - share) / n)
    probability = responsibilities(mixture)
    np.testing.assert_allclose(probability.sum(1), 1.0)
    assert np.mean(probability.argmax(1) == truth) > 0.95


def test_mixture_from_probabilities_refits_like_the_likelihoods():
    """The responsibilities kept in assignments.h5 give back the mixture: refitting the weights to any
    reweighting of the particles (a bootstrap draw, one condition's particles) matches the refit of the
    original likelihoods."""
    from cryodiff.state_likelihood import mixture_from_probabilities
    from cryodiff.states import mixture_weights

    rng = np.random.default_rng(3)
    log_likelihoods = rng.normal(scale=3.0, size=(500, 4))
    mixture = image_mixture(log_likelihoods, np.zeros(500, int))
    rebuilt = mixture_from_probabilities(responsibilities(mixture))
    np.testing.assert_allclose(rebuilt.weights, mixture.weights, atol=1e-6)
    times = rng.integers(0, 3, size=500)
    np.testing.assert_allclose(mixture_weights(rebuilt, times), mixture_weights(mixture, times), atol=1e-5)
