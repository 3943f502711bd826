"""Validated state maps against ground truth: two simulated states (the subunit bound or not, 600
particles, box 24, SNR 0.1) whose true volumes are known, assigned by their true labels."""

from types import SimpleNamespace

import numpy as np
import pytest

from cryodiff.state_maps import reference_fsc, validate_states
from recon.fsc import crossing, fsc
from recon.io import read_particles, read_volume
from recon.synthetic import read_truth, write_synthetic_dataset

N, BOX = 600, 24


@pytest.fixture(scope="module")
def two_states(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_states")
    write_synthetic_dataset(root, n=N, box=BOX, apix=4.0, snr=0.1, seed=0, state=0.0, subunit_fraction=0.5, grid=1)
    truth = read_truth(root / "truth.h5")
    volumes = np.stack([read_volume(root / f)[0] for f in truth["volumes"]["file"]])  # subunit 0, then 1
    run = SimpleNamespace(indices=np.arange(N), config={"training": {"invert": True}})  # what reconstruct_selection reads
    return run, read_particles(root / "particles.star"), truth["subunit"].astype(int), volumes


def test_true_volumes_are_supported_and_maps_resolve_beyond_half_nyquist(two_states):
    run, particles, labels, volumes = two_states
    results = validate_states(run, labels, volumes, particles)
    for r in results:
        assert r.supported, r.reason
        assert r.likeness[r.state] == pytest.approx(1.0, abs=0.1)  # C_ref predicts the truth's FSC
        freqs, curve = fsc(r.map.volume, volumes[r.state])
        reached = crossing(freqs, curve, 0.5)
        assert reached is None or reached > 0.25  # FSC 0.5 with the true map beyond half of Nyquist
        assert r.map.n_particles == np.sum(labels == r.state)


def test_swapped_and_unrelated_volumes_are_flagged(two_states):
    run, particles, labels, volumes = two_states
    swapped = validate_states(run, labels, volumes[::-1].copy(), particles)
    assert [r.supported for r in swapped] == [False, False]
    assert all("more like the map of state" in r.reason for r in swapped)
    noise = np.random.default_rng(0).standard_normal(volumes.shape).astype(np.float32)
    unrelated = validate_states(run, labels, noise, particles)
    assert all(not r.supported and "coarser than twice" in r.reason for r in unrelated)


def test_reference_fsc_is_half_at_0143():
    assert reference_fsc(np.array([0.143]))[0] == pytest.approx(0.5, abs=2e-3)
    assert reference_fsc(np.array([-0.2, 1.0])).tolist() == [0.0, 1.0]


def test_a_low_resolution_map_is_compared_only_where_it_holds_signal(monkeypatch):
    """State 1's map comes from few particles: its half-map FSC collapses after shell 2, so its
    reference FSC is about 0 beyond. Decoded volume 0 must not look "more like" that map by dividing
    by the collapsed reference (likeness is taken up to the lower of the two crossings)."""
    from cryodiff import state_maps
    from cryodiff.selection import SelectionMap

    rng = np.random.default_rng(0)
    box = 16
    decoded = rng.standard_normal((2, box, box, box)).astype(np.float32)
    freqs = np.arange(box // 2 + 1) / box
    sharp, blurred = np.full(len(freqs), 0.99), np.where(np.arange(len(freqs)) <= 2, 0.99, 0.0)

    def fake_map(volume, curve):
        return SelectionMap(volume, volume, volume, 1.0, freqs, curve, 2.0, 100, "test")

    maps = iter([fake_map(decoded[0], sharp), fake_map(decoded[0] + 0.5 * rng.standard_normal(decoded[0].shape).astype(np.float32), blurred)])
    monkeypatch.setattr(state_maps, "reconstruct_selection", lambda *args, **kwargs: next(maps))
    results = state_maps.validate_states(None, np.repeat([0, 1], 50), decoded, None)
    assert results[0].supported, results[0].reason
    assert results[0].likeness[0] == pytest.approx(1.0, abs=0.05)
    assert results[0].likeness[1] < results[0].likeness[0]
