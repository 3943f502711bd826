"""Write chosen particles of a trained run back as a RELION .star file.

Choose particles by k-means cluster of a previous cryodiff analyze
(--clusters 3 5; numbers as in its plots and kmeans/labels.npy) or by an
index file (--ind-file: 0-based rows of the run's latents, e.g. a traverse
path_ind.txt or a selection made in a notebook); --invert-selection keeps
all the other particles.

Writes OUT.star (RELION 3.1: each particle's original image name, poses and
CTF, read from the particle file the run was trained on) and beside it
OUT.ind.txt: the particles' 0-based positions in that particle file, one per
line, in file order. The same numbering is a cryoSPARC .cs file's row order
(use it to subset the .cs the run was trained on) and what cryodiff
train-vae --ind and cryoDRGN's --ind (after converting to .pkl) expect.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from cryodiff.commands._common import output_file
from cryodiff.commands.analyze import ANALYSIS, fingerprint, latents_of, save_array
from recon.errors import InputError

HELP = "write particles of chosen k-means clusters (or an index list) as a RELION .star and an index list"
log = logging.getLogger("cryodiff.select")


def add_args(parser):
    parser.add_argument("run", help="run directory written by cryodiff train-vae (or import-cryodrgn)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--clusters", type=int, nargs="+", metavar="C", help="k-means clusters to keep (from cryodiff analyze)")
    group.add_argument("--ind-file", help="particles to keep: 0-based rows of the run's latents (.txt, .npy or cryoDRGN .pkl)")
    parser.add_argument("--invert-selection", action="store_true", help="keep every particle except the chosen ones")
    parser.add_argument("--analysis", help="folder written by cryodiff analyze (default: RUN/analyze)")
    parser.add_argument("--particles", help="the run's particle file if it moved since training (.star or .cs)")
    parser.add_argument("-o", "--output", required=True, help="output .star file; the index list goes beside it as .ind.txt")


def cluster_rows(folder: Path, z: np.ndarray, clusters: list[int]) -> np.ndarray:
    """Rows of ``z`` whose k-means label in the analysis ``folder`` is in ``clusters``."""
    record_path, labels_path = folder / ANALYSIS, folder / "kmeans" / "labels.npy"
    if not (record_path.is_file() and labels_path.is_file()):
        raise InputError(folder, "no k-means analysis here", "run cryodiff analyze on the run first (or pass --analysis DIR)")
    record = json.loads(record_path.read_text())
    if record.get("latents_sha256") != fingerprint(z):
        raise InputError(folder, "this analysis was made from other latents than the run's current ones", "rerun cryodiff analyze on the run")
    labels = np.load(labels_path, allow_pickle=False)
    k = int(record["ksample"])
    bad = [c for c in clusters if not 0 <= c < k]
    if bad:
        raise InputError(
            "--clusters", f"cluster {bad[0]} does not exist (the analysis has clusters 0..{k - 1})", "use cluster numbers from the analysis plots"
        )
    return np.flatnonzero(np.isin(labels, clusters))


def _rows(args, run_, z: np.ndarray) -> np.ndarray:
    from recon.io.indices import read_indices

    if args.clusters is not None:
        rows = cluster_rows(Path(args.analysis) if args.analysis else run_.path / "analyze", z, args.clusters)
    else:
        if not Path(args.ind_file).is_file():
            raise InputError(args.ind_file, "index file not found", "check the path given to --ind-file")
        rows = np.unique(read_indices(args.ind_file, len(z)))
    if args.invert_selection:
        rows = np.setdiff1d(np.arange(len(z)), rows)
    if len(rows) == 0:
        raise InputError("--clusters/--ind-file", "the selection is empty", "choose other clusters or particles")
    return rows


def _metadata(args, run_):
    from recon.io import read_metadata

    data = run_.config["data"]
    path = args.particles or data.get("particles")
    if not path or not Path(path).is_file():
        raise InputError(path or run_.path, "the run's particle file is not found", "pass --particles with its current path")
    return read_metadata(path, datadir=data.get("datadir"), poses=data.get("poses"), ctf=data.get("ctf"))


def run(args) -> None:
    from recon.io import write_star
    from recon.run import load_run

    out = output_file(args.output, (".star",))
    run_ = load_run(args.run)
    z = latents_of(run_)
    rows = _rows(args, run_, z)
    meta = _metadata(args, run_)
    particles = np.sort(np.asarray(run_.indices, dtype=np.int64)[rows])
    if particles[-1] >= len(meta):
        raise InputError(
            meta.source, f"has {len(meta)} particles but the run used particle {particles[-1]}", "give the particle file the run was trained on"
        )
    write_star(out, meta, particles)
    ind_path = out.with_suffix(".ind.txt")
    save_array(ind_path, particles, fmt="%d")
    log.info("wrote %d of %d particles to %s and their 0-based indices in %s to %s", len(particles), len(z), out, meta.source.name, ind_path)
