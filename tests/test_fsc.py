"""FSC and resolution against closed-form cases."""

import numpy as np
import pytest

from recon.fsc import describe_resolution, fsc, resolution, soft_sphere_mask


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
    assert resolution(freqs, np.ones(33), 0.143, apix=2.0) is None  # never drops: not a measured value


def test_a_curve_that_never_crosses_is_reported_as_nyquist_limited():
    """A curve at 0.226 at Nyquist must not be printed as "0.143: 12.00 Å"."""
    freqs = np.arange(17) / 32
    curve = np.linspace(1.0, 0.226, 17)
    assert resolution(freqs, curve, 0.143, apix=6.0) is None
    text = describe_resolution(resolution(freqs, curve, 0.143, 6.0), 0.143, 6.0)
    assert text.startswith("not reached") and "Nyquist" in text and "12.00 Å" in text
    assert describe_resolution(resolution(freqs, curve, 0.5, 6.0), 0.5, 6.0).endswith(" Å")


def test_a_curve_below_the_threshold_from_the_start_has_no_resolution():
    """An inverted or unrelated map: below 0.5 at the first shell, whatever the DC voxel says
    (interpolating from a DC shell below the threshold once gave '5 Å' at 6 Å/px)."""
    freqs = np.arange(17) / 32
    curve = np.r_[-1.0, -0.96, -0.7, np.full(14, 0.45)]
    assert resolution(freqs, curve, 0.5, 6.0) == float("inf")
    assert describe_resolution(float("inf"), 0.5, 6.0).startswith("none")
    assert resolution(freqs, np.r_[1.0, 0.9, 0.2, np.zeros(14)], 0.5, 6.0) > 12.0  # never finer than Nyquist


def test_soft_sphere_mask():
    m = soft_sphere_mask(32, radius=0.3, edge=0.1)
    assert m[16, 16, 16] == 1.0 and m[0, 0, 0] == 0.0
    assert m[16, 16, 16 + 11] == pytest.approx(0.5, abs=0.1)  # half-way through the edge at 0.35 box


def test_rejects_maps_of_different_size():
    with pytest.raises(ValueError):
        fsc(np.zeros((8, 8, 8)), np.zeros((10, 10, 10)))


def test_no_curve_reports_a_resolution_finer_than_nyquist():
    rng = np.random.default_rng(3)
    freqs = np.arange(17) / 32
    for _ in range(500):
        curve = np.clip(np.cumsum(rng.normal(0, 0.3, 17)), -1, 1)
        value = resolution(freqs, curve, 0.5, 6.0)
        assert value is None or value >= 12.0 - 1e-9
