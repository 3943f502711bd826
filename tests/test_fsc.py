"""FSC and resolution against closed-form cases."""

import numpy as np
import pytest

from recon.fsc import fsc, resolution, soft_sphere_mask


def test_identical_maps_correlate_fully_and_noise_does_not():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(32, 32, 32))
    freqs, curve = fsc(a, a)
    assert freqs[0] == 0 and freqs[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(curve, 1.0, atol=1e-10)
    _, noise = fsc(a, rng.normal(size=(32, 32, 32)))
    assert np.abs(noise[4:]).max() < 0.1  # shells of hundreds of voxels: |FSC| ~ 1/sqrt(n)
    _, flipped = fsc(a, -a)
    np.testing.assert_allclose(flipped, -1.0, atol=1e-10)


def test_known_signal_to_noise_gives_the_expected_fsc():
    """Signal + independent noise of equal power: FSC = SNR / (1 + SNR) = 0.5."""
    rng = np.random.default_rng(1)
    s = rng.normal(size=(48, 48, 48))
    _, curve = fsc(s + rng.normal(size=s.shape), s + rng.normal(size=s.shape))
    assert np.mean(curve[5:]) == pytest.approx(0.5, abs=0.02)


def test_resolution_interpolates_the_crossing():
    freqs = np.arange(33) / 64
    curve = np.clip(1.0 - freqs / 0.4, 0, 1)  # crosses 0.5 at 0.2 and 0.143 at 0.3428 cycles/px
    assert resolution(freqs, curve, 0.5, apix=2.0) == pytest.approx(2.0 / 0.2)
    assert resolution(freqs, curve, 0.143, apix=2.0) == pytest.approx(2.0 / (0.4 * 0.857))
    assert resolution(freqs, np.ones(33), 0.143, apix=2.0) == 4.0  # never drops: Nyquist


def test_soft_sphere_mask():
    m = soft_sphere_mask(32, radius=0.3, edge=0.1)
    assert m[16, 16, 16] == 1.0 and m[0, 0, 0] == 0.0
    assert m[16, 16, 16 + 11] == pytest.approx(0.5, abs=0.1)  # half-way through the edge at 0.35 box


def test_rejects_maps_of_different_size():
    with pytest.raises(ValueError):
        fsc(np.zeros((8, 8, 8)), np.zeros((10, 10, 10)))
