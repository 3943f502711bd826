"""cryodiff against cryoDRGN 4.3.1 on the same simulated data, printed as JSON.

Simulates particles with known states (``recon.synthetic``), converts poses
and CTF with cryoDRGN's own ``parse_pose_star``/``parse_ctf_star``, then
trains ``cryodrgn train_vae`` and ``cryodiff train-vae`` as subprocesses with
the same architecture (residual MLPs, gaussian positional encoding with
box/2 frequencies of sigma 0.5), latent size, epochs, batch size, learning
rate (1e-4), beta (1/zdim) and CPU threads (OMP_NUM_THREADS and
MKL_NUM_THREADS for both, plus ``--threads`` for cryodiff).

Speed, for each tool:

* ``images_per_s``: particles x epochs / seconds of the training passes.
  cryodiff: ``seconds`` of each ``log.jsonl`` line. cryoDRGN: the
  ``Finished in`` time of each ``# =====> Epoch`` line of its ``run.log``,
  which stops before its per-epoch re-encoding of every image and checkpoint
  (cryodiff's ``seconds`` likewise stop before its checkpoint).
* ``wall_s``: the whole command (start-up, loading, training, cryoDRGN's
  per-epoch re-encoding, cryodiff's final encoding pass, writing).

Accuracy, for each tool, on the final latents (cryoDRGN's ``z.pkl``,
cryodiff's ``latents.h5``):

* per ground-truth state of the grid (state s, subunit u) with at least
  ``--min-near`` particles of subunit u within half a grid step of s: the
  volume decoded at the medoid of those particles' latents (``cryodrgn
  eval_vol`` for cryoDRGN, ``recon.run.load_run(...).volume`` for cryodiff),
  its FSC to the true map, the resolution at FSC 0.5 (Å) and the fraction of
  Nyquist up to which FSC stays >= 0.5;
* 5-fold cross-validated kNN regression R² of the true state from z and kNN
  classification accuracy of the subunit flag (scikit-learn, k = 10).

    python benchmarks/vs_cryodrgn.py [--n 2000] [--box 32] [--epochs 3] [--threads 1]
        [--cryodrgn .venv-cryodrgn/bin/cryodrgn] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import torch
from scipy.spatial.distance import cdist
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from recon.fsc import fsc, resolution
from recon.io import read_volume
from recon.io.cryodrgn_run import load_pickles_safely
from recon.run import load_run
from recon.synthetic import read_truth, write_synthetic_dataset

_EPOCH_LINE = re.compile(r"=====> Epoch: (\d+) .*Finished in (\S+)")


def _timedelta_s(text: str) -> float:
    """Seconds of a ``H:MM:SS[.ffffff]`` string (Python's timedelta format)."""
    hours, minutes, seconds = text.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds)).total_seconds()


def _run(cmd: list, cwd: Path, threads: int) -> float:
    """Run a command with ``threads`` CPU threads; returns its wall time (s)."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return wall


def _architecture_args(args) -> list:
    return ["--zdim", args.zdim, "--enc-dim", args.dim, "--enc-layers", args.layers, "--dec-dim", args.dim,
            "--dec-layers", args.layers, "-b", args.batch_size, "-n", args.epochs, "--seed", args.seed]


def train_cryodrgn(args, data: Path) -> dict:
    """cryoDRGN train_vae; speed from its run.log, latents from z.pkl."""
    wall = _run([args.cryodrgn, "train_vae", "particles.star", "--poses", "pose.pkl", "--ctf", "ctf.pkl", "-o", "cryodrgn",
                 "--no-analysis", *_architecture_args(args)], data, args.threads)
    seconds = [_timedelta_s(m[2]) for m in _EPOCH_LINE.finditer((data / "cryodrgn" / "run.log").read_text())]
    z_mu, _ = load_pickles_safely(data / "cryodrgn" / "z.pkl")
    return {"wall_s": wall, "epoch_seconds": seconds, "z": z_mu}


def train_cryodiff(args, data: Path) -> dict:
    """cryodiff train-vae; speed from log.jsonl, latents from latents.h5."""
    wall = _run([sys.executable, "-m", "cryodiff.cli.main", "train-vae", "particles.star", "-o", "cryodiff",
                 "--threads", args.threads, *_architecture_args(args)], data, args.threads)
    lines = (data / "cryodiff" / "log.jsonl").read_text().splitlines()
    with h5py.File(data / "cryodiff" / "latents.h5", "r") as h5:
        z = np.empty_like(h5["z_mu"][()])
        z[h5["indices"][()]] = h5["z_mu"][()]
    return {"wall_s": wall, "epoch_seconds": [json.loads(line)["seconds"] for line in lines], "z": z}


def medoid(z: np.ndarray) -> np.ndarray:
    """The row of ``z`` with the smallest summed distance to the others."""
    return z[np.argmin(cdist(z, z).sum(axis=1))]


def grid_states(truth: dict, min_near: int) -> list[dict]:
    """Grid volumes with enough particles near them: state, subunit, file, particle mask."""
    states, subunits = truth["volumes"]["state"], truth["volumes"]["subunit"]
    half_step = 0.5 * np.min(np.diff(np.unique(states)))
    picked = []
    for s, u, name in zip(states, subunits, truth["volumes"]["file"]):
        near = (np.abs(truth["state"] - s) <= half_step) & (truth["subunit"] == u)
        if near.sum() >= min_near:
            picked.append({"state": float(s), "subunit": int(u), "file": name, "near": near})
    return picked


def fsc_report(volume: np.ndarray, truth_volume: np.ndarray, apix: float) -> dict:
    freqs, curve = fsc(volume, truth_volume)
    below = np.flatnonzero(curve < 0.5)
    return {
        "resolution_fsc0.5_A": resolution(freqs, curve, 0.5, apix),
        "fsc_ge_0.5_up_to_fraction_of_nyquist": float(freqs[below[0] - 1] / 0.5) if len(below) else 1.0,
        "fsc": curve.round(3).tolist(),
    }


def latent_scores(z: np.ndarray, truth: dict) -> dict:
    """Cross-validated kNN R² of the state and accuracy of the subunit flag from z."""
    folds = KFold(5, shuffle=True, random_state=0)
    r2 = cross_val_score(KNeighborsRegressor(n_neighbors=10), z, truth["state"], cv=folds, scoring="r2")
    strata = StratifiedKFold(5, shuffle=True, random_state=0)
    acc = cross_val_score(KNeighborsClassifier(n_neighbors=10), z, truth["subunit"], cv=strata, scoring="accuracy")
    return {"knn_r2_state": float(r2.mean()), "knn_accuracy_subunit": float(acc.mean())}


def volumes_cryodrgn(args, data: Path, zs: np.ndarray, apix: float) -> list[np.ndarray]:
    np.savetxt(data / "medoids_cryodrgn.txt", zs)
    _run([args.cryodrgn, "eval_vol", "cryodrgn/weights.pkl", "-c", "cryodrgn/config.yaml", "--zfile", "medoids_cryodrgn.txt",
          "-o", "vols_cryodrgn", "--Apix", apix], data, args.threads)
    return [read_volume(data / "vols_cryodrgn" / f"vol_{i + 1:03d}.mrc")[0] for i in range(len(zs))]


def volumes_cryodiff(data: Path, zs: np.ndarray) -> list[np.ndarray]:
    run = load_run(data / "cryodiff")
    return [run.volume(z) for z in zs]


def evaluate(name: str, result: dict, args, data: Path, truth: dict, states: list[dict]) -> dict:
    """Speed and accuracy of one tool's run."""
    z = result["z"]
    zs = np.stack([medoid(z[s["near"]]) for s in states])
    volumes = volumes_cryodrgn(args, data, zs, args.apix) if name == "cryodrgn" else volumes_cryodiff(data, zs)
    per_state = []
    for s, vol in zip(states, volumes):
        true_vol, _ = read_volume(data / s["file"])
        per_state.append({"state": s["state"], "subunit": s["subunit"], "n_near": int(s["near"].sum())} | fsc_report(vol, true_vol, args.apix))
    seconds = result["epoch_seconds"]
    return {
        "images_per_s": args.n * len(seconds) / sum(seconds),
        "epoch_seconds": [round(s, 2) for s in seconds],
        "wall_s": round(result["wall_s"], 1),
        **latent_scores(z, truth),
        "mean_fsc0.5_fraction_of_nyquist": float(np.mean([p["fsc_ge_0.5_up_to_fraction_of_nyquist"] for p in per_state])),
        "per_state": per_state,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="particles")
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--apix", type=float, default=3.0)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width")
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder residual layers")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-near", type=int, default=20, help="particles near a grid state to evaluate it")
    parser.add_argument("--cryodrgn", default=str(Path(__file__).resolve().parents[1] / ".venv-cryodrgn" / "bin" / "cryodrgn"),
                        help="cryodrgn executable (cryoDRGN 4.3.1 in its own venv; default: the repository's .venv-cryodrgn)")
    parser.add_argument("--workdir", help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    if not Path(args.cryodrgn).is_file():
        sys.exit(f"cryoDRGN not found at {args.cryodrgn}: python3 -m venv .venv-cryodrgn && "
                 ".venv-cryodrgn/bin/pip install torch==2.13.0 cryodrgn==4.3.1 (or pass --cryodrgn)")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.workdir or tmp)
        data.mkdir(parents=True, exist_ok=True)
        write_synthetic_dataset(data, n=args.n, box=args.box, apix=args.apix, snr=args.snr, seed=args.seed)
        truth = read_truth(data / "truth.h5")
        _run([args.cryodrgn, "parse_pose_star", "particles.star", "-o", "pose.pkl"], data, args.threads)
        _run([args.cryodrgn, "parse_ctf_star", "particles.star", "-o", "ctf.pkl"], data, args.threads)
        runs = {"cryodrgn": train_cryodrgn(args, data), "cryodiff": train_cryodiff(args, data)}
        states = grid_states(truth, args.min_near)
        report = {name: evaluate(name, result, args, data, truth, states) for name, result in runs.items()}

    settings = {k: v for k, v in vars(args).items() if k not in ("workdir",)} | {"torch": torch.__version__, "device": "cpu"}
    ratio = report["cryodiff"]["images_per_s"] / report["cryodrgn"]["images_per_s"]
    print(json.dumps({
        "settings": settings,
        "ratio_images_per_s_cryodiff_over_cryodrgn": round(ratio, 3),
        "ratio_wall_time_cryodrgn_over_cryodiff": round(report["cryodrgn"]["wall_s"] / report["cryodiff"]["wall_s"], 3),
        **report,
    }, indent=1))


if __name__ == "__main__":
    main()
