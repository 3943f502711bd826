"""ChimeraX command scripts (.cxc) that open a volume series cryodiff wrote.

Every folder of volumes (``vol_000.mrc, vol_001.mrc, ...`` from eval-vol,
analyze, traverse, sample, interpolate and the napari export) gets two
scripts beside the volumes:

* ``chimerax.cxc`` opens them as one volume series (``vseries true``: a slider
  steps through them in file order), as a surface at a threshold chosen by
  :func:`surface_level`, in one colour, with the whole molecule in view;
* ``chimerax_movie.cxc`` does the same, then plays the series forward and back
  while recording, and encodes ``movie.mp4`` in the same folder.

Open either with ``chimerax chimerax.cxc`` or ``open /path/to/chimerax.cxc`` in
ChimeraX, which runs a command file with its own folder as the working
directory, so the relative volume names resolve wherever the folder is moved.
"""

from __future__ import annotations

import numpy as np

#: Fraction of the box the surface encloses in the first volume: a compact molecule fills a few percent.
ENCLOSED_FRACTION = 0.03
COLOUR = "#b4c8dc"


def surface_level(volume: np.ndarray) -> float:
    """The density threshold that encloses :data:`ENCLOSED_FRACTION` of ``volume``'s voxels
    (in the map's own units), so that the surface shows the molecule, not the noise."""
    return float(np.quantile(np.asarray(volume, dtype=np.float64), 1.0 - ENCLOSED_FRACTION))


def series_scripts(pattern: str, count: int, level: float, title: str) -> dict[str, str]:
    """``{file name: text}`` of the two scripts for ``count`` volumes matching ``pattern``
    (e.g. ``vol_*.mrc``; names sort in series order)."""
    opening = "\n".join([
        f"# {title}",
        f"# {count} volumes as one series; drag the slider (or 'vseries play #1') to step through them.",
        f"open {pattern} vseries true",
        f"volume #1 style surface level {level:.6g} color {COLOUR}",
        "view",
        "lighting soft",
        "",
    ])
    frames = max(1, count) * 8  # about 8 frames per volume at the default 25 frames per second
    movie = opening + "\n".join([
        "# record the series played forward and back, then encode movie.mp4 beside the volumes",
        "movie record",
        "vseries play #1 direction oscillate maxFrameRate 8",
        f"wait {2 * frames}",
        "vseries stop #1",
        "movie encode movie.mp4 quality high",
        "",
    ])
    return {"chimerax.cxc": opening, "chimerax_movie.cxc": movie}
