"""The columns of the ``[N, 9]`` CTF parameter arrays, one row per particle.

The order is cryoDRGN's ``ctf.pkl``; every reader (:mod:`recon.io`) produces
rows in it and :func:`recon.ctf.ctf_from_params` consumes them. Index an array
by name, ``ctf[:, CTF_APIX]``, rather than by number. Kept apart from
:mod:`recon.ctf` so that the file readers can use the names without importing
torch.
"""

from __future__ import annotations

#: Column names, units in the suffix (cryoDRGN's ``ctf.pkl`` order).
CTF_COLUMNS = (
    "box_px",
    "apix_A",
    "defocus_u_A",
    "defocus_v_A",
    "defocus_angle_deg",
    "voltage_kV",
    "cs_mm",
    "amplitude_contrast",
    "phase_shift_deg",
)

CTF_BOX = 0  #: box size D in px the row was made for (NaN until the stacks are known)
CTF_APIX = 1  #: pixel size in Å/px at that box
CTF_DEFOCUS_U = 2  #: defocus U in Å, positive for underfocus
CTF_DEFOCUS_V = 3  #: defocus V in Å, positive for underfocus
CTF_DEFOCUS_ANGLE = 4  #: astigmatism angle in degrees from the +x axis
CTF_VOLTAGE = 5  #: accelerating voltage in kV
CTF_CS = 6  #: spherical aberration in mm
CTF_AMPLITUDE_CONTRAST = 7  #: amplitude contrast fraction, in [0, 1]
CTF_PHASE_SHIFT = 8  #: extra phase shift in degrees (phase plates)
