"""Generate volumes from a trained VAE at given latent coordinates.

Writes DIR/vol_000.mrc, vol_001.mrc, ... one per latent (row of --zfile or
group of --zdim numbers after -z), in order, with the voxel size of the
training data (or apix * D / box with -D). From Python, the same is
``recon.run.load_run(RUN).volume(z)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryodiff.commands._common import progress_bar
from recon.errors import InputError

HELP = "volumes of a trained VAE at latent coordinates"
log = logging.getLogger("cryodiff.eval_vol")


def add_args(parser):
    parser.add_argument("run", help="run directory written by cryodiff train-vae (or import-cryodrgn)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("-z", type=float, nargs="+", help="latent coordinates: zdim numbers per volume, several volumes in a row")
    group.add_argument("--zfile", help="text or .npy file with one latent per row")
    parser.add_argument("-o", "--outdir", required=True, help="output folder (created)")
    parser.add_argument("-D", "--box", type=int, help="evaluate on a smaller box (even, pixels); pixel size grows by D/box")
    parser.add_argument("--apix", type=float, help="override the pixel size written to the maps (Å)")
    parser.add_argument("--flip", action="store_true", help="mirror the maps (the other hand)")
    parser.add_argument("--invert", action="store_true", help="negate the maps")
    parser.add_argument("--prefix", default="vol_", help="file name prefix (default: %(default)s)")


def read_latents(args, zdim: int) -> np.ndarray:
    if args.z is not None:
        z = np.asarray(args.z, dtype=np.float32)
        if len(z) % zdim:
            raise InputError("-z", f"{len(z)} numbers do not split into latents of zdim {zdim}", f"give a multiple of {zdim} numbers")
        return z.reshape(-1, zdim)
    path = Path(args.zfile)
    if not path.is_file():
        raise InputError(path, "latent file not found", "check the path given to --zfile")
    try:
        z = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    except ValueError as err:
        raise InputError(path, f"cannot read latents ({err})", f"write one row of {zdim} numbers per volume") from None
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    if z.shape[1] != zdim:
        raise InputError(path, f"rows have {z.shape[1]} values but the model's zdim is {zdim}", f"write {zdim} numbers per row")
    return z


def run(args) -> None:
    from recon.io import write_volume
    from recon.run import load_run

    run_ = load_run(args.run)
    z = read_latents(args, run_.zdim)
    if args.box is not None and (args.box % 2 or not 8 <= args.box <= run_.box):
        raise InputError("-D", f"box {args.box} is not an even size between 8 and {run_.box}", "choose a smaller even box")
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    apix = args.apix or run_.apix_at(args.box)
    with progress_bar(len(z), "eval-vol", unit="vol") as bar:
        for i, zi in enumerate(z):
            write_volume(out / f"{args.prefix}{i:03d}.mrc", run_.volume(zi, args.box, flip=args.flip, invert=args.invert), apix)
            bar.update()
    log.info("wrote %d volumes to %s (%.4g Å/px)", len(z), out, apix)
