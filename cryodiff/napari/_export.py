"""Export a path: its volumes as MRC files, and a movie of the viewer playing it.

:func:`export_path_volumes` writes what ``cryodiff traverse`` writes
(``z.txt`` and ``vol_000.mrc, vol_001.mrc, ...``, voxel size in the
headers) and its ChimeraX scripts (``chimerax.cxc``, ``chimerax_movie.cxc``).
:func:`path_frames` steps napari's dims slider through the path and
screenshots the canvas; :func:`write_movie` saves the frames as a looping GIF
or an MP4.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cryodiff.output_folder import output_folder
from cryodiff.outputs import prepare_series, write_chimerax_scripts
from recon.errors import InputError
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


#: Movie formats :func:`write_movie` writes, by file suffix.
MOVIE_SUFFIXES = (".gif", ".mp4")


def write_movie(path: str | Path, frames, fps: float = 4.0) -> Path:
    """Save ``frames`` (RGB(A) uint8 arrays of one size) as a looping GIF, or as an H.264 MP4
    (through imageio-ffmpeg, whose wheel ships the ffmpeg binary), at ``fps`` frames per second.
    MP4 frames are padded at the bottom and right to even sizes, as H.264 requires."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MOVIE_SUFFIXES:
        raise InputError(path, f"a movie is written as a GIF or an MP4, not as {path.suffix or 'a file without suffix'}",
                         "give a file name ending in .gif or .mp4")
    rgb = np.stack([np.asarray(frame)[..., :3] for frame in frames])
    if suffix == ".gif":
        iio.imwrite(path, rgb, duration=1000.0 / fps, loop=0)
        return path
    try:
        import imageio_ffmpeg  # noqa: F401 - the ffmpeg binary imageio's MP4 writer runs
    except ImportError:
        raise InputError(path, "MP4 needs the imageio-ffmpeg package", "pip install imageio-ffmpeg, or save a .gif") from None
    import imageio.v2 as imageio

    height, width = rgb.shape[1:3]
    rgb = np.pad(rgb, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    imageio.mimwrite(path, list(rgb), fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p")
    return path
