"""Homogeneous reconstruction by CTF-weighted Fourier-space insertion.

Reads poses, shifts and CTF straight from the particle file (or --poses/--ctf
cryoDRGN pickles) and writes the map and two half maps, and prints the
half-map resolution at FSC 0.143. The half maps follow the gold-standard half
sets of the refinement the poses came from (RELION's rlnRandomSubset,
cryoSPARC's alignments3D/split) when the file has them; otherwise the selected
particles alternate between the halves in file order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import nonnegative_float
from cryodiff.commands._common import add_force_arg, add_particle_args, batches, load_particles, output_file, particle_inputs, progress_bar
from cryodiff.output_folder import output_files
from recon.errors import InputError

HELP = "reconstruct one volume (and half maps) from particles with known poses"
log = logging.getLogger("cryodiff.backproject")


def add_args(parser):
    add_particle_args(parser)
    parser.add_argument("-o", "--output", required=True, help="output map, .mrc; half maps go beside it (_half1, _half2)")
    parser.add_argument(
        "--reg", type=nonnegative_float, default=0.1, help="Wiener-style regulariser, fraction of the mean CTF² weight (default: %(default)s)"
    )
    add_force_arg(parser)


def run(args) -> None:
    out = output_file(args.output, (".mrc",))
    particles, indices = load_particles(args)
    meta = particles.meta
    rotations, shifts = meta.require_poses()
    if meta.apix is None:
        raise InputError(args.particles, "no pixel size in the particle file, its stacks or --ctf", "pass --apix in Å/px")
    half_set = half_sets(meta, indices)
    halves = [out.with_name(f"{out.stem}_{name}.mrc") for name in ("half1", "half2")]
    with output_files([out, *halves], "backproject", inputs=particle_inputs(args, particles.images), force=args.force):
        _reconstruct(args, particles, indices, rotations, shifts, half_set, out, halves)


def half_sets(meta, indices: np.ndarray) -> np.ndarray:
    """Half set (0/1) of every particle of ``meta`` (:func:`recon.backproject.gold_standard_halves`), logged."""
    from cryodiff.selection import half_source
    from recon.backproject import gold_standard_halves

    file_halves = meta.half_sets()
    if file_halves is not None:
        log.info("half maps follow the file's half sets (%s)", half_source(meta))
    return gold_standard_halves(file_halves, len(meta), indices)


def _reconstruct(args, particles, indices, rotations, shifts, half_set, out: Path, halves: list[Path]) -> None:
    from recon.backproject import backproject
    from recon.fsc import describe_resolution, fsc, resolution
    from recon.io import write_volume

    meta = particles.meta
    log.info("backprojecting %d of %d particles (box %d, %.4g Å/px)", len(indices), len(particles), meta.box, meta.apix)
    with progress_bar(len(indices), "backproject") as bar:
        rec = backproject(
            batches(particles.images, indices, args.batch_size, bar),
            rotations,
            shifts,
            meta.ctf,
            meta.box,
            meta.apix,
            invert=args.invert,
            reg=args.reg,
            halves=half_set,
        )
    write_volume(out, rec.volume, rec.apix)
    for path, vol in zip(halves, (rec.half1, rec.half2)):
        write_volume(path, vol, rec.apix)
    freqs, curve = fsc(rec.half1, rec.half2)
    res = describe_resolution(resolution(freqs, curve, 0.143, rec.apix), 0.143, rec.apix)
    log.info("wrote %s and its half maps; half-map resolution (FSC 0.143): %s", out, res)
