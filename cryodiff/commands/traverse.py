"""Volumes along a path in the latent space of a trained VAE.

  --pc K        -n latents along principal component K, evenly spaced from its
                5th to its 95th percentile (--percentile-spacing: at evenly
                spaced percentiles, so each step covers as many particles)
  --graph I J   the shortest path from particle I to particle J through the
                graph joining each particle to its -k nearest neighbours: it
                steps only between nearby particles, so it stays where the
                data are (one volume per particle on the path)
  --direct I J  -n latents on the straight line from particle I to particle J

Particles are rows of RUN/latents.h5, 0-based, as in analyze's
kmeans/centers_ind.txt. Writes to DIR (default RUN/traverse/pcK,
graph_I_J or direct_I_J): z.txt (one latent per row, the same order as the
volumes), path_ind.txt (graph: the particles on the path) and vol_000.mrc,
vol_001.mrc, ... (unless --skip-vol).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import count, nonnegative_int, positive_int
from cryodiff.commands._common import add_force_arg
from cryodiff.commands._volumes import add_prior_arg, add_volume_args, check_box, support_prior, write_volumes
from cryodiff.output_folder import output_folder
from cryodiff.outputs import prepare_series, save_array
from recon.errors import InputError

HELP = "volumes along a principal component, a nearest-neighbour graph path or a straight line"
log = logging.getLogger("cryodiff.traverse")


def add_args(parser):
    parser.add_argument("run", help="run directory written by cryodiff train-vae (or import-cryodrgn)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--pc", type=positive_int, metavar="K", help="traverse principal component K (1-based)")
    group.add_argument("--graph", type=nonnegative_int, nargs=2, metavar=("I", "J"), help="shortest nearest-neighbour graph path between particles I and J")
    group.add_argument("--direct", type=nonnegative_int, nargs=2, metavar=("I", "J"), help="straight line between particles I and J")
    parser.add_argument("-n", type=count(10**5, "points on a path"), default=10, help="points for --pc and --direct; a --graph path has one per particle on it (default: %(default)s)")
    parser.add_argument("-k", "--neighbors", type=positive_int, default=10, help="neighbours per particle in the --graph graph (default: %(default)s)")
    parser.add_argument("--percentile-spacing", action="store_true", help="--pc: space the points by percentile instead of by value")
    parser.add_argument("-o", "--outdir", help="output folder (default: RUN/traverse/<kind>)")
    parser.add_argument("--skip-vol", action="store_true", help="write the latents only")
    add_volume_args(parser)
    add_prior_arg(parser)
    add_force_arg(parser)


def _check_particles(pair: list[int], n: int, option: str) -> None:
    for i in pair:
        if not 0 <= i < n:
            raise InputError(
                option,
                f"particle {i} is outside 0..{n - 1}",
                "particles are 0-based rows of the run's latents, as in analyze's kmeans/centers_ind.txt",
            )


def _path(args, z: np.ndarray) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(folder name, latents [M, zdim], particle rows on the path or None)``."""
    from recon.analysis import direct_path, graph_path, pc_traversal, pca

    if args.pc is not None:
        return f"pc{args.pc}", pc_traversal(pca(z), args.pc, args.n, percentile_spacing=args.percentile_spacing), None
    if args.graph is not None:
        _check_particles(args.graph, len(z), "--graph")
        i, j = args.graph
        rows, length = graph_path(z, i, j, args.neighbors)
        log.info("graph path %d -> %d: %d particles, length %.4g (straight line %.4g)", i, j, len(rows), length, np.linalg.norm(z[j] - z[i]))
        return f"graph_{i}_{j}", z[rows], rows
    _check_particles(args.direct, len(z), "--direct")
    i, j = args.direct
    return f"direct_{i}_{j}", direct_path(z[i], z[j], args.n), None


def run(args) -> None:
    from recon.run import load_run

    if args.n < 2:
        raise InputError("-n", f"{args.n} points do not make a path", "use -n 2 or more")
    run_ = load_run(args.run)
    z = run_.latents()
    check_box(args.box, run_)
    name, path, rows = _path(args, z)
    out = Path(args.outdir) if args.outdir else run_.path / "traverse" / name
    inputs = [run_.path / n for n in ("config.json", "checkpoint.pt", "latents.h5")]
    with output_folder(out, "traverse", kind="traverse", inputs=inputs, force=args.force) as folder:
        prepare_series(folder, path)
        if rows is not None:
            save_array(folder.file("path_ind.txt"), rows, fmt="%d")
        else:
            folder.remove(folder.owned("path_ind.txt"))  # an earlier graph path's particles do not belong to this path
        if not args.skip_vol:
            write_volumes(run_, [(folder, path)], args, prior=support_prior(args, run_))
    log.info("wrote %d latents%s to %s", len(path), "" if args.skip_vol else " and volumes", out)
