"""Export a cryodiff VAE run as a cryoDRGN 4.x train_vae output folder.

Writes WORKDIR/config.yaml, weights.E.pkl and z.E.pkl (and weights.pkl, z.pkl)
in cryoDRGN 4.x's layout, E being the run's epoch, so that cryoDRGN's own
tools work on the run: `cryodrgn eval_vol --weights WORKDIR/weights.pkl
--config WORKDIR/config.yaml -z ...` gives the volumes `cryodiff eval-vol`
gives, and `cryodrgn analyze WORKDIR E` analyses its latents. The config names
the particle, CTF, pose and index files the run was trained with. --epoch
exports the weights and latents kept after that epoch (train-vae --checkpoint).
`cryodiff import-cryodrgn` reads the folder back.
"""

from __future__ import annotations

import logging

from cryodiff.cli.types import positive_int
from cryodiff.commands._common import add_force_arg
from cryodiff.output_folder import output_folder

HELP = "write a cryodiff run as a cryoDRGN train_vae folder (config.yaml, weights.pkl, z.pkl)"
log = logging.getLogger("cryodiff.export_cryodrgn")


def add_args(parser):
    parser.add_argument("run", help="run directory written by cryodiff train-vae (or import-cryodrgn)")
    parser.add_argument("-o", "--outdir", required=True, help="cryoDRGN folder to write (created)")
    parser.add_argument("--epoch", type=positive_int, help="export the weights and latents kept after this epoch (default: the last)")
    add_force_arg(parser)


def run(args) -> None:
    from recon.io.cryodrgn_export import export_cryodrgn
    from recon.run import load_checkpoint, load_run

    run_ = load_run(args.run, epoch=args.epoch)
    epoch = args.epoch or int(load_checkpoint(run_.path)["epoch"])
    run_.latents()  # a clear error when training did not finish
    inputs = [run_.path / name for name in ("config.json", "checkpoint.pt", "latents.h5")]
    with output_folder(args.outdir, "export-cryodrgn", kind="export-cryodrgn", inputs=inputs, force=args.force) as folder:
        export_cryodrgn(run_, folder.path, epoch, file=folder.file)
    log.info("wrote %s (epoch %d) for cryoDRGN; volumes with: cryodrgn eval_vol --weights %s --config %s -z ...",
             args.outdir, epoch, folder.path / "weights.pkl", folder.path / "config.yaml")
