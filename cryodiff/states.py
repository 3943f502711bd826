"""States of a latent landscape: the modes of a diffusion prior's density, the particles in
each, and their populations and free energies with bootstrap intervals.

**Modes by mean-shift with the denoiser.** A prior trained on the latents (standardised
units ``u``, :mod:`cryodiff.prior`) gives the denoiser ``D(u, sigma) = E[u0 | u_sigma = u]``,
and by Tweedie's formula ``D(u, sigma) = u + sigma^2 grad log p_sigma(u)``, where ``p_sigma``
is the latent density smoothed by a Gaussian of standard deviation ``sigma``. The
iteration ``u <- D(u, sigma)`` is therefore Gaussian mean-shift on ``p_sigma``: it climbs
the smoothed density and stops at its modes. ``sigma`` (the *bandwidth*, in standardised
units: 1 is the latents' own spread per dimension) sets how fine the states are: modes
closer than about two bandwidths merge.

**Choosing the bandwidth.** :func:`persistent_bandwidth` counts the modes at bandwidths
from 0.05 to 1 (log-spaced) and keeps the finest count that persists over at least three
of them (a factor of 1.6 in scale), taking the geometric middle of its range: a state that
is real survives a change of scale, a bump in a noisy density estimate does not; and a
coarser count that persists longer merges real states (two close states stay merged over
a wide range of scales because they are close).

**States and particles.** Ascents from a sample of particles' latents end at a few
points; points within half a bandwidth of each other are one mode. Every particle's
latent then ascends, and the particle belongs to the state whose mode its ascent reaches
(its basin of attraction). A mode whose basin holds less than ``min_population`` of the
particles is not a state: its particles are *unassigned* (state ``-1``), as are particles
whose ascent ends away from every mode.

**Populations and free energies.** A state's population is its fraction of all particles
(unassigned ones included in the total). Counting the particles in each basin is biased
where states overlap: a particle's latent is noisy, and the tail of a state that spills
over a basin boundary is counted in the neighbour (a small state next to a large one loses
the most). Where the states are Gaussian enough, the weights of a Gaussian mixture, one
full-covariance Gaussian per state, fitted by expectation-maximisation to the assigned
particles' latents from their basins (:func:`fit_mixture`), times the assigned fraction,
give that tail back (``states --populations mixture``); where a Gaussian takes over
another state's particles the mixture is refused and the counts stand. With the VAE at
hand, the images give the populations without that bias: each state's maximum-likelihood
share of the particle images (:mod:`cryodiff.state_likelihood`, the default of ``states
--run``), which :func:`bootstrap` resamples like a mixture. Its relative free energy is
``dG_i = -kT ln(p_i / p_max)`` (0 for the most populated state), in units of kT, and in
kcal/mol at a stated temperature. Intervals come from the bootstrap over particles
(resampling the particles with replacement, states and Gaussians fixed, the weights
refitted): percentile intervals at the chosen confidence. With priors retrained on the same latents with other seeds
(:func:`match_states`, :func:`bootstrap` with several label sets), each bootstrap draw
also picks one of the priors at random, so the intervals widen by how much the states
depend on the prior's training. These treat the particles as the sample; that picking,
the VAE and the prior do not bias the populations is an assumption the intervals do not
cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

#: Boltzmann constant in kcal/(mol K).
KB_KCAL_PER_MOL_K = 0.0019872043
#: Bandwidths (standardised units) searched by :func:`persistent_bandwidth`.
BANDWIDTHS = np.geomspace(0.05, 1.0, 14)
#: Consecutive bandwidths of the scan (a factor of 1.6 in scale) over which a number of states must persist.
MIN_PLATEAU = 3
#: Ridge added to each state's covariance in :func:`fit_mixture` (standardised units squared).
MIXTURE_RIDGE = 1e-4


@torch.no_grad()
def ascend(prior, z: np.ndarray, bandwidth: float, *, iterations: int = 300, tolerance: float = 1e-4,
           batch_size: int = 8192, progress=None) -> np.ndarray:
    """Mean-shift ascent of ``z [N, zdim]`` (original units) on the prior density smoothed by
    ``bandwidth`` (standardised units); returns the end points ``[N, zdim]`` in standardised
    units. A batch stops when no point moved more than ``tolerance * bandwidth`` in one step.
    ``progress(n)`` is called with the number of points finished."""
    denoiser = prior.require_denoiser("finding states")
    u = prior.standardise(z)
    ends = []
    for chunk in u.split(batch_size):
        x = chunk.clone()
        sigma = torch.full((len(x),), float(bandwidth))
        for _ in range(iterations):
            step = denoiser(x, sigma) - x
            x += step
            if step.norm(dim=1).max() < tolerance * bandwidth:
                break
        ends.append(x)
        if progress is not None:
            progress(len(x))
    return torch.cat(ends).numpy().astype(np.float64)


def merge_points(ends: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Group end points ``[N, zdim]`` closer than ``radius`` (single linkage): ``(centres [K, zdim],
    labels [N])``, centres ordered by group size, largest first."""
    if len(ends) == 1:
        return ends.copy(), np.zeros(1, int)
    labels = fcluster(linkage(ends, "single"), radius, criterion="distance") - 1
    sizes = np.bincount(labels)
    order = np.argsort(-sizes, kind="stable")
    relabel = np.empty_like(order)
    relabel[order] = np.arange(len(order))
    labels = relabel[labels]
    centres = np.stack([ends[labels == k].mean(0) for k in range(len(order))])
    return centres, labels


def modes_at(prior, z_sample: np.ndarray, bandwidth: float, min_population: float) -> np.ndarray:
    """Modes ``[K, zdim]`` (standardised units) of the smoothed density whose basins hold at least
    ``min_population`` of ``z_sample``, largest basin first."""
    centres, labels = merge_points(ascend(prior, z_sample, bandwidth), 0.5 * bandwidth)
    keep = np.bincount(labels, minlength=len(centres)) >= min_population * len(z_sample)
    return centres[keep]


def persistent_bandwidth(prior, z_sample: np.ndarray, min_population: float,
                         bandwidths: np.ndarray = BANDWIDTHS) -> tuple[float, list[dict]]:
    """The bandwidth at the geometric middle of the finest run of at least :data:`MIN_PLATEAU`
    consecutive ``bandwidths`` giving the same number (one or more) of modes (without such a run:
    of the widest such run, the finest of equals), and the count at each bandwidth."""
    counts = [len(modes_at(prior, z_sample, b, min_population)) for b in bandwidths]
    runs, start = [], 0
    for i in range(1, len(counts) + 1):
        if i == len(counts) or counts[i] != counts[start]:
            runs.append((start, i - 1))
            start = i
    described = [(first, last) for first, last in runs if counts[first] > 0] or runs
    stable = [(first, last) for first, last in described if last - first + 1 >= MIN_PLATEAU]
    first, last = stable[0] if stable else max(described, key=lambda run: (run[1] - run[0], -run[0]))
    chosen = float(np.sqrt(bandwidths[first] * bandwidths[last]))
    return chosen, [{"bandwidth": float(b), "modes": c} for b, c in zip(bandwidths, counts)]


@dataclass
class States:
    """The states of a set of particles (see the module docstring).

    ``modes [K, zdim]``: each state's mode in the latents' original units, most populated
    first; ``labels [N]``: each particle's state (``-1``: unassigned); ``bandwidth``:
    standardised units; ``scan``: mode counts per bandwidth when it was chosen by
    :func:`persistent_bandwidth`, else empty.
    """

    modes: np.ndarray
    labels: np.ndarray
    bandwidth: float
    scan: list

    @property
    def count(self) -> int:
        return len(self.modes)


def find_states(prior, z: np.ndarray, *, bandwidth: float | None = None, min_population: float = 0.01,
                starts: int = 2000, seed: int = 0, progress=None) -> States:
    """States of the particles with latents ``z [N, zdim]`` (original units) under ``prior``.

    ``bandwidth`` (standardised units; ``None``: :func:`persistent_bandwidth`) sets the scale;
    modes are found from ``starts`` particles drawn at random (``seed``), and every particle
    is assigned by its own ascent. ``progress(n)`` is called as particles finish.
    """
    if not 0 < min_population < 1:
        raise ValueError(f"min_population must be between 0 and 1, got {min_population}")
    z = np.asarray(z, dtype=np.float32)
    rng = np.random.default_rng(seed)
    sample = z[rng.choice(len(z), size=min(starts, len(z)), replace=False)]
    scan = []
    if bandwidth is None:
        bandwidth, scan = persistent_bandwidth(prior, sample, min_population)
    modes = modes_at(prior, sample, bandwidth, min_population)
    labels = assign(prior, z, modes, bandwidth, progress=progress)
    counts = np.bincount(labels[labels >= 0], minlength=len(modes))
    kept = counts >= min_population * len(z)  # a basin the sample overrated
    order = np.argsort(-counts[kept], kind="stable")
    index = np.full(len(modes), -1)
    index[np.flatnonzero(kept)[order]] = np.arange(kept.sum())
    labels = np.where(labels >= 0, index[np.maximum(labels, 0)], -1)
    modes = modes[np.flatnonzero(kept)[order]]
    original = prior.destandardise(torch.from_numpy(modes).float()) if len(modes) else np.zeros((0, z.shape[1]), np.float32)
    return States(original, labels, float(bandwidth), scan)


def assign(prior, z: np.ndarray, modes: np.ndarray, bandwidth: float, *, progress=None) -> np.ndarray:
    """The state ``[N]`` of each latent ``z [N, zdim]`` (original units): the index of the mode
    (``modes [K, zdim]``, standardised units) its ascent at ``bandwidth`` ends within one bandwidth
    of, else -1."""
    ends = ascend(prior, z, bandwidth, progress=progress)
    distance = cdist(ends, modes) if len(modes) else np.full((len(z), 1), np.inf)
    return np.where(distance.min(1) <= bandwidth, distance.argmin(1), -1)


def populations(labels: np.ndarray, count: int) -> np.ndarray:
    """Fraction of all particles in each of ``count`` states ``[count]`` (unassigned ones count in the total)."""
    return np.bincount(labels[labels >= 0], minlength=count)[:count] / max(len(labels), 1)


@dataclass
class Mixture:
    """One Gaussian per state fitted to the assigned particles' standardised latents.

    ``log_density [M, K]``: ``log N(u_i; mean_k, cov_k)`` of each of the ``M`` assigned particles
    under each state's Gaussian; ``weights [K]``: the fitted mixture weights (sum 1 over the states).
    """

    log_density: np.ndarray
    weights: np.ndarray


def fit_mixture(u: np.ndarray, labels: np.ndarray, count: int, *, seed: int = 0) -> Mixture | None:
    """A Gaussian mixture (full covariances) of the assigned particles' standardised latents ``u [N, zdim]``
    started at their states (``labels [N]``, -1 unassigned), or ``None`` when the fit is not trusted:
    a state with fewer particles than twice the dimension, or a component that wandered off its state
    (its particles of highest responsibility mostly from another state's basin, or its basin mostly
    given to another component).

    Basin counts are biased where states overlap: a particle's latent is noisy, and the tail of a
    state that spills over the basin boundary is counted in the neighbour (a small state next to a
    large one loses the most). The mixture gives that tail back to its own state.
    """
    from scipy.stats import multivariate_normal
    from sklearn.mixture import GaussianMixture

    assigned = labels >= 0
    u, labels = np.asarray(u, dtype=np.float64)[assigned], labels[assigned]
    sizes = np.bincount(labels, minlength=count)
    if count == 0 or sizes.min() < 2 * u.shape[1]:
        return None
    ridge = MIXTURE_RIDGE * np.eye(u.shape[1])
    means = np.stack([u[labels == k].mean(0) for k in range(count)])
    precisions = np.stack([np.linalg.inv(np.cov(u[labels == k].T) + ridge) for k in range(count)])
    fit = GaussianMixture(count, covariance_type="full", weights_init=sizes / sizes.sum(), means_init=means,
                          precisions_init=precisions, reg_covar=MIXTURE_RIDGE, max_iter=500, tol=1e-5,
                          random_state=seed).fit(u)
    log_density = np.stack([multivariate_normal(fit.means_[k], fit.covariances_[k]).logpdf(u)
                            for k in range(count)], axis=1).reshape(len(u), count)
    agreement = np.zeros((count, count), int)
    np.add.at(agreement, (labels, (log_density + np.log(fit.weights_)).argmax(1)), 1)
    if np.any(agreement.argmax(0) != np.arange(count)) or np.any(agreement.argmax(1) != np.arange(count)):
        return None
    return Mixture(log_density, fit.weights_)


def mixture_weights(mixture: Mixture, counts: np.ndarray | None = None, *, tolerance: float = 1e-6,
                    iterations: int = 1000) -> np.ndarray:
    """The weights ``[K]`` that maximise the likelihood of the mixture's particles, each counted
    ``counts [M]`` times (default once), with the Gaussians held fixed: expectation-maximisation of
    the weights alone, from the fitted weights, until no weight moves more than ``tolerance``."""
    scaled = np.exp(mixture.log_density - mixture.log_density.max(axis=1, keepdims=True))  # rows rescaled: same responsibilities
    counts = np.ones(len(scaled)) if counts is None else np.asarray(counts, dtype=np.float64)
    weights = mixture.weights.copy()
    for _ in range(iterations):
        new = weights * (counts @ (scaled / (scaled @ weights)[:, None])) / counts.sum()
        done = np.abs(new - weights).max() < tolerance
        weights = new
        if done:
            break
    return weights


def mixture_populations(mixture: Mixture | None, labels: np.ndarray, count: int) -> np.ndarray:
    """Each state's fraction of all particles ``[count]``: the mixture's weights times the fraction of
    particles assigned (unassigned ones stay out of every state), or the basin counts
    (:func:`populations`) without a mixture."""
    if mixture is None:
        return populations(labels, count)
    return mixture.weights * np.mean(labels >= 0)


def free_energies(population: np.ndarray) -> np.ndarray:
    """``-ln(p_i / p_max)`` per state, in kT (0 for the most populated; infinite for an empty state)."""
    population = np.asarray(population, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 0.0 - np.log(population / population.max(axis=-1, keepdims=True))  # 0.0 -: no "-0.0" in tables


def match_states(reference: States, other: States, spread: np.ndarray) -> np.ndarray:
    """``other``'s particle labels renumbered to ``reference``'s states (both of the same particles):
    modes paired by the smallest total distance in standardised units (original units divided by
    the latents' ``spread [zdim]``, :attr:`cryodiff.prior.Prior.std`) with the Hungarian method; a
    pair farther apart than the sum of the two bandwidths is no match, and the particles of an
    unmatched state become unassigned (``-1``)."""
    mapping = np.full(other.count, -1)
    if reference.count and other.count:
        distance = cdist(reference.modes / spread, other.modes / spread)
        for r, c in zip(*linear_sum_assignment(distance)):
            if distance[r, c] <= reference.bandwidth + other.bandwidth:
                mapping[c] = r
    return np.where(other.labels >= 0, mapping[np.maximum(other.labels, 0)], -1)


def bootstrap(labels: np.ndarray, count: int, *, mixtures: list | None = None, draws: int = 1000,
              confidence: float = 0.9, seed: int = 0, progress=None) -> dict:
    """Percentile intervals of the populations and free energies (kT) over ``draws`` resamplings of
    the particles: ``{"population": [count, 2], "dG_kT": [count, 2], "draws": [draws, count]}``.

    ``labels`` is ``[N]``, or ``[P, N]``: the states of the same particles under ``P`` priors
    (:func:`match_states`), one drawn at random for each resampling. ``mixtures``: one
    :class:`Mixture` or ``None`` per label set; with a mixture a resampling's populations are its
    weights refitted to the resampled particles (:func:`mixture_weights`), else the resampled basin
    counts. ``progress(1)`` is called after each resampling."""
    rng = np.random.default_rng(seed)
    label_sets = np.atleast_2d(labels)
    mixtures = mixtures or [None] * len(label_sets)
    n = label_sets.shape[1]
    samples = np.empty((draws, count))
    for d in range(draws):
        chosen = rng.integers(len(label_sets))
        times = np.bincount(rng.integers(n, size=n), minlength=n)  # how often each particle was drawn
        kept = label_sets[chosen]
        if mixtures[chosen] is None:
            samples[d] = np.bincount(kept + 1, weights=times, minlength=count + 1)[1:] / n
        else:
            assigned = kept >= 0
            samples[d] = mixture_weights(mixtures[chosen], times[assigned]) * times[assigned].sum() / n
        if progress is not None:
            progress(1)
    tails = [50 * (1 - confidence), 100 - 50 * (1 - confidence)]
    return {"population": np.percentile(samples, tails, axis=0).T,
            "dG_kT": np.percentile(free_energies(samples), tails, axis=0).T, "draws": samples}


def widen_to(intervals: dict, other: np.ndarray) -> dict:
    """``intervals`` (of :func:`bootstrap`) stretched to reach a second estimate ``other [K]`` of the
    same states' populations and its free energies where it lies outside them; the sampling
    intervals are kept as ``"sampling_population"`` and ``"sampling_dG_kT"``.

    Used to carry a method's systematic error: the image likelihoods (one volume per state) and
    the basin counts (noisy latents) are biased in opposite directions where a small state sits
    between large ones, so the truth lies between them (docs/states.md)."""
    other = np.asarray(other, dtype=np.float64)
    out = dict(intervals, sampling_population=intervals["population"], sampling_dG_kT=intervals["dG_kT"])
    for key, value in (("population", other), ("dG_kT", free_energies(other))):
        low, high = intervals[key].T
        out[key] = np.stack([np.minimum(low, value), np.maximum(high, value)], axis=1)
    return out


def kcal_per_mol(dg_kt: np.ndarray, temperature: float) -> np.ndarray:
    """Free energies in kT converted to kcal/mol at ``temperature`` kelvin."""
    return np.asarray(dg_kt) * KB_KCAL_PER_MOL_K * temperature
