"""Accuracy of a trained VAE against the ground truth of a simulated data set.

Used by the accuracy tests and benchmarks: how well the latents recover the
true conformational state and subunit occupancy (cross-validated
k-nearest-neighbour regression/classification), and how close the volumes
decoded at each true state's latent medoid are to the ground-truth maps (FSC).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.metrics import r2_score
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from recon.analysis import latent_medoid
from recon.fsc import fsc, resolution
from recon.io import read_volume


def state_r2(z: np.ndarray, states: np.ndarray, k: int = 10, seed: int = 0) -> float:
    """Cross-validated (5-fold) R² of a kNN regression of the true state from z."""
    pred = cross_val_predict(KNeighborsRegressor(k), z, states, cv=_folds(seed))
    return float(r2_score(states, pred))


def subunit_accuracy(z: np.ndarray, flags: np.ndarray, k: int = 10, seed: int = 0) -> float:
    """Cross-validated (5-fold) accuracy of a kNN classifier of subunit presence from z."""
    pred = cross_val_predict(KNeighborsClassifier(k), z, np.asarray(flags).astype(int), cv=_folds(seed))
    return float(np.mean(pred == np.asarray(flags).astype(int)))


def _folds(seed: int):
    from sklearn.model_selection import KFold

    return KFold(5, shuffle=True, random_state=seed)


def per_state_fsc(
    volume_at: Callable[[np.ndarray], np.ndarray],
    z: np.ndarray,
    truth: dict,
    data_dir: str | Path,
    apix: float,
    *,
    window: float = 0.05,
    min_particles: int = 20,
) -> list[dict]:
    """FSC of the map at each ground-truth grid state's latent medoid.

    For every grid volume (state s, subunit flag u) with at least
    ``min_particles`` particles whose true state lies within ``window`` of s
    and whose subunit flag is u: decode ``volume_at(medoid)`` and compare it
    with the ground-truth map. Returns one dict per evaluated state with the
    particle count, resolution at FSC 0.5 (Å), the highest fraction of Nyquist
    up to which FSC stays >= 0.5, and whether, among all grid maps, the
    decoded map correlates best with its own state's map (the FSC alone is
    dominated by the parts all states share).
    """
    grid = truth["volumes"]
    references = [read_volume(Path(data_dir) / name)[0] for name in grid["file"]]
    rows = []
    for j, (state, sub) in enumerate(zip(grid["state"], grid["subunit"])):
        members = np.flatnonzero((np.abs(truth["state"] - state) < window) & (truth["subunit"] == sub))
        if len(members) < min_particles:
            continue
        zs = z[members]
        volume = volume_at(zs[latent_medoid(zs)])
        freqs, curve = fsc(volume, references[j])
        below = np.flatnonzero(curve < 0.5)
        fraction = float(freqs[below[0] - 1] / 0.5) if len(below) else 1.0
        closest = int(np.argmax([_correlation(volume, ref) for ref in references]))
        rows.append(
            {
                "state": float(state),
                "subunit": int(sub),
                "n_particles": int(len(members)),
                "resolution_fsc0.5_A": resolution(freqs, curve, 0.5, apix),
                "fsc0.5_nyquist_fraction": fraction,
                "closest_truth": {"state": float(grid["state"][closest]), "subunit": int(grid["subunit"][closest])},
                "closest_is_own_state": bool(
                    grid["subunit"][closest] == sub and abs(grid["state"][closest] - state) < 1e-9
                ),
            }
        )
    return rows


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))
