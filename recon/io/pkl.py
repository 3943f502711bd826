"""Safe reading of cryoDRGN's pickle files (``pose.pkl``, ``ctf.pkl``, ``z.pkl``).

``pickle.load`` runs whatever code a file names, so a pickle from someone
else is a program, not data. :func:`load_pickle_safely` admits only what
cryoDRGN writes: numpy arrays and scalars, tuples, lists, dicts, numbers and
strings. The only globals it resolves are the handful numpy's own pickles
reference (``numpy.ndarray``, ``numpy.dtype``, ``multiarray._reconstruct``,
``multiarray.scalar``, ``numeric._frombuffer``, under the numpy 1.x
``numpy.core`` and numpy 2.x ``numpy._core`` paths) and ``_codecs.encode``
(protocol-2 pickles encode bytes with it). Anything else, such as
``os.system``, ``builtins.eval`` or ``subprocess.Popen``, is refused before
it is looked up, so nothing in the file runs.

cryoDRGN's files:

* ``pose.pkl``: ``(rot [N, 3, 3], trans [N, 2])``, rot in the project's
  convention (see :mod:`recon.io.rotations`), trans the re-centring shift
  (x, y) as a fraction of the box (pixels = trans × D, same sign); an older
  form holds rot alone;
* ``ctf.pkl``: [N, 9] (box px, Å/px, defocus U Å, defocus V Å, astigmatism
  angle °, voltage kV, Cs mm, amplitude contrast, phase shift °);
* ``z.pkl``: [N, zdim] latent means.
"""

from __future__ import annotations

import _codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from recon.errors import InputError

__all__ = ["load_pickle_safely", "read_cryodrgn_poses", "read_cryodrgn_ctf"]

# The exact callables numpy's own pickles name, taken from numpy's reductions
# so they are right for any numpy version; pickles may name them under
# either the numpy 1.x (numpy.core) or the numpy 2.x (numpy._core) path.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]

_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,
}
for _package in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_package}.multiarray", "_reconstruct")] = _RECONSTRUCT
    _ALLOWED[(f"{_package}.multiarray", "scalar")] = _SCALAR
    _ALLOWED[(f"{_package}.numeric", "_frombuffer")] = _FROMBUFFER


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays need."""

    def __init__(self, file, path: Path):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise InputError(
                self._path,
                f"refusing to unpickle {module}.{name}: the file holds more than numpy arrays "
                "(a pickle can run code when loaded)",
                "load only pickles written by cryoDRGN from a trusted source, or re-export the data as .npy",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise InputError(self._path, "refusing to unpickle a persistent reference", "give a plain cryoDRGN .pkl")


def load_pickle_safely(path: str | os.PathLike) -> Any:
    """Unpickle a file that may contain only numpy arrays and plain containers.

    Raises :class:`~recon.errors.InputError` for a missing or corrupt file
    and for any other object type, without running code from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found", "check the path of the .pkl file")
    data = path.read_bytes()
    try:
        return _ArrayUnpickler(io.BytesIO(data), path).load()
    except InputError:
        raise
    except Exception as err:  # corrupt pickles raise many exception types
        raise InputError(
            path, f"cannot unpickle ({type(err).__name__}: {err})", "give an intact cryoDRGN .pkl"
        ) from None


def _array(path: Path, value: Any, shape_tail: tuple[int, ...], what: str) -> np.ndarray:
    array = value if isinstance(value, np.ndarray) else None
    if array is None or array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        got = f"shape {array.shape}" if array is not None else type(value).__name__
        expect = "[N, " + ", ".join(map(str, shape_tail)) + "]"
        raise InputError(path, f"{what} must be an array {expect}, got {got}", f"give cryoDRGN's {what} pickle")
    return array.astype(np.float64)


def read_cryodrgn_poses(path: str | os.PathLike, box: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a cryoDRGN ``pose.pkl``.

    Parameters
    ----------
    path
        The pickle: ``(rot [N, 3, 3], trans [N, 2])`` or ``rot`` alone.
    box
        Box size D in pixels, to convert trans (fraction of the box) to pixels.

    Returns
    -------
    (rotations, shifts_px)
        float64 [N, 3, 3] and [N, 2] (x, y) in pixels, ``trans × D`` with
        the same sign (None when the file has no translations).
    """
    path = Path(path)
    value = load_pickle_safely(path)
    if isinstance(value, (tuple, list)):
        if len(value) not in (1, 2):
            raise InputError(
                path, f"pose pickle holds {len(value)} items; expected (rot, trans)", "give cryoDRGN's pose.pkl"
            )
        rot = _array(path, value[0], (3, 3), "rotations (pose.pkl item 0)")
        trans = _array(path, value[1], (2,), "translations (pose.pkl item 1)") if len(value) == 2 else None
    else:
        rot, trans = _array(path, value, (3, 3), "rotations (pose.pkl)"), None
    if trans is not None and len(trans) != len(rot):
        raise InputError(path, f"{len(rot)} rotations but {len(trans)} translations", "give a consistent pose.pkl")
    return rot, None if trans is None else trans * float(box)


def read_cryodrgn_ctf(path: str | os.PathLike) -> np.ndarray:
    """Read a cryoDRGN ``ctf.pkl``: float64 [N, 9] in cryoDRGN's column order."""
    return _array(Path(path), load_pickle_safely(path), (9,), "CTF parameters (ctf.pkl)")
