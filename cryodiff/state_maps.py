"""Validated maps of states: each state's particles reconstructed, and its decoded volume checked against them.

A state's decoded volume is what the VAE's decoder says the state looks like.
The particles assigned to the state say it independently: backprojected with
the run's poses and CTF into two gold-standard half maps
(:func:`cryodiff.selection.reconstruct_selection`), they give

* the **half-map resolution** (FSC 0.143 between the halves), what the state's
  particles alone resolve, and from it the FSC the true map would reach against
  their full reconstruction, ``C_ref = sqrt(2 FSC / (1 + FSC))`` (Rosenthal &
  Henderson 2003), which is 0.5 where the half-map FSC is 0.143;
* the **agreement resolution** (FSC 0.5 between the decoded volume and the
  full reconstruction).

A decoded volume is **supported** when both hold:

1. it agrees with its own state's reconstruction (FSC 0.5) to at least half the
   frequency the half maps reach (FSC 0.143), that is, to no coarser than twice
   the half-map resolution in Å: the VAE's map may be smoother than a
   reconstruction, not different in its large features;
2. of all the states' reconstructions it is most like its own: the
   *likeness* of decoded volume i to reconstruction j is the mean over shells,
   from the first to the lower of states i's and j's half-map crossings (where
   both maps hold signal), of ``FSC(decoded_i, map_j) / C_ref_j`` (1 for a
   decoded volume equal to the truth of state j, whatever the number of
   particles behind map j).

Frequencies are in cycles per pixel (0 to 0.5, Nyquist), resolutions in Å.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cryodiff.selection import SelectionMap, reconstruct_selection
from recon.errors import InputError
from recon.fsc import crossing, fsc

#: FSC between the decoded volume and its state's reconstruction that defines the agreement resolution.
AGREEMENT_THRESHOLD = 0.5
#: The agreement may reach as little as this fraction of the half maps' 0.143 frequency.
AGREEMENT_FRACTION = 0.5
#: Fewest particles a state needs for a reconstruction (two half maps of at least 10); smaller states are not validated.
MIN_PARTICLES = 20


@dataclass
class StateMap:
    """Validation of one state: its gold-standard reconstruction ``map`` (:class:`SelectionMap`), the
    FSC ``agreement`` curve [shells] between its decoded volume and ``map.volume``, the half-map and
    agreement crossings (cycles/pixel; 0.5 when never crossed before Nyquist), the ``likeness`` [K] of
    its decoded volume to every state's reconstruction, and whether the decoded volume is
    ``supported`` (with the ``reason`` when not)."""

    state: int
    map: SelectionMap
    agreement: np.ndarray
    half_frequency: float
    agreement_frequency: float
    likeness: np.ndarray
    supported: bool
    reason: str

    def resolution(self, frequency: float) -> float:
        """Å at ``frequency`` (cycles/pixel); infinite at 0."""
        return float(self.map.apix / frequency) if frequency > 0 else float("inf")


def _frequency(freqs: np.ndarray, curve: np.ndarray, threshold: float) -> float:
    """Crossing of ``threshold`` in cycles/pixel, 0.5 (Nyquist) when the curve stays above it."""
    f = crossing(freqs, curve, threshold)
    return 0.5 if f is None else f


def reference_fsc(half_curve: np.ndarray) -> np.ndarray:
    """``C_ref = sqrt(2 F / (1 + F))`` per shell from the half-map FSC ``F`` (negative F taken as 0)."""
    f = np.clip(half_curve, 0.0, 1.0)
    return np.sqrt(2 * f / (1 + f))


def _likeness(volume: np.ndarray, reconstruction, reference: np.ndarray, frequency: float) -> float:
    """Mean of ``FSC(volume, reconstruction) / C_ref`` over the shells from the first to ``frequency``
    (cycles/pixel; at least two shells), where ``C_ref [shells]`` is the reconstruction's reference FSC."""
    shells = slice(1, max(int(np.floor(frequency * len(volume))) + 1, 3))
    return float(np.mean(fsc(volume, reconstruction.volume)[1][shells] / np.maximum(reference[shells], 1e-3)))


def validate_states(run, labels: np.ndarray, decoded: np.ndarray, particles, *, reg: float = 0.1,
                    progress: Callable[[int], None] | None = None) -> list[StateMap | None]:
    """Reconstruct each of the ``K = len(decoded)`` states from its particles (rows of ``run``'s latents
    with ``labels == k``; ``particles`` from :func:`cryodiff.selection.run_particles`) and validate the
    decoded volumes ``[K, D, D, D]`` (the run's full box) against them; ``None`` for a state with fewer
    than :data:`MIN_PARTICLES` particles (not reconstructed). ``progress(n)`` after each batch of images
    backprojected."""
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels >= 0], minlength=len(decoded))
    maps = [reconstruct_selection(run, np.flatnonzero(labels == k), particles, reg=reg, progress=progress)
            if counts[k] >= MIN_PARTICLES else None for k in range(len(decoded))]
    if all(m is None for m in maps):
        raise InputError("--maps", f"no state holds {MIN_PARTICLES} particles to reconstruct", "leave out --maps")
    references = [None if m is None else reference_fsc(m.curve) for m in maps]
    half_crossings = [None if m is None else _frequency(m.freqs, m.curve, 0.143) for m in maps]
    results = []
    for k, (volume, own) in enumerate(zip(decoded, maps)):
        if own is None:
            results.append(None)
            continue
        freqs, agreement = fsc(volume, own.volume)
        half_f = _frequency(own.freqs, own.curve, 0.143)
        agree_f = _frequency(freqs, agreement, AGREEMENT_THRESHOLD)
        likeness = np.array([np.nan if m is None else _likeness(volume, m, ref, min(half_f, crossing))
                             for m, ref, crossing in zip(maps, references, half_crossings)])
        reason = ""
        if agree_f < AGREEMENT_FRACTION * half_f:
            agreed = f"only to {own.apix / agree_f:.3g} Å" if agree_f > 0 else "not even at the lowest frequency"
            reason = (f"agrees with its particles' map (FSC 0.5) {agreed}, coarser than twice their half-map "
                      f"resolution {own.apix / half_f:.3g} Å")
        elif int(np.nanargmax(likeness)) != k:
            other = int(np.nanargmax(likeness))
            reason = (f"is more like the map of state {other}'s particles (likeness {likeness[other]:.2f}) "
                      f"than its own (likeness {likeness[k]:.2f})")
        results.append(StateMap(k, own, agreement, half_f, agree_f, likeness, not reason, reason))
    return results
