"""Does the prior's log-likelihood flag junk particles? Printed as JSON.

End to end through the command line, as a user would run it: simulate a
heterogeneous data set in which --junk-fraction of the particles are junk
(half pure-noise images, half projections of a foreign molecule), train the
VAE and the diffusion prior on *all* particles (junk included: a picker does
not say which are junk), score every particle with ``cryodiff score-particles``
and report the ROC AUC of ``-log p`` for junk against good particles, overall
and per junk kind. Baselines on the same latents:

* ``vae_gaussian``: ``|z|^2``, i.e. ``-log`` of the VAE's own N(0, I) prior;
* ``knn_distance``: mean distance to the 10 nearest other particle latents.

    python benchmarks/junk.py --n 3000 --box 32 --snr 0.5 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from recon.simulate import GOOD, JUNK_FOREIGN, JUNK_NOISE
from recon.synthetic import read_truth


def cryodiff(*argv: str, threads: int) -> None:
    """Run one cryodiff command on ``threads`` CPU threads, its progress on stderr; stop on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-m", "cryodiff.cli.main", *argv], check=True, stdout=sys.stderr, env=env)


def aucs(outlier_score: np.ndarray, junk: np.ndarray) -> dict:
    """ROC AUC of ``outlier_score`` (high = junk) for all junk and each kind against good particles."""
    good = junk == GOOD
    out = {"all": roc_auc_score(~good, outlier_score)}
    for name, code in (("noise", JUNK_NOISE), ("foreign", JUNK_FOREIGN)):
        keep = good | (junk == code)
        if (junk == code).any():
            out[name] = roc_auc_score(junk[keep] == code, outlier_score[keep])
    return {k: round(float(v), 4) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--snr", type=float, default=0.5)
    parser.add_argument("--junk-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--prior-steps", type=int, help="default: the prior's own default for N and zdim")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per command")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.time()
        cryodiff("simulate", str(work / "data"), "--n", str(args.n), "--box", str(args.box),
                 "--apix", str(3.0 * 64 / args.box), "--snr", str(args.snr), "--seed", str(args.seed),
                 "--junk-fraction", str(args.junk_fraction), "--junk", "mixed", threads=args.threads)
        cryodiff("train-vae", str(work / "data" / "particles.star"), "-o", str(work / "vae"), "--zdim", str(args.zdim),
                 "-n", str(args.epochs), "-b", "32", "--enc-dim", "256", "--dec-dim", "256", "--seed", str(args.seed),
                 threads=args.threads)
        steps = ["--steps", str(args.prior_steps)] if args.prior_steps else []
        cryodiff("train-prior", str(work / "vae"), "-o", str(work / "prior"), "--seed", str(args.seed), *steps,
                 threads=args.threads)
        cryodiff("score-particles", str(work / "prior"), "--run", str(work / "vae"), "-o", str(work / "scores.h5"),
                 threads=args.threads)
        seconds = time.time() - start

        junk = read_truth(work / "data" / "truth.h5")["junk"]
        with h5py.File(work / "scores.h5", "r") as h5:
            log_prob, indices = h5["log_prob"][()], h5["indices"][()]
        with h5py.File(work / "vae" / "latents.h5", "r") as h5:
            z = h5["z_mu"][()]
        junk = junk[indices]
        dist, _ = NearestNeighbors(n_neighbors=11).fit(z).kneighbors(z)
        result = {
            "settings": vars(args),
            "n_junk": {"noise": int((junk == JUNK_NOISE).sum()), "foreign": int((junk == JUNK_FOREIGN).sum())},
            "roc_auc": {
                "prior_log_likelihood": aucs(-log_prob, junk),
                "vae_gaussian": aucs((z ** 2).sum(1), junk),
                "knn_distance": aucs(dist[:, 1:].mean(1), junk),
            },
            "mean_log_prob": {name: float(log_prob[junk == code].mean())
                              for name, code in (("good", GOOD), ("noise", JUNK_NOISE), ("foreign", JUNK_FOREIGN))},
            "pipeline_seconds": round(seconds, 1),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
