"""Interpolate between two particles through a diffusion prior, against the straight line and kNN-graph paths.

The latents of rows --from and --to of RUN (its latents.h5, in particle
order) are encoded to noise with the prior's probability-flow ODE, joined by
a spherical interpolation there (-n points, ends included) and decoded back,
so the path stays where the particles are. DIR receives

    z_prior.txt    the PF-ODE path, one latent per row (original units)
    z_linear.txt   the straight line between the two latents (-n points)
    z_graph.txt    the shortest path through the -k nearest-neighbour graph
                   of the particles (its particles; absent if the two are not
                   connected in that graph)
    metrics.json   per path: mean and largest distance of its points to
                   their -k nearest particle latents (standardised units),
                   length (standardised units), mean and least prior
                   log-density (nats; PF-ODE likelihood with --steps)

--volumes also writes the volumes of the PF-ODE path, DIR/vol_000.mrc ...,
through the VAE of RUN (-D, --flip and --invert as in analyze).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cryodiff.cli.types import count, nonnegative_int, positive_int
from cryodiff.commands._common import add_force_arg, progress_bar
from cryodiff.commands._volumes import add_volume_args, check_box, write_volumes
from cryodiff.output_folder import output_folder
from cryodiff.outputs import prepare_series, save_array
from recon.errors import InputError
from recon.files import atomic_target

HELP = "path between two particles through the diffusion prior's noise, compared with straight-line and graph paths"
log = logging.getLogger("cryodiff.interpolate")


def add_args(parser):
    parser.add_argument("prior", help="prior directory written by cryodiff train-prior")
    parser.add_argument("--run", required=True, help="VAE run whose latents the prior was trained on")
    parser.add_argument("--from", dest="start", type=nonnegative_int, required=True, help="row of the first particle in the run's latents")
    parser.add_argument("--to", dest="end", type=nonnegative_int, required=True, help="row of the last particle in the run's latents")
    parser.add_argument("-n", type=count(10**5, "points on a path"), default=10, help="points on the PF-ODE and straight paths (default: %(default)s)")
    parser.add_argument("-o", "--outdir", required=True, help="output directory")
    parser.add_argument("-k", type=positive_int, default=10, help="neighbours for the graph path and the distance to the data (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=64, help="Heun steps of each ODE solve (the path and the log-densities; default: %(default)s)")
    parser.add_argument("--volumes", action="store_true", help="also write the volumes of the PF-ODE path")
    add_volume_args(parser)
    add_force_arg(parser)


def _check_rows(args, n: int) -> None:
    for option, row in (("--from", args.start), ("--to", args.end)):
        if not 0 <= row < n:
            raise InputError(option, f"row {row} is not in the run's latents (rows 0 to {n - 1})", f"choose a row from 0 to {n - 1}")
    if args.start == args.end:
        raise InputError("--to", f"the path from row {args.start} to itself is a single point", "choose two different rows")


def _paths(prior, z, args) -> tuple[dict, list | None]:
    """The three paths ``{name: [M, zdim]}`` (the graph path left out if the rows are not connected) and the graph's rows."""
    from cryodiff.paths import graph_path_latents, linear_path

    paths = {"prior": prior.interpolate(z[args.start], z[args.end], args.n, steps=args.steps),
             "linear": linear_path(z[args.start], z[args.end], args.n)}
    try:
        rows, paths["graph"] = graph_path_latents(z, args.start, args.end, args.k)
    except InputError as err:
        log.warning("no graph path: %s", err)
        return paths, None
    return paths, rows.tolist()


def run(args) -> None:
    from cryodiff.prior import load_prior
    from recon.run import load_run

    if args.n < 2:
        raise InputError("-n", f"{args.n} points do not make a path", "use -n 2 or more")
    prior = load_prior(args.prior)
    run_ = load_run(args.run)
    z = run_.latents()
    if run_.zdim != prior.zdim:
        raise InputError(args.run, f"the VAE has zdim {run_.zdim} but the prior's latents have zdim {prior.zdim}", "give the run whose latents the prior was trained on")
    _check_rows(args, len(z))
    check_box(args.box, run_)
    inputs = [Path(args.prior) / "prior.json", Path(args.prior) / "prior.pt"] + [run_.path / n for n in ("checkpoint.pt", "latents.h5")]
    with output_folder(args.outdir, "interpolate", kind="interpolate", inputs=inputs, force=args.force) as folder:
        _interpolate(args, prior, run_, z, folder)


def _interpolate(args, prior, run_, z, folder) -> None:
    from cryodiff.paths import path_metrics

    with progress_bar(4, "paths and their scores", unit="step") as bar:
        paths, rows = _paths(prior, z, args)
        bar.total = 1 + len(paths)  # no graph path when the kNN graph does not connect the two
        bar.update()
        metrics = {}
        for name, path in paths.items():
            metrics[name] = path_metrics(path, z, prior, args.k, args.steps)
            bar.update()
    record = {"from": args.start, "to": args.end, "k": args.k, "steps": args.steps, "graph_rows": rows, "paths": metrics}
    if args.volumes:
        prepare_series(folder, paths["prior"], zfile="z_prior.txt")
    for name, path in paths.items():
        save_array(folder.file(f"z_{name}.txt"), path)
    if "graph" not in paths:
        folder.remove(folder.owned("z_graph.txt"))  # an earlier run's graph path would not belong to this one
    with atomic_target(folder.file("metrics.json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    for name, m in metrics.items():
        log.info("%-6s %3d points: mean distance to the data %.3f (max %.3f), mean log-density %.2f",
                 name, m["points"], m["knn_distance_mean"], m["knn_distance_max"], m["log_prob_mean"])
    if args.volumes:
        write_volumes(run_, [(folder, paths["prior"])], args, prior=prior)
