"""Does the diffusion prior sample the data's landscape? Printed as JSON.

Simulates a heterogeneous data set (tri-modal state, subunit in 40 %), trains
the VAE and the latent diffusion prior, then compares N prior samples and N
N(0, I) samples (the VAE's own prior, in latent units) with the particles'
latents (N/2 of each, to compare with the floor at equal sample size):

* energy distance to half of the data latents (N/2 samples; standardised
  units), against the floor set by the other half (acceptance: prior within 2x);
* the distribution of true states the samples imply: each sample takes the
  mean true state and the majority subunit flag of its 10 nearest particle
  latents; 1-Wasserstein distance of the state histogram (10 bins on [0, 1])
  to the true one (acceptance <= 0.05) and subunit fraction (within 0.03);
* for every solver of the formulation and a range of steps: the energy distance
  to the data latents (as a multiple of the floor) and the time to draw
  10,000 latents.

    python benchmarks/prior.py --n 3000 --box 32 --snr 0.5 --epochs 10 --formulations edm flow cld
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from sklearn.neighbors import NearestNeighbors

from cryodiff.prior import load_prior, train_prior
from generative.metrics import energy_distance
from recon.io import read_particles
from recon.synthetic import read_truth, write_synthetic_dataset
from recon.training import TrainingData, TrainSettings, train_vae
from recon.vae import Architecture


#: Steps swept per formulation (grid intervals; CLD's stochastic solvers need more).
STEPS = {"edm": (5, 10, 15, 20, 30, 50), "flow": (5, 10, 15, 20, 30, 50), "cld": (25, 50, 100, 200, 400)}


def implied_truth(samples: np.ndarray, z: np.ndarray, truth: dict, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """True state and subunit flag implied for each sample by its k nearest particles."""
    _, idx = NearestNeighbors(n_neighbors=k).fit(z).kneighbors(samples)
    return truth["state"][idx].mean(1), truth["subunit"][idx].mean(1) > 0.5


def landscape_scores(samples, z, reference, truth, scale) -> dict:
    """Scores of ``samples`` against the particle latents; the energy distance is
    taken to ``reference`` (half of the latents, the same size as ``samples``)."""
    states, subunit = implied_truth(samples, z, truth)
    bins = np.linspace(0, 1, 11)
    centres = (bins[:-1] + bins[1:]) / 2
    h_samples = np.histogram(states, bins)[0] + 1e-12
    h_truth = np.histogram(truth["state"], bins)[0] + 1e-12
    ed = energy_distance(torch.as_tensor(samples / scale), torch.as_tensor(reference / scale))
    return {
        "energy_distance": float(ed),
        "state_histogram_w1": float(wasserstein_distance(centres, centres, h_samples, h_truth)),
        "subunit_fraction": float(subunit.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--snr", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--prior-steps", type=int, help="default: the prior's own default for N and zdim")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formulations", nargs="+", default=["edm"], choices=["edm", "flow", "cld"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_synthetic_dataset(work / "data", n=args.n, box=args.box, apix=3.0 * 64 / args.box, snr=args.snr, seed=args.seed)
        particles = read_particles(work / "data" / "particles.star")
        particles.images.load()
        m = particles.meta
        data = TrainingData(particles.images, np.arange(len(particles)), m.rotations, m.shifts_px, m.ctf, m.box, m.apix)
        arch = Architecture(box=args.box, zdim=8, enc_dim=256, dec_dim=256)
        train_vae(data, arch, TrainSettings(epochs=args.epochs, batch_size=32, lr=1e-3, seed=args.seed), work / "vae", show_progress=False)
        from recon.run import load_run

        z = load_run(work / "vae").z_mu.astype(np.float64)
        truth = read_truth(work / "data" / "truth.h5")
        scale = z.std(0)
        rng = np.random.default_rng(args.seed)
        order = rng.permutation(len(z))
        half_a, half_b = z[order[: len(z) // 2]], z[order[len(z) // 2 : 2 * (len(z) // 2)]]
        floor = float(energy_distance(torch.as_tensor(half_b / scale), torch.as_tensor(half_a / scale)))
        gaussian = rng.normal(size=half_a.shape)
        priors = {}
        for formulation in args.formulations:
            start = time.perf_counter()
            train_prior(z.astype(np.float32), work / formulation, steps=args.prior_steps, seed=args.seed,
                        formulation=formulation)
            priors[formulation] = {"train_seconds": time.perf_counter() - start,
                                   **evaluate(load_prior(work / formulation), z, half_a, truth, scale, floor, args.seed)}

    print(json.dumps({
        "n_particles": args.n, "box": args.box, "snr": args.snr, "vae_epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "energy_distance_floor_two_halves": floor,
        "truth": {"state_histogram_w1": 0.0, "subunit_fraction": float(truth["subunit"].mean())},
        "gaussian_N01": landscape_scores(gaussian, z, half_a, truth, scale),
        "priors": priors,
    }, indent=1))


def evaluate(prior, z, half_a, truth, scale, floor, seed) -> dict:
    """Landscape scores of the prior's default solver, and for every solver and
    number of steps the energy distance to the data (as a multiple of the floor)
    and the time to draw 10,000 latents."""
    samples = prior.sample(len(half_a), seed=seed).astype(np.float64)
    sweep = []
    for solver in prior.solvers:
        for steps in STEPS[prior.formulation]:
            drawn = prior.sample(len(half_a), solver=solver, steps=steps, seed=seed + 1)
            ed = float(energy_distance(torch.as_tensor(drawn / scale), torch.as_tensor(half_a / scale)))
            tic = time.perf_counter()
            prior.sample(10000, solver=solver, steps=steps)
            sweep.append({"solver": solver, "steps": steps, "energy_distance_over_floor": ed / floor,
                          "seconds_for_10000": time.perf_counter() - tic})
            print(json.dumps(sweep[-1]), file=sys.stderr, flush=True)
    return {"default_solver": next(iter(prior.solvers)), "scores": landscape_scores(samples, z, half_a, truth, scale),
            "steps_sweep": sweep}

if __name__ == "__main__":
    main()
