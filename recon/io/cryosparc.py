"""cryoSPARC ``.cs`` particle files (numpy structured arrays).

Fields used (units as cryoSPARC stores them):

* ``blob/path`` (bytes; a leading ``>`` that marks imported files is
  stripped) and ``blob/idx`` (0-based image within the stack);
* ``blob/shape`` (box, px) and ``blob/psize_A`` (pixel size, Å);
* ``ctf/df1_A``, ``ctf/df2_A`` (defocus U, V in Å), ``ctf/df_angle_rad``
  (astigmatism angle, radians), ``ctf/accel_kv`` (kV), ``ctf/cs_mm`` (mm),
  ``ctf/amp_contrast``, ``ctf/phase_shift_rad`` (radians; 0 if absent);
* ``alignments3D/pose`` (axis-angle, radians; matrices are transposed into
  the project's convention, see :mod:`recon.io.rotations`) and
  ``alignments3D/shift`` ((x, y) in pixels of the refinement,
  ``alignments3D/psize_A``, converted to pixels of the images, ``blob/psize_A``;
  the shift that re-centres the particle, same sense as RELION's origin);
* ``alignments3D/split`` (0, 1): the refinement's gold-standard half sets.

A file with only ``alignments2D/*`` (2-D classification) reads with
rotations and shifts None: 2-D shifts belong to an in-plane class alignment,
not to a 3-D pose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recon.errors import InputError
from recon.io.safe_read import load_npy
from recon.io.rotations import cryosparc_pose_to_matrix

__all__ = ["read_cs", "write_cs_subset"]

_CTF_FIELDS = ("ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad", "ctf/accel_kv", "ctf/cs_mm")


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, "file not found", "check the path of the .cs file")
    try:
        array = load_npy(path, "the file")
    except InputError as err:
        raise InputError(path, f"not a cryoSPARC .cs file ({err.problem})", "give a particles .cs file exported by cryoSPARC") from None
    if not isinstance(array, np.ndarray) or array.dtype.names is None or array.ndim != 1:
        raise InputError(path, "not a cryoSPARC .cs file (no named fields)", "give a particles .cs file from cryoSPARC")
    if len(array) == 0:
        raise InputError(path, "the file holds no particles", "give a .cs file with particles")
    return array


def _field(path: Path, array: np.ndarray, name: str, fix: str) -> np.ndarray:
    if name not in array.dtype.names:
        raise InputError(path, f"required field {name} is missing", fix)
    return array[name]


def _table(array: np.ndarray, path: Path) -> pd.DataFrame:
    """The structured array as a DataFrame: bytes decoded, vector fields split into ``name/0``, ``name/1``…"""
    columns: dict[str, Any] = {}
    for name in array.dtype.names:
        values = array[name]
        if values.dtype.kind == "S":
            columns[name] = _decode(values, path, name)
        elif values.ndim > 1:
            for i, column in enumerate(values.reshape(len(array), -1).T):
                columns[f"{name}/{i}"] = column
        else:
            columns[name] = values
    return pd.DataFrame(columns)


def _box(path: Path, array: np.ndarray, box: int | None) -> int | None:
    if "blob/shape" not in array.dtype.names:
        return None if box is None else int(box)
    shapes = np.unique(array["blob/shape"].reshape(len(array), -1), axis=0)
    if (shapes[:, 0] != shapes[:, -1]).any():
        raise InputError(
            path, f"field blob/shape has non-square images {shapes[0].tolist()}", "re-extract with a square box"
        )
    if len(shapes) > 1:
        raise InputError(
            path,
            f"field blob/shape has several box sizes {shapes[:, 0].tolist()} (mixed box sizes)",
            "re-extract all particles at one box size",
        )
    return int(shapes[0, 0])


def _ctf(path: Path, array: np.ndarray, box: int | None, pixel_sizes, amplitude_contrast) -> np.ndarray | None:
    names = array.dtype.names
    if not any(n in names for n in _CTF_FIELDS):
        return None
    fix = "export the particles from a cryoSPARC job that has CTF estimates"
    dfu, dfv, angle, voltage, cs = (_field(path, array, n, fix).astype(np.float64) for n in _CTF_FIELDS)
    n = len(array)
    if "ctf/amp_contrast" in names:
        contrast = array["ctf/amp_contrast"].astype(np.float64)
    elif amplitude_contrast is not None:
        contrast = np.full(n, float(amplitude_contrast))
    else:
        raise InputError(path, "required field ctf/amp_contrast is missing", "pass -w/--amplitude-contrast, e.g. 0.1 (amplitude_contrast= in Python)")
    if pixel_sizes is None:
        raise InputError(path, "required field blob/psize_A is missing", "pass --apix in Å/px (apix= in Python)")
    phase = array["ctf/phase_shift_rad"].astype(np.float64) if "ctf/phase_shift_rad" in names else np.zeros(n)
    box_column = np.full(n, np.nan if box is None else float(box))
    return np.stack(
        [box_column, pixel_sizes, dfu, dfv, np.degrees(angle), voltage, cs, contrast, np.degrees(phase)], axis=1
    )


def _refinement_pixels(path: Path, array: np.ndarray, blob_apix: np.ndarray) -> np.ndarray:
    """Blob pixels per refinement pixel: ``alignments3D/shift`` is in the pixels of the refinement
    (``alignments3D/psize_A``), which differ from the images' (``blob/psize_A``) when
    cryoSPARC downsampled on the fly."""
    refinement = array["alignments3D/psize_A"].astype(np.float64)
    bad = ~(np.isfinite(refinement) & (refinement > 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"particle {row + 1} has alignments3D/psize_A = {refinement[row]}", "export the particles again from the refinement job")
    return refinement / blob_apix


def _decode(values: np.ndarray, path: Path, field: str) -> np.ndarray:
    """Byte strings of ``field`` as text; names that are not UTF-8 are an input error."""
    try:
        return np.char.decode(values, "utf-8")
    except UnicodeDecodeError as err:
        raise InputError(path, f"field {field} holds bytes that are not UTF-8 text ({err.reason})", "export the particles again from cryoSPARC") from None


def read_cs(
    path: str | os.PathLike,
    *,
    box: int | None = None,
    apix: float | None = None,
    amplitude_contrast: float | None = None,
) -> dict[str, Any]:
    """Read a cryoSPARC particle ``.cs`` file; the image stacks are not needed.

    ``box`` (px), ``apix`` (Å/px) and ``amplitude_contrast`` fill values the
    file lacks.

    Returns
    -------
    dict
        Keyword arguments for :class:`recon.io.particles.ParticleMetadata`,
        except that ``apix`` is per particle ([N] array or None); the caller
        summarises it. ``image_names`` are RELION-style ``idx@path`` with a
        1-based idx (``blob/idx + 1``) and ``blob/path`` as stored.
    """
    path = Path(path)
    array = _load(path)
    fix = "export the particles from cryoSPARC with their image locations (blob fields)"
    stacks = _decode(_field(path, array, "blob/path", fix), path, "blob/path")
    stacks = np.char.lstrip(stacks, ">")
    indices = _field(path, array, "blob/idx", fix).astype(np.int64)
    file_box = _box(path, array, box)
    if "blob/psize_A" in array.dtype.names:
        pixel_sizes = array["blob/psize_A"].astype(np.float64)
    else:
        pixel_sizes = None if apix is None else np.full(len(array), float(apix))

    rotations = shifts = None
    if "alignments3D/pose" in array.dtype.names:
        rotations = cryosparc_pose_to_matrix(array["alignments3D/pose"])
        shift_fix = "export the particles from the 3-D refinement job with its alignments"
        shifts = _field(path, array, "alignments3D/shift", shift_fix).astype(np.float64)
        if "alignments3D/psize_A" in array.dtype.names and pixel_sizes is not None:
            shifts = shifts * _refinement_pixels(path, array, pixel_sizes)[:, None]

    return dict(
        rotations=rotations,
        shifts_px=shifts,
        ctf=_ctf(path, array, file_box, pixel_sizes, amplitude_contrast),
        apix=pixel_sizes,
        box=file_box,
        image_names=[f"{i + 1}@{s}" for i, s in zip(indices.tolist(), stacks.tolist(), strict=True)],
        source=path,
        table=_table(array, path),
        optics=None,
    )


def write_cs_subset(source: str | os.PathLike, rows: np.ndarray, path: str | os.PathLike) -> None:
    """Write the particles ``rows`` (0-based, in that order) of the cryoSPARC file ``source`` to
    ``path`` as a .cs file: the same structured array, every field kept (``uid``, blob paths,
    alignments), so cryoSPARC and cryosparc-tools read it as a subset of the original job.

    A .cs file is a numpy .npy array, so numpy writes it; cryosparc-tools is not needed for a
    subset of rows (it reads the result back: tests/test_select_outputs.py).
    """
    array = _load(Path(source))[np.asarray(rows, dtype=np.int64)]
    with open(path, "wb") as fh:  # np.save(path) would append .npy to the name
        np.save(fh, array, allow_pickle=False)
