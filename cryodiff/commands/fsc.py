"""Fourier shell correlation between two maps of the same box.

Prints the resolution where the curve falls below 0.5 (use against a known
or reference map) and 0.143 (use between independent half maps), in Å. A
curve that stays above a threshold up to Nyquist is reported as "not
reached (Nyquist-limited ...)": the map's box cannot show where it crosses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryodiff.cli.types import positive_float
from cryodiff.commands._common import add_force_arg, output_file
from cryodiff.output_folder import output_files
from recon.errors import InputError

HELP = "Fourier shell correlation of two maps, resolution at 0.5 and 0.143 in Å"


def add_args(parser):
    parser.add_argument("map_a", help="first map (.mrc)")
    parser.add_argument("map_b", help="second map (.mrc), same box")
    parser.add_argument("--mask", help="mask map (.mrc) multiplied into both maps, or 'sphere' for a soft sphere of 0.45 box radius")
    parser.add_argument("--apix", "--Apix", type=positive_float, help="pixel size in Å (default: from the first map's header)")
    parser.add_argument("--plot", help="write the curve as a PNG plot here")
    parser.add_argument("-o", "--output", help="write the curve as a text table here (frequency 1/Å, resolution Å, FSC)")
    add_force_arg(parser)


def run(args) -> None:
    from recon.fsc import fsc, soft_sphere_mask
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
    plot = output_file(args.plot, (".png",), "--plot") if args.plot else None
    outputs = [p for p in (args.output, plot) if p]
    with output_files(outputs, "fsc", inputs=[args.map_a, args.map_b, args.mask if args.mask != "sphere" else None], force=args.force):
        _report(args, fsc(a, b, mask), apix)


def _report(args, curve_of, apix: float) -> None:
    from recon.fsc import describe_resolution, resolution
    from recon.files import atomic_target

    freqs, curve = curve_of
    for threshold, label in ((0.5, "FSC = 0.5:  "), (0.143, "FSC = 0.143:")):
        print(f"{label} {describe_resolution(resolution(freqs, curve, threshold, apix), threshold, apix)}")
    if args.output:
        with np.errstate(divide="ignore"):
            table = np.stack([freqs / apix, apix / freqs, curve], 1)
        with atomic_target(args.output) as tmp:
            np.savetxt(tmp, table, fmt="%.6g", header="frequency_1/A resolution_A fsc")
    if args.plot:
        from cryodiff.plots import plot_fsc

        a_name, b_name = Path(args.map_a).name, Path(args.map_b).name
        plot_fsc(freqs, {f"{a_name} vs {b_name}": curve}, apix, args.plot, title=f"FSC of {a_name} against {b_name}")
