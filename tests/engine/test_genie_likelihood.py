"""GENIE derivatives and distilled head; PF-ODE encoding and log-likelihood against the exact mixture."""

import torch

from generative.genie import GenieHead, eps_and_derivative, genie_distillation_loss
from generative.likelihood import encode, log_likelihood
from generative.losses import loguniform_sigmas
from generative.solvers import sample
from generative.schedules import karras_sigmas
from generative.trainer import Trainer


def test_jvp_derivative_matches_finite_differences_along_the_ode(mixture8d):
    g = torch.Generator().manual_seed(0)
    x0, _ = mixture8d.sample(16, generator=g)
    sigma = torch.logspace(-1, 1, 16, dtype=torch.float64)
    x = x0 + sigma[:, None] * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    eps, deps = eps_and_derivative(mixture8d.denoise, x, sigma)
    h = 1e-5 * sigma

    def eps_at(x_, s_):
        return (x_ - mixture8d.denoise(x_, s_)) / s_[:, None]

    fd = (eps_at(x + h[:, None] * eps, sigma + h) - eps_at(x - h[:, None] * eps, sigma - h)) / (2 * h[:, None])
    torch.testing.assert_close(eps, eps_at(x, sigma))
    torch.testing.assert_close(deps, fd, rtol=1e-5, atol=1e-6)


def test_distilled_head_recovers_most_of_the_exact_jvp_gain(mixture2d):
    torch.manual_seed(0)
    head = GenieHead(2, hidden=64, depth=3, sigma_data=1.4).double()

    def batch_fn(step, g):
        return mixture2d.sample(256, generator=g)[0], loguniform_sigmas(256, 0.002, 80.0, generator=g).double()

    def loss_fn(h, batch, g):
        return genie_distillation_loss(h, mixture2d.denoise, batch[0], batch[1], generator=g)

    trainer = Trainer(head, loss_fn, batch_fn, lr=2e-3, ema_decay=0.99, log_every=200)
    records = trainer.fit(800)
    assert records[-1]["loss"] < 0.6 * records[0]["loss"]

    x_T = 80 * torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = sample(mixture2d.denoise, x_T, karras_sigmas(1000), "heun")
    sigmas = karras_sigmas(10)
    calls = []

    def counted(x, s):
        calls.append(1)
        return mixture2d.denoise(x, s)

    def error(x):
        return (x - ref).norm(dim=1).mean().item()

    e_ddim = error(sample(mixture2d.denoise, x_T, sigmas, "ddim"))
    e_exact = error(sample(mixture2d.denoise, x_T, sigmas, "genie"))
    e_head = error(sample(counted, x_T, sigmas, "genie", head=trainer.ema))
    assert len(calls) == 10  # one denoiser evaluation per step
    assert e_exact < 0.5 * e_ddim
    assert e_ddim - e_head >= 0.5 * (e_ddim - e_exact), (e_ddim, e_exact, e_head)


def test_encode_decode_round_trip(mixture2d):
    x0, _ = mixture2d.sample(256, generator=torch.Generator().manual_seed(1))
    sigmas = karras_sigmas(80, sigma_min=0.01).flip(0)[1:]
    x_T = encode(mixture2d.denoise, x0, sigmas)
    assert abs(x_T.std().item() / 80.0 - 1) < 0.15
    back = sample(mixture2d.denoise, x_T, sigmas.flip(0), "heun")
    assert (back - x0).abs().max() < 1e-2


def test_exact_log_likelihood_matches_mixture_density(mixture2d):
    x0, _ = mixture2d.sample(64, generator=torch.Generator().manual_seed(2))
    sigmas = karras_sigmas(100, sigma_min=0.01).flip(0)[1:]
    ll = log_likelihood(mixture2d.denoise, x0, sigmas)
    assert (ll - mixture2d.log_prob(x0, 0.01)).abs().max() < 0.05


def test_hutchinson_log_likelihood_is_unbiased_in_8d(mixture8d):
    x0, _ = mixture8d.sample(32, generator=torch.Generator().manual_seed(3))
    sigmas = karras_sigmas(100, sigma_min=0.05).flip(0)[1:]
    truth = mixture8d.log_prob(x0, 0.05)
    exact = log_likelihood(mixture8d.denoise, x0, sigmas)
    assert (exact - truth).abs().max() < 0.12 and abs((exact - truth).mean()) < 0.03
    est = log_likelihood(mixture8d.denoise, x0, sigmas, hutchinson_probes=2,
                         generator=torch.Generator().manual_seed(4))
    err = est - truth
    assert err.abs().mean() > 1e-3  # it is an estimate, not the exact trace
    assert abs(err.mean().item()) < 3 * err.std().item() / 32 ** 0.5 + 0.03
