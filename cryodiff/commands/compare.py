"""Compare conditions in one landscape: each state's occupancy per condition, and the differences.

STATES is a folder written by cryodiff states on the particles of all the
conditions together (one VAE, one prior, one set of states). Each particle's
condition comes from

    --condition COLUMN   a column of the particle file the run was trained on, e.g.
                         rlnGroupName or rlnOpticsGroup (cryodiff simulate --conditions
                         writes rlnGroupName); --particles FILE if the file moved
    --labels FILE        a text file with one label per line, in the order of the latents

The reference condition is --reference (default: the first label in sorted order).
Intervals: bootstrap resampling each condition's particles separately; the difference
intervals of a condition hold for all states together (simultaneous, max-t) unless
--per-state (docs/compare.md).

OUT (a folder) receives

    compare.json   settings, the conditions and their particle counts, and per condition
                   and state: occupancy and its difference from the reference, with intervals;
                   with a prior conditioned on these conditions (train-prior --condition, the
                   prior the states were found with), log_ratio_nats: the mean over up to 200
                   of the state's particles of log p(z | condition) - log p(z | reference)
    compare.csv    the same, one row per condition and state
    compare.png    occupancy per state and condition; the differences from the reference;
                   the latents' density difference (condition minus reference) on the first
                   two principal components, modes marked
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import positive_int, probability, seed
from cryodiff.commands._common import add_force_arg, progress_bar
from cryodiff.output_folder import output_folder
from recon.errors import InputError
from recon.files import atomic_target

HELP = "occupancy of each state per condition (apo vs bound, time points), with bootstrap intervals"
log = logging.getLogger("cryodiff.compare")


def add_args(parser):
    parser.add_argument("states", help="folder written by cryodiff states (on all the conditions' particles)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--condition", metavar="COLUMN", help="column of the run's particle file holding each particle's condition")
    source.add_argument("--labels", help="text file: one condition label per line, in the order of the latents")
    parser.add_argument("--particles", help="with --condition: the particle file, if it moved since training")
    parser.add_argument("--reference", help="the condition the others are compared with (default: the first label, sorted)")
    parser.add_argument("-o", "--outdir", required=True, help="output folder (created)")
    parser.add_argument("--bootstrap", type=positive_int, default=1000, help="resamplings for the intervals (default: %(default)s)")
    parser.add_argument("--confidence", type=probability, default=0.9, help="level of the intervals (default: %(default)s)")
    parser.add_argument("--per-state", action="store_true",
                        help="difference intervals per state instead of simultaneous over all states (the default: "
                        "all of a condition's intervals hold together at --confidence)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed of the bootstrap (default: %(default)s)")
    add_force_arg(parser)


def read_states(folder: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(states.json record, indices [N], state [N])`` of a states folder."""
    from recon.io.safe_read import open_h5, read_h5_array

    path = folder / "states.json"
    if not path.is_file():
        raise InputError(folder, "not a states folder (states.json missing)", "give the folder written by cryodiff states")
    record = json.loads(path.read_text())
    if record.get("format") != "cryodiff-states":
        raise InputError(path, "is not a cryodiff states record", "give the folder written by cryodiff states")
    with open_h5(folder / "assignments.h5", "the state assignments") as h5:
        indices = np.asarray(read_h5_array(h5, "indices", folder / "assignments.h5", "the state assignments"), np.int64)
        state = np.asarray(read_h5_array(h5, "state", folder / "assignments.h5", "the state assignments"), np.int64)
    return record, indices, state


def run(args) -> None:
    from cryodiff.compare import compare_conditions
    from cryodiff.conditions import condition_indices, condition_labels
    from cryodiff.plots import plot_comparison
    from cryodiff.prior import read_latents

    folder = Path(args.states)
    record, indices, state = read_states(folder)
    values = condition_labels(column=args.condition, labels_file=args.labels, particles_file=args.particles,
                              latents_source=record["latents"], indices=indices)
    names, condition = condition_indices(values, args.reference, "--condition" if args.condition else "--labels")
    reference = names[0]
    count = len(record["states"])
    inputs = [folder / "states.json", folder / "assignments.h5"] + ([Path(args.labels)] if args.labels else [])
    with output_folder(args.outdir, "compare", kind="compare", inputs=inputs, force=args.force) as out:
        for name in ("compare.json", "compare.csv", "compare.png"):
            out.file(name)  # refused here, before any work, if another command's output holds the name
        z = read_latents(Path(record["latents"]))
        if len(z) != len(state):
            raise InputError(record["latents"], f"holds {len(z)} latents but the states assigned {len(state)}",
                             "rerun cryodiff states on these latents")
        mixture = _states_mixture(folder, record, z, state, count)
        with progress_bar(args.bootstrap, "bootstrap", unit="draw") as bar:
            comparison = compare_conditions(state, condition, count, names, mixture=mixture, draws=args.bootstrap,
                                            confidence=args.confidence, simultaneous=not args.per_state,
                                            seed=args.seed, progress=bar.update)
        rows = comparison.rows()
        _add_log_ratios(rows, record, state, count, names)
        result = {"format": "cryodiff-compare", "version": 1, "states": str(folder), "condition": args.condition,
                  "labels": args.labels, "reference": reference, "bootstrap": args.bootstrap, "confidence": args.confidence,
                  "difference_intervals": "per state" if args.per_state else "simultaneous over the states",
                  "seed": args.seed, "conditions": dict(zip(names, comparison.counts.tolist())), "rows": rows}
        with atomic_target(out.file("compare.json")) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        with atomic_target(out.file("compare.csv")) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows)
        modes = np.array([s["mode"] for s in record["states"]])
        plot_comparison(comparison, z, condition, modes, out.file("compare.png"))
    for row in rows:
        if row["condition"] != reference:
            ratio = f", log-density ratio {row['log_ratio_nats']:+.2f} nats" if "log_ratio_nats" in row else ""
            log.info("state %d: %s %.3f vs %s %.3f, difference %+.3f [%+.3f, %+.3f]%s%s", row["state"], row["condition"],
                     row["occupancy"], reference, comparison.occupancy[0, row["state"]], row["difference"],
                     row["difference_low"], row["difference_high"], "  (interval excludes 0)" if row["excludes_zero"] else "",
                     ratio)
    log.info("%d conditions, %d states; table in %s", len(names), count, Path(args.outdir) / "compare.csv")


def _states_mixture(folder: Path, record: dict, z: np.ndarray, state: np.ndarray, count: int):
    """The states' mixture when their populations came from one: the image likelihoods' (from the
    particles' probabilities in assignments.h5) or the Gaussian one, refitted as ``cryodiff states``
    fitted it; else ``None`` (basin counts)."""
    from cryodiff.prior import standardisation
    from cryodiff.states import fit_mixture

    if record.get("populations_from") == "images":
        import h5py

        from cryodiff.state_likelihood import mixture_from_probabilities

        with h5py.File(folder / "assignments.h5", "r") as h5:
            if "probability" not in h5 or h5["probability"].shape != (len(state), count):
                raise InputError(folder / "assignments.h5", "has no per-particle state probabilities for its image populations",
                                 "rerun cryodiff states")
            shares = h5["probability"][()]
        return mixture_from_probabilities(shares[state >= 0])
    if record.get("populations_from") != "mixture":
        return None
    mean, std = standardisation(z)  # the prior's standardisation of these latents
    return fit_mixture((z - mean) / std, state, count, seed=record.get("seed", 0))


def _add_log_ratios(rows: list[dict], record: dict, state, count: int, names: list[str]) -> None:
    """``log_ratio_nats`` in ``rows`` when the states' prior is conditioned on exactly these conditions."""
    from cryodiff.compare import log_ratios
    from cryodiff.prior import load_prior, read_latents

    if not Path(record["prior"]).is_dir():
        log.info("no log-density ratios: the states' prior %s is not found", record["prior"])
        return
    prior = load_prior(record["prior"])
    if sorted(prior.conditions) != sorted(names):
        log.info("no log-density ratios: the prior %s is %s", record["prior"],
                 f"conditioned on {', '.join(prior.conditions)}" if prior.conditions else "unconditional (train-prior --condition)")
        return
    z = read_latents(Path(record["latents"]))
    with progress_bar(len(names) * int(sum(min(200, np.sum(state == k)) for k in range(count))), "log-densities",
                      unit="latent") as bar:
        ratios = log_ratios(prior, z, state, count, names, progress=bar.update)
    for row in rows:
        row["log_ratio_nats"] = float(ratios[names.index(row["condition"]), row["state"]])
