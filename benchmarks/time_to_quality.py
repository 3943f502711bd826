"""Time to a trustworthy landscape: latent quality against seconds, cryodiff against cryoDRGN 4.3.1.

On one simulated data set (``recon.synthetic``: by default 8,000 particles, box 32, 3 Å/px,
SNR 0.1) both tools train a VAE with the same networks (256 x 3 residual MLPs, zdim 8,
gaussian positional encoding) and the same CPU threads. Every epoch's latents are kept
(cryoDRGN's ``z.E.pkl``, cryodiff's ``epochs/z.E.h5`` from ``--checkpoint 1``), and each is
scored against the truth as in ``benchmarks/vs_cryodrgn.py``: 5-fold kNN R² of the state and
kNN accuracy of the subunit flag. An epoch's time is the modification time of its latents
file minus the command's start, so it counts start-up, reading, training and any
re-encoding (cryoDRGN re-encodes every particle after each epoch; cryodiff keeps the
latents of the training pass).

The time to quality is the first such time at which R² >= ``--r2`` (0.85) and accuracy >=
``--accuracy`` (0.9). Each cryodiff setting (``--cryodiff NAME='ARGS'``, repeatable; ARGS are
extra ``train-vae`` options) is one curve; ``defaults`` (no extra options) is always run.
cryoDRGN runs with its own defaults (batch 8, learning rate 1e-4) unless ``--cryodrgn-args``.

    python benchmarks/time_to_quality.py [--n 8000] [--epochs 20] [--threads 2]
        [--cryodiff 'lr3e-4=--lr 3e-4 -b 32'] [--workdir DIR] [--plot curves.png]

Prints JSON: the settings, the CPU's bf16 features, each curve (epoch, seconds, R², accuracy),
each time to quality and its ratio to cryoDRGN's, and for each cryodiff setting the quality of
its final maps (mean over the grid states of the fraction of Nyquist where the FSC between the
volume at the state's latent medoid and the true map stays >= 0.5). With ``--workdir`` the simulated data and
finished runs are kept and reused (a run whose folder holds ``latents.h5`` / ``weights.pkl`` is
not trained again).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from vs_cryodrgn import fsc_report, grid_states, latent_scores, medoid  # noqa: E402

from recon.io import read_volume  # noqa: E402
from recon.io.cryodrgn_run import load_pickles_safely  # noqa: E402
from recon.run import load_run  # noqa: E402
from recon.synthetic import read_truth, write_synthetic_dataset  # noqa: E402


def cpu_features() -> list[str]:
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    return sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})


def architecture(args) -> list[str]:
    return ["--zdim", "8", "--enc-dim", str(args.dim), "--enc-layers", "3", "--dec-dim", str(args.dim),
            "--dec-layers", "3", "-n", str(args.epochs), "--seed", str(args.seed)]


def run_timed(cmd: list[str], cwd: Path, threads: int, log: Path) -> float:
    """Run ``cmd`` with ``threads`` CPU threads; returns its start time (epoch seconds)."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.time()
    with open(log, "w") as out:
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed; see {log}")
    (log.parent / (log.stem + ".started")).write_text(repr(start))
    return start


def started(folder: Path) -> float:
    return float((folder.parent / (folder.name + ".started")).read_text())


def cryodiff_curve(folder: Path, truth: dict) -> list[dict]:
    start = started(folder)
    rows = []
    for path in sorted((folder / "epochs").glob("z.*.h5"), key=lambda p: int(p.name.split(".")[1])):
        with h5py.File(path, "r") as h5:
            z = np.empty_like(h5["z_mu"][()])
            z[h5["indices"][()]] = h5["z_mu"][()]
        rows.append({"epoch": int(path.name.split(".")[1]), "seconds": path.stat().st_mtime - start, **latent_scores(z, truth)})
    return rows


def cryodrgn_curve(folder: Path, truth: dict) -> list[dict]:
    start = started(folder)
    rows = []
    pattern = re.compile(r"z\.(\d+)\.pkl$")
    for path in sorted((p for p in folder.glob("z.*.pkl") if pattern.search(p.name)), key=lambda p: int(pattern.search(p.name)[1])):
        z, _ = load_pickles_safely(path)
        rows.append({"epoch": int(pattern.search(path.name)[1]), "seconds": path.stat().st_mtime - start, **latent_scores(z, truth)})
    return rows


def final_maps(folder: Path, data: Path, truth: dict) -> float:
    """Mean over the grid states (>= 20 particles near each) of the fraction of Nyquist up to which
    the FSC between the run's volume at the state's latent medoid and the true map stays >= 0.5."""
    run = load_run(folder)
    z = run.z_mu
    fractions = []
    for state in grid_states(truth, 20):
        volume = run.volume(medoid(z[state["near"]]))
        fractions.append(fsc_report(volume, read_volume(data / state["file"])[0], 3.0)["fsc_ge_0.5_up_to_fraction_of_nyquist"])
    return round(float(np.mean(fractions)), 3)


def time_to_quality(curve: list[dict], r2: float, accuracy: float) -> float | None:
    for row in curve:
        if row["knn_r2_state"] >= r2 and row["knn_accuracy_subunit"] >= accuracy:
            return round(row["seconds"], 1)
    return None


def plot(curves: dict, path: str, r2: float, accuracy: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, curve in curves.items():
        style = dict(marker="o", ms=3, lw=2.2 if name == "cryodrgn" else 1.5, color="black" if name == "cryodrgn" else None)
        seconds = [row["seconds"] for row in curve]
        axes[0].plot(seconds, [row["knn_r2_state"] for row in curve], label=name, **style)
        axes[1].plot(seconds, [row["knn_accuracy_subunit"] for row in curve], label=name, **style)
    for ax, target, title in ((axes[0], r2, "kNN R² of the true state"), (axes[1], accuracy, "kNN accuracy of the subunit")):
        ax.axhline(target, color="grey", ls="--", lw=1)
        ax.set(xlabel="seconds since the command started", title=title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--r2", type=float, default=0.85)
    parser.add_argument("--accuracy", type=float, default=0.9)
    parser.add_argument("--cryodiff", action="append", default=[], metavar="NAME=ARGS", help="a cryodiff setting to time")
    parser.add_argument("--cryodrgn-args", default="", help="extra cryodrgn train_vae options")
    parser.add_argument("--no-cryodrgn", action="store_true", help="time cryodiff only (its curves, no ratio)")
    parser.add_argument("--cryodrgn", default=str(Path(__file__).resolve().parents[1] / ".venv-cryodrgn" / "bin" / "cryodrgn"))
    parser.add_argument("--workdir", help="keep (and reuse) data and runs here")
    parser.add_argument("--plot", help="PNG of quality against seconds")
    args = parser.parse_args()

    settings = {"defaults": []}
    for item in args.cryodiff:
        name, _, extra = item.partition("=")
        settings[name] = shlex.split(extra)
    data = Path(args.workdir or tempfile.mkdtemp(prefix="cryodiff-ttq-"))
    data.mkdir(parents=True, exist_ok=True)
    if not (data / "truth.h5").is_file():
        write_synthetic_dataset(data, n=args.n, box=args.box, apix=3.0, snr=args.snr, seed=args.seed)
    truth = read_truth(data / "truth.h5")
    curves, maps = {}, {}
    if not args.no_cryodrgn:
        if not Path(args.cryodrgn).is_file():
            sys.exit(f"cryoDRGN not found at {args.cryodrgn}: python3 -m venv .venv-cryodrgn && "
                     ".venv-cryodrgn/bin/pip install torch==2.13.0 cryodrgn==4.3.1 (or pass --cryodrgn)")
        folder = data / "cryodrgn"
        if not (folder / "weights.pkl").is_file():
            for kind in ("pose", "ctf"):
                if not (data / f"{kind}.pkl").is_file():
                    subprocess.run([args.cryodrgn, f"parse_{kind}_star", "particles.star", "-o", f"{kind}.pkl"], cwd=data,
                                   check=True, capture_output=True)
            run_timed([args.cryodrgn, "train_vae", "particles.star", "--poses", "pose.pkl", "--ctf", "ctf.pkl", "-o", "cryodrgn",
                       "--no-analysis", *architecture(args), *shlex.split(args.cryodrgn_args)], data, args.threads, folder.parent / (folder.name + ".log"))
        curves["cryodrgn"] = cryodrgn_curve(folder, truth)
    for name, extra in settings.items():
        folder = data / f"cryodiff-{name}"
        if not (folder / "latents.h5").is_file():
            run_timed([sys.executable, "-m", "cryodiff.cli.main", "train-vae", "particles.star", "-o", folder.name,
                       "--threads", str(args.threads), "--checkpoint", "1", *architecture(args), *extra],
                      data, args.threads, folder.parent / (folder.name + ".log"))
        curves[name] = cryodiff_curve(folder, truth)
        maps[name] = final_maps(folder, data, truth)

    reached = {name: time_to_quality(curve, args.r2, args.accuracy) for name, curve in curves.items()}
    base = reached.get("cryodrgn")
    result = {
        "benchmark": "time_to_quality",
        "settings": {k: v for k, v in vars(args).items() if k not in ("workdir", "plot", "cryodrgn")},
        "cpu_features": cpu_features(),
        "time_to_quality_s": reached,
        "speed_up_over_cryodrgn": {name: round(base / t, 2) for name, t in reached.items()
                                   if base and t and name != "cryodrgn"},
        "final": {name: curve[-1] for name, curve in curves.items() if curve},
        "final_mean_fsc0.5_fraction_of_nyquist": maps,
        "curves": curves,
    }
    if args.plot:
        plot(curves, args.plot, args.r2, args.accuracy)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
