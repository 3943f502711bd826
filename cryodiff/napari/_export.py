"""Export a path: its volumes as MRC files, and a movie of the viewer playing it.

:func:`export_path_volumes` writes what ``cryodiff traverse`` writes
(``z.txt`` and ``vol_000.mrc, vol_001.mrc, ...``, voxel size in the
headers), so ChimeraX plays it the same way (``open vol_*.mrc vseries true``).
:func:`path_frames` steps napari's dims slider through the path and
screenshots the canvas; :func:`write_gif` saves the frames as a looping GIF.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cryodiff.commands.analyze import clear_stale_volumes, save_array
from recon.errors import InputError
from recon.io import write_volume

def export_path_volumes(folder: str | Path, volumes: np.ndarray, latents: np.ndarray, apix: float) -> list[Path]:
    """Write ``volumes`` [M, z, y, x] as ``folder/vol_000.mrc ...`` (voxel size ``apix`` Å) and
    their ``latents`` [M, zdim] as ``folder/z.txt``; volumes of an earlier, different path there are
    removed first. Returns the volume files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clear_stale_volumes(folder, folder / "z.txt", latents)
    save_array(folder / "z.txt", latents)
    files = [folder / f"vol_{i:03d}.mrc" for i in range(len(volumes))]
    for file, volume in zip(files, volumes):
        write_volume(file, volume, apix)
    return files


def path_frames(viewer, axis: int = 0) -> Iterator[np.ndarray]:
    """Screenshots ``[h, w, 4]`` uint8 of napari's canvas at each step of dims ``axis`` (the path step),
    all of the size the canvas has at the start; the slider is put back where it was afterwards."""
    from qtpy.QtWidgets import QApplication

    start = viewer.dims.current_step[axis]
    QApplication.processEvents()
    size = None
    try:
        for step in range(viewer.dims.nsteps[axis]):
            viewer.dims.set_current_step(axis, step)
            QApplication.processEvents()
            frame = viewer.screenshot(canvas_only=True, size=size, flash=False)
            size = size or frame.shape[:2]
            yield frame
    finally:
        viewer.dims.set_current_step(axis, start)


def write_gif(path: str | Path, frames, fps: float = 4.0) -> Path:
    """Save ``frames`` (RGB(A) uint8 arrays of one size) as a looping GIF at ``fps`` frames per second."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise InputError(path, f"the movie is written as a GIF, not as {path.suffix or 'a file without suffix'}",
                         "give a file name ending in .gif")
    rgb = np.stack([np.asarray(frame)[..., :3] for frame in frames])
    iio.imwrite(path, rgb, duration=1000.0 / fps, loop=0)
    return path
