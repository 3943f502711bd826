"""Options and writing of the volume series that eval-vol, analyze, traverse, sample and interpolate produce.

A series is a folder holding ``z.txt`` (one latent per row),
``vol_000.mrc, vol_001.mrc, ...`` (the volume at each row) and ChimeraX
scripts that open them as a series (:mod:`cryodiff.chimerax`), written through
the folder's output policy (:mod:`cryodiff.output_folder`): volumes this
command wrote there for other latents are removed first, and nothing else is.
"""

from __future__ import annotations

import logging

import numpy as np

from cryodiff.cli.types import even_box
from cryodiff.commands._common import progress_bar
from cryodiff.output_folder import OutputFolder
from cryodiff.outputs import write_chimerax_scripts
from recon.errors import InputError

log = logging.getLogger("cryodiff.volumes")


def add_volume_args(parser) -> None:
    """Options of the volumes a series holds."""
    parser.add_argument("-D", "--box", "-d", "--downsample", type=even_box, help="evaluate volumes on a smaller box (even, pixels); pixel size grows by D/box")
    parser.add_argument("--flip", action="store_true", help="mirror the volumes (the other hand)")
    parser.add_argument("--invert", action="store_true", help="negate the volumes")


def check_box(box: int | None, run_) -> None:
    if box is not None and not 8 <= box <= run_.box:
        raise InputError("-D", f"box {box} is not an even size between 8 and {run_.box}", "choose a smaller even box")


def write_volumes(run_, jobs: list[tuple[OutputFolder, np.ndarray]], args, prefix: str = "vol_") -> None:
    """Write ``prefix000.mrc ...`` in each job's folder for its latents ``z [M, zdim]`` (one progress bar for all)."""
    from recon.io import write_volume

    apix = run_.apix_at(args.box)
    with progress_bar(sum(len(z) for _, z in jobs), "volumes", unit="vol") as bar:
        for folder, z in jobs:
            for i, zi in enumerate(z):
                volume = run_.volume(zi, args.box, flip=args.flip, invert=args.invert)
                write_volume(folder.file(f"{prefix}{i:03d}.mrc"), volume, apix)
                if i == 0:
                    write_chimerax_scripts(folder, len(z), volume, f"cryodiff {folder.command}: volumes of {run_.path.name}", prefix)
                bar.update()
    log.info("volumes at %.4g Å/px, box %d", apix, args.box or run_.box)
