"""``cryodiff states`` against the truth of simulated particles, as JSON.

For each seed: simulate particles of the demo's molecule (``recon.synthetic``: by default
10,000 particles, box 32, 3 Å/px, SNR 0.1), whose hinge state follows the tri-modal
``recon.simulate.STATE_MODES`` (weights 0.45, 0.15, 0.40) and whose subunit is bound in 40 %
of them: six true modes (state mode x subunit), with populations 0.27, 0.18, 0.09, 0.06,
0.24, 0.16 in expectation. Then ``cryodiff train-vae`` (256 x 3 networks, zdim 8, 20
epochs), ``cryodiff train-prior`` (defaults) and ``cryodiff states`` (defaults), each as
a subprocess, ``states`` with ``--maps`` (each state's particles reconstructed, its decoded
volume checked against them) and ``--populations`` (default ``images``: each state's
maximum-likelihood share of the images; ``basins`` writes into ``states/``, the others into
``states_<choice>/``).

Each found state is matched to the true mode most of its particles come from. Reported
per seed: the number of states; for each true mode, the matched state's population, the
truth (the mode's fraction in that sample), the 90 % interval and whether it covers the
truth, the frequency (cycles/pixel) where the FSC between the state's reconstruction and the
true volume of the mode falls below 0.5 (``None``: not before Nyquist; the target is beyond
half of Nyquist, 0.25), the same for the decoded volume, and whether ``states`` found the
decoded volume supported by the state's particles and by the particle latents
(``support.csv``); the fraction of particles whose state's true mode is their own.

    python benchmarks/states.py [--seeds 0 1 2 3 4] [--n 10000] [--workdir DIR]
        [--train-vae-args '-b 64 --lr 4e-4'] [--populations {basins,mixture,images}]

With ``--workdir`` each seed's data and runs are kept and a finished step is not redone.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from recon.fsc import crossing, fsc
from recon.io import read_volume
from recon.simulate import STATE_MODES, make_molecule, render_volume
from recon.synthetic import read_truth, write_synthetic_dataset


def cryodiff(*args, threads: int) -> float:
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cryodiff.cli.main", *map(str, args)], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"cryodiff {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    return round(time.perf_counter() - tic, 1)


def true_modes(truth: dict) -> np.ndarray:
    """Each particle's true mode: 2 x (nearest STATE_MODES mean) + subunit bound."""
    means = np.array([m for m, _, _ in STATE_MODES])
    nearest = np.abs(truth["state"][:, None] - means[None]).argmin(1)
    return 2 * nearest + truth["subunit"].astype(int)


def map_checks(folder: Path, state: int, mode: int, box: int) -> dict:
    """FSC 0.5 crossings (cycles/pixel) of the state's reconstruction and decoded volume against the
    true volume of ``mode``, and the two support verdicts."""
    true = render_volume(make_molecule(), float(STATE_MODES[mode // 2][0]), bool(mode % 2), box)
    out = {}
    for key, name in (("map_fsc05", f"state_{state:03d}_map.mrc"), ("decoded_fsc05", f"vol_{state:03d}.mrc")):
        freqs, curve = fsc(read_volume(folder / name)[0], true)
        reached = crossing(freqs, curve, 0.5)
        out[key] = None if reached is None else round(float(reached), 4)
    out["map_beyond_half_nyquist"] = out["map_fsc05"] is None or out["map_fsc05"] > 0.25
    with open(folder / "support.csv") as f:
        support = list(csv.DictReader(f))
    out["decoded_supported_by_latents"] = support[state]["supported"] == "yes"
    return out


def evaluate(folder: Path, truth: dict, box: int) -> dict:
    record = json.loads((folder / "states.json").read_text())
    with h5py.File(folder / "assignments.h5") as h5:
        indices, labels = h5["indices"][()], h5["state"][()]
    mode = true_modes(truth)[indices]
    count = len(record["states"])
    matched = [int(np.bincount(mode[labels == k], minlength=6).argmax()) if np.any(labels == k) else -1 for k in range(count)]
    rows = []
    for m in range(6):
        truth_fraction = float(np.mean(mode == m))
        states = [k for k in range(count) if matched[k] == m]
        if len(states) != 1:
            rows.append({"true_mode": m, "truth": round(truth_fraction, 4), "states": states})
            continue
        s = record["states"][states[0]]
        rows.append({"true_mode": m, "state": states[0], "truth": round(truth_fraction, 4),
                     "population": round(s["population"], 4), "interval": [round(s["population_low"], 4), round(s["population_high"], 4)],
                     "error": round(s["population"] - truth_fraction, 4),
                     "basin_population": round(s["basin_population"], 4) if "basin_population" in s else None,
                     "covered": bool(s["population_low"] <= truth_fraction <= s["population_high"]),
                     "half_map_resolution_A": s.get("half_map_resolution_A"),
                     "decoded_supported_by_its_particles": s.get("decoded_supported"),
                     **map_checks(folder, states[0], m, box)})
    assigned = labels >= 0
    agreement = float(np.mean([matched[k] == m for k, m in zip(labels[assigned], mode[assigned])])) if assigned.any() else 0.0
    return {"states": count, "true_modes": 6, "bandwidth": record["bandwidth"], "unassigned": record["unassigned"],
            "populations_from": record.get("populations_from", "basins"),
            "assigned_to_their_own_mode": round(agreement, 4), "modes": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-vae-args", default="", help="extra train-vae options")
    parser.add_argument("--populations", choices=("basins", "mixture", "images"), default="images",
                        help="states --populations (default: %(default)s)")
    parser.add_argument("--workdir", help="keep (and reuse) data and runs here")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="cryodiff-states-"))
    result = {"benchmark": "states", "settings": {k: v for k, v in vars(args).items() if k != "workdir"}, "seeds": {}}
    for seed in args.seeds:
        folder = root / f"seed{seed}"
        seconds = {}
        if not (folder / "data" / "truth.h5").is_file():
            write_synthetic_dataset(folder / "data", n=args.n, box=args.box, apix=3.0, snr=args.snr, seed=seed)
        if not (folder / "vae" / "latents.h5").is_file():
            seconds["train_vae"] = cryodiff("train-vae", folder / "data" / "particles.star", "-o", folder / "vae", "--zdim", 8,
                                            "--enc-dim", 256, "--dec-dim", 256, "-n", args.epochs, "--seed", seed,
                                            "--threads", args.threads, *shlex.split(args.train_vae_args), threads=args.threads)
        if not (folder / "prior" / "prior.pt").is_file():
            seconds["train_prior"] = cryodiff("train-prior", folder / "vae", "-o", folder / "prior", "--seed", seed,
                                              "--threads", args.threads, threads=args.threads)
        states = folder / ("states" if args.populations == "basins" else f"states_{args.populations}")
        if not (states / "states.json").is_file():
            seconds["states"] = cryodiff("states", folder / "prior", "--run", folder / "vae", "-o", states, "--seed", seed,
                                         "--maps", "--populations", args.populations, threads=args.threads)
        result["seeds"][seed] = {**evaluate(states, read_truth(folder / "data" / "truth.h5"), args.box), "seconds": seconds}
        print(json.dumps({seed: result["seeds"][seed]}), file=sys.stderr, flush=True)
    found = [r["states"] == 6 for r in result["seeds"].values()]
    modes = [m for r in result["seeds"].values() for m in r["modes"] if "covered" in m]
    result["summary"] = {
        "seeds_with_six_states": f"{sum(found)}/{len(found)}",
        "max_population_error": max((abs(m["error"]) for m in modes), default=None),
        "max_basin_count_error": max((abs(m["basin_population"] - m["truth"]) for m in modes
                                      if m.get("basin_population") is not None), default=None),
        "coverage_of_90pct_intervals": round(float(np.mean([m["covered"] for m in modes])), 3) if modes else None,
        "maps_beyond_half_nyquist": f"{sum(m['map_beyond_half_nyquist'] for m in modes)}/{len(modes)}",
        "decoded_supported_by_particles": f"{sum(bool(m['decoded_supported_by_its_particles']) for m in modes)}/{len(modes)}",
        "decoded_supported_by_latents": f"{sum(m['decoded_supported_by_latents'] for m in modes)}/{len(modes)}",
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
