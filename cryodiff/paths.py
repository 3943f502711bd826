"""Paths between two latents through a diffusion prior, and how far a path strays from the data.

:func:`pf_ode_interpolation` maps both end latents to noise with the
deterministic probability-flow ODE of a :class:`cryodiff.prior.Prior`
(standardised units, Heun on the Karras grid 0.002..80), interpolates the two
noise vectors by spherical linear interpolation (slerp) and maps every point
back with the same ODE. Since the ODE carries the Gaussian onto the data's
distribution, the decoded points stay in populated regions (they cross
between modes where the data's density is highest) instead of running through
empty space as a straight line does.

:func:`path_metrics` scores any path ``[M, zdim]`` against the data latents:
the mean distance of its points to their ``k`` nearest data latents
(standardised units) and, with a prior, the prior's log-density along it.
:func:`linear_path` and :func:`graph_path_latents` give the two usual
alternatives (straight line; shortest path through the k-nearest-neighbour
graph of the particles) from :mod:`recon.analysis`.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from cryodiff.prior import SIGMA_MAX, SIGMA_MIN, Prior, standardisation
from generative.likelihood import encode
from generative.samplers import sample
from generative.schedules import karras_sigmas
from recon.analysis import direct_path, graph_path
from recon.errors import InputError

#: Heun intervals of each ODE solve; on a 2-D two-mode test the endpoints come back within
#: 2e-4 standardised units (1.5e-3 at 32 steps, 1.4e-2 at 16).
PATH_STEPS = 64


def slerp(x_a: torch.Tensor, x_b: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` points ``[n, d]`` of the spherical interpolation from ``x_a [d]`` to ``x_b [d]``, ends included.

    ``x(t) = sin((1 - t) theta) / sin(theta) x_a + sin(t theta) / sin(theta) x_b``
    with ``theta`` the angle between them; nearly parallel or opposite vectors
    (``sin theta < 1e-6``) are interpolated linearly.
    """
    t = torch.linspace(0.0, 1.0, n, dtype=x_a.dtype)[:, None]
    cos = torch.dot(x_a, x_b) / (x_a.norm() * x_b.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if torch.sin(theta) < 1e-6:
        return (1 - t) * x_a + t * x_b
    return (torch.sin((1 - t) * theta) * x_a + torch.sin(t * theta) * x_b) / torch.sin(theta)


def _ode_grid(steps: int) -> torch.Tensor:
    """Increasing Karras noise levels ``[steps]`` from 0.002 to 80 (standardised units)."""
    if steps < 1:
        raise InputError("--steps", f"{steps} steps", "use 1 or more")
    return karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX)[:-1].flip(0).float()


def pf_ode_interpolation(prior: Prior, z_a, z_b, n: int, steps: int = PATH_STEPS) -> np.ndarray:
    """``n`` latents ``[n, zdim]`` (float32, original units) from ``z_a`` to ``z_b`` through the prior's noise.

    ``z_a``, ``z_b`` (``[zdim]``, original units) are standardised, encoded to
    sigma 80 along the PF-ODE (Heun, ``steps`` intervals), slerped there
    (:func:`slerp`, ``n`` points, ends included) and decoded back to sigma
    0.002 along the same grid. The first and last points reproduce ``z_a`` and
    ``z_b`` up to the ODE solver's round-trip error.
    """
    if n < 2:
        raise InputError("-n", f"{n} points do not make a path", "use -n 2 or more")
    sigmas = _ode_grid(steps)
    denoiser = prior.require_denoiser("a PF-ODE path")
    noise = encode(denoiser, prior.standardise(np.stack([z_a, z_b])), sigmas, "heun")
    path = slerp(noise[0].double(), noise[1].double(), n).float()
    return prior.destandardise(sample(denoiser, path, sigmas.flip(0), "heun"))


def linear_path(z_a, z_b, n: int) -> np.ndarray:
    """``n`` evenly spaced latents ``[n, zdim]`` (float32) on the straight line from ``z_a`` to ``z_b``."""
    return direct_path(z_a, z_b, n).astype(np.float32)


def graph_path_latents(z: np.ndarray, start: int, end: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(rows [M], latents [M, zdim])`` of the shortest path from row ``start`` to ``end`` of ``z [N, zdim]``
    through its k-nearest-neighbour graph (:func:`recon.analysis.graph_path`); every point is a particle."""
    rows, _ = graph_path(z, start, end, k)
    return rows, np.asarray(z, dtype=np.float32)[rows]


def knn_distances(points: np.ndarray, data_z: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean Euclidean distance ``[M]`` of each of ``points [M, zdim]`` to its ``k`` nearest of ``data_z [N, zdim]``.

    Both are standardised by the mean and std of ``data_z`` per dimension (the
    prior's units when it was trained on ``data_z``). A data latent equal to
    the point itself (distance < 1e-9) is not counted, so a path through
    particles is measured like any other.
    """
    data_z = np.asarray(data_z, dtype=np.float64)
    if not 1 <= k < len(data_z):
        raise InputError("-k", f"{k} neighbours for {len(data_z)} latents", f"choose between 1 and {len(data_z) - 1}")
    mean, std = standardisation(data_z)
    nn = NearestNeighbors(n_neighbors=k + 1).fit((data_z - mean) / std)
    dist, _ = nn.kneighbors((np.asarray(points, dtype=np.float64) - mean) / std)
    keep = np.where(dist[:, :1] < 1e-9, dist[:, 1:], dist[:, :-1])
    return keep.mean(1)


def path_metrics(path: np.ndarray, data_z: np.ndarray, prior: Prior | None = None, k: int = 10,
                 steps: int = 64) -> dict:
    """How far ``path [M, zdim]`` (original units) strays from ``data_z [N, zdim]``.

    Returns a JSON-ready dict: ``points`` (M); ``knn_distance_mean`` and
    ``knn_distance_max``, the mean and largest over the points of
    :func:`knn_distances` (standardised units); ``length``, the summed step
    lengths in standardised units; with ``prior``, ``log_prob_mean`` and
    ``log_prob_min`` in nats (original units; ``Prior.log_prob`` with ``steps``).
    """
    path = np.asarray(path, dtype=np.float64)
    dist = knn_distances(path, data_z, k)
    _, std = standardisation(data_z)
    record = {"points": len(path), "knn_distance_mean": float(dist.mean()), "knn_distance_max": float(dist.max()),
              "length": float(np.linalg.norm(np.diff(path / std, axis=0), axis=1).sum())}
    if prior is not None:
        logp = prior.log_prob(path, steps=steps)
        record.update(log_prob_mean=float(logp.mean()), log_prob_min=float(logp.min()))
    return record
