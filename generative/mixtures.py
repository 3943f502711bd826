"""Gaussian mixtures with closed-form noisy marginals, denoisers and scores.

A mixture ``p0 = sum_k w_k N(mu_k, C_k)`` in R^d perturbed in the EDM/VE
convention ``x = x0 + sigma * eps`` (eps ~ N(0, I), sigma >= 0 in data units)
has the marginal ``p_sigma = sum_k w_k N(mu_k, C_k + sigma^2 I)``. Its exact
denoiser ``E[x0 | x]``, score and log-density are available in closed form,
which makes the mixture the ground truth for solver and training tests.

Shapes: points ``x`` are ``[N, d]``; ``sigma`` is a float, a 0-d tensor or a
``[N]`` tensor (one noise level per point). Computation runs in the mixture's
dtype (float64 by default) and results come back in the dtype of ``x``.
"""

import math

import torch


class GaussianMixture:
    """Mixture ``sum_k weights[k] * N(means[k], covs[k])``.

    Args:
        weights: ``[K]`` non-negative, normalised here.
        means: ``[K, d]``.
        covs: ``[K, d, d]`` symmetric positive definite covariances.
    """

    def __init__(self, weights, means, covs, dtype=torch.float64):
        self.weights = torch.as_tensor(weights, dtype=dtype)
        self.weights = self.weights / self.weights.sum()
        self.means = torch.as_tensor(means, dtype=dtype)
        self.covs = torch.as_tensor(covs, dtype=dtype)
        self.eigvals, self.eigvecs = torch.linalg.eigh(self.covs)
        if not bool((self.eigvals > 0).all()):
            raise ValueError("mixture covariances must be positive definite")

    @classmethod
    def isotropic(cls, weights, means, stds, dtype=torch.float64):
        """Mixture with covariances ``stds[k]^2 I``; ``stds`` is ``[K]`` or a float."""
        means = torch.as_tensor(means, dtype=dtype)
        k, d = means.shape
        stds = torch.as_tensor(stds, dtype=dtype).expand(k)
        covs = stds[:, None, None] ** 2 * torch.eye(d, dtype=dtype)
        return cls(weights, means, covs, dtype=dtype)

    @property
    def dim(self):
        return self.means.shape[1]

    def scaled(self, a, b):
        """Law of ``a * x0 + b * eps`` (a > 0, b >= 0): the VP/flow marginals."""
        eye = torch.eye(self.dim, dtype=self.means.dtype)
        return GaussianMixture(self.weights, a * self.means, a * a * self.covs + b * b * eye,
                               dtype=self.means.dtype)

    def component(self, k):
        """The k-th component as a one-component mixture."""
        return GaussianMixture(self.weights[k:k + 1], self.means[k:k + 1], self.covs[k:k + 1],
                               dtype=self.means.dtype)

    def sample(self, n, generator=None):
        """``n`` draws from ``p0``; returns ``(x [n, d], labels [n])``."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, dtype=self.means.dtype, generator=generator)
        chol = self.eigvecs * self.eigvals.sqrt()[:, None, :]
        x = self.means[labels] + torch.einsum("nij,nj->ni", chol[labels], z)
        return x, labels

    def _parts(self, x, sigma):
        """Per-component rotated residuals, noisy variances and log-likelihoods."""
        x = x.to(self.means.dtype)
        s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1) ** 2
        y = torch.einsum("kji,nkj->nki", self.eigvecs, x[:, None, :] - self.means)
        var = self.eigvals + s2
        loglik = -0.5 * ((y * y / var) + torch.log(2 * math.pi * var)).sum(-1)
        return y, var, loglik

    def log_prob(self, x, sigma=0.0):
        """``log p_sigma(x)`` in nats, ``[N]``."""
        _, _, loglik = self._parts(x, sigma)
        return torch.logsumexp(loglik + self.weights.log(), dim=1).to(x.dtype)

    def responsibilities(self, x, sigma=0.0):
        """Posterior component probabilities ``p(k | x)`` under ``p_sigma``, ``[N, K]``."""
        _, _, loglik = self._parts(x, sigma)
        return torch.softmax(loglik + self.weights.log(), dim=1).to(x.dtype)

    def assign(self, x):
        """Most probable component of each point under ``p0``, ``[N]``."""
        return self.responsibilities(x).argmax(dim=1)

    def denoise(self, x, sigma):
        """Exact denoiser ``E[x0 | x0 + sigma * eps = x]``, ``[N, d]``."""
        y, var, loglik = self._parts(x, sigma)
        r = torch.softmax(loglik + self.weights.log(), dim=1)
        shrunk = torch.einsum("kij,nkj->nki", self.eigvecs, self.eigvals / var * y)
        return torch.einsum("nk,nki->ni", r, self.means + shrunk).to(x.dtype)

    def score(self, x, sigma=0.0):
        """Exact score ``grad_x log p_sigma(x)``, ``[N, d]``."""
        y, var, loglik = self._parts(x, sigma)
        r = torch.softmax(loglik + self.weights.log(), dim=1)
        comp = -torch.einsum("kij,nkj->nki", self.eigvecs, y / var)
        return torch.einsum("nk,nki->ni", r, comp).to(x.dtype)
