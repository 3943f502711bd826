"""Reading the small files of runs and priors without trusting them.

A file handed to cryodiff may be truncated (a full disk, a killed copy),
foreign (another program's file of the same name) or hostile (a header that
declares 10^10 rows in 200 bytes, a YAML document of nested aliases that
expands to gigabytes). Each reader here checks what it is about to allocate
against what the file can hold, and turns every failure into one
:class:`~recon.errors.InputError` naming the file and the fix, instead of a
traceback or an allocation of tens of GiB.

* :func:`read_json` - a JSON object.
* :func:`load_weights` - a torch checkpoint, ``weights_only=True`` (no code runs).
* :func:`load_npy` - a ``.npy`` array (also cryoSPARC ``.cs``), header checked
  against the file size before reading.
* :func:`read_h5_array` - one HDF5 dataset, its size checked against what is
  stored and against memory before reading.
* :func:`load_yaml` - YAML without aliases (anchors and ``*refs`` are refused).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from recon.errors import InputError

#: A dataset may expand by at most this factor over its stored bytes (HDF5 compression of
#: float data reaches a few x; a dataset declared but never written stores nothing).
MAX_EXPANSION = 1000


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 40


def read_json(path: str | os.PathLike, what: str) -> dict:
    """The JSON object in ``path`` (``what`` names it in messages, e.g. "the run's settings")."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, f"{what} is missing", "give the folder cryodiff wrote, complete") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(path, f"{what} is unreadable ({type(err).__name__}: truncated or not JSON)",
                         "restore the file from a copy, or rerun the command that wrote it") from None
    if not isinstance(value, dict):
        raise InputError(path, f"{what} is not a JSON object", "restore the file from a copy, or rerun the command that wrote it")
    return value


def numpy_arrays_allowed():
    """A context in which ``torch.load(weights_only=True)`` also rebuilds numpy arrays (older
    cryoDRGN checkpoints hold some): only numpy's array reconstructor, ``ndarray``, ``dtype``
    and the dtype classes are admitted, which build arrays from bytes and run nothing else
    (the same set :mod:`recon.io.pkl` admits)."""
    import torch
    from numpy._core.multiarray import _reconstruct

    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    # numpy 1.x pickles name the reconstructor numpy.core.multiarray._reconstruct
    return torch.serialization.safe_globals([(_reconstruct, "numpy.core.multiarray._reconstruct"), _reconstruct,
                                             np.ndarray, np.dtype, *dtypes])


def load_weights(path: str | os.PathLike, what: str, map_location="cpu") -> Any:
    """A torch checkpoint loaded with ``weights_only=True``: tensors, numpy arrays
    (:func:`numpy_arrays_allowed`) and plain containers only."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} is missing", "give the folder cryodiff wrote, complete")
    try:
        with numpy_arrays_allowed():
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - bytes that are not a checkpoint raise any of a dozen types (IndexError, struct.error, ...)
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise InputError(path, f"{what} cannot be read as a weights-only torch checkpoint ({first})",
                         "restore the file from a copy, or rerun the command that wrote it") from None


def load_npy(path: str | os.PathLike, what: str = "the array") -> np.ndarray:
    """A ``.npy`` (or cryoSPARC ``.cs``) array, never unpickled; the header's shape and dtype are
    checked against the file's size before the data are read."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise ValueError(f"format version {version} (cryodiff reads 1.0 and 2.0)")
            shape, _, dtype = readers[version](fh)
            offset = fh.tell()
    except (OSError, ValueError, SyntaxError) as err:
        raise InputError(path, f"{what} is not a valid .npy file ({err})", "give a file written by numpy (or cryoSPARC)") from None
    if dtype.hasobject:
        raise InputError(path, f"{what} holds Python objects, which cryodiff does not unpickle", "save plain numbers")
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    available = path.stat().st_size - offset
    if needed > available:
        raise InputError(path, f"the header declares {shape} ({needed:,} bytes) but the file holds {available:,}",
                         "the file is truncated or corrupt: restore it from a copy")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"{what} cannot be read ({err})", "restore the file from a copy") from None


def read_h5_array(h5, name: str, path: str | os.PathLike, what: str) -> np.ndarray:
    """Dataset ``name`` of the open HDF5 file ``h5`` (from ``path``) as an array, refusing a
    dataset that was declared but never written, or whose size cannot fit what is stored
    or in memory."""
    path = Path(path)
    import h5py

    if name not in h5 or not isinstance(h5[name], h5py.Dataset):
        raise InputError(path, f"{what}: dataset '{name}' is missing", "give the file cryodiff wrote, complete")
    dataset = h5[name]
    needed = int(np.prod(dataset.shape, dtype=object)) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    if needed and (stored == 0 or needed > MAX_EXPANSION * stored or needed > _memory_bytes()):
        raise InputError(path, f"{what}: dataset '{name}' declares {dataset.shape} ({needed:,} bytes) but stores {stored:,}",
                         "the file is incomplete or corrupt: restore it from a copy, or rerun the command that wrote it")
    try:
        return dataset[()]
    except (OSError, ValueError, TypeError) as err:
        raise InputError(path, f"{what}: dataset '{name}' cannot be read ({err})", "restore the file from a copy") from None


def open_h5(path: str | os.PathLike, what: str):
    """An HDF5 file opened for reading, or an :class:`InputError` if it is not one."""
    import h5py

    path = Path(path)
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(path, f"{what} is missing", "give the file cryodiff wrote") from None
    except OSError as err:
        raise InputError(path, f"{what} is not a readable HDF5 file ({str(err).splitlines()[0][:100]})",
                         "restore the file from a copy, or rerun the command that wrote it") from None


def load_yaml(path: str | os.PathLike, what: str) -> Any:
    """A YAML document read with the safe loader, refusing anchors and aliases: a document of
    nested aliases can expand to gigabytes from a few hundred bytes."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted", event.start_mark)
            return super().compose_node(parent, index)

    path = Path(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        detail = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise InputError(path, f"{what} is not readable YAML ({detail})", "give the file cryoDRGN wrote, unedited") from None
