"""The suggested cut-off for particle scores, against score sets with a known junk group."""

import numpy as np

from cryodiff.particle_scores import suggest_cutoff


def test_a_separate_low_group_is_cut_off():
    rng = np.random.default_rng(0)
    good, junk = rng.normal(-0.7, 0.8, 2700), rng.normal(-3.9, 0.5, 300)
    cut = suggest_cutoff(np.r_[good, junk])
    assert cut.rule.startswith("two-group")
    assert np.mean(junk < cut.value) > 0.95 and np.mean(good < cut.value) < 0.03
    assert cut.fraction == np.mean(np.r_[good, junk] < cut.value)


def test_one_group_with_a_tail_drops_almost_nothing():
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(-0.7, 0.8, 3000), rng.normal(-0.7, 3.0, 60)]
    cut = suggest_cutoff(scores)
    assert cut.rule.startswith("median") and cut.fraction < 0.02
