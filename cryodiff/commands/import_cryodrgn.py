"""Import a cryoDRGN 4.x train_vae run as a cryodiff VAE run.

Reads WORKDIR/config.yaml (or config.pkl of older runs), weights.N.pkl and
z.N.pkl of one epoch (default: the last one present) and writes RUN/config.json,
RUN/checkpoint.pt and RUN/latents.h5, so that eval-vol and the analysis
commands work on it: the imported model gives the same volumes as
`cryodrgn eval_vol` and the same latents. Nothing in WORKDIR is executed
(weights-only torch loading, numpy-only unpickling, safe YAML).

The pixel size comes from the ctf.pkl named in the config (rescaled to the
training box, as cryoDRGN does); pass --apix when that file is gone or the
run had no CTF. Both decoder domains import (fourier, cryoDRGN's default, and
the older hartley). Encoders other than resid, leaky_relu, --enc-mask and a
non-zero --norm mean cannot be imported exactly and are refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryodiff.cli.types import positive_float, positive_int
from cryodiff.commands._common import add_force_arg
from cryodiff.output_folder import output_folder

HELP = "import a cryoDRGN train_vae output folder as a cryodiff run"
log = logging.getLogger("cryodiff.import_cryodrgn")


def add_args(parser):
    parser.add_argument("workdir", help="output folder of cryodrgn train_vae (its -o)")
    parser.add_argument("-o", "--outdir", required=True, help="cryodiff run directory to write (created)")
    parser.add_argument("--epoch", type=positive_int, help="epoch to import, 1-based as in weights.N.pkl (default: the last one)")
    parser.add_argument("--apix", "--Apix", type=positive_float, help="pixel size in Å of the training images (default: from the run's ctf.pkl)")
    parser.add_argument("--ind", help="index file the run was trained with, if the one named in its config has moved")
    add_force_arg(parser)


def run(args) -> None:
    from recon.io.cryodrgn_run import import_cryodrgn

    workdir = Path(args.workdir)
    inputs = [workdir, *(workdir.iterdir() if workdir.is_dir() else ())]
    with output_folder(args.outdir, "import-cryodrgn", kind="import-cryodrgn", inputs=inputs, force=args.force, marker="config.json"):
        out = import_cryodrgn(workdir, args.outdir, epoch=args.epoch, apix=args.apix, ind=args.ind)
    log.info("imported %s into %s; volumes with: cryodiff eval-vol %s -z ...", args.workdir, out, out)
