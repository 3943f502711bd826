"""Particle metadata: poses, CTF and image references of a particle set (no pixels).

:class:`ParticleMetadata` is what the readers of :mod:`recon.io.particles`
return and what :func:`recon.io.star.write_star` writes. Units and
conventions:

* ``rotations`` [N, 3, 3]: the image is the projection along z of the
  volume whose points sit at ``R @ r`` (column vectors); see
  :mod:`recon.io.rotations`;
* ``shifts_px`` [N, 2]: (x, y) in pixels, the shift that re-centres the
  particle (RELION's origin: a particle displaced by +t px has shift -t).
  cryoDRGN's ``trans`` is ``shifts_px / D`` with the same sign;
* ``ctf`` [N, 9]: box px, Å/px, defocus U Å, defocus V Å, astigmatism
  angle °, voltage kV, Cs mm, amplitude contrast, phase shift ° (cryoDRGN's
  order, named in :mod:`recon.ctf_columns`); the box column is NaN until the
  box is known;
* ``apix``: one pixel size in Å/px. When optics groups differ it is the
  value shared by most particles (a warning says so); the per-particle
  values stay in ``ctf[:, CTF_APIX]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recon.errors import InputError

__all__ = ["ParticleMetadata"]


@dataclass
class ParticleMetadata:
    """Per-particle poses, CTF and image references (no pixels).

    Attributes
    ----------
    rotations
        float64 [N, 3, 3] or None (no 3-D poses).
    shifts_px
        float64 [N, 2], (x, y) re-centring shift in pixels, or None.
    ctf
        float64 [N, 9] in cryoDRGN's column order (see module docstring), or None.
    apix
        Pixel size in Å/px (the most common one if optics groups differ), or None.
    box
        Box size D in pixels, or None if unknown without the stacks.
    image_names
        ``idx@path`` per particle, idx 1-based, path as written in the source.
    source
        The file the metadata came from.
    table
        The source's per-particle table (pandas), rows in particle order.
    optics
        RELION's optics table, or None.
    """

    rotations: np.ndarray | None
    shifts_px: np.ndarray | None
    ctf: np.ndarray | None
    apix: float | None
    box: int | None
    image_names: list[str]
    source: Path
    table: pd.DataFrame
    optics: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.image_names)

    def subset(self, indices: Sequence[int] | np.ndarray | slice) -> ParticleMetadata:
        """The particles at ``indices`` (ints, a slice or a boolean mask), in that order."""
        rows = np.arange(len(self))[indices]
        rows = np.atleast_1d(rows)

        def take(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[rows]

        return dataclasses.replace(
            self,
            rotations=take(self.rotations),
            shifts_px=take(self.shifts_px),
            ctf=take(self.ctf),
            image_names=[self.image_names[i] for i in rows],
            table=self.table.iloc[rows].reset_index(drop=True),
        )

    def require_poses(self) -> tuple[np.ndarray, np.ndarray]:
        """(rotations [N, 3, 3], shifts_px [N, 2]) for work that needs 3-D poses.

        Missing shifts count as zero; missing rotations raise
        :class:`~recon.errors.InputError`.
        """
        if self.rotations is None:
            raise InputError(
                self.source,
                "no 3-D poses (rlnAngleRot/rlnAngleTilt or alignments3D/pose)",
                "use the output of a 3-D refinement, or pass --poses with a cryoDRGN pose.pkl (poses= in Python)",
            )
        shifts = self.shifts_px if self.shifts_px is not None else np.zeros((len(self), 2))
        return self.rotations, shifts

    def half_sets(self) -> np.ndarray | None:
        """The gold-standard half set of each particle (int8 [N], 0 or 1) as the refinement that
        made the poses assigned it: RELION's ``rlnRandomSubset`` (1, 2) or cryoSPARC's
        ``alignments3D/split`` (0, 1); None when the file records none. Other values are an
        :class:`~recon.errors.InputError` naming the field."""
        for field, allowed in (("rlnRandomSubset", (1, 2)), ("alignments3D/split", (0, 1))):
            if field not in self.table.columns:
                continue
            values = pd.to_numeric(self.table[field], errors="coerce").to_numpy(np.float64)
            bad = ~np.isin(values, allowed)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(self.source, f"particle {row + 1} has {field} = {self.table[field].iloc[row]}, not {allowed[0]} or {allowed[1]}",
                                 f"repair the {field} column, or remove it to split the halves by particle order")
            return (values == allowed[1]).astype(np.int8)
        return None
