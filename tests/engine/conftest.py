import pytest
import torch

from generative.mixtures import GaussianMixture


@pytest.fixture(scope="session")
def mixture2d():
    """Four well separated isotropic components in 2-D (unequal weights and widths)."""
    means = [[-1.5, -1.0], [1.5, 1.0], [1.2, -1.4], [-1.2, 1.5]]
    return GaussianMixture.isotropic([0.1, 0.2, 0.3, 0.4], means, [0.2, 0.3, 0.25, 0.35])


@pytest.fixture(scope="session")
def mixture8d():
    """Three components in 8-D with random full covariances."""
    g = torch.Generator().manual_seed(3)
    means = 2.0 * torch.randn(3, 8, generator=g, dtype=torch.float64)
    a = torch.randn(3, 8, 8, generator=g, dtype=torch.float64) * 0.15
    covs = a @ a.transpose(1, 2) + 0.05 * torch.eye(8, dtype=torch.float64)
    return GaussianMixture([0.5, 0.3, 0.2], means, covs)


@pytest.fixture(scope="module", autouse=True)
def _single_thread(one_torch_thread):
    """Tiny tensors: every engine test module runs on one torch thread (tests/conftest.py)."""
