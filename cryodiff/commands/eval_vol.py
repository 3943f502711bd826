"""Generate volumes from a trained VAE at given latent coordinates.

Writes DIR/vol_000.mrc, vol_001.mrc, ... one per latent (row of --zfile or
group of --zdim numbers after -z), in order, with the voxel size of the
training data (or apix * D / box with -D), and their latents in DIR/vol_z.txt.
Re-using DIR replaces the volumes this command wrote there before; a folder
holding anything else is refused (--force to write beside it). From Python, the same is
``recon.run.load_run(RUN).volume(z)``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from cryodiff.cli.types import even_box, finite_float, positive_float
from cryodiff.commands._common import add_force_arg
from cryodiff.commands._volumes import add_prior_arg, check_box, support_prior, write_volumes
from cryodiff.output_folder import output_folder
from cryodiff.outputs import prepare_series
from recon.errors import InputError
from recon.io.safe_read import load_npy

HELP = "volumes of a trained VAE at latent coordinates"
log = logging.getLogger("cryodiff.eval_vol")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]*")


def add_args(parser):
    parser.add_argument("run", help="run directory written by cryodiff train-vae (or import-cryodrgn)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("-z", type=finite_float, nargs="+", help="latent coordinates: zdim numbers per volume, several volumes in a row")
    group.add_argument("--zfile", help="text or .npy file with one latent per row")
    parser.add_argument("-o", "--outdir", required=True, help="output folder (created)")
    parser.add_argument("-D", "--box", "-d", "--downsample", type=even_box, help="evaluate on a smaller box (even, pixels); pixel size grows by D/box")
    parser.add_argument("--apix", "--Apix", type=positive_float, help="override the pixel size written to the maps (Å)")
    parser.add_argument("--flip", action="store_true", help="mirror the maps (the other hand)")
    parser.add_argument("--invert", action="store_true", help="negate the maps")
    parser.add_argument("--prefix", default="vol_", help="file name prefix (default: %(default)s); the latents go to PREFIXz.txt")
    add_prior_arg(parser)
    add_force_arg(parser)


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
        z = load_npy(path, "the latents") if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read latents ({err})", f"write one row of {zdim} numbers per volume") from None
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    if z.ndim != 2 or z.shape[1] != zdim:
        raise InputError(path, f"rows have {z.shape[1]} values but the model's zdim is {zdim}", f"write {zdim} numbers per row")
    if not np.isfinite(z).all():
        row = int(np.flatnonzero(~np.isfinite(z).all(axis=1))[0])
        raise InputError(path, f"row {row + 1} holds NaN or infinite values", "give finite latent coordinates")
    return z


def run(args) -> None:
    from recon.run import load_run

    if not _PREFIX.fullmatch(args.prefix):
        raise InputError("--prefix", f"{args.prefix!r} is not a plain file-name prefix", "use letters, digits, '_', '-' or '.', e.g. vol_")
    run_ = load_run(args.run)
    z = read_latents(args, run_.zdim)
    check_box(args.box, run_)
    inputs = [run_.path / name for name in ("config.json", "checkpoint.pt", "latents.h5")] + ([args.zfile] if args.zfile else [])
    with output_folder(args.outdir, "eval-vol", kind="eval-vol", inputs=inputs, force=args.force) as folder:
        prepare_series(folder, z, zfile=f"{args.prefix}z.txt", prefix=args.prefix)
        if args.apix is not None:
            run_ = _with_apix(run_, args.apix * (args.box or run_.box) / run_.box)
        write_volumes(run_, [(folder, z)], args, prefix=args.prefix, prior=support_prior(args, run_),
                      support_file=f"{args.prefix}support.csv")
    log.info("wrote %d volumes and their latents to %s", len(z), args.outdir)


def _with_apix(run_, apix: float):
    """``run_`` whose volumes are labelled with pixel size ``apix`` (Å) at the original box."""
    import copy

    relabelled = copy.copy(run_)
    relabelled.config = {**run_.config, "data": {**run_.config["data"], "apix": apix}}
    return relabelled
