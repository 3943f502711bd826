"""RELION STAR particle files: reading (3.0, 3.1/4, 5) and writing (3.1).

Reading accepts

* RELION 3.0: one particle table (any block name); pixel size from
  ``rlnImagePixelSize``, else ``1e4 * rlnDetectorPixelSize [µm] /
  rlnMagnification``, else the caller's ``apix``;
* RELION 3.1 / 4: ``data_optics`` and ``data_particles`` in either order,
  any number of optics groups, each with its own pixel size
  (``rlnImagePixelSize``, Å), box (``rlnImageSize``, px), voltage (kV),
  Cs (mm) and amplitude contrast, looked up per particle through
  ``rlnOpticsGroup``;
* RELION 5 (``# version 50001``): as 3.1, extra blocks are ignored.

A value in the particle table takes precedence over the optics table; the
caller's ``box``/``apix``/``amplitude_contrast`` only fill what the file lacks.

Per particle the reader produces

* rotations [N, 3, 3] from ``rlnAngleRot/Tilt/Psi`` (degrees; see
  :mod:`recon.io.rotations` for the matrix convention), or None when rot and
  tilt are absent (2-D classification output);
* shifts [N, 2] in pixels, (x, y), the shift that re-centres the particle:
  ``rlnOriginX/YAngst`` divided by that particle's pixel size, or
  ``rlnOriginX/Y`` (pixels, 3.0);
* CTF [N, 9] in cryoDRGN's column order (box px, Å/px, defocus U Å,
  defocus V Å, astigmatism angle °, voltage kV, Cs mm, amplitude contrast,
  phase shift °), or None when the file has no defocus columns. The box
  column is NaN when the box is unknown without the stacks.

:func:`write_star` writes a RELION 3.1 file (optics + particles tables) that
RELION 3.1+, cryoSPARC's import and this reader accept.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import starfile

from recon.ctf_columns import (
    CTF_AMPLITUDE_CONTRAST,
    CTF_APIX,
    CTF_BOX,
    CTF_CS,
    CTF_DEFOCUS_ANGLE,
    CTF_DEFOCUS_U,
    CTF_DEFOCUS_V,
    CTF_PHASE_SHIFT,
    CTF_VOLTAGE,
)
from recon.errors import InputError
from recon.files import atomic_target
from recon.io.metadata import ParticleMetadata
from recon.io.rotations import matrix_to_relion_euler, relion_euler_to_matrix

__all__ = ["read_star", "write_star"]

_CTF_COLUMNS = ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnVoltage", "rlnSphericalAberration")
#: Columns RELION 3.1 keeps in the optics table, never per particle.
_OPTICS_ONLY = (
    "rlnImagePixelSize",
    "rlnImageSize",
    "rlnImageDimensionality",
    "rlnVoltage",
    "rlnSphericalAberration",
    "rlnAmplitudeContrast",
    "rlnMagnification",
    "rlnDetectorPixelSize",
)


#: Shift columns; rewritten from the metadata's shifts (or dropped without them).
_ORIGINS = ("rlnOriginX", "rlnOriginY", "rlnOriginXAngst", "rlnOriginYAngst")


def _read_blocks(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(path, "file not found", "check the path of the STAR file")
    try:
        return starfile.read(path, always_dict=True)
    except Exception as err:  # starfile raises assorted parser errors
        raise InputError(path, f"cannot parse as a STAR file ({err})", "give a RELION particle .star file") from None


def _particle_table(path: Path, blocks: dict[str, Any]) -> pd.DataFrame:
    tables = {name: b for name, b in blocks.items() if isinstance(b, pd.DataFrame)}
    if "particles" in tables:
        table = tables["particles"]
    else:
        with_names = [b for b in tables.values() if "rlnImageName" in b.columns]
        if not with_names:
            raise InputError(
                path,
                "no particle table (a data_particles block, or a loop with an rlnImageName column)",
                "give a RELION particle .star file (e.g. run_data.star), not a model or optics-only file",
            )
        table = with_names[0]
    if "rlnImageName" not in table.columns:
        raise InputError(path, "the particle table has no rlnImageName column", "give a particle .star file")
    if len(table) == 0:
        raise InputError(path, "the particle table is empty", "give a .star file with particles")
    return table.reset_index(drop=True)


def _optics_rows(path: Path, table: pd.DataFrame, optics: pd.DataFrame | None) -> np.ndarray | None:
    """Row of the optics table for each particle (None without optics)."""
    if optics is None:
        return None
    if "rlnOpticsGroup" not in optics.columns:
        raise InputError(path, "data_optics has no rlnOpticsGroup column", "repair the optics table")
    group_numbers = optics["rlnOpticsGroup"].to_numpy()
    if len(set(group_numbers.tolist())) != len(group_numbers):
        raise InputError(path, "data_optics lists an rlnOpticsGroup number twice", "give each optics group one row")
    if "rlnOpticsGroup" not in table.columns:
        if len(optics) == 1:
            return np.zeros(len(table), dtype=np.intp)
        raise InputError(
            path,
            f"data_particles has no rlnOpticsGroup column but data_optics has {len(optics)} groups",
            "add rlnOpticsGroup to the particle table (RELION's relion_star_handler can)",
        )
    lookup = pd.Series(np.arange(len(optics)), index=group_numbers)
    rows = lookup.reindex(table["rlnOpticsGroup"].to_numpy())
    if rows.isna().any():
        missing = table["rlnOpticsGroup"][rows.isna().to_numpy()].iloc[0]
        raise InputError(
            path,
            f"rlnOpticsGroup {missing} of a particle is not in data_optics",
            "add the group to the optics table or fix the particles' rlnOpticsGroup",
        )
    return rows.to_numpy(dtype=np.intp)


class _Columns:
    """Per-particle lookup of a column in the particle table, then in optics."""

    def __init__(self, path: Path, table: pd.DataFrame, optics: pd.DataFrame | None):
        self.path = path
        self.table = table
        self.optics = optics
        self.rows = _optics_rows(path, table, optics)

    def has(self, name: str) -> bool:
        return name in self.table.columns or (self.optics is not None and name in self.optics.columns)

    def get(self, name: str) -> np.ndarray | None:
        if name in self.table.columns:
            values = self.table[name]
        elif self.optics is not None and name in self.optics.columns:
            values = self.optics[name].iloc[self.rows]
        else:
            return None
        try:
            return values.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                self.path, f"column {name} holds non-numeric values", f"repair the {name} column"
            ) from None

    def require(self, name: str, fill: float | None, fix: str) -> np.ndarray:
        values = self.get(name)
        if values is None:
            if fill is None:
                raise InputError(self.path, f"required column {name} is missing", fix)
            values = np.full(len(self.table), float(fill))
        return values


def _pixel_sizes(cols: _Columns, apix: float | None) -> np.ndarray | None:
    values = cols.get("rlnImagePixelSize")
    if values is None:
        mag, det = cols.get("rlnMagnification"), cols.get("rlnDetectorPixelSize")
        if mag is not None and det is not None:
            values = 1e4 * det / mag
        elif apix is not None:
            values = np.full(len(cols.table), float(apix))
    if values is not None and not (np.isfinite(values).all() and (values > 0).all()):
        raise InputError(cols.path, "pixel size (rlnImagePixelSize or magnification) is not positive", "repair it")
    return values


def _box(cols: _Columns, box: int | None) -> int | None:
    sizes = cols.get("rlnImageSize")
    if sizes is None:
        return None if box is None else int(box)
    unique = np.unique(sizes)
    if len(unique) > 1:
        raise InputError(
            cols.path,
            f"column rlnImageSize has several box sizes {unique.astype(int).tolist()} (mixed box sizes)",
            "re-extract all particles at one box size, or split the file by optics group",
        )
    return int(unique[0])


def _pair(cols: _Columns, x: str, y: str) -> np.ndarray | None:
    has_x, has_y = x in cols.table.columns, y in cols.table.columns
    if not (has_x or has_y):
        return None
    if not (has_x and has_y):
        missing = y if has_x else x
        raise InputError(
            cols.path, f"column {missing} is missing (the file has only one of {x}, {y})", f"add {missing}"
        )
    return np.stack([cols.get(x), cols.get(y)], axis=1)


def _shifts(cols: _Columns, pixel_sizes: np.ndarray | None) -> np.ndarray | None:
    angst = _pair(cols, "rlnOriginXAngst", "rlnOriginYAngst")
    if angst is None:
        return _pair(cols, "rlnOriginX", "rlnOriginY")
    if pixel_sizes is None:
        raise InputError(
            cols.path,
            "rlnOriginXAngst/rlnOriginYAngst need a pixel size but the file has no rlnImagePixelSize",
            "pass --apix in Å/px (apix= in Python)",
        )
    return angst / pixel_sizes[:, None]


def _rotations(cols: _Columns) -> np.ndarray | None:
    names = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
    present = [n in cols.table.columns for n in names]
    if not (present[0] or present[1]):
        return None
    if not all(present):
        missing = [n for n, p in zip(names, present, strict=True) if not p]
        raise InputError(
            cols.path, f"column {missing[0]} is missing (3-D poses need all of {names})", f"add {missing[0]}"
        )
    return relion_euler_to_matrix(*(cols.get(n) for n in names))


def _ctf(
    cols: _Columns, box: int | None, pixel_sizes: np.ndarray | None, amplitude_contrast: float | None
) -> np.ndarray | None:
    if not (cols.has("rlnDefocusU") or cols.has("rlnDefocusV")):
        return None
    fix_column = "add the column to the STAR file (or to data_optics for 3.1+)"
    values = [cols.require(name, None, fix_column) for name in _CTF_COLUMNS]
    contrast = cols.require("rlnAmplitudeContrast", amplitude_contrast, "pass -w/--amplitude-contrast, e.g. 0.1 (amplitude_contrast= in Python)")
    if pixel_sizes is None:
        raise InputError(
            cols.path,
            "the pixel size is missing (no rlnImagePixelSize, nor rlnMagnification with rlnDetectorPixelSize)",
            "pass --apix in Å/px (apix= in Python)",
        )
    phase = cols.get("rlnPhaseShift")
    n = len(cols.table)
    box_column = np.full(n, np.nan if box is None else float(box))
    phase = np.zeros(n) if phase is None else phase
    dfu, dfv, angle, voltage, cs = values
    return np.stack([box_column, pixel_sizes, dfu, dfv, angle, voltage, cs, contrast, phase], axis=1)


def read_star(
    path: str | os.PathLike,
    *,
    box: int | None = None,
    apix: float | None = None,
    amplitude_contrast: float | None = None,
) -> dict[str, Any]:
    """Read a RELION particle STAR file (3.0, 3.1/4 or 5).

    The image stacks are not needed. ``box`` (px), ``apix`` (Å/px) and
    ``amplitude_contrast`` fill values the file lacks.

    Returns
    -------
    dict
        Keyword arguments for :class:`recon.io.metadata.ParticleMetadata`,
        except that ``apix`` is per particle ([N] array or None); the caller
        summarises it.
    """
    path = Path(path)
    blocks = _read_blocks(path)
    table = _particle_table(path, blocks)
    optics = blocks.get("optics") if isinstance(blocks.get("optics"), pd.DataFrame) else None
    cols = _Columns(path, table, optics)
    pixel_sizes = _pixel_sizes(cols, apix)
    file_box = _box(cols, box)
    return dict(
        rotations=_rotations(cols),
        shifts_px=_shifts(cols, pixel_sizes),
        ctf=_ctf(cols, file_box, pixel_sizes, amplitude_contrast),
        apix=pixel_sizes,
        box=file_box,
        image_names=table["rlnImageName"].astype(str).tolist(),
        source=path,
        table=table,
        optics=optics,
    )


def _per_particle(meta: ParticleMetadata, column: int, scalar: float | None, what: str, fix: str) -> np.ndarray:
    if meta.ctf is not None and np.isfinite(meta.ctf[:, column]).all():
        return meta.ctf[:, column]
    if scalar is None:
        raise InputError(meta.source, f"the {what} is unknown, so the optics table cannot be written", fix)
    return np.full(len(meta), float(scalar))


def _optics_values(meta: ParticleMetadata) -> dict[str, np.ndarray]:
    values = {
        "rlnImageSize": _per_particle(
            meta, CTF_BOX, meta.box, "box size", "read the particles with box= or with their stacks"
        ),
        "rlnImagePixelSize": _per_particle(meta, CTF_APIX, meta.apix, "pixel size", "read the particles with apix="),
    }
    if meta.ctf is not None:
        values.update(
            rlnVoltage=meta.ctf[:, CTF_VOLTAGE],
            rlnSphericalAberration=meta.ctf[:, CTF_CS],
            rlnAmplitudeContrast=meta.ctf[:, CTF_AMPLITUDE_CONTRAST],
        )
    return values


def _tables(meta: ParticleMetadata) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(meta)
    values = _optics_values(meta)
    original = meta.optics if meta.optics is not None and "rlnOpticsGroup" in meta.table.columns else None
    old_groups = meta.table["rlnOpticsGroup"].to_numpy() if original is not None else np.zeros(n, dtype=int)
    codes, _ = pd.MultiIndex.from_arrays([old_groups, *values.values()]).factorize()

    optics_rows = []
    for code in range(codes.max() + 1):
        first = int(np.argmax(codes == code))
        old = old_groups[first]
        row: dict[str, Any] = {}
        if original is not None:
            row.update(original[original["rlnOpticsGroup"] == old].iloc[0].to_dict())
        keeps_name = "rlnOpticsGroupName" in row and len(np.unique(codes[old_groups == old])) == 1
        row.update(
            rlnOpticsGroup=code + 1,
            rlnOpticsGroupName=row["rlnOpticsGroupName"] if keeps_name else f"opticsGroup{code + 1}",
            rlnImageDimensionality=2,
        )
        row.update({name: v[first] for name, v in values.items()})
        row["rlnImageSize"] = int(row["rlnImageSize"])
        optics_rows.append(row)
    optics = pd.DataFrame(optics_rows)

    keep = [c for c in meta.table.columns if c.startswith("rln") and c not in _OPTICS_ONLY]
    particles = meta.table[keep].reset_index(drop=True).copy() if keep else pd.DataFrame(index=range(n))
    particles["rlnImageName"] = meta.image_names
    particles["rlnOpticsGroup"] = codes + 1
    if meta.rotations is not None:
        particles["rlnAngleRot"], particles["rlnAngleTilt"], particles["rlnAnglePsi"] = matrix_to_relion_euler(
            meta.rotations
        )
    particles = particles.drop(columns=list(_ORIGINS), errors="ignore")
    if meta.shifts_px is not None:
        shifts_angst = meta.shifts_px * values["rlnImagePixelSize"][:, None]
        particles["rlnOriginXAngst"], particles["rlnOriginYAngst"] = shifts_angst[:, 0], shifts_angst[:, 1]
    if meta.ctf is not None:
        particles["rlnDefocusU"], particles["rlnDefocusV"] = meta.ctf[:, CTF_DEFOCUS_U], meta.ctf[:, CTF_DEFOCUS_V]
        particles["rlnDefocusAngle"] = meta.ctf[:, CTF_DEFOCUS_ANGLE]
        particles["rlnPhaseShift"] = meta.ctf[:, CTF_PHASE_SHIFT]
    return optics, particles


def write_star(
    path: str | os.PathLike,
    particles: ParticleMetadata,
    indices: Sequence[int] | np.ndarray | None = None,
) -> None:
    """Write particles (or the subset ``indices``) as a RELION 3.1 STAR file.

    The file has a ``data_optics`` table and a ``data_particles`` table. Each
    particle keeps its original ``rlnImageName`` (``idx@path`` exactly as in
    the source, so the stacks must be reachable from where the file is
    used) and every other ``rln*`` column of the source table; poses and CTF
    are written from the metadata arrays: Euler angles (degrees) from the
    rotation matrices, ``rlnOriginX/YAngst`` = shift (px) × pixel size, and
    defocus, astigmatism angle and phase shift from ``ctf``. Optics groups
    are the distinct (original group, box, pixel size, voltage, Cs,
    amplitude contrast) combinations, keeping the source's other optics
    columns (beam tilt, aberrations). Reading the file back gives the same
    rotations, shifts and CTF (values are written with 6 decimals, as
    RELION does). The file is written atomically.
    """
    meta = particles if indices is None else particles.subset(indices)
    if len(meta) == 0:
        raise InputError(path, "no particles selected to write", "select at least one particle")
    optics, table = _tables(meta)
    text = starfile.to_string({"optics": optics, "particles": table}, float_format="%.6f")
    text = text.replace("\ndata_", "\n# version 30001\ndata_")
    with atomic_target(path) as tmp:
        tmp.write_text(text)
