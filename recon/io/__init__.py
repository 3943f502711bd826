"""Particle-file input and output: RELION, cryoSPARC, cryoDRGN and MRC.

Typical use in a notebook::

    from recon.io import read_particles, read_metadata, write_star

    particles = read_particles("run_data.star", datadir="Extract/")
    images = particles.images[:16]          # float32 [16, D, D], [y, x]
    meta = particles.meta                   # rotations, shifts_px, ctf, apix, box
    meta = read_metadata("P12_J24_particles.cs")   # poses/CTF only, no stacks needed
    write_star("class3.star", meta, indices=np.flatnonzero(labels == 3))

* :func:`read_metadata` reads a ``.star`` (RELION 3.0–5), ``.cs``
  (cryoSPARC), ``.mrcs``/``.mrc`` or ``.txt`` (list of stacks) into a
  :class:`ParticleMetadata`; cryoDRGN ``pose.pkl``/``ctf.pkl`` can replace
  poses/CTF. ``box``/``apix``/``amplitude_contrast`` fill what a file lacks.
* :func:`read_particles` also opens the images as a lazy
  :class:`ImageStack` (memory-mapped, read per batch).
* :func:`write_star` writes a selection back as a RELION 3.1 STAR file for
  RELION or cryoSPARC.
* :func:`write_stack`, :func:`write_volume`, :func:`read_volume`: MRC files
  (float32, voxel size in Å in the header, origin 0, atomic writes).
* :func:`load_pickle_safely`, :func:`read_cryodrgn_poses`,
  :func:`read_cryodrgn_ctf`: cryoDRGN pickles, admitting numpy arrays only.
* :func:`relion_euler_to_matrix`, :func:`matrix_to_relion_euler`,
  :func:`cryosparc_pose_to_matrix`: pose conventions.

Conventions: images ``[y, x]``, volumes ``[z, y, x]``; lengths in Å, shifts
in pixels ((x, y), the shift that re-centres the particle; cryoDRGN's
``trans`` is the same divided by the box); rotation ``R`` such that the image
is the projection along z of the volume whose points sit at ``R @ r``
(column vectors), i.e. the central slice is sampled at ``k @ R`` for row
vectors ``k``; CTF rows in cryoDRGN's order (box px, Å/px, defocus U Å,
defocus V Å, astigmatism angle °, voltage kV, Cs mm, amplitude contrast,
phase shift °). Every mistake in the input raises
:class:`recon.errors.InputError` naming the file, the field and the fix.
"""

from recon.io.images import ImageStack
from recon.io.mrc import read_volume, write_stack, write_volume
from recon.io.metadata import ParticleMetadata
from recon.io.particles import Particles, read_metadata, read_particles
from recon.io.pkl import load_pickle_safely, read_cryodrgn_ctf, read_cryodrgn_poses
from recon.io.rotations import cryosparc_pose_to_matrix, matrix_to_relion_euler, relion_euler_to_matrix
from recon.io.star import write_star

__all__ = [
    "ImageStack",
    "ParticleMetadata",
    "Particles",
    "cryosparc_pose_to_matrix",
    "load_pickle_safely",
    "matrix_to_relion_euler",
    "read_cryodrgn_ctf",
    "read_cryodrgn_poses",
    "read_metadata",
    "read_particles",
    "read_volume",
    "relion_euler_to_matrix",
    "write_stack",
    "write_star",
    "write_volume",
]
