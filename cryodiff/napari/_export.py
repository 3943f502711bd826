"""Export a path: its volumes as MRC files, and a movie of the viewer playing it.

:func:`export_path_volumes` writes what ``cryodiff traverse`` writes
(``z.txt`` and ``vol_000.mrc, vol_001.mrc, ...``, voxel size in the
headers) and its ChimeraX scripts (``chimerax.cxc``, ``chimerax_movie.cxc``).
:func:`path_frames` steps napari's dims slider through the path and
screenshots the canvas; :func:`cryodiff.movies.write_movie` saves the frames
as a looping GIF or an MP4.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cryodiff.output_folder import output_folder
from cryodiff.outputs import prepare_series, write_chimerax_scripts
from recon.io import write_volume


def export_path_volumes(folder: str | Path, volumes: np.ndarray, latents: np.ndarray, apix: float) -> list[Path]:
    """Write ``volumes`` [M, z, y, x] as ``folder/vol_000.mrc ...`` (voxel size ``apix`` Å) and
    their ``latents`` [M, zdim] as ``folder/z.txt``, through the output policy of
    :mod:`cryodiff.output_folder` (a folder holding other files is refused; volumes of an
    earlier, different path exported there are removed first). Returns the volume files."""
    with output_folder(folder, "napari-export", kind="napari-export") as out:
        prepare_series(out, latents)
        files = [out.file(f"vol_{i:03d}.mrc") for i in range(len(volumes))]
        for file, volume in zip(files, volumes):
            write_volume(file, volume, apix)
        if len(volumes):
            write_chimerax_scripts(out, len(volumes), volumes[0], "cryodiff napari: a path through the latent landscape")
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
