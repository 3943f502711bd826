"""Privacy accounting: our epsilon and noise calibration against opacus's accountants called directly."""

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis

from generative import privacy


@pytest.mark.parametrize("sigma, q, steps", [(1.1, 0.01, 1000), (0.8, 0.25, 40), (3.0, 0.5, 300)])
def test_rdp_epsilon_equals_opacus_accountant_stepped_one_step_at_a_time(sigma, q, steps):
    reference = RDPAccountant()
    for _ in range(steps):
        reference.step(noise_multiplier=sigma, sample_rate=q)
    assert privacy.epsilon(sigma, q, steps, 1e-5) == pytest.approx(reference.get_epsilon(delta=1e-5), rel=1e-12)


def test_rdp_epsilon_equals_the_renyi_analysis():
    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = rdp_analysis.compute_rdp(q=0.1, noise_multiplier=1.3, steps=500, orders=orders)
    eps, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=rdp, delta=1e-6)
    assert privacy.epsilon(1.3, 0.1, 500, 1e-6) == pytest.approx(eps, rel=1e-12)


def test_prv_epsilon_equals_opacus_prv_accountant_and_is_tighter_than_rdp():
    reference = PRVAccountant()
    for _ in range(200):
        reference.step(noise_multiplier=1.0, sample_rate=0.05)
    ours = privacy.epsilon(1.0, 0.05, 200, 1e-5, accountant="prv")
    assert ours == pytest.approx(reference.get_epsilon(delta=1e-5), rel=1e-9)
    assert ours < privacy.epsilon(1.0, 0.05, 200, 1e-5, accountant="rdp")


def test_epsilon_grows_with_steps_and_sample_rate_and_falls_with_noise():
    base = privacy.epsilon(1.0, 0.1, 100, 1e-5)
    assert privacy.epsilon(1.0, 0.1, 200, 1e-5) > base
    assert privacy.epsilon(1.0, 0.2, 100, 1e-5) > base
    assert privacy.epsilon(2.0, 0.1, 100, 1e-5) < base


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibrated_noise_meets_the_target_within_tolerance(accountant):
    sigma = privacy.noise_multiplier(3.0, 0.2, 150, 1e-5, accountant=accountant)
    spent = privacy.epsilon(sigma, 0.2, 150, 1e-5, accountant=accountant)
    assert 3.0 - 0.01 < spent <= 3.0
    assert privacy.epsilon(sigma * 0.98, 0.2, 150, 1e-5, accountant=accountant) > 3.0


def test_impossible_target_raises_with_a_fix():
    with pytest.raises(ValueError, match=r"cannot be met.*raise epsilon"):
        privacy.noise_multiplier(0.01, 1.0, 5000, 1e-5, max_noise_multiplier=100.0)


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(sample_rate=0.0), "sample rate"), (dict(sample_rate=1.5), "sample rate"),
    (dict(steps=0), "steps"), (dict(steps=2.5), "steps"), (dict(delta=0.0), "delta"),
    (dict(delta=1.0), "delta"), (dict(accountant="moments"), "unknown accountant"),
    (dict(noise_multiplier=0.0), "noise multiplier"),
])
def test_bad_settings_raise(kwargs, phrase):
    args = dict(noise_multiplier=1.0, sample_rate=0.1, steps=10, delta=1e-5) | kwargs
    with pytest.raises(ValueError, match=phrase):
        privacy.epsilon(**args)


def test_steps_for_epochs():
    assert privacy.steps_for_epochs(5, 0.3) == 17
    assert privacy.steps_for_epochs(2, 0.25) == 8
    with pytest.raises(ValueError, match="epochs"):
        privacy.steps_for_epochs(0, 0.1)
