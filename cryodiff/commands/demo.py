"""Run the whole pipeline on built-in synthetic data.

Simulates a heterogeneous data set with known ground truth, then reconstructs
it twice by backprojection: all particles together (the "consensus", blurred
by the heterogeneity) and only the particles of the most populated true state
with the subunit bound. Both are compared with the ground-truth map by FSC, to
show why heterogeneity analysis is needed. Everything lands in OUTDIR; the
last lines say where to look.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryodiff.commands._common import progress_bar

HELP = "simulate a small data set and reconstruct it (a tour of cryodiff on built-in data)"
log = logging.getLogger("cryodiff.demo")


def add_args(parser):
    parser.add_argument("outdir", help="output folder (created)")
    parser.add_argument("-n", type=int, default=3000, help="number of particles (default: %(default)s)")
    parser.add_argument("-D", "--box", type=int, default=64, help="box size in pixels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def run(args) -> None:
    from cryodiff.plots import plot_central_sections, plot_fsc, plot_particles
    from recon.backproject import backproject
    from recon.fsc import fsc, resolution
    from recon.io import read_particles, read_volume, write_volume
    from recon.simulate import STATE_MODES
    from recon.synthetic import read_truth, write_synthetic_dataset

    out = Path(args.outdir)
    data = out / "data"
    with progress_bar(args.n, "simulate") as bar:
        write_synthetic_dataset(data, n=args.n, box=args.box, seed=args.seed, progress=bar.update)
    truth = read_truth(data / "truth.h5")
    particles = read_particles(data / "particles.star")
    meta = particles.meta
    plot_particles(particles.images[:12], out / "particles.png", "simulated particles (SNR 0.1)")

    # The most populated state mode, with the subunit bound.
    mode = max(STATE_MODES, key=lambda m: m[2])[0]
    grid = truth["volumes"]
    ref = int(np.argmin(np.abs(grid["state"] - mode) + 10 * (grid["subunit"] != 1)))
    reference, _ = read_volume(data / grid["file"][ref])
    in_class = np.flatnonzero((np.abs(truth["state"] - grid["state"][ref]) < 0.06) & (truth["subunit"] == 1))
    np.save(out / "class_indices.npy", in_class)

    curves, maps = {}, {"ground truth": reference}
    for label, idx in (("all particles (consensus)", np.arange(len(meta))), ("one true class", in_class)):
        with progress_bar(len(idx), f"backproject {label}") as bar:
            batches = ((idx[i : i + 256], particles.images[idx[i : i + 256]]) for i in range(0, len(idx), 256))
            rec = backproject(batches, meta.rotations, meta.shifts_px, meta.ctf, meta.box, meta.apix, progress=bar.update)
        name = "consensus.mrc" if label.startswith("all") else "class.mrc"
        write_volume(out / name, rec.volume, rec.apix)
        freqs, curves[f"{label}, {len(idx)} particles"] = fsc(rec.volume, reference)
        maps[label] = rec.volume
        log.info(
            "%s: %d particles, FSC=0.5 to ground truth at %.1f Å",
            label,
            len(idx),
            resolution(freqs, curves[f"{label}, {len(idx)} particles"], 0.5, meta.apix),
        )
    plot_fsc(freqs, curves, meta.apix, out / "fsc.png")
    plot_central_sections(maps, out / "sections.png")
    log.info("done. Look at %s/particles.png, %s/sections.png and %s/fsc.png; maps are in %s", out, out, out, out)
