"""VAE accuracy against ground truth on simulated heterogeneous data, as JSON.

Simulates a data set (continuous tri-modal state + a subunit in 40 % of
particles), trains the VAE, encodes every particle, and reports: kNN R² of the
true state from z, subunit classification accuracy, and per-state FSC of the
volume at each true state's latent medoid against its ground-truth map.
Acceptance (issue 3): R² >= 0.8, subunit accuracy >= 0.95, FSC >= 0.5 out to
at least half of Nyquist for every evaluated state.

    python benchmarks/accuracy.py --n 5000 --box 64 --snr 0.1 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recon.evaluation import per_state_fsc, state_r2, subunit_accuracy
from recon.io import read_particles
from recon.synthetic import read_truth, write_synthetic_dataset
from recon.training import TrainingData, TrainSettings, encode_all, train_vae
from recon.vae import Architecture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width (3 layers each)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="keep the data and run here (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        data_dir, run = work / "data", work / "run"
        if not (data_dir / "truth.h5").exists():
            write_synthetic_dataset(data_dir, n=args.n, box=args.box, apix=3.0 * 64 / args.box, snr=args.snr, seed=args.seed)
        particles = read_particles(data_dir / "particles.star")
        particles.images.load()
        meta = particles.meta
        data = TrainingData(particles.images, np.arange(len(particles)), meta.rotations, meta.shifts_px, meta.ctf, meta.box, meta.apix)
        arch = Architecture(box=args.box, zdim=args.zdim, enc_dim=args.dim, dec_dim=args.dim)
        settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, amp=args.amp)
        start = time.perf_counter()
        model = train_vae(data, arch, settings, run, show_progress=False)
        seconds = time.perf_counter() - start
        config = json.loads((run / "config.json").read_text())
        z, _ = encode_all(model, data, config["normalization"]["std"], True)
        epochs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        truth = read_truth(data_dir / "truth.h5")
        model.cpu()
        states = per_state_fsc(lambda zz: model.volume(zz), z, truth, data_dir, meta.apix)

    result = {
        "n_particles": args.n,
        "box": args.box,
        "snr": args.snr,
        "epochs": args.epochs,
        "architecture": f"{args.dim}x3, zdim {args.zdim}",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "train_seconds": seconds,
        "images_per_s_last_epoch": epochs[-1]["images_per_s"],
        "final_loss": epochs[-1]["loss"],
        "state_r2": state_r2(z, truth["state"]),
        "subunit_accuracy": subunit_accuracy(z, truth["subunit"]),
        "min_fsc0.5_nyquist_fraction": min(s["fsc0.5_nyquist_fraction"] for s in states),
        "states_closest_to_own_truth": f"{sum(s['closest_is_own_state'] for s in states)}/{len(states)}",
        "per_state": states,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
