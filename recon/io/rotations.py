"""Rotation conventions: RELION Euler angles and cryoSPARC poses to matrices.

The project's convention (shared with cryoDRGN) for a particle's rotation
matrix ``R`` (3×3, acting on column vectors):

* the particle image is the projection along z of the volume whose points sit
  at ``R @ r``;
* equivalently, in Fourier space the central slice is sampled at ``k @ R`` for
  in-plane row vectors ``k = (kx, ky, 0)``.

RELION's Euler angles (rot, tilt, psi, in degrees, intrinsic ZYZ) give that
``R`` as the transpose of the active rotation ``Rz(rot) @ Ry(tilt) @ Rz(psi)``;
this is RELION's own ``A`` matrix (``Euler_angles2matrix``). cryoSPARC's
``alignments3D/pose`` is an axis-angle vector in radians whose rotation
matrix, transposed, is ``R``. Both conventions were checked against
cryoDRGN 4.3.1's parse results for real RELION and cryoSPARC files.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

__all__ = ["relion_euler_to_matrix", "matrix_to_relion_euler", "cryosparc_pose_to_matrix"]


def relion_euler_to_matrix(rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike) -> np.ndarray:
    """Rotation matrices from RELION Euler angles.

    Parameters
    ----------
    rot, tilt, psi
        ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi`` in degrees (scalars
        or arrays of length N).

    Returns
    -------
    np.ndarray
        float64 [N, 3, 3] (or [3, 3] for scalar input) in the project's
        convention (see the module docstring).
    """
    angles = np.stack(np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (rot, tilt, psi))), axis=-1)
    matrices = Rotation.from_euler("ZYZ", angles.reshape(-1, 3), degrees=True).as_matrix()
    return matrices.transpose(0, 2, 1).reshape(angles.shape[:-1] + (3, 3))


def matrix_to_relion_euler(matrices: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RELION Euler angles (rot, tilt, psi) in degrees from rotation matrices.

    The exact inverse of :func:`relion_euler_to_matrix`: the returned angles
    give back the same matrices (to float precision). tilt lies in [0, 180];
    rot and psi in (-180, 180]. At tilt 0 or 180 only rot ± psi is defined;
    psi is then set to 0.

    Parameters
    ----------
    matrices
        [N, 3, 3] or [3, 3] rotation matrices in the project's convention.
    """
    matrices = np.asarray(matrices, dtype=np.float64)
    flat = matrices.reshape(-1, 3, 3).transpose(0, 2, 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gimbal lock detected", category=UserWarning)
        angles = Rotation.from_matrix(flat).as_euler("ZYZ", degrees=True)
    angles = angles.reshape(matrices.shape[:-2] + (3,))
    return angles[..., 0], angles[..., 1], angles[..., 2]


def cryosparc_pose_to_matrix(rotvec: ArrayLike) -> np.ndarray:
    """Rotation matrices from cryoSPARC ``alignments3D/pose``.

    Parameters
    ----------
    rotvec
        [N, 3] (or [3]) axis-angle vectors in radians (direction = axis,
        length = angle).

    Returns
    -------
    np.ndarray
        float64 [N, 3, 3] (or [3, 3]) in the project's convention: the
        transpose of the axis-angle rotation matrix.
    """
    rotvec = np.asarray(rotvec, dtype=np.float64)
    matrices = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().transpose(0, 2, 1)
    return matrices.reshape(rotvec.shape[:-1] + (3, 3))
