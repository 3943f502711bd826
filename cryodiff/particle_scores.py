"""A suggested cut-off for per-particle log-likelihoods under the prior.

Junk (empty images, a foreign molecule, damaged particles) tends to form a
separate group of low scores; a rare conformation gives a long tail instead.
:func:`suggest_cutoff` looks for the first: it fits a two-component Gaussian
mixture to the scores and, when the lower component is a clear, minor group
(its mean at least 2 pooled standard deviations below the other's, at most
half the particles), cuts where a particle becomes more likely to belong to
the main group. Otherwise it falls back to a robust outlier rule: the median
minus 4 robust standard deviations (1.4826 × the median absolute deviation),
which drops almost nothing from a unimodal distribution. Either way it is a
suggestion: look at the histogram (and at the particles) before dropping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cutoff:
    """``value`` in nats, the ``fraction`` of particles below it and ``rule``: how it was found."""

    value: float
    fraction: float
    rule: str


def suggest_cutoff(log_prob: np.ndarray, seed: int = 0) -> Cutoff:
    """A cut-off in nats below which particles look like a separate low-scoring group (see module doc)."""
    from sklearn.mixture import GaussianMixture

    x = np.asarray(log_prob, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    median = float(np.median(x))
    robust_sd = 1.4826 * float(np.median(np.abs(x - median)))
    fallback = Cutoff(median - 4 * robust_sd, float(np.mean(x < median - 4 * robust_sd)), "median - 4 robust SD")
    if len(x) < 50 or robust_sd == 0:
        return fallback
    gmm = GaussianMixture(2, random_state=seed).fit(x[:, None])
    means, sds, weights = gmm.means_[:, 0], np.sqrt(gmm.covariances_[:, 0, 0]), gmm.weights_
    low, high = np.argsort(means)
    separation = (means[high] - means[low]) / np.sqrt(0.5 * (sds[low] ** 2 + sds[high] ** 2))
    if separation < 2 or weights[low] > 0.5:
        return fallback
    grid = np.linspace(means[low], means[high], 2001)
    main = gmm.predict_proba(grid[:, None])[:, high]
    value = float(grid[np.argmax(main >= 0.5)])
    return Cutoff(value, float(np.mean(x < value)), f"two-group mixture (separation {separation:.1f} SD)")
