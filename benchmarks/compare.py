"""``cryodiff compare`` against the truth of simulated conditions, as JSON.

One data set of three conditions (``cryodiff simulate --conditions``; by default 15,000
particles, box 32, 3 Å/px, SNR 0.1, subunit bound in 40 %):

* ``apo``: hinge-mode weights 0.45, 0.15, 0.40 (the demo's);
* ``bound``: 0.45, 0.40, 0.15: the state (hinge mode 2, no subunit) gains 0.15 and (mode 3,
  no subunit) loses 0.15; with the subunit they change by +-0.10;
* ``apo2``: the same distribution as ``apo`` (a comparison that must find nothing).

Then ``cryodiff train-vae`` (256 x 3, zdim 8, 20 epochs), ``train-prior --condition
rlnGroupName`` (a conditional prior), ``states`` and
``compare --condition rlnGroupName`` (reference ``apo``), each as a subprocess. Each found
state is matched to the true mode most of its particles come from (as in
``benchmarks/states.py``). Reported per state and condition: the reported difference, the
true difference (expected occupancies from the weights), its error, the difference this
sample actually drew (its true modes' fractions per condition) and whether the 90 % interval
covers each, whether it excludes 0, the prior's log-density ratio against the log of the true
occupancy ratio; and, summed up, the largest error, whether the two +-0.15 changes were
found, how many ``apo2`` intervals cover 0, and the chi-square p-value of the modes drawn
for ``apo`` and ``apo2`` (a small one: this sample's two "same" conditions really differ).

    python benchmarks/compare.py [--n 15000] [--seed 0] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from scipy.stats import chi2_contingency

sys.path.insert(0, str(Path(__file__).parent))
from states import cryodiff, true_modes  # noqa: E402

from recon.synthetic import read_truth  # noqa: E402

CONDITIONS = {"apo": (0.45, 0.15, 0.40), "bound": (0.45, 0.40, 0.15), "apo2": (0.45, 0.15, 0.40)}
SUBUNIT = 0.4


def expected_occupancy(weights) -> np.ndarray:
    """Occupancy [6] of the true modes (2 x hinge mode + subunit) from hinge weights and SUBUNIT."""
    w = np.asarray(weights) / np.sum(weights)
    return np.stack([w * (1 - SUBUNIT), w * SUBUNIT], 1).reshape(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=15000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", help="keep (and reuse) data and runs here")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="cryodiff-compare-"))
    seconds = {}
    specs = [f"{name}:{','.join(map(str, w))}:{SUBUNIT}" for name, w in CONDITIONS.items()]
    if not (root / "data" / "truth.h5").is_file():
        seconds["simulate"] = cryodiff("simulate", root / "data", "-n", args.n, "-D", 32, "--seed", args.seed,
                                       "--conditions", *specs, threads=args.threads)
    if not (root / "vae" / "latents.h5").is_file():
        seconds["train_vae"] = cryodiff("train-vae", root / "data" / "particles.star", "-o", root / "vae", "--zdim", 8,
                                        "--enc-dim", 256, "--dec-dim", 256, "-n", args.epochs, "--seed", args.seed,
                                        "--threads", args.threads, threads=args.threads)
    if not (root / "prior" / "prior.pt").is_file():
        seconds["train_prior"] = cryodiff("train-prior", root / "vae", "-o", root / "prior", "--seed", args.seed,
                                          "--condition", "rlnGroupName", "--threads", args.threads, threads=args.threads)
    if not (root / "states" / "states.json").is_file():
        seconds["states"] = cryodiff("states", root / "prior", "--run", root / "vae", "-o", root / "states",
                                     "--seed", args.seed, threads=args.threads)
    if not (root / "compare" / "compare.json").is_file():
        seconds["compare"] = cryodiff("compare", root / "states", "--condition", "rlnGroupName", "--reference", "apo",
                                      "-o", root / "compare", threads=args.threads)
    truth = read_truth(root / "data" / "truth.h5")
    with h5py.File(root / "states" / "assignments.h5") as h5:
        indices, labels = h5["indices"][()], h5["state"][()]
    mode = true_modes(truth)[indices]
    count = len(json.loads((root / "states" / "states.json").read_text())["states"])
    matched = [int(np.bincount(mode[labels == k], minlength=6).argmax()) if np.any(labels == k) else -1 for k in range(count)]
    reference = expected_occupancy(CONDITIONS["apo"])
    # the fractions this sample actually drew (the expected ones differ by the sampling of the simulation)
    names = [c["name"] for c in truth["conditions"]]
    drawn = {name: np.bincount(true_modes(truth)[np.asarray(truth["condition"]) == c], minlength=6)
             for c, name in enumerate(names)}
    sample = {name: counts / counts.sum() for name, counts in drawn.items()}
    with open(root / "compare" / "compare.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["condition"] != "apo"]
    report = []
    for r in rows:
        m = matched[int(r["state"])]
        expected = expected_occupancy(CONDITIONS[r["condition"]])[m]
        true_difference = float(expected - reference[m])
        low, high = float(r["difference_low"]), float(r["difference_high"])
        sample_difference = float(sample[r["condition"]][m] - sample["apo"][m])
        report.append({"condition": r["condition"], "state": int(r["state"]), "true_mode": m,
                       "difference": round(float(r["difference"]), 4), "truth": round(true_difference, 4),
                       "sample_difference": round(sample_difference, 4),
                       "covers_sample_difference": low <= sample_difference <= high,
                       "error": round(float(r["difference"]) - true_difference, 4), "interval": [round(low, 4), round(high, 4)],
                       "excludes_zero": r["excludes_zero"] == "True", "covers_truth": low <= true_difference <= high,
                       "log_ratio_nats": round(float(r["log_ratio_nats"]), 3) if r.get("log_ratio_nats") else None,
                       "true_log_ratio": round(float(np.log(expected / reference[m])), 3)})
    big = [r for r in report if r["condition"] == "bound" and abs(r["truth"]) >= 0.149]
    same = [r for r in report if r["condition"] == "apo2"]
    result = {"benchmark": "compare", "settings": vars(args) | {"conditions": CONDITIONS, "subunit": SUBUNIT},
              "states": count, "true_modes": 6, "matched_modes": matched, "rows": report, "seconds": seconds,
              "summary": {"max_error": max(abs(r["error"]) for r in report),
                          "changes_of_015_found": f"{sum(r['excludes_zero'] and abs(r['error']) <= 0.05 for r in big)}/{len(big)}",
                          "same_distribution_intervals_covering_0": f"{sum(not r['excludes_zero'] for r in same)}/{len(same)}",
                          "intervals_covering_the_truth": f"{sum(r['covers_truth'] for r in report)}/{len(report)}",
                          "intervals_covering_the_sample_difference":
                              f"{sum(r['covers_sample_difference'] for r in report)}/{len(report)}",
                          "apo_vs_apo2_drawn_modes_chi2_p": float(chi2_contingency(np.stack([drawn["apo"], drawn["apo2"]]))[1])}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
