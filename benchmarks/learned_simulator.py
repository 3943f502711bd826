"""A learned simulator: a particle-image diffusion model conditioned on defocus and in-plane angle. Prints JSON.

Everything runs here on one CPU thread (cryodiff.learned_simulator):

1. the training set: ``n`` box-32 particles simulated by recon (the functions of
   ``cryodiff simulate``; 3 Å/px, 300 kV, Cs 2.7 mm, amplitude contrast 0.1, one
   side view, in-plane angle psi uniform in [0, 360) degrees, defocus uniform in
   1.0-2.5 µm, no astigmatism, SNR 10);
2. the model: EDM on the images themselves (pixel-unshuffled to 4 x 16 x 16), a
   UNet conditioned on defocus and (cos psi, sin psi) through scalar embedders,
   trained for ``steps`` steps (EMA weights);
3. at each evaluation defocus: ``eval_n`` samples with random requested psi (Heun,
   ``sample_steps`` steps, guidance 1 and 2) and as many real simulated images
   with the same defocus and psi (fresh noise), both scored with the same checks:

   * CTF zeros: local minima of the whitened radial power spectrum against the
     first three zeros of recon.ctf for the requested defocus (mean absolute
     error in Fourier pixels and 1/Å; a missed zero counts half the distance to
     its neighbour), and the defocus that best explains the spectrum;
   * in-plane angle: psi estimated by correlation with clean CTF-applied
     projections over a 2-degree grid; mean absolute circular error against the
     requested psi; the same on real images (floor) and against shuffled
     requests (chance, 90 in expectation).

    python benchmarks/learned_simulator.py [--steps 2000] [--n 10000] [--save sim.pt] [--quick]

``--quick`` runs every stage at a tiny budget (a smoke test, not numbers).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch

from cryodiff import learned_simulator as ls

FULL = {"n": 10000, "steps": 2000, "batch": 32, "lr": 2e-3, "eval_n": 256, "sample_steps": 18,
        "defoci": (11000.0, 15000.0, 20000.0, 24000.0), "guidance": (1.0, 2.0)}
QUICK = {"n": 500, "steps": 20, "batch": 16, "lr": 2e-3, "eval_n": 32, "sample_steps": 4,
         "defoci": (15000.0,), "guidance": (1.0, 2.0)}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(rows: list[dict]) -> dict:
    """Means over the evaluation defoci."""
    def mean(key):
        return float(np.mean([row[key] for row in rows]))

    return {key: round(mean(key), 4) for key in rows[0] if isinstance(rows[0][key], float) and key not in ("defocus_A", "fitted_defocus_A")}


def evaluate(sim: ls.LearnedSimulator, setup: ls.SimulationSetup, noise_std: float, cfg: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1000)
    out = {}
    rows_real = []
    rows = {g: [] for g in cfg["guidance"]}
    background = ls.reference_spectrum(setup)
    for df in cfg["defoci"]:
        psi = rng.uniform(0.0, 360.0, cfg["eval_n"])
        shuffled = rng.permutation(psi)
        real = ls.simulate_particles(setup, df, psi, noise_std, seed=int(rng.integers(1 << 31)))
        z = ls.check_ctf_zeros(real, df, setup, background=background)
        p = ls.check_psi(real, df, psi, setup)
        rows_real.append({"defocus_A": df, "zero_error_px": z["mean_abs_error_px"], "zero_error_inv_A": z["mean_abs_error_inv_A"],
                          "missed_zeros": float(z["missed"]), "defocus_fit_abs_error_A": abs(z["defocus_error_A"]),
                          "psi_error_deg": p["mean_abs_error_deg"], "psi_median_error_deg": p["median_abs_error_deg"]})
        log(f"real df {df:.0f}: zeros {z['zeros_px']} minima {z['minima_px']}, fit {z['fitted_defocus_A']:.0f}, psi {p['mean_abs_error_deg']:.2f}")
        for g in cfg["guidance"]:
            t = time.time()
            x = sim.sample(df, psi, guidance=g, steps=cfg["sample_steps"], seed=int(rng.integers(1 << 31)))
            seconds = time.time() - t
            z = ls.check_ctf_zeros(x, df, setup, background=background)
            p = ls.check_psi(x, df, psi, setup)
            chance = ls.check_psi(x, df, shuffled, setup)
            rows[g].append({"defocus_A": df, "zero_error_px": z["mean_abs_error_px"], "zero_error_inv_A": z["mean_abs_error_inv_A"],
                            "missed_zeros": float(z["missed"]), "fitted_defocus_A": z["fitted_defocus_A"],
                            "defocus_fit_abs_error_A": abs(z["defocus_error_A"]),
                            "psi_error_deg": p["mean_abs_error_deg"], "psi_median_error_deg": p["median_abs_error_deg"],
                            "psi_within_10_deg": p["within_10_deg"], "psi_error_shuffled_deg": chance["mean_abs_error_deg"],
                            "zeros_px": z["zeros_px"], "minima_px": z["minima_px"],
                            "image_std_ratio": float(x.std() / real.std()), "sample_ms_per_image": 1000 * seconds / len(x)})
            log(f"guidance {g} df {df:.0f}: minima {z['minima_px']} (err {z['mean_abs_error_px']:.3f} px), "
                f"fit {z['fitted_defocus_A']:.0f}, psi {p['mean_abs_error_deg']:.2f} deg")
    out["real_images_floor"] = {"summary": summary(rows_real), "per_defocus": rows_real}
    out["samples"] = {f"guidance_{g:g}": {"summary": summary(rows[g]), "per_defocus": rows[g]} for g in cfg["guidance"]}
    out["psi_chance_deg"] = 90.0
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="training steps (default 2000)")
    parser.add_argument("--n", type=int, help="training particles (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="write the trained simulator here")
    parser.add_argument("--quick", action="store_true", help="tiny budget: a smoke test")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    cfg = dict(QUICK if args.quick else FULL)
    cfg.update({k: v for k, v in (("steps", args.steps), ("n", args.n)) if v is not None})
    setup = ls.SimulationSetup()
    config = ls.ModelConfig()
    result = {"benchmark": "learned_simulator", "quick": args.quick, "seed": args.seed, "settings": cfg,
              "setup": setup.__dict__, "model": {**config.__dict__, "mults": list(config.mults)},
              "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "processor": platform.processor() or platform.machine()}}

    t = time.time()
    data = ls.make_training_set(cfg["n"], setup, seed=args.seed)
    result["data_seconds"] = round(time.time() - t, 1)
    result["noise_std"] = data.noise_std
    log(f"{cfg['n']} particles in {result['data_seconds']} s, noise std {data.noise_std:.3f}")

    t = time.time()
    sim, records = ls.train_learned_simulator(data, cfg["steps"], batch_size=cfg["batch"], lr=cfg["lr"], config=config,
                                              seed=args.seed, log_every=max(cfg["steps"] // 10, 1))
    result["train_seconds"] = round(time.time() - t, 1)
    result["parameters"] = sum(p.numel() for p in sim.model.parameters())
    result["loss_curve"] = [[r["step"], round(r["loss"], 4)] for r in records]
    log(f"trained {cfg['steps']} steps in {result['train_seconds']} s; loss {records[0]['loss']:.3f} -> {records[-1]['loss']:.3f}")
    if args.save:
        sim.save(args.save)

    t = time.time()
    result.update(evaluate(sim, setup, data.noise_std, cfg, args.seed))
    result["eval_seconds"] = round(time.time() - t, 1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
