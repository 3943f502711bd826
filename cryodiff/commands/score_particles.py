"""Score each particle by the log-likelihood of its latent under a diffusion prior.

The latents come from --run (a cryodiff run's latents.h5) or --latents (an
.h5 with z_mu, a cryoDRGN z.N.pkl or an .npy [N, zdim]). Each latent's
log-density under the prior (nats, in the latents' original units) is found
by integrating the probability-flow ODE to sigma 80 (Heun, --steps intervals,
exact divergence, or Hutchinson's estimate with --probes K random probes:
zdim/K times faster, for a million particles). Particles whose latents lie where the prior puts little
mass (junk, a foreign molecule, bad images) score low.

-o (.h5) receives, in the order of the latents:

    log_prob   float64 [N], nats
    indices    int64 [N], each latent's particle index (the run's indices
               from latents.h5, else 0..N-1)

and beside it OUT.png, a histogram of the scores with a suggested cut-off
(a separate low-scoring group, else median - 4 robust SD; also stored as the
attribute suggested_cutoff). Drop the low scorers in one step with cryodiff
select RUN --scores OUT.h5 --min-log-prob CUTOFF (or --drop-worst PERCENT).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import positive_int
from cryodiff.commands._common import add_force_arg, output_file, progress_bar
from cryodiff.output_folder import output_files
from recon.errors import InputError
from recon.files import atomic_target

HELP = "log-likelihood of each particle's latent under a diffusion prior (flags junk and outliers)"
log = logging.getLogger("cryodiff.score_particles")


def add_args(parser):
    parser.add_argument("prior", help="prior directory written by cryodiff train-prior")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="cryodiff run directory (its latents.h5)")
    source.add_argument("--latents", help="latents: .h5 with z_mu, cryoDRGN z.N.pkl or .npy [N, zdim]")
    parser.add_argument("-o", "--output", required=True, help="scores file (.h5)")
    parser.add_argument("--steps", type=positive_int, default=64, help="Heun steps of the ODE (default: %(default)s)")
    parser.add_argument("-b", "--batch-size", type=positive_int, default=1024, help="latents per batch (default: %(default)s)")
    parser.add_argument("--probes", type=positive_int, metavar="K",
                        help="estimate the divergence with K random probes (Hutchinson) instead of exactly: zdim/K times "
                        "faster, with noise in each score; for a million particles (default: exact)")
    add_force_arg(parser)


def particle_indices(source: Path, n: int) -> np.ndarray:
    """The ``indices`` dataset ``[n]`` beside ``z_mu`` in a run's or an .h5's latents, else ``0..n-1``."""
    from recon.io.safe_read import open_h5, read_h5_array

    path = source / "latents.h5" if source.is_dir() else source
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return np.arange(n, dtype=np.int64)
    with open_h5(path, "the latents file") as h5:
        if "indices" not in h5:
            return np.arange(n, dtype=np.int64)
        indices = np.asarray(read_h5_array(h5, "indices", path, "the latents file"), dtype=np.int64).reshape(-1)
    if len(indices) != n:
        raise InputError(path, f"{len(indices)} indices for {n} latents", "give a latents file whose indices and z_mu match")
    return indices


def score(prior, z: np.ndarray, steps: int, batch_size: int, probes: int | None = None) -> np.ndarray:
    """``log p(z)`` ``[N]`` (nats) by :meth:`Prior.log_prob` in batches of ``batch_size``, with a progress bar;
    ``probes`` Hutchinson probes (drawn from the batch's first row number, so reproducible) or exact."""
    parts = []
    with progress_bar(len(z), "scoring", unit="particle") as bar:
        for start in range(0, len(z), batch_size):
            parts.append(prior.log_prob(z[start : start + batch_size], steps=steps, hutchinson_probes=probes, seed=start))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


def _write(out: Path, log_prob: np.ndarray, indices: np.ndarray, steps: int, cutoff: float, probes: int | None) -> None:
    import h5py

    with atomic_target(out) as tmp, h5py.File(tmp, "w") as h5:
        h5["log_prob"], h5["indices"] = log_prob.astype(np.float64), indices
        h5.attrs["steps"] = steps
        h5.attrs["probes"] = probes or 0  # 0: exact divergence
        h5.attrs["suggested_cutoff"] = cutoff


def run(args) -> None:
    from cryodiff.particle_scores import suggest_cutoff
    from cryodiff.plots import plot_score_histogram
    from cryodiff.prior import load_prior, read_latents

    out = output_file(args.output, (".h5",))
    source = Path(args.run or args.latents)
    prior = load_prior(args.prior)
    z = read_latents(source)
    if z.shape[1] != prior.zdim:
        raise InputError(source, f"the latents have zdim {z.shape[1]} but the prior's have zdim {prior.zdim}", "give the latents the prior was trained on (or of the same VAE)")
    indices = particle_indices(source, len(z))
    png = out.with_suffix(".png")
    inputs = [source / "latents.h5" if source.is_dir() else source, Path(args.prior) / "prior.pt"]
    with output_files([out, png], "score-particles", inputs=inputs, force=args.force):
        log_prob = score(prior, z, args.steps, args.batch_size, args.probes)
        cut = suggest_cutoff(log_prob)
        _write(out, log_prob, indices, args.steps, cut.value, args.probes)
        plot_score_histogram(log_prob, cut.value, png)
    log.info("wrote %d scores to %s: median %.2f nats, 1st percentile %.2f", len(z), out, np.median(log_prob), np.percentile(log_prob, 1))
    log.info("suggested cut-off %.2f nats (%s): %.1f %% of particles below; histogram in %s", cut.value, cut.rule, 100 * cut.fraction, png)
    if args.run:
        log.info("to drop them: cryodiff select %s --scores %s --min-log-prob %.2f -o clean.star", args.run, out, cut.value)
