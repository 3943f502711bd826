"""Physical checks of particle metadata where it is read.

A value that cannot describe a real measurement (a voltage of 0 kV, an
amplitude contrast of 1.5, a NaN pixel size or defocus, a rotation that is
not a rotation) would otherwise flow into a reconstruction that looks
plausible and is wrong: an all-zero CTF gives an empty map with a resolution
printed beside it. Each check raises :class:`~recon.errors.InputError` naming
the file, the first offending particle, the field as that file names it and
the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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

#: Names of the CTF columns (in the order of :data:`recon.ctf_columns.CTF_COLUMNS`) in each kind of file, for messages.
CTF_FIELDS = {
    ".star": ("box", "rlnImagePixelSize", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnVoltage",
              "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnPhaseShift"),
    ".cs": ("box", "blob/psize_A", "ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad", "ctf/accel_kv", "ctf/cs_mm",
            "ctf/amp_contrast", "ctf/phase_shift_rad"),
    ".pkl": tuple(f"column {i} ({name})" for i, name in enumerate(
        ("box", "pixel size", "defocus U", "defocus V", "astigmatism angle", "voltage", "Cs", "amplitude contrast", "phase shift"))),
}
#: (column, test, what a valid value is) for the CTF columns that must hold physical values.
_CTF_RULES = (
    (CTF_APIX, lambda v: np.isfinite(v) & (v > 0), "a pixel size in Å/px above 0"),
    (CTF_DEFOCUS_U, np.isfinite, "a finite defocus in Å"),
    (CTF_DEFOCUS_V, np.isfinite, "a finite defocus in Å"),
    (CTF_DEFOCUS_ANGLE, np.isfinite, "a finite angle"),
    (CTF_VOLTAGE, lambda v: np.isfinite(v) & (v > 0), "an acceleration voltage in kV above 0"),
    (CTF_CS, np.isfinite, "a finite spherical aberration in mm"),
    (CTF_AMPLITUDE_CONTRAST, lambda v: np.isfinite(v) & (v >= 0) & (v <= 1), "an amplitude contrast between 0 and 1"),
    (CTF_PHASE_SHIFT, np.isfinite, "a finite phase shift"),
)


def _first_bad(ok: np.ndarray) -> int | None:
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if len(bad) else None


def check_ctf(ctf: np.ndarray, source: Path) -> None:
    """CTF rows ``[N, 9]`` (cryoDRGN's order) from ``source`` hold physical values (the box
    column may be NaN until the stacks are known)."""
    names = CTF_FIELDS.get(Path(source).suffix.lower(), CTF_FIELDS[".pkl"])
    box = ctf[:, CTF_BOX]
    row = _first_bad(np.isnan(box) | (np.isfinite(box) & (box > 0)))
    if row is not None:
        raise InputError(source, f"particle {row}: {names[CTF_BOX]} = {box[row]:g} is not a box size in pixels", "repair the file")
    for column, test, valid in _CTF_RULES:
        values = ctf[:, column]
        row = _first_bad(test(values))
        if row is not None:
            count = int(np.sum(~test(values)))
            raise InputError(
                source,
                f"particle {row}: {names[column]} = {values[row]:g} is not {valid} ({count} particles affected)",
                "repair the value in the file, or leave these particles out with --ind",
            )


def check_poses(rotations: np.ndarray | None, shifts_px: np.ndarray | None, source: Path) -> None:
    """Rotations ``[N, 3, 3]`` are finite proper rotations (orthonormal, determinant +1, to
    1e-3) and shifts ``[N, 2]`` (px) are finite."""
    if rotations is not None:
        finite = np.isfinite(rotations).all(axis=(1, 2))
        safe = np.where(finite[:, None, None], rotations, np.eye(3))
        gram = np.abs(safe @ np.swapaxes(safe, 1, 2) - np.eye(3)).max(axis=(1, 2))
        row = _first_bad(finite & (gram < 1e-3) & (np.linalg.det(safe) > 0))
        if row is not None:
            problem = "is not finite" if not finite[row] else "is not a rotation (not orthonormal with determinant +1)"
            raise InputError(source, f"particle {row}: the pose {problem}", "repair the angles in the file, or leave the particle out with --ind")
    if shifts_px is not None:
        row = _first_bad(np.isfinite(shifts_px).all(axis=1))
        if row is not None:
            raise InputError(source, f"particle {row}: the shift {shifts_px[row].tolist()} is not finite", "repair the shift in the file")
