"""Synthetic particle images with known ground truth.

The molecule is a pseudo-atomic model: isotropic Gaussian blobs, so both the
3-D density and its projections are analytic. A projection is computed as
the exact line integral of the blobs (a sum of 2-D Gaussians), not by slicing
a sampled volume with our own Fourier code, so reconstructions can be checked
against truth that does not share their conventions' code path.

The molecule has three parts, all in fractions of the box so it fills any box:

* a **core**: a right-handed helical tube (chiral, so a mirrored
  reconstruction is measurably wrong);
* a **domain**: a helical arm hinged to the top of the core that swings through
  ``HINGE_RANGE_DEG`` as the continuous *state* coordinate runs from 0 to 1;
  states follow a tri-modal distribution (``STATE_MODES``);
* a **subunit**: a compact block present in a fraction of particles
  (compositional heterogeneity).

Optionally a fraction of the particles is *junk*, as picked from real
micrographs: pure-noise images (no particle; ``JUNK_NOISE``) or projections of
a foreign molecule (:func:`make_foreign_molecule`, a rigid double ring of
similar mass; ``JUNK_FOREIGN``), with the same poses, shifts, CTF and noise as
the good particles.

Conventions: coordinates ``(x, y, z)`` in pixels relative to the box centre
``D // 2``; a rotation ``R`` places the molecule's point ``r`` at ``R @ r`` and
the image is the projection along z (cryoDRGN's convention); a particle
displaced by ``+t`` pixels has the re-centring shift ``-t`` (RELION origin).
Images follow the sign convention of cryoDRGN's default (inverting) pipeline:
``image = -(CTF * projection) + noise`` with the CTF of :mod:`recon.ctf`
(negative at low frequency), so that ``-image`` matches ``CTF * projection``.
The signal-to-noise ratio is the variance of the noise-free images over the
whole box divided by the noise variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from recon.ctf import ctf_from_params
from recon.fourier import fft_centered, frequency_grid, ifft_centered

#: Blob width (standard deviation) as a fraction of the box ...
BLOB_SIGMA = 0.0125
#: ... but never below this many pixels, so blobs stay sampled without aliasing.
MIN_BLOB_SIGMA_PX = 0.8
#: Swing of the domain, degrees, as the state goes from 0 to 1.
HINGE_RANGE_DEG = 100.0
#: Tri-modal state distribution: (mean, standard deviation, weight) per mode.
STATE_MODES = ((0.15, 0.05, 0.45), (0.5, 0.05, 0.15), (0.85, 0.05, 0.40))
#: Per-particle junk codes in :class:`ParticleTruth` and truth.h5 (``junk`` dataset).
GOOD, JUNK_NOISE, JUNK_FOREIGN = 0, 1, 2
#: Junk kinds accepted by :func:`sample_truth` and ``cryodiff simulate --junk``.
JUNK_KINDS = {"noise": (JUNK_NOISE,), "foreign": (JUNK_FOREIGN,), "mixed": (JUNK_NOISE, JUNK_FOREIGN)}


@dataclass(frozen=True)
class Molecule:
    """Blob centres in fractions of the box, ``(x, y, z)`` about the centre."""

    core: np.ndarray
    domain: np.ndarray
    subunit: np.ndarray
    hinge_point: np.ndarray
    hinge_axis: np.ndarray


def make_molecule() -> Molecule:
    """The fixed synthetic molecule (deterministic, no randomness)."""
    step = 1.5 * BLOB_SIGMA  # blob spacing: a chain of beads, rich in fine detail
    # Core: right-handed helix, radius 0.12, rising 0.30 over 2.5 turns.
    t = np.linspace(0, 5 * np.pi, 400)
    helix = np.stack([0.12 * np.cos(t), 0.12 * np.sin(t), 0.30 * t / (5 * np.pi) - 0.17], 1)
    core = _resample(helix, step)
    # Domain: a helical arm above the core, hinged at the top of the helix.
    hinge = core[-1]
    u = np.linspace(0, 5 * np.pi, 400)
    arm = np.stack([0.03 + 0.22 * u / (5 * np.pi), 0.05 * np.cos(u), 0.05 * np.sin(u) + 0.07], 1)
    domain = _resample(hinge + arm, step)
    # Subunit: a 3 x 3 x 3 block beside the bottom of the helix.
    g = np.arange(3) * 1.2 * step
    block = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    subunit = block - block.mean(0) + [-0.2, 0.02, -0.14]
    axis = np.array([0.0, 0.3, 1.0])
    return Molecule(core, domain, subunit, hinge, axis / np.linalg.norm(axis))



def make_foreign_molecule() -> Molecule:
    """A rigid molecule unlike :func:`make_molecule`: two stacked rings (radius
    0.17 of the box, 0.12 apart) with about the same number of blobs.
    Its domain and subunit are empty, so state and subunit flags do not change it."""
    t = np.linspace(0, 2 * np.pi, 400)
    ring = np.stack([0.17 * np.cos(t), 0.17 * np.sin(t), np.zeros_like(t)], 1)
    beads = _resample(ring, 1.5 * BLOB_SIGMA)
    rings = np.concatenate([beads + [0, 0, -0.06], beads + [0, 0, 0.06]])
    empty = np.zeros((0, 3))
    return Molecule(rings, empty, empty, np.zeros(3), np.array([0.0, 0.0, 1.0]))


def _resample(path: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` along a polyline."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    arc = np.concatenate([[0], np.cumsum(seg)])
    s = np.arange(0, arc[-1] + 1e-9, step)
    return np.stack([np.interp(s, arc, path[:, i]) for i in range(3)], 1)


def blob_centres(mol: Molecule, state: float, subunit: bool) -> np.ndarray:
    """Blob centres ``[M, 3]`` (fraction of box) for one conformation."""
    centres, present = _batched_centres(mol, np.array([state]), np.array([subunit]))
    return centres[0][present[0]]


def _batched_centres(mol: Molecule, states: np.ndarray, subunits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``[B, M, 3]`` of all blobs for each particle and ``[B, M]``
    presence flags (the subunit's blobs are absent where it is not bound)."""
    angles = np.deg2rad(HINGE_RANGE_DEG) * (np.asarray(states, dtype=float) - 0.5)
    swing = Rotation.from_rotvec(angles[:, None] * mol.hinge_axis).as_matrix()  # [B, 3, 3]
    domain = np.einsum("bij,mj->bmi", swing, mol.domain - mol.hinge_point) + mol.hinge_point
    b = len(angles)
    centres = np.concatenate(
        [np.broadcast_to(mol.core, (b, *mol.core.shape)), domain, np.broadcast_to(mol.subunit, (b, *mol.subunit.shape))],
        axis=1,
    )
    present = np.ones(centres.shape[:2], dtype=bool)
    present[:, len(mol.core) + len(mol.domain) :] = np.asarray(subunits, dtype=bool)[:, None]
    return centres, present


def blob_sigma_px(box: int) -> float:
    """Blob standard deviation in pixels for a box of ``box`` pixels."""
    return max(BLOB_SIGMA * box, MIN_BLOB_SIGMA_PX)


def _gauss_1d(centres: torch.Tensor, box: int, sigma_px: float) -> torch.Tensor:
    """``[..., box]`` Gaussian profiles along one axis, centres in pixels."""
    grid = torch.arange(box, dtype=centres.dtype) - box // 2
    return torch.exp(-((grid - centres.unsqueeze(-1)) ** 2) / (2 * sigma_px**2))


def render_volume(mol: Molecule, state: float, subunit: bool, box: int) -> np.ndarray:
    """Ground-truth density ``[z, y, x]`` sampled at voxel centres (float32).

    Each blob has peak value 1 and standard deviation ``blob_sigma_px(box)``.
    """
    c = torch.as_tensor(blob_centres(mol, state, subunit) * box, dtype=torch.float64)
    sigma = blob_sigma_px(box)
    gx, gy, gz = (_gauss_1d(c[:, i], box, sigma) for i in range(3))
    return torch.einsum("iz,iy,ix->zyx", gz, gy, gx).float().numpy()


def project(
    mol: Molecule,
    states: np.ndarray,
    subunits: np.ndarray,
    rotations: np.ndarray,
    displacements_px: np.ndarray,
    box: int,
) -> torch.Tensor:
    """Exact projections ``[B, D, D]`` (``[y, x]``) of the blob model.

    The line integral of a blob of peak 1 and width sigma (pixels) along z is
    ``sqrt(2 pi) sigma`` times a 2-D Gaussian: the same units as summing the
    sampled volume along z. ``displacements_px`` ``[B, 2]`` move each particle
    off centre by ``(x, y)`` pixels.
    """
    sigma = blob_sigma_px(box)
    centres, present = _batched_centres(mol, states, subunits)
    centres = np.einsum("bij,bmj->bmi", np.asarray(rotations), centres * box)  # R @ r per blob
    xy = torch.as_tensor(centres[..., :2] + np.asarray(displacements_px)[:, None, :], dtype=torch.float64)
    gx, gy = _gauss_1d(xy[..., 0], box, sigma), _gauss_1d(xy[..., 1], box, sigma)
    weight = torch.as_tensor(present, dtype=torch.float64) * (np.sqrt(2 * np.pi) * sigma)
    images = torch.einsum("bm,bmy,bmx->byx", weight, gy, gx)
    return images


def apply_ctf(images: torch.Tensor, ctf_params: torch.Tensor) -> torch.Tensor:
    """Multiply ``[B, D, D]`` images by their CTF (``[B, 9]`` rows) in Fourier space."""
    box = images.shape[-1]
    ctf = ctf_from_params(frequency_grid(box, dtype=images.dtype).reshape(-1, 2), ctf_params)
    f = fft_centered(images) * ctf.reshape(-1, box, box)
    return ifft_centered(f).real


def sample_states(n: int, rng: np.random.Generator, weights=None) -> np.ndarray:
    """Draw ``n`` state coordinates in [0, 1] from the tri-modal ``STATE_MODES`` (``weights`` [3]
    replace the modes' own weights; normalised here)."""
    means, stds, own = map(np.array, zip(*STATE_MODES))
    weights = own if weights is None else np.asarray(weights, dtype=np.float64)
    mode = rng.choice(len(weights), size=n, p=weights / weights.sum())
    return np.clip(rng.normal(means[mode], stds[mode]), 0.0, 1.0)


@dataclass(frozen=True)
class Condition:
    """A simulated condition (apo, with ligand, a time point): its ``name``, the weights [3] of the
    three hinge modes of ``STATE_MODES`` (normalised when drawn) and the fraction of its particles
    with the subunit bound."""

    name: str
    mode_weights: tuple[float, float, float]
    subunit_fraction: float


@dataclass
class ParticleTruth:
    """Per-particle ground truth of a simulated data set (length N)."""

    states: np.ndarray  # [N] continuous state in [0, 1]
    subunit: np.ndarray  # [N] bool, subunit present
    rotations: np.ndarray  # [N, 3, 3], cryoDRGN convention
    shifts_px: np.ndarray  # [N, 2] re-centring shift (x, y), pixels
    ctf: np.ndarray  # [N, 9] cryoDRGN column order
    junk: np.ndarray  # [N] uint8: GOOD, JUNK_NOISE or JUNK_FOREIGN
    condition: np.ndarray | None = None  # [N] index into the conditions, when simulated with conditions


def sample_truth(
    n: int,
    box: int,
    apix: float,
    rng: np.random.Generator,
    *,
    subunit_fraction: float = 0.4,
    state: float | None = None,
    junk_fraction: float = 0.0,
    junk_kind: str = "mixed",
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.1,
    conditions: list[Condition] | None = None,
) -> ParticleTruth:
    """Draw states, subunit flags, uniform poses, shifts and defocus values.

    Shifts are normal with 2 % of the box as standard deviation; defocus is
    uniform in 1.0-2.5 µm with up to 400 Å astigmatism at a uniform angle.
    ``state`` fixes every particle to one state (homogeneous data).
    ``junk_fraction`` of the particles (chosen at random) become junk of
    ``junk_kind`` (a key of :data:`JUNK_KINDS`; "mixed" is half of each).
    ``conditions`` split the particles evenly, in random order, between
    :class:`Condition` s, each drawing its states and subunit from its own
    weights and fraction (``state`` and ``subunit_fraction`` are then unused).
    """
    condition = None
    if conditions:
        condition = rng.permutation(np.arange(n) % len(conditions))
        states, subunit = np.empty(n), np.empty(n, dtype=bool)
        for k, c in enumerate(conditions):
            rows = np.flatnonzero(condition == k)
            states[rows] = sample_states(len(rows), rng, c.mode_weights)
            subunit[rows] = rng.random(len(rows)) < c.subunit_fraction
    else:
        states = sample_states(n, rng) if state is None else np.full(n, float(state))
        subunit = rng.random(n) < subunit_fraction
    rotations = Rotation.random(n, random_state=rng).as_matrix()
    shifts = rng.normal(0.0, 0.02 * box, size=(n, 2))
    defocus = rng.uniform(10000.0, 25000.0, n)
    astig = rng.uniform(0.0, 400.0, n)
    ctf = np.stack(
        [
            np.full(n, box),
            np.full(n, apix),
            defocus + astig / 2,
            defocus - astig / 2,
            rng.uniform(0.0, 180.0, n),
            np.full(n, voltage_kv),
            np.full(n, cs_mm),
            np.full(n, amplitude_contrast),
            np.zeros(n),
        ],
        1,
    )
    junk = np.full(n, GOOD, dtype=np.uint8)
    picked = rng.permutation(n)[: int(round(junk_fraction * n))]
    kinds = JUNK_KINDS[junk_kind]
    junk[picked] = np.array(kinds, dtype=np.uint8)[np.arange(len(picked)) % len(kinds)]
    return ParticleTruth(states, subunit, rotations, shifts, ctf, junk, condition)


def clean_images(mol: Molecule, truth: ParticleTruth, indices: np.ndarray, box: int) -> torch.Tensor:
    """Noise-free images for ``indices``, in the stored sign convention
    (zero for pure-noise junk, the foreign molecule for foreign junk)."""
    indices = np.asarray(indices)
    proj = torch.zeros(len(indices), box, box, dtype=torch.float64)
    for code, molecule in ((GOOD, mol), (JUNK_FOREIGN, make_foreign_molecule())):
        mask = truth.junk[indices] == code
        rows = indices[mask]
        if len(rows):
            proj[torch.as_tensor(mask)] = project(
                molecule, truth.states[rows], truth.subunit[rows], truth.rotations[rows],
                -truth.shifts_px[rows],  # displacement = minus the re-centring shift
                box,
            )
    return -apply_ctf(proj, torch.as_tensor(truth.ctf[indices]))
