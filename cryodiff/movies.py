"""Movies of a volume series: frames rendered from the maps, written as GIF or MP4.

:func:`series_frames` renders each volume ``[z, y, x]`` as three projections
(the sum of density along z, y and x, each seen down that axis: what an
image of the map would show without CTF) side by side, on one grey scale for
the whole series, so a change in the movie is a change in the maps, not in
the contrast. :func:`write_movie` saves frames as a looping GIF or an H.264
MP4 (imageio-ffmpeg's wheel ships the ffmpeg binary, so MP4 works offline).
Shared by ``cryodiff movie`` and the napari plugin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from recon.errors import InputError

#: Movie formats :func:`write_movie` writes, by file suffix.
MOVIE_SUFFIXES = (".gif", ".mp4")
#: Percentiles of all projections that map to black and white.
GREY_RANGE = (0.5, 99.5)


def projections(volume: np.ndarray) -> list[np.ndarray]:
    """Sums of ``volume`` [z, y, x] along z, y and x: images ``[y, x]``, ``[z, x]`` and ``[z, y]``."""
    return [volume.sum(axis=axis) for axis in range(3)]


def series_frames(volumes: Sequence[np.ndarray], labels: Sequence[str], pixels: int = 240) -> Iterator[np.ndarray]:
    """RGB frames ``[h, w, 3]`` uint8, one per volume: its three projections (:func:`projections`),
    each ``pixels`` wide, titled with its ``label``, on the grey scale of the whole series
    (:data:`GREY_RANGE` percentiles)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sample = np.concatenate([p.ravel() for v in volumes[:: max(1, len(volumes) // 20)] for p in projections(v)])
    lo, hi = np.percentile(sample, GREY_RANGE)
    hi = hi if hi > lo else lo + 1.0
    dpi = 100
    for volume, label in zip(volumes, labels):
        fig = Figure(figsize=(3 * pixels / dpi, pixels / dpi + 0.35), dpi=dpi, facecolor="black")
        canvas = FigureCanvasAgg(fig)
        fig.suptitle(label, fontsize=9, y=0.98, color="white")
        for i, (image, view) in enumerate(zip(projections(volume), ("down z", "down y", "down x"))):
            ax = fig.add_axes((i / 3, 0, 1 / 3, pixels / (pixels + 35)))
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, origin="lower", interpolation="bilinear")
            ax.text(0.03, 0.03, view, color="#ffd24d", fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
        canvas.draw()
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_movie(path: str | Path, frames: Iterable[np.ndarray], fps: float = 4.0) -> Path:
    """Save ``frames`` (RGB(A) uint8 arrays of one size) as a looping GIF, or as an H.264 MP4
    (through imageio-ffmpeg), at ``fps`` frames per second. MP4 frames are padded at the bottom
    and right to even sizes, as H.264 requires. The file is written under a temporary name and
    renamed, so an interrupted write leaves no half movie."""
    from recon.files import atomic_target

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MOVIE_SUFFIXES:
        raise InputError(path, f"a movie is written as a GIF or an MP4, not as {path.suffix or 'a file without suffix'}",
                         "give a file name ending in .gif or .mp4")
    try:
        import imageio.v3 as iio
    except ImportError:
        raise InputError(path, "movies need the imageio package", "pip install 'cryodiff[movies]'") from None
    rgb = np.stack([np.asarray(frame)[..., :3] for frame in frames])
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401 - the ffmpeg binary imageio's MP4 writer runs
        except ImportError:
            raise InputError(path, "MP4 needs the imageio-ffmpeg package", "pip install imageio-ffmpeg, or save a .gif") from None
    with atomic_target(path) as tmp:
        if suffix == ".gif":
            iio.imwrite(tmp, rgb, extension=".gif", duration=1000.0 / fps, loop=0)
        else:
            _write_mp4(tmp, rgb, fps)
    return path


def _write_mp4(path: Path, rgb: np.ndarray, fps: float) -> None:
    """H.264 MP4 of ``rgb`` [T, h, w, 3] at ``path`` (any name: ffmpeg is told the format by a ``.mp4``
    name beside it, renamed onto ``path`` when done)."""
    import os

    import imageio.v2 as imageio

    height, width = rgb.shape[1:3]
    rgb = np.pad(rgb, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    named = path.with_name(path.name + ".mp4")
    try:
        imageio.mimwrite(named, list(rgb), fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p")
        os.replace(named, path)
    finally:
        named.unlink(missing_ok=True)
