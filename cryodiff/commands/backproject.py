"""Homogeneous reconstruction by CTF-weighted Fourier-space insertion.

Reads poses, shifts and CTF straight from the particle file (or --poses/--ctf
cryoDRGN pickles) and writes the map, two half maps (particles of even and odd
index) and prints the half-map resolution at FSC 0.143.
"""

from __future__ import annotations

import logging

from cryodiff.commands._common import add_particle_args, batches, load_particles, output_file, progress_bar

HELP = "reconstruct one volume (and half maps) from particles with known poses"
log = logging.getLogger("cryodiff.backproject")


def add_args(parser):
    add_particle_args(parser)
    parser.add_argument("-o", "--output", required=True, help="output map, .mrc; half maps go beside it (_half1, _half2)")
    parser.add_argument(
        "--reg", type=float, default=0.1, help="Wiener-style regulariser, fraction of the mean CTF² weight (default: %(default)s)"
    )


def run(args) -> None:
    from recon.backproject import backproject
    from recon.fsc import fsc, resolution
    from recon.io import write_volume

    out = output_file(args.output, (".mrc",))
    particles, indices = load_particles(args)
    meta = particles.meta
    rotations, shifts = meta.require_poses()
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
        )
    write_volume(out, rec.volume, rec.apix)
    for name, vol in (("half1", rec.half1), ("half2", rec.half2)):
        write_volume(out.with_name(f"{out.stem}_{name}.mrc"), vol, rec.apix)
    freqs, curve = fsc(rec.half1, rec.half2)
    log.info("wrote %s and its half maps; half-map resolution (FSC 0.143): %.2f Å", out, resolution(freqs, curve, 0.143, rec.apix))
