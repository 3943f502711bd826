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

--condition COLUMN (a column of the run's particle file, e.g. rlnGroupName or
rlnOpticsGroup; --particles FILE if it moved) or --labels FILE (one label per
latent) trains one prior conditioned on each particle's condition, with the
condition dropped for 10 % of the latents so the same network is also the prior
of all of them together; sample --condition NAME draws one condition, and
compare reports log-density ratios between conditions (docs/compare.md).
Default steps: clip(2000 * sqrt(zdim) * (1 + log10(N / 1000)), 4000, 40000)
batches of --batch-size latents, e.g. 5656 for 1k latents of zdim 8.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import LateChoice, count, positive_float, positive_int, probability, seed
from cryodiff.commands._common import add_force_arg, log_to_file
from cryodiff.output_folder import output_folder
from recon.errors import InputError

#: Largest batch (latents per step) accepted: 2^20 latents of zdim 64 are 256 MiB per copy.
MAX_BATCH = 1 << 20

HELP = "train a diffusion prior on the latents of a VAE run (cryodiff or cryoDRGN)"
log = logging.getLogger("cryodiff.train_prior")


def _formulations_epilog() -> str:
    from cryodiff.prior_formulations import formulation_table

    return "formulations (--formulation NAME):\n" + formulation_table()


def add_args(parser):
    parser.add_argument("source", help="cryodiff run directory, latents .h5 (z_mu), cryoDRGN z.pkl or .npy [N, zdim]")
    parser.add_argument("-o", "--outdir", required=True, help="prior directory (created)")
    parser.add_argument("--steps", type=positive_int, help="optimiser steps (default: grows with zdim and the number of latents)")
    parser.add_argument("-b", "--batch-size", type=count(MAX_BATCH, "latents per step (memory)"), default=512, help="latents per step (default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    parser.late_epilog = _formulations_epilog
    parser.add_argument("--formulation", type=LateChoice("cryodiff.prior_formulations", "NAMES"), default="edm",
                        metavar="NAME", help="diffusion formulation, listed below (default: %(default)s)")
    parser.add_argument("--dp-epsilon", type=positive_float, help="train with differential privacy for the particles at this "
                        "epsilon (DP-SGD; noise calibrated for --steps by the RDP accountant)")
    parser.add_argument("--dp-delta", type=probability, help="privacy delta (default: 0.1 / number of latents)")
    conditioned = parser.add_mutually_exclusive_group()
    conditioned.add_argument("--condition", metavar="COLUMN", help="condition the prior on this column of the run's particle file")
    conditioned.add_argument("--labels", help="condition the prior on these labels: a text file, one per latent, in their order")
    parser.add_argument("--particles", help="with --condition: the run's particle file, if it moved since training")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue the prior in --outdir from its last checkpoint")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: OMP_NUM_THREADS, else every CPU "
                        "this process may use: affinity and cgroup quota; see docs/threads.md)")
    add_force_arg(parser)


def run(args) -> None:
    from cryodiff.prior import default_steps, read_latents, train_prior
    from recon import distributed

    distributed.init_from_environment()  # several processes when started by torchrun
    if distributed.world_size() > 1 and args.dp_epsilon is not None:
        raise InputError("--dp-epsilon", "differentially private training runs in one process", "start it without torchrun")
    if distributed.world_size() > 1 and args.formulation == "cld":
        raise InputError("--formulation", "the cld formulation trains in one process (its loss calls the network's "
                         "noise head, which DistributedDataParallel does not wrap)", "start it without torchrun, or use edm or flow")
    z = read_latents(args.source)
    conditions = _conditions(args, len(z))
    steps = args.steps or default_steps(len(z), z.shape[1])
    log.info("%d latents of zdim %d from %s; %d steps of %d", len(z), z.shape[1], args.source, steps, args.batch_size)
    source = Path(args.source)
    inputs = [source / "latents.h5" if source.is_dir() else source]
    settings = dict(steps=steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, formulation=args.formulation,
                    dp_epsilon=args.dp_epsilon, dp_delta=args.dp_delta, resume=args.resume, source=str(args.source),
                    **conditions)
    if not distributed.is_main():  # only rank 0 checks, locks and writes the prior folder
        logging.getLogger("cryodiff").setLevel(logging.WARNING)
        distributed.barrier()  # released once rank 0 has taken the folder (torchrun stops us if it refused)
        train_prior(z, args.outdir, **settings)
        return
    with output_folder(args.outdir, "train-prior", kind="train-prior", inputs=inputs, force=args.force, marker="prior.json",
                       keep_if="checkpoint.pt") as folder:
        for name in ("prior.json", "prior.pt", "checkpoint.pt", "log.jsonl"):
            folder.file(name)  # refused here, before training, if another command's output holds the name
        log_to_file(folder.file("run.log"))
        if distributed.world_size() > 1:
            log.info("%d processes train together (torchrun); this one, rank 0, writes the prior", distributed.world_size())
        distributed.barrier()
        train_prior(z, folder.path, progress=True, **settings)
    log.info("done: sample with cryodiff sample %s -n 1000 -o samples.txt", args.outdir)


def _conditions(args, n: int) -> dict:
    """``labels`` and ``conditions`` for :func:`cryodiff.prior.train_prior` from --condition/--labels (or nothing)."""
    if not (args.condition or args.labels):
        if args.particles:
            raise InputError("--particles", "--particles is for reading --condition", "add --condition COLUMN, or drop --particles")
        return {}
    from cryodiff.commands.score_particles import particle_indices
    from cryodiff.conditions import condition_indices, condition_labels

    values = condition_labels(column=args.condition, labels_file=args.labels, particles_file=args.particles,
                              latents_source=args.source, indices=particle_indices(Path(args.source), n))
    names, labels = condition_indices(values, what="--condition" if args.condition else "--labels")
    log.info("conditional prior: %s", ", ".join(f"{name} ({count} latents)" for name, count in zip(names, np.bincount(labels))))
    return {"labels": labels, "conditions": names}
