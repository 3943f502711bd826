"""Fourier shell correlation between two maps of the same box.

Prints the resolution where the curve falls below 0.5 (use against a known
or reference map) and 0.143 (use between independent half maps), in Å.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError

HELP = "Fourier shell correlation of two maps, resolution at 0.5 and 0.143 in Å"


def add_args(parser):
    parser.add_argument("map_a", help="first map (.mrc)")
    parser.add_argument("map_b", help="second map (.mrc), same box")
    parser.add_argument("--mask", help="mask map (.mrc) multiplied into both maps, or 'sphere' for a soft sphere of 0.45 box radius")
    parser.add_argument("--apix", type=float, help="pixel size in Å (default: from the first map's header)")
    parser.add_argument("--plot", help="write the curve as a PNG plot here")
    parser.add_argument("-o", "--output", help="write the curve as a text table here (frequency 1/Å, resolution Å, FSC)")


def run(args) -> None:
    from recon.fsc import fsc, resolution, soft_sphere_mask
    from recon.io import read_volume

    a, apix_a = read_volume(args.map_a)
    b, _ = read_volume(args.map_b)
    if a.shape != b.shape:
        raise InputError(args.map_b, f"box {b.shape} differs from {args.map_a} {a.shape}", "resample one map to the other's box first")
    if len(set(a.shape)) != 1:
        raise InputError(args.map_a, f"map is not cubic: {a.shape}", "pad or crop it to a cube")
    apix = args.apix or apix_a
    if not apix:
        raise InputError(args.map_a, "the header has no pixel size", "pass --apix in Å")
    mask = None
    if args.mask == "sphere":
        mask = soft_sphere_mask(a.shape[0])
    elif args.mask:
        mask, _ = read_volume(args.mask)
        if mask.shape != a.shape:
            raise InputError(args.mask, f"mask box {mask.shape} differs from the maps' {a.shape}", "use a mask made for these maps")
    freqs, curve = fsc(a, b, mask)
    res05, res0143 = resolution(freqs, curve, 0.5, apix), resolution(freqs, curve, 0.143, apix)
    print(f"FSC = 0.5:   {res05:.2f} Å")
    print(f"FSC = 0.143: {res0143:.2f} Å")
    if args.output:
        with np.errstate(divide="ignore"):
            table = np.stack([freqs / apix, apix / freqs, curve], 1)
        np.savetxt(args.output, table, fmt="%.6g", header="frequency_1/A resolution_A fsc")
    if args.plot:
        from cryodiff.plots import plot_fsc

        plot_fsc(freqs, {f"{Path(args.map_a).name} vs {Path(args.map_b).name}": curve}, apix, args.plot)
