"""Landscapes compared across conditions: each state's occupancy per condition, and the differences,
with bootstrap intervals.

The states are found once on all particles (``cryodiff states``), so every
condition is described in the same states. A state's **occupancy** in a
condition is the fraction of that condition's particles assigned to it
(unassigned particles count in the total, as populations do). The
**difference** of a condition from the reference condition (the first) is
occupancy(condition) - occupancy(reference), per state.

Intervals come from the bootstrap that resamples each condition's particles with
replacement, separately (the conditions are independent samples). Occupancy intervals
are each state's percentile interval. Difference intervals are by default
*simultaneous* over the states (max-t: the estimate plus or minus a multiple of the
bootstrap standard error, the multiple chosen so that all states' intervals of a
condition hold together at the confidence): "is any state's occupancy different?"
is one question, and with per-state 90 % intervals a landscape of six unchanged
states would show at least one "change" about half the time. A difference whose
interval excludes 0 is reported as such. As with populations
(:mod:`cryodiff.states`), occupancies are the weights of the states' mixture (of image
likelihoods, ``states --populations images``, or of Gaussians, ``--populations mixture``),
refitted to each condition's particles, when the states' populations came from one, else
basin counts; the intervals carry the
sampling of particles, not errors of the VAE.

With a prior conditioned on the same conditions (``train-prior --condition``),
:func:`log_ratios` adds, per state, the mean over its particles of
``log p(z | condition) - log p(z | reference)`` (nats): the prior's own
estimate of how much more likely the state's latents are in one condition,
which for well separated states approaches the log of the occupancy ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Comparison:
    """Occupancies of ``K`` states in ``C`` conditions: ``names`` [C], ``counts`` [C] particles,
    ``occupancy`` [C, K] with ``occupancy_interval`` [C, K, 2], ``difference`` [C, K] from condition 0
    (row 0 is zeros) with ``difference_interval`` [C, K, 2], the ``confidence``, and whether the
    difference intervals are ``simultaneous`` over the states."""

    names: list[str]
    counts: np.ndarray
    occupancy: np.ndarray
    occupancy_interval: np.ndarray
    difference: np.ndarray
    difference_interval: np.ndarray
    confidence: float
    simultaneous: bool = True

    def rows(self) -> list[dict]:
        """One dict per (condition, state): particles, occupancy and the difference with their intervals."""
        out = []
        for c, name in enumerate(self.names):
            for k in range(self.occupancy.shape[1]):
                low, high = self.difference_interval[c, k]
                out.append({"condition": name, "state": k, "condition_particles": int(self.counts[c]),
                            "occupancy": float(self.occupancy[c, k]),
                            "occupancy_low": float(self.occupancy_interval[c, k, 0]),
                            "occupancy_high": float(self.occupancy_interval[c, k, 1]),
                            "difference": float(self.difference[c, k]), "difference_low": float(low),
                            "difference_high": float(high), "excludes_zero": bool(c > 0 and (low > 0 or high < 0))})
        return out


def occupancies(labels: np.ndarray, count: int, times: np.ndarray | None = None, mixture=None) -> np.ndarray:
    """Fraction of the particles (states ``labels [N]``, -1 unassigned) in each of ``count`` states,
    ``[count]``, each particle counted ``times [N]`` times (default once): the basin counts, or with a
    :class:`cryodiff.states.Mixture` of the assigned particles its weights refitted to them."""
    from cryodiff.states import mixture_weights

    times = np.ones(len(labels)) if times is None else np.asarray(times, dtype=np.float64)
    total = max(times.sum(), 1)
    if mixture is None:
        return np.bincount(labels + 1, weights=times, minlength=count + 1)[1:count + 1] / total
    assigned = labels >= 0
    return mixture_weights(mixture, times[assigned]) * times[assigned].sum() / total


def compare_conditions(labels: np.ndarray, condition: np.ndarray, count: int, names: list[str] | None = None, *,
                       mixture=None, draws: int = 1000, confidence: float = 0.9, simultaneous: bool = True,
                       seed: int = 0, progress=None) -> Comparison:
    """The :class:`Comparison` of ``count`` states between the conditions of the particles.

    ``labels [N]``: each particle's state (-1: unassigned); ``condition [N]``: each particle's
    condition index (0..C-1, the reference is 0); ``names``: the conditions' names (default: "0", "1", ...);
    ``mixture``: the states' :class:`cryodiff.states.Mixture` of all assigned particles, whose
    weights are then refitted to each condition's particles (None: basin counts); ``simultaneous``:
    each condition's difference intervals hold for all states together (:func:`simultaneous_intervals`),
    else each state's percentile interval. ``progress(1)`` is called after each bootstrap draw.
    """
    labels, condition = np.asarray(labels), np.asarray(condition)
    n_conditions = int(condition.max()) + 1
    names = names or [str(c) for c in range(n_conditions)]
    members = [np.flatnonzero(condition == c) for c in range(n_conditions)]
    empty = [names[c] for c, m in enumerate(members) if len(m) == 0]
    if empty:
        raise ValueError(f"condition(s) {empty} have no particles")
    rng = np.random.default_rng(seed)
    draws_ = np.empty((draws, n_conditions, count))
    for d in range(draws):
        for c, m in enumerate(members):
            drawn = m[rng.integers(len(m), size=len(m))]
            if mixture is None:  # counts need only the drawn particles' labels
                draws_[d, c] = occupancies(labels[drawn], count)
            else:  # the mixture's weights are refitted over all its particles, each counted as often as drawn
                draws_[d, c] = occupancies(labels, count, np.bincount(drawn, minlength=len(labels)), mixture)
        if progress is not None:
            progress(1)
    tails = [50 * (1 - confidence), 100 - 50 * (1 - confidence)]
    occupancy = np.stack([occupancies(labels, count, (condition == c).astype(float), mixture) for c in range(n_conditions)])
    difference = occupancy - occupancy[:1]
    differences = draws_ - draws_[:, :1]
    if simultaneous:
        difference_interval = simultaneous_intervals(differences, difference, confidence)
    else:
        difference_interval = np.moveaxis(np.percentile(differences, tails, axis=0), 0, -1)
    return Comparison(names, np.array([len(m) for m in members]), occupancy,
                      np.moveaxis(np.percentile(draws_, tails, axis=0), 0, -1), difference, difference_interval,
                      confidence, simultaneous)


def simultaneous_intervals(draws: np.ndarray, estimate: np.ndarray, confidence: float) -> np.ndarray:
    """Intervals ``[C, K, 2]`` that hold all ``K`` states' true values of each condition's row of
    ``estimate [C, K]`` together at ``confidence``, from bootstrap ``draws [D, C, K]``: the estimate
    plus or minus ``q`` bootstrap standard errors, ``q`` the ``confidence`` quantile of the largest
    standardised deviation over the states (the max-t method). A state without spread gets a
    zero-width interval."""
    spread = draws.std(axis=0)
    scaled = np.abs(draws - estimate) / np.where(spread > 0, spread, np.inf)
    q = np.quantile(scaled.max(axis=2), confidence, axis=0)[:, None]
    return np.stack([estimate - q * spread, estimate + q * spread], axis=-1)


def log_ratios(prior, z: np.ndarray, labels: np.ndarray, count: int, names: list[str], *, per_state: int = 200,
               steps: int = 32, seed: int = 0, progress=None) -> np.ndarray:
    """``[C, K]``: for each condition (``names``, the reference first, all conditions of ``prior``) and
    state, the mean of ``log p(z | condition) - log p(z | reference)`` (nats; PF-ODE with ``steps``
    Heun intervals) over up to ``per_state`` of the state's particles (``z [N, zdim]``, ``labels [N]``),
    drawn with ``seed``; row 0 is zeros, a state without particles NaN. ``progress(n)`` after each
    condition's ``n`` latents."""
    rng = np.random.default_rng(seed)
    rows = [np.sort(rng.choice(np.flatnonzero(labels == k), min(per_state, int(np.sum(labels == k))), replace=False))
            for k in range(count)]
    chosen = np.concatenate(rows) if rows else np.zeros(0, int)
    which = np.concatenate([np.full(len(r), k) for k, r in enumerate(rows)]) if rows else np.zeros(0, int)
    log_p = []
    for name in names:
        log_p.append(prior.log_prob(z[chosen], steps=steps, condition=name))
        if progress is not None:
            progress(len(chosen))
    out = np.full((len(names), count), np.nan)
    for c in range(len(names)):
        for k in range(count):
            if np.any(which == k):
                out[c, k] = float(np.mean(log_p[c][which == k] - log_p[0][which == k]))
    return out
