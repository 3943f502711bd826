"""Simulate a particle data set with known ground truth.

The molecule has a domain that swings along a continuous state coordinate
(tri-modal distribution) and a subunit present in a fraction of particles.
Poses are uniform, shifts and defocus vary per particle, and white noise is
added at the requested signal-to-noise ratio (signal variance over the whole
box / noise variance). --junk-fraction adds junk particles (pure noise and/or
a foreign molecule) to test particle-quality scores. Writes OUTDIR/particles.mrcs, particles.star (RELION
3.1), volumes/*.mrc (ground truth on a grid of states) and truth.h5.

--conditions simulates two or more conditions (apo and bound, time points) with
different, known state distributions, to test comparisons of landscapes: each
NAME:W1,W2,W3[:S] gives the weights of the three hinge modes (states near 0.15,
0.5 and 0.85; normalised) and the fraction S of particles with the subunit
(default: --subunit-fraction). The particles are split evenly between the
conditions in random order; the star file's rlnGroupName column holds each
particle's condition and truth.h5 its index (dataset condition, names and
weights in the attribute conditions). Example:

    cryodiff simulate sim -n 10000 -D 32 --conditions apo:0.45,0.15,0.40 bound:0.30,0.30,0.40
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryodiff.cli.types import count, even_box, fraction, positive_float, seed
from cryodiff.commands._common import add_force_arg, progress_bar
from cryodiff.output_folder import output_folder
from recon.errors import InputError

HELP = "simulate particles of a flexible molecule with ground truth"
log = logging.getLogger("cryodiff.simulate")


def add_args(parser):
    parser.add_argument("outdir", help="output folder (created)")
    parser.add_argument("-n", "--n", type=count(10**8, "particles per call"), default=2000, help="number of particles (default: %(default)s)")
    parser.add_argument("-D", "--box", type=even_box, default=64, help="box size in pixels, even (default: %(default)s)")
    parser.add_argument("--apix", "--Apix", type=positive_float, default=3.0, help="pixel size in Å (default: %(default)s)")
    parser.add_argument("--snr", type=positive_float, default=0.1, help="signal-to-noise ratio (default: %(default)s)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--subunit-fraction", type=fraction, default=0.4, help="fraction of particles with the subunit (default: %(default)s)"
    )
    parser.add_argument(
        "--state", type=fraction, help="put every particle in this state (0-1): a homogeneous data set"
    )
    parser.add_argument(
        "--junk-fraction", type=fraction, default=0.0,
        help="fraction of particles replaced by junk, flagged in truth.h5 'junk' (default: %(default)s)",
    )
    parser.add_argument(
        "--junk", choices=("noise", "foreign", "mixed"), default="mixed",
        help="junk kind: pure-noise images, a foreign molecule (two rings), or half of each (default: %(default)s)",
    )
    parser.add_argument(
        "--conditions", nargs="+", metavar="NAME:W1,W2,W3[:S]",
        help="two or more conditions with their own hinge-mode weights (and subunit fraction S), particles split evenly",
    )
    add_force_arg(parser)


def parse_conditions(specs: list[str] | None, subunit_fraction: float) -> list | None:
    """``NAME:W1,W2,W3[:S]`` specs as :class:`recon.simulate.Condition` s (None without specs)."""
    from recon.simulate import Condition

    if not specs:
        return None
    fix = "write e.g. --conditions apo:0.45,0.15,0.40 bound:0.30,0.30,0.40:0.6"
    if len(specs) < 2:
        raise InputError("--conditions", "one condition is no comparison", fix)
    conditions = []
    for spec in specs:
        parts = spec.split(":")
        try:
            if len(parts) not in (2, 3) or not parts[0]:
                raise ValueError("expected NAME:W1,W2,W3[:S]")
            weights = tuple(float(w) for w in parts[1].split(","))
            fraction_ = float(parts[2]) if len(parts) == 3 else subunit_fraction
            if len(weights) != 3 or not all(0 <= w < float("inf") for w in weights) or sum(weights) <= 0:
                raise ValueError("three finite weights >= 0, not all 0, are needed")
            if not 0 <= fraction_ <= 1:
                raise ValueError(f"the subunit fraction {fraction_:g} is not between 0 and 1")
        except ValueError as err:
            raise InputError("--conditions", f"{spec!r}: {err}", fix) from None
        conditions.append(Condition(parts[0], weights, fraction_))
    names = [c.name for c in conditions]
    if len(set(names)) < len(names):
        raise InputError("--conditions", f"condition names repeat: {names}", "give each condition its own name")
    return conditions


def check_args(args) -> None:
    if args.box < 16:
        raise InputError("--box", f"box must be at least 16 px, got {args.box}", "pass e.g. -D 64")
    if args.junk_fraction == 1:
        raise InputError("--junk-fraction", "1 would leave no particle of the molecule", "pass e.g. 0.1")
    if args.conditions and args.state is not None:
        raise InputError("--conditions", "conditions differ in their states, --state fixes one", "drop --state or --conditions")


def run(args) -> None:
    from recon.synthetic import write_synthetic_dataset

    check_args(args)
    conditions = parse_conditions(args.conditions, args.subunit_fraction)
    outdir = Path(args.outdir)
    log.info("simulating %d particles, box %d px, %.3g Å/px, SNR %.3g into %s", args.n, args.box, args.apix, args.snr, outdir)
    with output_folder(outdir, "simulate", kind="simulate", force=args.force, marker="truth.h5"), progress_bar(args.n, "simulate") as bar:
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
            conditions=conditions,
            progress=bar.update,
        )
    log.info("wrote %s/particles.star, particles.mrcs, volumes/ and truth.h5", outdir)
