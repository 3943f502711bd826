"""Backprojection accuracy on simulated data, printed as JSON.

Simulates particles of one conformation, reads them back through the RELION
star parser, backprojects, and reports the FSC curves against the ground-truth
map (and for the mirrored map, and between half maps) with the resolutions
at 0.5 / 0.143 and the throughput.

    python benchmarks/backproject.py [--n 2000] [--box 64] [--snr 0.1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from recon.backproject import backproject
from recon.fsc import fsc, resolution
from recon.io import read_particles, read_volume
from recon.synthetic import write_synthetic_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--apix", type=float, default=3.0)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_synthetic_dataset(
            out, n=args.n, box=args.box, apix=args.apix, snr=args.snr, seed=args.seed, state=0.3, subunit_fraction=1.0
        )
        particles = read_particles(out / "particles.star")
        meta = particles.meta
        reference, _ = read_volume(out / "volumes" / "state00_subunit1.mrc")
        batches = (
            (np.arange(s, min(s + 256, args.n)), particles.images[s : s + 256]) for s in range(0, args.n, 256)
        )
        start = time.perf_counter()
        rec = backproject(batches, meta.rotations, meta.shifts_px, meta.ctf, meta.box, meta.apix)
        seconds = time.perf_counter() - start

    freqs, curve = fsc(rec.volume, reference)
    _, mirror = fsc(rec.volume[::-1], reference)
    _, half = fsc(rec.half1, rec.half2)
    nyquist_fraction = freqs / 0.5
    above = nyquist_fraction[np.flatnonzero(curve < 0.5)[0] - 1] if (curve < 0.5).any() else 1.0
    print(
        json.dumps(
            {
                "n_particles": args.n,
                "box": args.box,
                "apix": args.apix,
                "snr": args.snr,
                "images_per_s": args.n / seconds,
                "resolution_vs_truth_fsc0.5_A": resolution(freqs, curve, 0.5, args.apix),
                "resolution_mirror_vs_truth_fsc0.5_A": resolution(freqs, mirror, 0.5, args.apix),
                "resolution_half_maps_fsc0.143_A": resolution(freqs, half, 0.143, args.apix),
                "fsc_ge_0.5_up_to_fraction_of_nyquist": float(above),
                "frequency_cycles_per_px": freqs.round(5).tolist(),
                "fsc_vs_truth": curve.round(4).tolist(),
                "fsc_mirror_vs_truth": mirror.round(4).tolist(),
                "fsc_half_maps": half.round(4).tolist(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
