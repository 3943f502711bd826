"""Two-sample distances between point clouds ``x [N, d]`` and ``y [M, d]``.

Both are V-statistics (diagonal terms included), hence non-negative with a
positive expected value ("floor") even for two samples of the same law; compare
against that floor, e.g. the distance between two independent reference samples
of the same sizes. Computed in float64.
"""

import torch


def _mean_dist(a, b):
    return torch.cdist(a, b).mean()


def energy_distance(x, y):
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Euclidean, data units)."""
    x, y = x.double(), y.double()
    return (2 * _mean_dist(x, y) - _mean_dist(x, x) - _mean_dist(y, y)).item()


def mmd(x, y, bandwidth=1.0):
    """Squared MMD with the Gaussian kernel ``exp(-|a - b|^2 / (2 bandwidth^2))``."""
    x, y = x.double(), y.double()

    def k(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * bandwidth ** 2)).mean()

    return (k(x, x) + k(y, y) - 2 * k(x, y)).item()


def frechet_distance(x, y):
    """Frechet distance between Gaussians fitted to ``x [N, d]`` and ``y [M, d]`` (FID-style):
    ``|mu_x - mu_y|^2 + tr(C_x + C_y - 2 (C_x C_y)^(1/2))``, squared feature units.

    Means and unbiased covariances in float64; the matrix square root is
    ``scipy.linalg.sqrtm``'s, real part kept. Like the distances above it is biased
    upwards for finite samples (the bias grows with ``d`` and shrinks with ``N``), so
    report beside it the floor between two independent real samples of the same sizes.
    """
    from scipy.linalg import sqrtm

    x, y = x.double(), y.double()
    cx, cy = torch.cov(x.T).reshape(x.shape[1], -1), torch.cov(y.T).reshape(y.shape[1], -1)
    root = torch.from_numpy(sqrtm((cx @ cy).numpy()).real)
    return ((x.mean(0) - y.mean(0)).pow(2).sum() + torch.trace(cx + cy - 2 * root)).item()
