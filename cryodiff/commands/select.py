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
import pickle
from pathlib import Path

import numpy as np

from cryodiff.cli.types import finite_float, nonnegative_int, percentage, positive_int
from cryodiff.analysis_record import read_record, saved_kmeans
from cryodiff.commands._common import add_force_arg, output_file
from cryodiff.output_folder import output_files
from cryodiff.outputs import save_array
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


def cluster_rows(folder: Path, z: np.ndarray, clusters: list[int], k: int | None = None) -> np.ndarray:
    """Rows of ``z`` whose k-means label (of the analysis with ``k`` clusters, default the
    latest) in the analysis ``folder`` is in ``clusters``."""
    record = read_record(folder, z)
    if record is None and (folder / "analysis.json").is_file():
        raise InputError(folder, "this analysis was made from other latents than the run's current ones", "rerun cryodiff analyze on the run")
    found = None if record is None else saved_kmeans(folder, z, k)
    if found is None:
        also = f" with {k} clusters" if k is not None and record is not None else ""
        raise InputError(folder, f"no k-means analysis here{also}", "run cryodiff analyze on the run first (or pass --analysis DIR or --ksample K)")
    labels, rows = found
    bad = [c for c in clusters if not 0 <= c < len(rows)]
    if bad:
        raise InputError(
            "--clusters", f"cluster {bad[0]} does not exist (the analysis has clusters 0..{len(rows) - 1})", "use cluster numbers from the analysis plots"
        )
    return np.flatnonzero(np.isin(labels, clusters))


def score_rows(path: str, particles: np.ndarray, drop_worst: float | None, min_log_prob: float | None) -> np.ndarray:
    """Rows of the run's ``particles`` (particle indices [N]) that survive the score cut.

    ``drop_worst`` percent of the run's particles with the lowest ``log_prob``
    in the score file ``path`` are dropped, or those below ``min_log_prob`` nats.
    """
    from recon.io.safe_read import open_h5, read_h5_array

    if drop_worst is not None and drop_worst >= 100:
        raise InputError("--drop-worst", f"{drop_worst} is not a percentage between 0 and 100", "pass e.g. --drop-worst 5")
    if not Path(path).is_file():
        raise InputError(path, "score file not found", "write it with cryodiff score-particles PRIOR --run RUN -o FILE")
    with open_h5(path, "the score file") as h5:
        log_prob, indices = (read_h5_array(h5, name, path, "the score file of cryodiff score-particles") for name in ("log_prob", "indices"))
    log_prob, indices = np.asarray(log_prob, np.float64).reshape(-1), np.asarray(indices, np.int64).reshape(-1)
    if log_prob.shape != indices.shape:
        raise InputError(path, f"{len(log_prob)} scores for {len(indices)} particle indices", "give the .h5 that score-particles wrote")
    if not np.isfinite(log_prob).all():
        raise InputError(path, f"{int(np.sum(~np.isfinite(log_prob)))} scores are NaN or infinite", "score the particles again with cryodiff score-particles")
    order = {int(p): i for i, p in enumerate(indices)}
    missing = [int(p) for p in particles if int(p) not in order]
    if missing:
        raise InputError(path, f"has no score for particle {missing[0]} of the run ({len(missing)} missing)", "score the run's own latents: score-particles --run RUN")
    scores = log_prob[[order[int(p)] for p in particles]]
    if min_log_prob is None:
        min_log_prob = np.percentile(scores, drop_worst)
    return np.flatnonzero(scores >= min_log_prob)


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


def _metadata(args, run_):
    """The run's particles as it was trained on them: poses and CTF from its pickles, the box
    from the stacks, the pixel size of the training images (a CTF table made at another box
    rescaled as in training), so the written star states what the images are."""
    from recon.io import read_particles

    data = run_.config["data"]
    path = args.particles or data.get("particles")
    if not path or not Path(path).is_file():
        raise InputError(path or run_.path, "the run's particle file is not found", "pass --particles with its current path")
    particles = read_particles(path, datadir=data.get("datadir"), poses=data.get("poses"), ctf=data.get("ctf"), apix=data.get("apix"))
    return particles.meta, data.get("datadir")


def run(args) -> None:
    from recon.io import write_star
    from recon.io.cryosparc import write_cs_subset
    from recon.io.mrc import atomic_target
    from recon.io.particles import relocate_image_names
    from recon.run import load_run

    out = output_file(args.output, (".star",))
    run_ = load_run(args.run)
    z = run_.latents()
    rows = _rows(args, run_, z)
    meta, datadir = _metadata(args, run_)
    particles = np.sort(np.asarray(run_.indices, dtype=np.int64)[rows])
    if particles[-1] >= len(meta):
        raise InputError(
            meta.source, f"has {len(meta)} particles but the run used particle {particles[-1]}", "give the particle file the run was trained on"
        )
    ind_path, pkl_path = out.with_suffix(".ind.txt"), out.with_suffix(".ind.pkl")
    cs_path = out.with_suffix(".cs") if meta.source.suffix.lower() == ".cs" else None
    inputs = [meta.source, run_.path / "latents.h5", args.ind_file, args.scores]
    outputs = [out, ind_path, pkl_path] + ([cs_path] if cs_path else [])
    with output_files(outputs, "select", inputs=inputs, force=args.force):
        chosen = relocate_image_names(meta.subset(particles), out.parent, datadir, absolute=args.absolute_paths)
        write_star(out, chosen)
        save_array(ind_path, particles, fmt="%d")
        with atomic_target(pkl_path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(particles, fh, protocol=4)  # cryoDRGN's --ind format: a pickled int64 array
        if cs_path:
            with atomic_target(cs_path) as tmp:
                write_cs_subset(meta.source, particles, tmp)
    log.info("wrote %d of %d particles to %s and their 0-based indices in %s to %s", len(particles), len(z), out, meta.source.name, ind_path)
