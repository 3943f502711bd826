"""Writing command outputs: arrays written atomically, the latents of a volume series.

A volume series is a folder holding ``z.txt`` (one latent per row) and
``vol_000.mrc, vol_001.mrc, ...``. Shared by the command line and the napari
plugin, so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryodiff.output_folder import OutputFolder
from recon.files import atomic_target


def save_array(path: Path, array: np.ndarray, fmt: str = "%.8g") -> None:
    """Write ``array`` atomically: ``.npy`` as numpy binary, anything else as text (one row per line)."""
    path = Path(path)
    with atomic_target(path) as tmp:
        if path.suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
        else:
            np.savetxt(tmp, array, fmt=fmt)


def _same_latents(folder: OutputFolder, zfile: str, z: np.ndarray) -> bool:
    path = folder.path / zfile
    try:
        old = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError):
        return False
    return old.shape == z.shape and np.allclose(old, z, rtol=1e-6, atol=1e-7)


def prepare_series(folder: OutputFolder, z: np.ndarray, zfile: str = "z.txt", prefix: str = "vol_") -> None:
    """Write ``zfile`` in ``folder``; volumes this command wrote there before are removed unless they
    were made from these same latents."""
    if not _same_latents(folder, zfile, z):
        folder.remove(folder.owned(f"{prefix}*.mrc"))
    save_array(folder.file(zfile), z)


def write_chimerax_scripts(folder: OutputFolder, count: int, first_volume: np.ndarray, title: str, prefix: str = "vol_") -> None:
    """``chimerax.cxc`` and ``chimerax_movie.cxc`` beside a series of ``count`` volumes
    (:mod:`cryodiff.chimerax`), the surface threshold taken from ``first_volume``."""
    from cryodiff.chimerax import series_scripts, surface_level

    scripts = series_scripts(f"{prefix}*.mrc", count, surface_level(first_volume), title)
    for name, text in scripts.items():
        with atomic_target(folder.file(name)) as tmp:
            tmp.write_text(text, encoding="utf-8")
