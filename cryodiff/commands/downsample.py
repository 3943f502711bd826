"""Downsample particle images (or a volume) by Fourier cropping.

The pixel size grows by D / D'. For a .star or .cs input, a RELION 3.1 star
file describing the new stack (new box and pixel size; poses and CTF kept;
shifts in Å unchanged) is written beside the output stack, so training can
start from it directly.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from cryodiff.commands._common import output_file, progress_bar
from recon.errors import InputError

HELP = "downsample particles or a volume by Fourier cropping to a smaller box"
log = logging.getLogger("cryodiff.downsample")


def add_args(parser):
    parser.add_argument("input", help=".mrcs/.mrc stack, .star, .cs or .txt particles; or a volume with --is-vol")
    parser.add_argument("-D", "--box", type=int, required=True, help="new box size in pixels (even, smaller than the input)")
    parser.add_argument("-o", "--output", required=True, help="output .mrcs (particles) or .mrc (volume)")
    parser.add_argument("--is-vol", action="store_true", help="the input is a 3-D volume")
    parser.add_argument("--datadir", help="folder with the stacks that a .star/.cs refers to")
    parser.add_argument("--apix", type=float, help="input pixel size in Å, for files that lack it")
    parser.add_argument("-b", "--batch-size", type=int, default=512, help="images per batch (default: %(default)s)")


def run(args) -> None:
    if args.is_vol:
        return _downsample_volume(args)
    from recon.downsample import downsample_stack
    from recon.io import read_particles, write_star

    out = output_file(args.output, (".mrcs",))
    particles = read_particles(args.input, datadir=args.datadir, apix=args.apix)
    meta = particles.meta
    _check_box(args.input, meta.box, args.box)
    scale = meta.box / args.box
    apix_in = meta.apix or 1.0
    log.info("downsampling %d particles from %d to %d px (%.4g -> %.4g Å/px)", len(particles), meta.box, args.box, apix_in, apix_in * scale)
    with progress_bar(len(particles), "downsample") as bar:
        downsample_stack(particles.images, args.box, out, apix_in * scale, batch_size=args.batch_size, progress=bar.update)
    if args.input.lower().endswith((".star", ".cs")):
        ctf = None if meta.ctf is None else meta.ctf.copy()
        if ctf is not None:
            ctf[:, 0] = args.box
            ctf[:, 1] = ctf[:, 1] * scale
        new = dataclasses.replace(
            meta,
            box=args.box,
            apix=apix_in * scale,
            ctf=ctf,
            shifts_px=None if meta.shifts_px is None else meta.shifts_px / scale,
            image_names=[f"{i + 1:06d}@{out.name}" for i in range(len(meta))],
            source=out.with_suffix(".star"),
        )
        write_star(out.with_suffix(".star"), new)
        log.info("wrote %s and %s", out, out.with_suffix(".star"))
    else:
        log.info("wrote %s", out)


def _check_box(path, old: int, new: int) -> None:
    if new % 2 or new < 8 or new >= old:
        raise InputError(path, f"cannot downsample box {old} to {new}", f"choose an even -D below {old}")


def _downsample_volume(args) -> None:
    import torch

    from recon.fourier import fourier_crop_volume
    from recon.io import read_volume, write_volume

    out = output_file(args.output, (".mrc",))
    vol, apix = read_volume(args.input)
    if len(set(vol.shape)) != 1:
        raise InputError(args.input, f"volume is not cubic: {vol.shape}", "drop --is-vol if this is a particle stack")
    _check_box(args.input, vol.shape[0], args.box)
    apix = args.apix or apix or 1.0
    small = fourier_crop_volume(torch.as_tensor(np.asarray(vol, dtype=np.float32)), args.box).numpy()
    write_volume(out, small, apix * vol.shape[0] / args.box)
    log.info("wrote %s (%d px, %.4g Å/px)", out, args.box, apix * vol.shape[0] / args.box)
