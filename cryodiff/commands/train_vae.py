"""Train a heterogeneous VAE (cryoDRGN's model) on particles with known poses.

Poses, shifts and CTF are read straight from the .star/.cs file (or from
cryoDRGN pose.pkl/ctf.pkl with --poses/--ctf). Every epoch writes
RUN/checkpoint.pt atomically and appends a JSON line to RUN/log.jsonl; after
the last epoch one clean encoding pass writes RUN/latents.h5 (z_mu, z_logvar
[N, zdim] in particle order, with the particle indices). A killed run
continues with --resume to the same result as an uninterrupted one.
RUN/config.json records every setting and the data normalisation.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cryodiff.commands._common import add_particle_args, load_particles
from recon.errors import InputError, TrainingDiverged

HELP = "train the heterogeneous VAE on particles with known poses and CTF"
log = logging.getLogger("cryodiff.train_vae")


def add_args(parser):
    add_particle_args(parser, batch_default=16)
    parser.add_argument("-o", "--outdir", required=True, help="run directory (created)")
    parser.add_argument("--zdim", type=int, required=True, help="latent dimension (8 is typical)")
    parser.add_argument("-n", "--epochs", type=int, default=20, help="number of epochs (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--wd", type=float, default=0.0, help="Adam weight decay (default: %(default)s)")
    parser.add_argument("--beta", type=float, help="KL weight (default: 1/zdim)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--enc-dim", type=int, default=1024, help="encoder hidden width (default: %(default)s)")
    parser.add_argument("--enc-layers", type=int, default=3, help="encoder hidden layers (default: %(default)s)")
    parser.add_argument("--dec-dim", type=int, default=1024, help="decoder hidden width (default: %(default)s)")
    parser.add_argument("--dec-layers", type=int, default=3, help="decoder hidden layers (default: %(default)s)")
    parser.add_argument(
        "--pe-type",
        default="gaussian",
        choices=["gaussian", "geom_ft", "geom_full", "geom_lowf", "geom_nohighf", "linear_lowf"],
        help="positional encoding of frequencies (default: %(default)s)",
    )
    parser.add_argument("--pe-dim", type=int, help="number of encoding frequencies (default: box/2)")
    parser.add_argument("--feat-sigma", type=float, default=0.5, help="scale of gaussian encoding frequencies (default: %(default)s)")
    parser.add_argument(
        "--no-window", dest="window", action="store_false",
        help="do not multiply images by a soft circular window (0.85-0.99 of the half box) before the transform",
    )
    parser.add_argument("--lazy", action="store_true", help="read images from disk per batch instead of loading them into memory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --outdir from its last checkpoint")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 mixed precision for the networks (default: on with a GPU or a CPU with native bf16, e.g. AVX512-BF16)",
    )
    parser.add_argument("--compile", action="store_true", help="compile the networks with torch.compile (worth it on a GPU)")


def run(args) -> None:
    import torch

    from recon.training import TrainingData, TrainSettings, train_vae
    from recon.vae import Architecture

    if args.zdim < 1 or args.epochs < 1 or args.batch_size < 1:
        raise InputError("--zdim/--epochs/-b", "must be positive", "pass e.g. --zdim 8 -n 20 -b 16")
    out = Path(args.outdir)
    if not args.resume and (out / "checkpoint.pt").exists():
        raise InputError(out, "already holds a trained run", "pass --resume to continue it, or choose a new --outdir")
    if args.threads:
        torch.set_num_threads(args.threads)
    particles, indices = load_particles(args)
    meta = particles.meta.subset(indices)
    rotations, shifts = meta.require_poses()
    if meta.ctf is None:
        log.warning("no CTF parameters found: training without CTF correction")
    if not args.lazy:
        log.info("loading %d images into memory (use --lazy for data sets larger than RAM)", len(particles))
        particles.images.load()
    data = TrainingData(
        images=particles.images,
        indices=indices,
        rotations=rotations,
        shifts_px=shifts,
        ctf=meta.ctf,
        box=particles.meta.box,
        apix=particles.meta.apix,
        source={k: (str(Path(v).resolve()) if v else None) for k, v in
                (("particles", args.particles), ("datadir", args.datadir), ("poses", args.poses), ("ctf", args.ctf), ("ind", args.ind))},
    )
    arch = Architecture(
        box=data.box, zdim=args.zdim, enc_dim=args.enc_dim, enc_layers=args.enc_layers, dec_dim=args.dec_dim,
        dec_layers=args.dec_layers, pe_type=args.pe_type, pe_dim=args.pe_dim, feat_sigma=args.feat_sigma,
    )
    settings = TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=args.beta, seed=args.seed,
        invert=args.invert, window=args.window, weight_decay=args.wd, amp=args.amp, compile=args.compile,
    )
    log.info("training on %d particles (box %d, %.4g Å/px), zdim %d, %d epochs -> %s", len(indices), data.box, data.apix, args.zdim, args.epochs, out)
    try:
        train_vae(data, arch, settings, out, resume=args.resume)
    except TrainingDiverged as err:
        raise InputError(out, str(err), "see above") from None
    log.info("done: latents in %s, volumes with: cryodiff eval-vol %s -z ...", out / "latents.h5", out)
