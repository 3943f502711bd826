"""A movie of a volume series, without ChimeraX: MP4 or GIF of the maps' projections.

Takes the folder that traverse, interpolate, sample, analyze (pc1/, kmeans
K/) or the napari export wrote (``vol_000.mrc, vol_001.mrc, ...``, played in
that order), or .mrc files named one by one (played in the order given).
Each frame shows one map as the sums of its density down z, y and x, on one
grey scale for the whole series, titled with the file name. MP4 (H.264)
goes through imageio-ffmpeg, which ships its own ffmpeg; a .gif loops.
For shaded surfaces, run the folder's chimerax_movie.cxc in ChimeraX.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryodiff.cli.types import positive_float, positive_int
from cryodiff.commands._common import add_force_arg, output_file, progress_bar
from cryodiff.output_folder import output_files
from recon.errors import InputError

HELP = "MP4 or GIF of a volume series (projections of each map), without ChimeraX"
log = logging.getLogger("cryodiff.movie")


def add_args(parser):
    parser.add_argument("volumes", nargs="+", help="a folder of vol_000.mrc, vol_001.mrc, ... (as traverse writes), or .mrc files in order")
    parser.add_argument("-o", "--output", required=True, help="the movie: .mp4 (H.264) or .gif (looping)")
    parser.add_argument("--fps", type=positive_float, default=4.0, help="frames (maps) per second (default: %(default)s)")
    parser.add_argument("--size", type=positive_int, default=240, help="width of each of the three projections in pixels (default: %(default)s)")
    add_force_arg(parser)


def series_files(given: list[str]) -> list[Path]:
    """The maps to play: ``vol_*.mrc`` of a single folder (sorted), else the files given, in order."""
    paths = [Path(p) for p in given]
    if len(paths) == 1 and paths[0].is_dir():
        files = sorted(paths[0].glob("vol_*.mrc"))
        if not files:
            raise InputError(paths[0], "holds no vol_*.mrc maps", "give the folder traverse, interpolate, sample or analyze wrote, or the .mrc files")
        return files
    for path in paths:
        if not path.is_file():
            raise InputError(path, "map not found", "give existing .mrc files, or one folder of vol_*.mrc")
    return paths


def run(args) -> None:
    from cryodiff.movies import series_frames, write_movie
    from recon.io import read_volume

    out = output_file(args.output, (".mp4", ".gif"))
    files = series_files(args.volumes)
    volumes = []
    with progress_bar(len(files), "read maps", unit="map") as bar:
        for path in files:
            volume, _ = read_volume(path)
            if volumes and volume.shape != volumes[0].shape:
                raise InputError(path, f"box {volume.shape} differs from {files[0].name}'s {volumes[0].shape}", "play maps of one box")
            volumes.append(volume)
            bar.update()
    with output_files([out], "movie", inputs=files, force=args.force):
        write_movie(out, series_frames(volumes, [f"{p.name} ({i + 1}/{len(files)})" for i, p in enumerate(files)], args.size), args.fps)
    log.info("wrote %s: %d maps at %g frames per second", out, len(files), args.fps)
