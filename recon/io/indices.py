"""Particle index files: which particles of a data set to use.

Accepted forms (0-based indices into the particle file):

* ``.npy``: an integer array (a boolean mask is accepted too);
* ``.txt``: whitespace- or line-separated integers;
* ``.pkl``: a cryoDRGN index pickle, read with the safe loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io.safe_read import load_npy
from recon.io.pkl import load_pickle_safely


def read_indices(path: str | Path, n_particles: int) -> np.ndarray:
    """Read 0-based particle indices and check them against ``n_particles``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "index file not found", "check the path given to --ind")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            raw = load_npy(path, "the index file")
        elif suffix == ".pkl":
            raw = np.asarray(load_pickle_safely(path))
        else:
            raw = np.loadtxt(path, ndmin=1)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read indices ({type(err).__name__}: {str(err)[:100]})", "write one 0-based integer index per line") from None
    if raw.dtype == bool:
        if len(raw) != n_particles:
            raise InputError(path, f"boolean mask of length {len(raw)} for {n_particles} particles", "give one entry per particle")
        return np.flatnonzero(raw)
    if raw.ndim != 1 or not np.all(np.equal(np.mod(raw, 1), 0)):
        raise InputError(path, "indices must be a 1-D list of integers", "write one 0-based integer index per line")
    ind = raw.astype(np.int64)
    bad = ind[(ind < 0) | (ind >= n_particles)]
    if len(bad):
        raise InputError(path, f"index {bad[0]} is outside 0..{n_particles - 1}", "indices are 0-based positions in the particle file")
    return ind


def selected_indices(ind: str | Path | None, n_particles: int) -> np.ndarray:
    """The 0-based particles that the index file ``ind`` selects, in its order (all
    ``n_particles`` in file order without one). An index file that selects no particle is an
    :class:`~recon.errors.InputError`."""
    indices = read_indices(ind, n_particles) if ind else np.arange(n_particles)
    if len(indices) == 0:
        raise InputError(ind, "selects no particles", "give an index file that names at least one particle")
    return indices
