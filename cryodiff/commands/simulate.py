"""Simulate a particle data set with known ground truth.

The molecule has a domain that swings along a continuous state coordinate
(tri-modal distribution) and a subunit present in a fraction of particles.
Poses are uniform, shifts and defocus vary per particle, and white noise is
added at the requested signal-to-noise ratio (signal variance over the whole
box / noise variance). --junk-fraction adds junk particles (pure noise and/or
a foreign molecule) to test particle-quality scores. Writes OUTDIR/particles.mrcs, particles.star (RELION
3.1), volumes/*.mrc (ground truth on a grid of states) and truth.h5.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryodiff.commands._common import progress_bar
from recon.errors import InputError

HELP = "simulate particles of a flexible molecule with ground truth"
log = logging.getLogger("cryodiff.simulate")


def add_args(parser):
    parser.add_argument("outdir", help="output folder (created)")
    parser.add_argument("-n", "--n", type=int, default=2000, help="number of particles (default: %(default)s)")
    parser.add_argument("-D", "--box", type=int, default=64, help="box size in pixels, even (default: %(default)s)")
    parser.add_argument("--apix", type=float, default=3.0, help="pixel size in Å (default: %(default)s)")
    parser.add_argument("--snr", type=float, default=0.1, help="signal-to-noise ratio (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--subunit-fraction", type=float, default=0.4, help="fraction of particles with the subunit (default: %(default)s)"
    )
    parser.add_argument(
        "--state", type=float, help="put every particle in this state (0-1): a homogeneous data set"
    )
    parser.add_argument(
        "--junk-fraction", type=float, default=0.0,
        help="fraction of particles replaced by junk, flagged in truth.h5 'junk' (default: %(default)s)",
    )
    parser.add_argument(
        "--junk", choices=("noise", "foreign", "mixed"), default="mixed",
        help="junk kind: pure-noise images, a foreign molecule (two rings), or half of each (default: %(default)s)",
    )


def check_args(args) -> None:
    if args.n < 1:
        raise InputError("--n", f"needs at least one particle, got {args.n}", "pass a positive number")
    if args.box < 16 or args.box % 2:
        raise InputError("--box", f"box must be even and at least 16 px, got {args.box}", "pass e.g. -D 64")
    if args.apix <= 0 or args.snr <= 0:
        raise InputError("--apix/--snr", "pixel size and SNR must be positive", "pass e.g. --apix 3 --snr 0.1")
    if not 0 <= args.junk_fraction < 1:
        raise InputError("--junk-fraction", f"must lie in [0, 1), got {args.junk_fraction}", "pass e.g. 0.1")
    if not 0 <= args.subunit_fraction <= 1 or (args.state is not None and not 0 <= args.state <= 1):
        raise InputError("--subunit-fraction/--state", "must lie in [0, 1]", "pass a fraction such as 0.4")


def run(args) -> None:
    from recon.synthetic import write_synthetic_dataset

    check_args(args)
    outdir = Path(args.outdir)
    log.info("simulating %d particles, box %d px, %.3g Å/px, SNR %.3g into %s", args.n, args.box, args.apix, args.snr, outdir)
    with progress_bar(args.n, "simulate") as bar:
        write_synthetic_dataset(
            outdir,
            n=args.n,
            box=args.box,
            apix=args.apix,
            snr=args.snr,
            seed=args.seed,
            subunit_fraction=args.subunit_fraction,
            state=args.state,
            junk_fraction=args.junk_fraction,
            junk_kind=args.junk,
            progress=bar.update,
        )
    log.info("wrote %s/particles.star, particles.mrcs, volumes/ and truth.h5", outdir)
