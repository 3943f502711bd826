"""Train a diffusion prior on the particle latents of a VAE run.

SOURCE is a cryodiff run directory (its latents.h5, from train-vae or
import-cryodrgn), an .h5 file with a z_mu dataset, a cryoDRGN z.N.pkl (read
with a numpy-only unpickler, so a pickle cannot run code) or an .npy array
[N, zdim]. The latents are standardised per dimension and a residual MLP is
trained on them with an exponential moving average of its weights, as an EDM
denoiser (default), a rectified-flow velocity (--formulation flow) or a
critically damped Langevin velocity score (--formulation cld; sampled with
SSCS, no likelihoods or PF-ODE paths). --dp-epsilon trains with
differentially private SGD (per-latent clipping, Gaussian noise, Poisson
batches; generative.dp_trainer) and records the epsilon spent in prior.json. PRIOR (a directory) receives prior.json (standardisation and
settings), prior.pt (weights), checkpoint.pt (written atomically every 1000
steps) and log.jsonl. A killed run continues with --resume to the same result
as an uninterrupted one; --resume with a larger --steps trains further.

Default steps: clip(2000 * sqrt(zdim) * (1 + log10(N / 1000)), 4000, 40000)
batches of --batch-size latents, e.g. 5656 for 1k latents of zdim 8.
"""

from __future__ import annotations

import logging

from recon.errors import InputError

HELP = "train a diffusion prior on the latents of a VAE run (cryodiff or cryoDRGN)"
log = logging.getLogger("cryodiff.train_prior")


def add_args(parser):
    parser.add_argument("source", help="cryodiff run directory, latents .h5 (z_mu), cryoDRGN z.pkl or .npy [N, zdim]")
    parser.add_argument("-o", "--outdir", required=True, help="prior directory (created)")
    parser.add_argument("--steps", type=int, help="optimiser steps (default: grows with zdim and the number of latents)")
    parser.add_argument("-b", "--batch-size", type=int, default=512, help="latents per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--formulation", choices=("edm", "flow", "cld"), default="edm",
                        help="diffusion formulation (default: %(default)s)")
    parser.add_argument("--dp-epsilon", type=float, help="train with differential privacy for the particles at this "
                        "epsilon (DP-SGD; noise calibrated for --steps by the RDP accountant)")
    parser.add_argument("--dp-delta", type=float, help="privacy delta (default: 0.1 / number of latents)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue the prior in --outdir from its last checkpoint")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def _check_args(args) -> None:
    for option, value in (("--steps", args.steps), ("--batch-size", args.batch_size), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise InputError(option, f"{value} is not positive", f"give {option} 1 or more")
    if not args.lr > 0:
        raise InputError("--lr", f"learning rate {args.lr}", "give a positive learning rate, e.g. 1e-3")


def run(args) -> None:
    import torch

    from cryodiff.prior import default_steps, read_latents, train_prior

    _check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    z = read_latents(args.source)
    steps = args.steps or default_steps(len(z), z.shape[1])
    log.info("%d latents of zdim %d from %s; %d steps of %d", len(z), z.shape[1], args.source, steps, args.batch_size)
    train_prior(z, args.outdir, steps=steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                formulation=args.formulation, dp_epsilon=args.dp_epsilon, dp_delta=args.dp_delta, resume=args.resume, source=str(args.source), progress=True)
    log.info("done: sample with cryodiff sample %s -n 1000 -o samples.txt", args.outdir)
