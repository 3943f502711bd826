import math

import pytest
import torch

from generative.metrics import energy_distance, mmd
from generative.mixtures import GaussianMixture


def _autograd_score(mix, x, sigma):
    x = x.clone().requires_grad_(True)
    mix.log_prob(x, sigma).sum().backward()
    return x.grad


def test_density_integrates_to_one(mixture2d):
    grid = torch.linspace(-6, 6, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    cell = (grid[1] - grid[0]) ** 2
    for sigma in (0.0, 0.5):
        mass = (mixture2d.log_prob(pts, sigma).exp().sum() * cell).item()
        assert abs(mass - 1) < 1e-3


def test_score_and_denoiser_match_autograd_tweedie(mixture8d):
    g = torch.Generator().manual_seed(0)
    x0, _ = mixture8d.sample(64, generator=g)
    sigma = torch.logspace(-2, 1, 64, dtype=torch.float64)
    x = x0 + sigma[:, None] * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    score = _autograd_score(mixture8d, x, sigma)
    torch.testing.assert_close(mixture8d.score(x, sigma), score, rtol=1e-9, atol=1e-9)
    tweedie = x + sigma[:, None] ** 2 * score
    torch.testing.assert_close(mixture8d.denoise(x, sigma), tweedie, rtol=1e-9, atol=1e-9)


def test_single_gaussian_denoiser_is_linear_shrinkage(mixture8d):
    comp = mixture8d.component(1)
    mu, cov = mixture8d.means[1], mixture8d.covs[1]
    x = torch.randn(16, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sigma = 0.7
    expected = mu + torch.linalg.solve(cov + sigma ** 2 * torch.eye(8, dtype=torch.float64),
                                       (x - mu).T).T @ cov.T
    torch.testing.assert_close(comp.denoise(x, sigma), expected)


def test_samples_match_moments_and_weights(mixture8d):
    x, labels = mixture8d.sample(20000, generator=torch.Generator().manual_seed(2))
    frac = torch.bincount(labels, minlength=3).double() / len(labels)
    assert (frac - mixture8d.weights).abs().max() < 0.015
    sel = x[labels == 0]
    torch.testing.assert_close(sel.mean(0), mixture8d.means[0], atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(sel.T), mixture8d.covs[0], atol=0.01, rtol=0)
    assert (mixture8d.assign(x) == labels).double().mean() > 0.99


def test_scaled_mixture_is_law_of_affine_combination(mixture2d):
    g = torch.Generator().manual_seed(4)
    x0, _ = mixture2d.sample(4000, generator=g)
    y = 0.6 * x0 + 0.8 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    z, _ = mixture2d.scaled(0.6, 0.8).sample(4000, generator=g)
    w, _ = mixture2d.sample(4000, generator=g)
    assert energy_distance(y, z) < 0.01
    assert energy_distance(y, w) > 0.1


def test_metrics_on_known_configurations():
    x = torch.zeros(1, 1)
    y = torch.ones(1, 1)
    assert math.isclose(energy_distance(x, y), 2.0)
    assert math.isclose(mmd(x, y, bandwidth=1.0), 2 - 2 * math.exp(-0.5))
    pts = torch.randn(50, 3)
    assert abs(energy_distance(pts, pts)) < 1e-12
    assert abs(mmd(pts, pts)) < 1e-12


def test_rejects_singular_covariance():
    with pytest.raises(ValueError):
        GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 0.0]]])
