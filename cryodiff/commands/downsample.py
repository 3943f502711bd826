"""Downsample particle images (or a volume) by Fourier cropping.

The pixel size grows by D / D'. For a .star or .cs input, a RELION 3.1 star
file describing the new stack (new box and pixel size; poses and CTF kept;
shifts in Å unchanged) is written beside the output stack, so training can
start from it directly.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import even_box, positive_float, positive_int
from cryodiff.commands._common import add_force_arg, output_file, progress_bar
from cryodiff.output_folder import output_files
from recon.ctf_columns import CTF_APIX, CTF_BOX
from recon.errors import InputError

HELP = "downsample particles or a volume by Fourier cropping to a smaller box"
log = logging.getLogger("cryodiff.downsample")


def add_args(parser):
    parser.add_argument("input", help=".mrcs/.mrc stack, .star, .cs or .txt particles; or a volume with --is-vol")
    parser.add_argument("-D", "--box", type=even_box, required=True, help="new box size in pixels (even, smaller than the input)")
    parser.add_argument("-o", "--output", required=True, help="output .mrcs (particles) or .mrc (volume)")
    parser.add_argument("--is-vol", action="store_true", help="the input is a 3-D volume")
    parser.add_argument("--datadir", help="folder with the stacks that a .star/.cs refers to")
    parser.add_argument("--apix", "--Apix", type=positive_float, help="input pixel size in Å, for files that lack it")
    parser.add_argument("-b", "--batch-size", type=positive_int, default=512, help="images per batch (default: %(default)s)")
    parser.add_argument("--float16", action="store_true",
                        help="write the particles as float16 (MRC mode 12): half the disk and memory, 3 significant digits")
    add_force_arg(parser)


def run(args) -> None:
    if args.is_vol:
        return _downsample_volume(args)
    from recon.io import read_particles

    out = output_file(args.output, (".mrcs",))
    particles = read_particles(args.input, datadir=args.datadir, apix=args.apix)
    meta = particles.meta
    _check_box(args.input, meta.box, args.box)
    writes_star = args.input.lower().endswith((".star", ".cs"))
    outputs = [out, out.with_suffix(".star")] if writes_star else [out]
    with output_files(outputs, "downsample", inputs=[args.input, *particles.images.files], force=args.force):
        _downsample_particles(args, particles, out, writes_star)


def _downsample_particles(args, particles, out: Path, writes_star: bool) -> None:
    from recon.downsample import downsample_stack
    from recon.io import write_star

    meta = particles.meta
    scale = meta.box / args.box
    apix_in = meta.apix or 1.0
    log.info("downsampling %d particles from %d to %d px (%.4g -> %.4g Å/px)", len(particles), meta.box, args.box, apix_in, apix_in * scale)
    with progress_bar(len(particles), "downsample") as bar:
        try:
            downsample_stack(particles.images, args.box, out, apix_in * scale, batch_size=args.batch_size,
                             float16=args.float16, progress=bar.update)
        except ValueError as err:
            raise InputError(args.input, str(err), "drop --float16, or normalise the particles first") from None
    if writes_star:
        ctf = None if meta.ctf is None else meta.ctf.copy()
        if ctf is not None:
            ctf[:, CTF_BOX] = args.box
            ctf[:, CTF_APIX] = ctf[:, CTF_APIX] * scale
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
    out = output_file(args.output, (".mrc",))
    with output_files([out], "downsample", inputs=[args.input], force=args.force):
        _crop_volume(args, out)


def _crop_volume(args, out: Path) -> None:
    import torch

    from recon.fourier import fourier_crop_volume
    from recon.io import read_volume, write_volume

    vol, apix = read_volume(args.input)
    if len(set(vol.shape)) != 1:
        raise InputError(args.input, f"volume is not cubic: {vol.shape}", "drop --is-vol if this is a particle stack")
    _check_box(args.input, vol.shape[0], args.box)
    apix = args.apix or apix or 1.0
    small = fourier_crop_volume(torch.as_tensor(np.asarray(vol, dtype=np.float32)), args.box).numpy()
    write_volume(out, small, apix * vol.shape[0] / args.box)
    log.info("wrote %s (%d px, %.4g Å/px)", out, args.box, apix * vol.shape[0] / args.box)
