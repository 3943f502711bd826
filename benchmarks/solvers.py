"""Solver accuracy vs steps on an exact Gaussian-mixture denoiser; prints JSON.

For each deterministic solver of the registry (:data:`generative.SOLVERS`,
families sigma and flow) and step count: the mean distance of its end points
to a reference PF-ODE solution (Heun, 4000 steps on the same Karras grid
family), the number of denoiser evaluations (from the registry; GENIE adds one
JVP per step), and the wall time. Usage:

    python benchmarks/solvers.py [--dim 2] [--points 256] [--steps 5 10 20 40 80 160]
"""

import argparse
import json
import time

import numpy as np
import torch

from generative import SOLVERS, GaussianMixture, karras_sigmas, sample


def mixture(dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(4, dim, generator=g, dtype=torch.float64)
    return GaussianMixture.isotropic([0.1, 0.2, 0.3, 0.4], means, [0.2, 0.3, 0.25, 0.35])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40, 80, 160])
    args = parser.parse_args()

    mix = mixture(args.dim)
    x_T = 80.0 * torch.randn(args.points, args.dim, dtype=torch.float64,
                             generator=torch.Generator().manual_seed(1))
    reference = sample(mix.denoise, x_T, karras_sigmas(4000), "heun")
    results = {}
    deterministic = [s for s in SOLVERS.values() if s.family in ("sigma", "flow") and not s.stochastic]
    for solver in deterministic:
        name, nfe = solver.name, solver.evaluations
        rows = []
        for n in args.steps:
            start = time.perf_counter()
            x = sample(mix.denoise, x_T, karras_sigmas(n), name)
            rows.append({"steps": n, "nfe": nfe(n), "seconds": time.perf_counter() - start,
                         "error": (x - reference).norm(dim=1).mean().item()})
        tail = rows[-3:]
        slope = -np.polyfit(np.log([r["steps"] for r in tail]), np.log([r["error"] for r in tail]), 1)[0]
        results[name] = {"rows": rows, "order_estimate": float(slope)}
    print(json.dumps({"dim": args.dim, "points": args.points, "grid": "karras(0.002, 80, rho=7)",
                      "error": "mean |x - x_ref|", "solvers": results}, indent=1))


if __name__ == "__main__":
    main()
