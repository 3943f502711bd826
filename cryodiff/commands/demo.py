"""Run the whole pipeline on built-in synthetic data.

1. Simulates a heterogeneous data set with known ground truth (a domain that
   swings along a tri-modal state coordinate, a subunit in 40 % of particles).
2. Reconstructs it by backprojection twice: all particles together (the
   "consensus", blurred by the heterogeneity) and only the particles of one
   true class, each compared with the ground truth by FSC.
3. Trains the heterogeneous VAE on the particles, and reports how well its
   latent space recovers the true state and subunit occupancy.
4. Analyses the latent space (PCA, UMAP, k-means, volumes, plots).
5. Trains the latent diffusion prior, samples conformations from it and from
   the VAE's N(0, I), and compares both with the particles' latents.

Everything lands in OUTDIR; the last lines say where to look. About 5
minutes on a 2-core CPU with the defaults.
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
    parser.add_argument("-D", "--box", type=int, default=32, help="box size in pixels (default: %(default)s)")
    parser.add_argument("--snr", type=float, default=0.5, help="signal-to-noise ratio (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="VAE training epochs (default: %(default)s)")
    parser.add_argument("--prior-steps", type=int, default=2000, help="diffusion prior training steps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def run(args) -> None:
    from cryodiff.cli.main import main
    from cryodiff.plots import plot_central_sections, plot_fsc, plot_particles
    from recon.evaluation import state_r2, subunit_accuracy
    from recon.run import load_run
    from recon.backproject import backproject
    from recon.fsc import fsc, resolution
    from recon.io import read_particles, read_volume, write_volume
    from recon.simulate import STATE_MODES
    from recon.synthetic import read_truth, write_synthetic_dataset

    out = Path(args.outdir)
    data = out / "data"
    apix = 3.0 * 64 / args.box  # the molecule spans the same 192 Å box at any size
    with progress_bar(args.n, "simulate") as bar:
        write_synthetic_dataset(data, n=args.n, box=args.box, apix=apix, snr=args.snr, seed=args.seed, progress=bar.update)
    truth = read_truth(data / "truth.h5")
    particles = read_particles(data / "particles.star")
    meta = particles.meta
    plot_particles(particles.images[:12], out / "particles.png", f"simulated particles (SNR {args.snr:g})")

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

    vae = out / "vae"
    train = ["train-vae", str(data / "particles.star"), "-o", str(vae), "--zdim", "8", "-n", str(args.epochs),
             "--enc-dim", "256", "--dec-dim", "256", "-b", "32", "--lr", "1e-3", "--seed", str(args.seed)]
    if main(train) or main(["analyze", str(vae), "--ksample", "12"]):
        raise RuntimeError("the demo's own training or analysis failed; see the messages above")
    z = load_run(vae).z_mu
    log.info(
        "VAE latents vs ground truth: state R² %.2f, subunit accuracy %.3f (cross-validated kNN)",
        state_r2(z, truth["state"]),
        subunit_accuracy(z, truth["subunit"]),
    )
    prior_dir = out / "prior"
    prior_args = ["train-prior", str(vae), "-o", str(prior_dir), "--steps", str(args.prior_steps), "--seed", str(args.seed)]
    sample_args = ["sample", str(prior_dir), "-n", "4", "-o", str(prior_dir / "samples.txt"), "--volumes",
                   str(prior_dir / "volumes"), "--run", str(vae), "--seed", str(args.seed)]
    if main(prior_args) or main(sample_args):
        raise RuntimeError("the demo's own prior training or sampling failed; see the messages above")
    compare_prior(z, prior_dir, out / "prior_vs_gaussian.png", args.seed)
    log.info("done. Look at %s/particles.png, sections.png and fsc.png (backprojection),", out)
    log.info("%s (the latent landscape, its clusters and their volumes),", vae / "analyze" / "summary.html")
    log.info("and %s/prior_vs_gaussian.png with volumes sampled from the prior in %s.", out, prior_dir / "volumes")


def compare_prior(z: np.ndarray, prior_dir: Path, png: Path, seed: int) -> None:
    """Plot particle latents, prior samples and N(0, I) samples in the latents'
    PCA, and log their energy distances to the latents (standardised units)."""
    import torch

    from cryodiff.plots import plot_latent_comparison
    from cryodiff.prior import load_prior
    from generative.metrics import energy_distance
    from recon.analysis import pca

    prior = load_prior(prior_dir)
    half = len(z) // 2
    order = np.random.default_rng(seed).permutation(len(z))
    data, held_out = z[order[:half]], z[order[half : 2 * half]]
    samples = prior.sample(half, solver="dpmpp_2m", steps=15, seed=seed)
    gaussian = prior.gaussian(half, seed)
    scale = z.std(0)

    def distance(x):
        return float(energy_distance(torch.as_tensor(x / scale, dtype=torch.float64), torch.as_tensor(data / scale, dtype=torch.float64)))

    d_prior, d_gauss, d_floor = distance(samples), distance(gaussian), distance(held_out)
    log.info(
        "energy distance to the particle latents: prior samples %.4f, N(0, I) samples %.4f (two halves of the data: %.4f)",
        d_prior, d_gauss, d_floor,
    )
    fit = pca(z)

    def project(x):
        return (np.asarray(x, dtype=np.float64) - fit.mean) @ fit.components[:2].T

    plot_latent_comparison(
        {
            f"particle latents (held-out half: {d_floor:.3f})": project(data),
            f"diffusion prior samples: {d_prior:.3f}": project(samples),
            f"N(0, I) samples: {d_gauss:.3f}": project(gaussian),
        },
        png,
        "latents in their first two principal components; energy distance to the particle latents in each title",
    )
