"""Preconditioning, noise sampling and loss weighting against analytic expectations."""

import math

import pytest
import torch

from generative.flow import flow_matching_loss, logit_normal_times
from generative.losses import (denoising_loss, edm_weight, inverse_variance_weight,
                               lognormal_sigmas, loguniform_sigmas, vp_training_sigmas)
from generative.preconditioning import Preconditioned, edm, ve, vp
from generative.schedules import vp_sigma, vp_time


def test_edm_loss_of_zero_network_is_one_for_gaussian_data():
    """With F = 0 the EDM-weighted loss is E[(c_skip x - x0)^2] * weight = 1 when std(x0) = sigma_data."""
    sd = 0.7
    model = Preconditioned(lambda x, c: torch.zeros_like(x), edm(sd))
    g = torch.Generator().manual_seed(0)
    x0 = sd * torch.randn(200000, 1, generator=g, dtype=torch.float64)
    for sigma in (0.01, 0.3, 2.0, 50.0):
        s = torch.full((len(x0),), sigma, dtype=torch.float64)
        loss = denoising_loss(model, x0, s, edm_weight(sd), generator=g).mean().item()
        assert abs(loss - 1) < 0.02


def test_ve_and_vp_preconditioning_with_exact_eps_give_exact_denoiser(mixture2d):
    g = torch.Generator().manual_seed(1)
    x0, _ = mixture2d.sample(32, generator=g)
    sigma = torch.logspace(-2, 1.5, 32, dtype=torch.float64)
    x = x0 + sigma[:, None] * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    expected = mixture2d.denoise(x, sigma)

    def ve_net(x_in, c_noise):  # F = -eps = sigma * score, sigma = 2 exp(c_noise)
        s = 2 * c_noise.exp()
        return s[:, None] * mixture2d.score(x_in, s)

    def vp_net(z, c_noise):  # F = eps in VP scaling, t = c_noise / 999
        s = vp_sigma(c_noise / 999)
        return -s[:, None] * mixture2d.score(z * torch.sqrt(1 + s[:, None] ** 2), s)

    torch.testing.assert_close(Preconditioned(ve_net, ve())(x, sigma), expected)
    torch.testing.assert_close(Preconditioned(vp_net, vp())(x, sigma), expected)
    c_noise = vp()(sigma)[3]
    torch.testing.assert_close(c_noise, 999 * vp_time(sigma))


def test_noise_level_samplers_have_the_documented_laws():
    g = torch.Generator().manual_seed(2)
    log_s = lognormal_sigmas(100000, -1.2, 1.2, generator=g).log()
    assert abs(log_s.mean().item() + 1.2) < 0.02 and abs(log_s.std().item() - 1.2) < 0.02
    s = loguniform_sigmas(100000, 0.02, 100.0, generator=g)
    assert s.min() >= 0.02 and s.max() <= 100.0
    u = (s.log() - math.log(0.02)) / math.log(5000)
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.003
    t = vp_time(vp_training_sigmas(100000, generator=g).double())
    assert abs(t.mean().item() - 0.5) < 0.01
    assert inverse_variance_weight()(torch.tensor(2.0)) == 0.25


def test_logit_normal_times_and_shift():
    g = torch.Generator().manual_seed(3)
    t = logit_normal_times(100000, mean=0.5, scale=0.8, generator=g)
    logit = torch.log(t / (1 - t))
    assert abs(logit.mean().item() - 0.5) < 0.02 and abs(logit.std().item() - 0.8) < 0.02
    shifted = logit_normal_times(100000, mean=0.5, scale=0.8, shift=3.0,
                                 generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(shifted, 3 * t / (1 + 2 * t))


def test_flow_matching_loss_is_minimised_by_the_exact_velocity(mixture2d):
    """At the exact velocity E[eps - x0 | z_t] the loss equals its irreducible part; perturbing it adds |delta|^2."""
    g = torch.Generator().manual_seed(4)
    x0, _ = mixture2d.sample(20000, generator=g)
    t = torch.full((len(x0),), 0.6, dtype=torch.float64)

    def exact(z, tt):
        score = mixture2d.scaled(0.4, 0.6).score(z)
        eps = -0.6 * score
        return eps - (z - 0.6 * eps) / 0.4

    base = flow_matching_loss(exact, x0, t, generator=torch.Generator().manual_seed(5)).mean()
    shifted = flow_matching_loss(lambda z, tt: exact(z, tt) + 0.1, x0, t,
                                 generator=torch.Generator().manual_seed(5)).mean()
    assert shifted - base == pytest.approx(0.01, abs=2e-3)
