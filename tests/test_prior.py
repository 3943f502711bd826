"""The diffusion prior against a known 4-D, three-component Gaussian mixture
(``latent_mixture`` in conftest):
samples, mixture weights and log-densities are compared with the exact law."""

import pickle

import h5py
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from cryodiff.prior import (CHECKPOINT, SETTINGS, WEIGHTS, default_steps, load_prior, read_latents,
                            train_prior)
from generative.metrics import energy_distance
from recon.errors import InputError

N_TRAIN, N_TEST = 3000, 1000


def _draw(latent_mixture, n, seed):
    return latent_mixture.sample(n, generator=torch.Generator().manual_seed(seed))[0]


@pytest.fixture(scope="module")
def trained(latent_mixture, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("prior") / "prior"
    prior = train_prior(_draw(latent_mixture, N_TRAIN, 0).numpy(), out, steps=1200, batch_size=256)
    yield prior, out
    torch.set_num_threads(threads)


def _standardised(prior, z):
    return (torch.as_tensor(z, dtype=torch.float64) - torch.from_numpy(prior.mean)) / torch.from_numpy(prior.std)


@pytest.mark.parametrize("solver", ["heun", "dpmpp_2m"])
def test_samples_match_the_mixture_and_gaussian_does_not(latent_mixture, trained, solver):
    prior, _ = trained
    held, held2 = _draw(latent_mixture, N_TEST, 1), _draw(latent_mixture, N_TEST, 2)
    floor = energy_distance(_standardised(prior, held), _standardised(prior, held2))
    z = prior.sample(N_TEST, solver=solver, seed=3)
    assert z.shape == (N_TEST, 4) and z.dtype == np.float32
    ratio = energy_distance(_standardised(prior, z), _standardised(prior, held)) / floor
    gaussian = torch.randn(N_TEST, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    gaussian_ratio = energy_distance(gaussian, _standardised(prior, held)) / floor
    assert ratio < 3.0, ratio
    assert gaussian_ratio > 20.0, gaussian_ratio
    fractions = torch.bincount(latent_mixture.assign(torch.from_numpy(z).double()), minlength=3).double() / N_TEST
    assert (fractions - latent_mixture.weights).abs().max() < 0.04, fractions


def test_log_prob_follows_the_true_density_in_original_units(latent_mixture, trained):
    prior, _ = trained
    held = _draw(latent_mixture, 100, 5)
    estimate = prior.log_prob(held.numpy())
    truth = latent_mixture.log_prob(held).numpy()
    assert estimate.shape == (100,)
    assert spearmanr(estimate, truth).correlation > 0.95
    assert abs(estimate.mean() - truth.mean()) < 0.1, (estimate.mean(), truth.mean())


def test_saved_prior_gives_the_same_samples(trained):
    prior, out = trained
    loaded = load_prior(out)
    np.testing.assert_array_equal(loaded.sample(50, seed=7), prior.sample(50, seed=7))
    np.testing.assert_array_equal(load_prior(out / WEIGHTS).sample(50, seed=7), prior.sample(50, seed=7))
    assert not np.allclose(loaded.sample(50, seed=8), prior.sample(50, seed=7))
    assert loaded.info["steps_done"] == 1200 and loaded.info["n_latents"] == N_TRAIN


def test_resume_reaches_the_uninterrupted_prior(latent_mixture, tmp_path):
    z = _draw(latent_mixture, 500, 6).numpy()
    full = train_prior(z, tmp_path / "full", steps=30, batch_size=64)
    train_prior(z, tmp_path / "half", steps=15, batch_size=64)
    assert load_prior(tmp_path / "half").info["steps_done"] == 15
    resumed = train_prior(z, tmp_path / "half", steps=30, batch_size=64, resume=True)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(InputError, match="already holds a prior"):
        train_prior(z, tmp_path / "full", steps=30)
    with pytest.raises(InputError, match="latents differ"):
        train_prior(z[:-1], tmp_path / "full", steps=40, resume=True)
    with pytest.raises(InputError, match="no prior to resume"):
        train_prior(z, tmp_path / "none", steps=30, resume=True)
    (tmp_path / "full" / WEIGHTS).unlink()
    with pytest.raises(InputError, match="did not finish"):
        load_prior(tmp_path / "full")
    assert (tmp_path / "full" / CHECKPOINT).is_file() and (tmp_path / "full" / SETTINGS).is_file()


def test_default_steps_scale_with_zdim_and_particles():
    assert default_steps(1000, 1) == 4000
    assert default_steps(1000, 8) == 5656
    assert default_steps(100_000, 8) == 16970
    assert default_steps(1_000_000, 64) == 40000
    assert default_steps(1000, 8) < default_steps(1000, 16) < default_steps(10_000, 16)


def test_read_latents_from_every_source(tmp_path):
    z = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    run = tmp_path / "run"
    run.mkdir()
    with h5py.File(run / "latents.h5", "w") as h5:
        h5["z_mu"], h5["z_logvar"], h5["indices"] = z, np.zeros_like(z), np.arange(40)
    np.save(tmp_path / "z.npy", z)
    with open(tmp_path / "z.pkl", "wb") as f:
        pickle.dump(z, f)
        pickle.dump(np.zeros_like(z), f)  # cryoDRGN's z.N.pkl holds z_mu then z_logvar
    for source in (run, run / "latents.h5", tmp_path / "z.npy", tmp_path / "z.pkl"):
        np.testing.assert_array_equal(read_latents(source), z)
    np.save(tmp_path / "one.npy", z[:, 0])
    assert read_latents(tmp_path / "one.npy").shape == (40, 1)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("name, write, phrase", [
    ("missing.npy", None, "file not found"),
    ("empty_run", "dir", "no latents.h5"),
    ("z.csv", b"1,2\n", "unknown latents format"),
    ("other.h5", "h5", "no z_mu dataset"),
    ("evil.pkl", pickle.dumps(_Exploit()), "refusing to unpickle"),
    ("cube.npy", np.zeros((20, 2, 2)), "shape"),
    ("few.npy", np.ones((3, 2)), "only 3 latents"),
    ("nan.npy", np.full((20, 2), np.nan), "NaN"),
])
def test_read_latents_rejects_bad_sources(tmp_path, name, write, phrase):
    path = tmp_path / name
    if isinstance(write, np.ndarray):
        np.save(path, write)
    elif write == "dir":
        path.mkdir()
    elif write == "h5":
        with h5py.File(path, "w") as h5:
            h5["poses"] = np.zeros(3)
    elif isinstance(write, bytes):
        path.write_bytes(write)
    with pytest.raises(InputError, match=phrase):
        read_latents(path)


def test_constant_dimension_is_refused(tmp_path):
    z = np.random.default_rng(0).normal(size=(30, 2))
    z[:, 1] = 5.0
    with pytest.raises(InputError, match=r"dimension\(s\) \[1\] are constant"):
        train_prior(z, tmp_path / "p", steps=2)


def test_sampling_in_chunks_is_deterministic_and_keeps_small_draws(trained, monkeypatch):
    import cryodiff.prior as prior_module

    prior, _ = trained
    small = prior.sample(100, seed=4)
    monkeypatch.setattr(prior_module, "SAMPLE_CHUNK", 100)
    seen = []
    big = prior.sample(250, seed=4, progress=seen.append)
    assert seen == [100, 100, 50] and big.shape == (250, prior.zdim)
    np.testing.assert_array_equal(big[:100], small)  # the first chunk is the unchunked draw
    np.testing.assert_array_equal(big, prior.sample(250, seed=4))
    assert np.abs(big[100:200] - big[:100]).min() > 0  # later chunks draw fresh noise
