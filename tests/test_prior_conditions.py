"""A conditional prior against a known landscape: latents of two conditions drawn from the
three-component mixture of conftest with different component weights."""

import numpy as np
import pytest
import torch

from cryodiff.prior import load_prior, train_prior
from recon.errors import InputError

P_APO = np.array([0.5, 0.3, 0.2])
P_BOUND = np.array([0.2, 0.3, 0.5])


@pytest.fixture(scope="module")
def conditional(latent_mixture, tmp_path_factory, one_torch_thread):
    from generative.mixtures import GaussianMixture

    parts = []
    for weights, seed in ((P_APO, 1), (P_BOUND, 2)):
        z, _ = GaussianMixture(weights, latent_mixture.means, latent_mixture.covs).sample(
            2500, generator=torch.Generator().manual_seed(seed))
        parts.append(z.numpy().astype(np.float32))
    labels = np.repeat([0, 1], 2500)
    out = tmp_path_factory.mktemp("conditional") / "prior"
    prior = train_prior(np.concatenate(parts), out, steps=3000, batch_size=256, labels=labels, conditions=["apo", "bound"])
    return prior, out


def _fractions(latent_mixture, z: np.ndarray) -> np.ndarray:
    component = latent_mixture.responsibilities(torch.as_tensor(z, dtype=torch.float64)).argmax(1).numpy()
    return np.bincount(component, minlength=3) / len(z)


def test_each_condition_samples_its_own_weights(conditional, latent_mixture):
    prior, out = conditional
    assert load_prior(out).conditions == ["apo", "bound"]
    for name, weights in (("apo", P_APO), ("bound", P_BOUND)):
        np.testing.assert_allclose(_fractions(latent_mixture, prior.sample(3000, seed=3, condition=name)), weights, atol=0.05)
    pooled = (P_APO + P_BOUND) / 2  # no condition: the prior of all the latents together
    np.testing.assert_allclose(_fractions(latent_mixture, prior.sample(3000, seed=3)), pooled, atol=0.06)


def test_log_density_ratio_over_each_component_is_the_weight_ratio(conditional, latent_mixture):
    """Components barely overlap, so log p(z | bound) - log p(z | apo) over component k's points is
    log(w_bound_k / w_apo_k): averaged over 150 fresh points of each."""
    prior, _ = conditional
    ratios = []
    for k in range(3):
        z = latent_mixture.component(k).sample(150, generator=torch.Generator().manual_seed(10 + k))[0].numpy()
        ratios.append(np.mean(prior.log_prob(z, steps=32, condition="bound") - prior.log_prob(z, steps=32, condition="apo")))
    np.testing.assert_allclose(ratios, np.log(P_BOUND / P_APO), atol=0.25)


def test_unknown_condition_and_bad_labels_are_refused(conditional, tmp_path):
    prior, _ = conditional
    with pytest.raises(InputError, match="'holo' is not a condition"):
        prior.sample(3, condition="holo")
    z = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    with pytest.raises(InputError, match="at least 10 latents"):
        train_prior(z, tmp_path / "a", steps=2, labels=np.r_[np.zeros(95), np.ones(5)].astype(int), conditions=["a", "b"])
    with pytest.raises(InputError, match="edm and flow"):
        train_prior(z, tmp_path / "b", steps=2, labels=np.repeat([0, 1], 50), conditions=["a", "b"], formulation="cld")
