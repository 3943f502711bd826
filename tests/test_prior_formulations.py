"""Rectified-flow and CLD priors (train-prior --formulation flow|cld) against the
known 4-D mixture of conftest: samples from every solver match it, the flow
prior's log-likelihood follows the true density, and a CLD prior samples with
SSCS but refuses likelihoods and PF-ODE paths with one clear line."""

import numpy as np
import pytest
import torch

from cryodiff.cli.main import main
from cryodiff.prior import load_prior, train_prior
from generative.metrics import energy_distance
from recon.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
N_TEST = 1000


def _draw(mixture, n, seed):
    return mixture.sample(n, generator=torch.Generator().manual_seed(seed))[0]


def _train(formulation, mixture, tmp_path_factory):
    out = tmp_path_factory.mktemp(formulation) / "prior"
    train_prior(_draw(mixture, 3000, 0).numpy(), out, steps=1200, batch_size=256, formulation=formulation)
    return load_prior(out), out


@pytest.fixture(scope="module")
def flow_prior(latent_mixture, tmp_path_factory):
    return _train("flow", latent_mixture, tmp_path_factory)


@pytest.fixture(scope="module")
def cld_prior(latent_mixture, tmp_path_factory):
    return _train("cld", latent_mixture, tmp_path_factory)


@pytest.fixture(params=["flow_prior", "cld_prior"])
def trained(request):
    return request.getfixturevalue(request.param)


def _quality(prior, mixture, z):
    """(energy distance to held-out data / the data-vs-data floor, max weight error), standardised units."""
    def std(x):
        return (torch.as_tensor(x, dtype=torch.float64) - torch.from_numpy(prior.mean)) / torch.from_numpy(prior.std)

    held, held2 = std(_draw(mixture, N_TEST, 1)), std(_draw(mixture, N_TEST, 2))
    fractions = torch.bincount(mixture.assign(torch.from_numpy(z).double()), minlength=3).double() / len(z)
    return energy_distance(std(z), held) / energy_distance(held, held2), (fractions - mixture.weights).abs().max().item()


def test_default_solver_samples_the_mixture(latent_mixture, trained):
    """Default solvers: flow_heun (8 steps) for flow, sscs (100 steps) for cld."""
    prior, _ = trained
    z = prior.sample(N_TEST, seed=3)
    ratio, weight_err = _quality(prior, latent_mixture, z)
    assert z.shape == (N_TEST, 4) and z.dtype == np.float32
    assert ratio < 2.5, ratio
    assert weight_err < 0.04, weight_err


def test_flow_prior_works_with_edm_solvers_and_likelihood(latent_mixture, flow_prior):
    prior, _ = flow_prior
    ratio, _ = _quality(prior, latent_mixture, prior.sample(N_TEST, solver="dpmpp", steps=25, seed=4))
    assert ratio < 2.5, ratio
    held = _draw(latent_mixture, 100, 5)
    estimate, truth = prior.log_prob(held.numpy()), latent_mixture.log_prob(held).numpy()
    assert np.corrcoef(estimate, truth)[0, 1] > 0.95
    assert abs(estimate.mean() - truth.mean()) < 0.2, (estimate.mean(), truth.mean())


def test_cld_prior_refuses_likelihood_and_paths(cld_prior):
    prior, _ = cld_prior
    with pytest.raises(InputError, match="edm or flow prior"):
        prior.log_prob(np.zeros((2, 4)))
    with pytest.raises(InputError, match="edm or flow prior"):
        prior.interpolate(np.zeros(4), np.ones(4), 5)


def test_sample_cli_takes_the_formulations_solvers(trained, tmp_path, fails_with_one_line):
    prior, out = trained
    solver = {"flow": "flow_euler", "cld": "em"}[prior.formulation]
    assert main(["sample", str(out), "-n", "20", "--solver", solver, "--steps", "30", "-o", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (20, 4)
    wrong = {"flow": "sscs", "cld": "heun"}[prior.formulation]
    fails_with_one_line(["sample", str(out), "-n", "5", "--solver", wrong, "-o", str(tmp_path / "w.npy")],
                        wrong, "is not a sampler of the", prior.formulation)


def test_private_prior_records_the_epsilon_it_spent(latent_mixture, tmp_path, capsys, fails_with_one_line):
    """--dp-epsilon: DP-SGD through the same loss; prior.json reports the epsilon
    of opacus's RDP accountant for the steps taken, within the target."""
    import json

    from generative.privacy import epsilon

    z = _draw(latent_mixture, 1000, 0).numpy()
    np.save(tmp_path / "z.npy", z)
    assert main(["train-prior", str(tmp_path / "z.npy"), "-o", str(tmp_path / "prior"), "--steps", "40",
                 "-b", "100", "--dp-epsilon", "8"]) == 0
    report = json.loads((tmp_path / "prior" / "prior.json").read_text())["privacy"]
    assert report["steps"] == 40 and report["delta"] == pytest.approx(1e-4) and report["sample_rate"] == 0.1
    assert report["epsilon"] <= 8.0
    assert report["epsilon"] == pytest.approx(epsilon(report["noise_multiplier"], 0.1, 40, 1e-4), rel=1e-9)
    assert load_prior(tmp_path / "prior").sample(10).shape == (10, 4)
    capsys.readouterr()  # the training's own messages
    fails_with_one_line(["train-prior", str(tmp_path / "z.npy"), "-o", str(tmp_path / "p2"), "--steps", "40",
                         "--dp-epsilon", "8", "--dp-delta", "0.01"], "--dp-epsilon", "delta")
    assert not (tmp_path / "p2").exists()  # refused before anything was written
