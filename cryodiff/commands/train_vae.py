"""Train a heterogeneous VAE (cryoDRGN's model) on particles with known poses.

Poses, shifts and CTF are read straight from the .star/.cs file (or from
cryoDRGN pose.pkl/ctf.pkl with --poses/--ctf). Every epoch writes
RUN/checkpoint.pt atomically and appends a JSON line to RUN/log.jsonl; after
the last epoch one clean encoding pass writes RUN/latents.h5 (z_mu, z_logvar
[N, zdim] in particle order, with the particle indices). A killed run
continues with --resume to the same result as an uninterrupted one.
RUN/config.json records every setting and the data normalisation.

Started by torchrun, several processes train together (DistributedDataParallel:
NCCL between GPUs, gloo on CPUs), e.g. two GPUs of one machine:

    torchrun --standalone --nproc-per-node 2 --no-python cryodiff train-vae ...

--batch-size is the global batch, split between the processes; the result does not
depend on how many there are, and a run may resume with another number. Only the
first process (rank 0) writes the run folder. See docs/large_datasets.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cryodiff.cli.types import nonnegative_float, nonnegative_int, positive_float, positive_int, seed
from cryodiff.commands._common import add_force_arg, add_particle_args, log_to_file, particle_inputs
from cryodiff.output_folder import output_folder
from recon.errors import InputError, TrainingDiverged

HELP = "train the heterogeneous VAE on particles with known poses and CTF"
log = logging.getLogger("cryodiff.train_vae")


def _size(field: str):
    """The argparse type of a network size: a whole number within :data:`recon.vae.ARCHITECTURE_LIMITS`."""

    def parse(text: str) -> int:
        from recon.vae import ARCHITECTURE_LIMITS  # imports torch: only when the option is given

        low, high = ARCHITECTURE_LIMITS[field]
        value = positive_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not from {low} to {high}")
        return value

    parse.__name__ = "size"
    return parse


def add_args(parser):
    add_particle_args(parser, batch_default=32)
    parser.add_argument("-o", "--outdir", required=True, help="run directory (created)")
    parser.add_argument("--zdim", type=_size("zdim"), required=True, help="latent dimension (8 is typical)")
    parser.add_argument("-n", "--epochs", type=positive_int, default=20, help="number of epochs (default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=6e-4, help="Adam learning rate (default: %(default)s; cryoDRGN: 1e-4 with -b 8)")
    parser.add_argument("--wd", type=nonnegative_float, default=0.0, help="Adam weight decay (default: %(default)s)")
    parser.add_argument("--beta", type=nonnegative_float, help="KL weight (default: 1/zdim)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--enc-dim", type=_size("enc_dim"), default=1024, help="encoder hidden width (default: %(default)s)")
    parser.add_argument("--enc-layers", type=_size("enc_layers"), default=3, help="encoder hidden layers (default: %(default)s)")
    parser.add_argument("--dec-dim", type=_size("dec_dim"), default=1024, help="decoder hidden width (default: %(default)s)")
    parser.add_argument("--dec-layers", type=_size("dec_layers"), default=3, help="decoder hidden layers (default: %(default)s)")
    parser.add_argument(
        "--pe-type",
        default="gaussian",
        choices=["gaussian", "geom_ft", "geom_full", "geom_lowf", "geom_nohighf", "linear_lowf"],
        help="positional encoding of frequencies (default: %(default)s)",
    )
    parser.add_argument("--pe-dim", type=_size("pe_dim"), help="number of encoding frequencies (default: box/2)")
    parser.add_argument("--feat-sigma", type=positive_float, default=0.5, help="scale of gaussian encoding frequencies (default: %(default)s)")
    parser.add_argument(
        "--no-window", dest="window", action="store_false",
        help="do not multiply images by a soft circular window (0.85-0.99 of the half box) before the transform",
    )
    parser.add_argument("--lazy", action="store_true", help="read images from disk per batch instead of loading them into memory")
    parser.add_argument(
        "--shuffle-chunk", type=nonnegative_int, default=0, metavar="N",
        help="visit the particles in chunks of N consecutive images of the stacks, shuffled --shuffle-window chunks at "
        "a time, so that stacks larger than memory are read nearly sequentially with --lazy (default: 0, shuffle "
        "every particle; see docs/large_datasets.md)",
    )
    parser.add_argument("--shuffle-window", type=positive_int, default=8, metavar="K",
                        help="chunks whose particles are shuffled together (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --outdir from its last checkpoint")
    parser.add_argument(
        "--load", metavar="latest|CHECKPOINT",
        help="cryoDRGN's spelling of --resume: 'latest' or the run's own OUTDIR/checkpoint.pt",
    )
    parser.add_argument(
        "--checkpoint", type=nonnegative_int, default=0, metavar="K",
        help="also keep every K-th epoch's weights and latents in OUTDIR/epochs (weights.E.pt, z.E.h5), "
        "as cryoDRGN's weights.E.pkl and z.E.pkl, to judge convergence or analyse an earlier epoch "
        "(default: keep only the last)",
    )
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: OMP_NUM_THREADS, else every CPU "
                        "this process may use: affinity and cgroup quota; see docs/threads.md)")
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 mixed precision for the networks (default: on with a GPU or a CPU with native bf16, e.g. AVX512-BF16)",
    )
    parser.add_argument("--compile", action="store_true", help="compile the networks with torch.compile (worth it on a GPU)")
    add_force_arg(parser)


def run(args) -> None:
    from cryodiff.plots import plot_training_log
    from recon import distributed
    from recon.training import training_data

    distributed.init_from_environment()  # several processes when started by torchrun
    out = Path(args.outdir)
    if args.load is not None:
        _check_load(args.load, out)
        args.resume = True
    if not args.resume and (out / "checkpoint.pt").exists():
        raise InputError(out, "already holds a trained run", "pass --resume to continue it, or choose a new --outdir")
    data = training_data(args.particles, datadir=args.datadir, poses=args.poses, ctf=args.ctf, ind=args.ind,
                         apix=args.apix, amplitude_contrast=args.amplitude_contrast)
    if not distributed.is_main():  # only rank 0 checks, locks and writes the run folder
        logging.getLogger("cryodiff").setLevel(logging.WARNING)
        distributed.barrier()  # released once rank 0 has taken the folder (torchrun stops us if it refused)
        _train(args, data, out)
        return
    with output_folder(out, "train-vae", kind="train-vae", inputs=particle_inputs(args, data.images), force=args.force,
                       marker="config.json", keep_if="checkpoint.pt") as folder:
        for name in ("config.json", "checkpoint.pt", "log.jsonl", "latents.h5", "weights.pt", "loss.png"):
            folder.file(name)  # refused here, before training, if another command's output holds the name
        log_to_file(folder.file("run.log"))
        if distributed.world_size() > 1:
            log.info("%d processes train together (torchrun); this one, rank 0, writes the run", distributed.world_size())
        distributed.barrier()
        _train(args, data, out)
        plot_training_log(out / "log.jsonl", out / "loss.png", f"training of {out.name}")
        log.info("done: latents in %s, training curves in %s; volumes with: cryodiff eval-vol %s -z ...", out / "latents.h5", out / "loss.png", out)


def _train(args, data, out: Path) -> None:
    from recon.training import TrainSettings, train_vae
    from recon.vae import Architecture

    if data.ctf is None:
        log.warning("no CTF parameters found: training without CTF correction")
    if not args.lazy:
        log.info("loading %d images into memory (use --lazy for data sets larger than RAM)", len(data.images))
        data.images.load()
    arch = Architecture(
        box=data.box, zdim=args.zdim, enc_dim=args.enc_dim, enc_layers=args.enc_layers, dec_dim=args.dec_dim,
        dec_layers=args.dec_layers, pe_type=args.pe_type, pe_dim=args.pe_dim, feat_sigma=args.feat_sigma,
    )
    settings = TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=args.beta, seed=args.seed,
        invert=args.invert, window=args.window, weight_decay=args.wd, amp=args.amp, compile=args.compile,
        keep_every=args.checkpoint, shuffle_chunk=args.shuffle_chunk, shuffle_window=args.shuffle_window,
    )
    log.info("training on %d particles (box %d, %.4g Å/px), zdim %d, %d epochs -> %s", len(data.indices), data.box, data.apix, args.zdim, args.epochs, out)
    try:
        train_vae(data, arch, settings, out, resume=args.resume)
    except TrainingDiverged as err:
        raise InputError(out, str(err), "see above") from None


def _check_load(load: str, out: Path) -> None:
    """``--load`` continues this run in place; cryodiff does not start a new run from another's weights."""
    if load == "latest":
        return
    target = Path(load)
    if target.resolve() in {(out / "checkpoint.pt").resolve(), out.resolve()}:
        return
    raise InputError(
        "--load", f"{load} is not this run's checkpoint ({out / 'checkpoint.pt'})",
        "to continue a run pass --load latest (or --resume) with -o its folder; a run cannot start from another run's weights",
    )
