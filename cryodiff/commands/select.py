"""Write chosen particles of a trained run back as a RELION .star file.

Choose particles by k-means cluster of a previous cryodiff analyze
(--clusters 3 5; numbers as in its plots and kmeansK/labels.npy, K from
--ksample, default the latest analysis), by an index file (--ind-file:
0-based rows of the run's latents, e.g. a traverse path_ind.txt or a
selection made in a notebook), and/or by particle scores from cryodiff
score-particles (--scores FILE with --drop-worst PERCENT or --min-log-prob
NATS: drops the particles whose latents are least likely under the prior).
Criteria given together must all hold; --invert-selection keeps all the
other particles.

Writes OUT.star (RELION 3.1: each particle's image, poses and CTF, read from
the particle file the run was trained on) and beside it OUT.ind.txt: the
particles' 0-based positions in that particle file, one per line, in file
order, and the same as OUT.ind.pkl, the pickled array cryoDRGN's --ind reads
(cryodiff train-vae --ind reads either). Image names in OUT.star point at the
stacks relative to OUT.star's own folder (absolute paths with
--absolute-paths), so RELION, cryoDRGN and cryodiff find the images from
wherever they are run. When the run was trained on a cryoSPARC .cs file,
OUT.cs holds the chosen rows of it with every field (uid, blob, alignments),
which cryoSPARC and cryosparc-tools read as a subset of the original job.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import finite_float, nonnegative_int, percentage, positive_int
from cryodiff.commands._common import add_force_arg, output_file
from cryodiff.selection import cluster_rows, run_particles, score_rows, write_selection
from recon.errors import InputError

HELP = "write particles of chosen k-means clusters, an index list or the best-scoring ones as a RELION .star"
log = logging.getLogger("cryodiff.select")


def add_args(parser):
    parser.add_argument("run", help="run directory written by cryodiff train-vae (or import-cryodrgn)")
    parser.add_argument("--clusters", type=nonnegative_int, nargs="+", metavar="C", help="k-means clusters to keep (from cryodiff analyze)")
    parser.add_argument("--ksample", type=positive_int, metavar="K", help="--clusters refer to the analysis with K clusters (default: the latest)")
    parser.add_argument("--ind-file", help="particles to keep: 0-based rows of the run's latents (.txt, .npy or cryoDRGN .pkl)")
    parser.add_argument("--scores", help="particle scores written by cryodiff score-particles (.h5), for --drop-worst or --min-log-prob")
    cut = parser.add_mutually_exclusive_group()
    cut.add_argument("--drop-worst", type=percentage, metavar="PERCENT", help="drop this percentage of the run's particles with the lowest --scores")
    cut.add_argument("--min-log-prob", type=finite_float, metavar="NATS", help="drop particles whose --scores log-likelihood is below this")
    parser.add_argument("--invert-selection", action="store_true", help="keep every particle except the chosen ones")
    parser.add_argument("--analysis", help="folder written by cryodiff analyze (default: RUN/analyze)")
    parser.add_argument("--particles", help="the run's particle file if it moved since training (.star or .cs)")
    parser.add_argument("--absolute-paths", action="store_true", help="name the image stacks by absolute path in OUT.star")
    parser.add_argument("-o", "--output", required=True, help="output .star file; the index lists go beside it (.ind.txt, .ind.pkl), "
                        "and a .cs subset when the run was trained on a .cs")
    add_force_arg(parser)


def _rows(args, run_, z: np.ndarray) -> np.ndarray:
    from recon.io.indices import read_indices

    if args.clusters is None and args.ind_file is None and args.scores is None:
        raise InputError("select", "no particles chosen", "pass --clusters, --ind-file or --scores with --drop-worst")
    if (args.scores is None) != (args.drop_worst is None and args.min_log_prob is None):
        raise InputError("--scores", "--scores needs --drop-worst or --min-log-prob, and they need --scores", "pass both, e.g. --scores scores.h5 --drop-worst 5")
    keep = np.ones(len(z), bool)
    if args.clusters is not None:
        folder = Path(args.analysis) if args.analysis else run_.path / "analyze"
        keep &= np.isin(np.arange(len(z)), cluster_rows(folder, z, args.clusters, args.ksample))
    if args.ind_file is not None:
        if not Path(args.ind_file).is_file():
            raise InputError(args.ind_file, "index file not found", "check the path given to --ind-file")
        keep &= np.isin(np.arange(len(z)), read_indices(args.ind_file, len(z)))
    if args.scores is not None:
        keep &= np.isin(np.arange(len(z)), score_rows(args.scores, np.asarray(run_.indices), args.drop_worst, args.min_log_prob))
    rows = np.flatnonzero(~keep if args.invert_selection else keep)
    if len(rows) == 0:
        raise InputError("--clusters/--ind-file/--scores", "the selection is empty", "choose other clusters, particles or cut-off")
    return rows


def run(args) -> None:
    from recon.run import load_run

    out = output_file(args.output, (".star",))
    run_ = load_run(args.run)
    z = run_.latents()
    rows = _rows(args, run_, z)
    particles = run_particles(run_, args.particles)
    files = write_selection(out, run_, rows, particles, absolute=args.absolute_paths, force=args.force, inputs=[args.ind_file, args.scores])
    log.info("wrote %d of %d particles to %s and their 0-based indices in %s to %s", len(rows), len(z), out, particles.meta.source.name, files[1])
