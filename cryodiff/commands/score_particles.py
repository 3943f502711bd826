"""Score each particle by the log-likelihood of its latent under a diffusion prior.

The latents come from --run (a cryodiff run's latents.h5) or --latents (an
.h5 with z_mu, a cryoDRGN z.N.pkl or an .npy [N, zdim]). Each latent's
log-density under the prior (nats, in the latents' original units) is found
by integrating the probability-flow ODE to sigma 80 (Heun, --steps intervals,
exact divergence). Particles whose latents lie where the prior puts little
mass (junk, a foreign molecule, bad images) score low.

-o (.h5) receives, in the order of the latents:

    log_prob   float64 [N], nats
    indices    int64 [N], each latent's particle index (the run's indices
               from latents.h5, else 0..N-1)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryodiff.commands._common import output_file, progress_bar
from recon.errors import InputError
from recon.io.mrc import atomic_target

HELP = "log-likelihood of each particle's latent under a diffusion prior (flags junk and outliers)"
log = logging.getLogger("cryodiff.score_particles")


def add_args(parser):
    parser.add_argument("prior", help="prior directory written by cryodiff train-prior")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="cryodiff run directory (its latents.h5)")
    source.add_argument("--latents", help="latents: .h5 with z_mu, cryoDRGN z.N.pkl or .npy [N, zdim]")
    parser.add_argument("-o", "--output", required=True, help="scores file (.h5)")
    parser.add_argument("--steps", type=int, default=64, help="Heun steps of the ODE (default: %(default)s)")
    parser.add_argument("-b", "--batch-size", type=int, default=1024, help="latents per batch (default: %(default)s)")


def particle_indices(source: Path, n: int) -> np.ndarray:
    """The ``indices`` dataset ``[n]`` beside ``z_mu`` in a run's or an .h5's latents, else ``0..n-1``."""
    import h5py

    path = source / "latents.h5" if source.is_dir() else source
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return np.arange(n, dtype=np.int64)
    with h5py.File(path, "r") as h5:
        if "indices" not in h5:
            return np.arange(n, dtype=np.int64)
        indices = np.asarray(h5["indices"][()], dtype=np.int64).reshape(-1)
    if len(indices) != n:
        raise InputError(path, f"{len(indices)} indices for {n} latents", "give a latents file whose indices and z_mu match")
    return indices


def score(prior, z: np.ndarray, steps: int, batch_size: int) -> np.ndarray:
    """``log p(z)`` ``[N]`` (nats) by :meth:`Prior.log_prob` in batches of ``batch_size``, with a progress bar."""
    parts = []
    with progress_bar(len(z), "scoring", unit="particle") as bar:
        for start in range(0, len(z), batch_size):
            parts.append(prior.log_prob(z[start : start + batch_size], steps=steps))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


def _write(out: Path, log_prob: np.ndarray, indices: np.ndarray, steps: int) -> None:
    import h5py

    with atomic_target(out) as tmp, h5py.File(tmp, "w") as h5:
        h5["log_prob"], h5["indices"] = log_prob.astype(np.float64), indices
        h5.attrs["steps"] = steps


def run(args) -> None:
    from cryodiff.prior import load_prior, read_latents

    for option, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value < 1:
            raise InputError(option, f"{value} is not positive", f"give {option} 1 or more")
    out = output_file(args.output, (".h5",))
    source = Path(args.run or args.latents)
    prior = load_prior(args.prior)
    z = read_latents(source)
    if z.shape[1] != prior.zdim:
        raise InputError(source, f"the latents have zdim {z.shape[1]} but the prior's have zdim {prior.zdim}", "give the latents the prior was trained on (or of the same VAE)")
    indices = particle_indices(source, len(z))
    log_prob = score(prior, z, args.steps, args.batch_size)
    _write(out, log_prob, indices, args.steps)
    log.info("wrote %d scores to %s: median %.2f nats, 1st percentile %.2f", len(z), out, np.median(log_prob), np.percentile(log_prob, 1))
