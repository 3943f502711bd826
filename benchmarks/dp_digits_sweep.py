"""Ablation of the DP digits recipe, scored on a validation split, never on the test digits.

The 1,437 training digits of ``benchmarks/dp_digits.py`` are split again
(stratified, seed 1) into 1,150 for training and 287 for validation; the 360
test digits are not loaded. Each configuration trains one class-conditional
DP-SGD model at ``--epsilon`` (delta 1e-5) on the 1,150 digits, samples
``--per-class`` digits per class at each guidance scale in ``--guidances``, and
reports, per scale, the validation accuracy of the same logistic regression as
the benchmark and of its small MLP classifier, both trained on the synthetic
digits only. One JSON object per variant is printed per line.

Variants (``VARIANTS``) change one or two settings of the baseline recipe.
``--shard i --shards n`` runs every n-th, so n CPU processes can share the work
(on one GPU, run one process: processes time-share the GPU).

    python benchmarks/dp_digits_sweep.py --shard 0 --shards 2 > s0.jsonl
    python benchmarks/dp_digits.py $(python benchmarks/dp_digits_sweep.py --best s*.jsonl)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from dp_digits import accuracy, digits_split, mlp_accuracy, synthesize, train

BASELINE = {"base": 16, "noise_draws": 16, "sample_rate": 0.5, "steps": 200, "lr": 1e-2, "ema": 0.98,
            "p_uncond": 0.1, "p_mean": -1.2}
# The baseline is the benchmark's recipe before this search (EDM's noise levels). Variants change
# one setting, or two, in order of priority.
VARIANTS = {
    "baseline": {},
    "base_8": {"base": 8},
    "draws_32": {"noise_draws": 32},
    "p_mean_0": {"p_mean": 0.0},
    "full_batch": {"sample_rate": 1.0, "steps": 100},
    "ema_0.995": {"ema": 0.995},
    "base_8_draws_64": {"base": 8, "noise_draws": 64},
    "draws_64": {"noise_draws": 64},
    "p_mean_-0.6": {"p_mean": -0.6},
    "lr_3e-3": {"lr": 3e-3},
    "p_uncond_0.25": {"p_uncond": 0.25},
    "steps_400": {"steps": 400},
    "base_32": {"base": 32},
    "p_mean_0.5": {"p_mean": 0.5},
    "p_mean_1": {"p_mean": 1.0},
    "p_mean_1.5": {"p_mean": 1.5},
    "p_mean_2": {"p_mean": 2.0},
    "p_mean_0_draws_32": {"p_mean": 0.0, "noise_draws": 32},
}


def validation_split():
    """``(x_train, y_train, x_val, y_val)``: the benchmark's training digits split 1,150 / 287."""
    x, y, _, _ = digits_split()
    train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=287, stratify=y.numpy(),
                                          random_state=1)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def best_arguments(paths):
    """``dp_digits.py`` arguments of the configuration and guidance with the best validation logreg accuracy."""
    records = []
    for path in paths:
        try:
            with open(path) as lines:
                records += [json.loads(line) for line in lines if line.strip()]
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: not a sweep output ({err}); give the JSON lines this script printed")
    if not records:
        raise SystemExit(f"no sweep results in {' '.join(paths)}")
    score, guidance, config = max(((s["logreg"], float(g), r["config"]) for r in records
                                   for g, s in r["scores"].items()), key=lambda item: item[:2])
    print(f"best of {len(records)} configurations: validation accuracy {score:.3f}, guidance "
          f"{guidance:g}, {json.dumps(config)}", file=sys.stderr)
    return (f"--base {config['base']} --noise-draws {config['noise_draws']} "
            f"--sample-rate {config['sample_rate']} --steps {config['steps']} --lr {config['lr']} "
            f"--ema {config['ema']} --p-uncond {config['p_uncond']} "
            f"--dp-p-mean {config['p_mean']} --dp-guidance {guidance:g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        metavar="NAME", help=f"variants to run (default all): {', '.join(VARIANTS)}")
    parser.add_argument("--best", nargs="+", metavar="JSONL",
                        help="print the dp_digits.py arguments of the best result in these files and exit")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--no-mlp", action="store_true", help="score with the logistic regression only")
    parser.add_argument("--epsilon", type=float, default=10.0)
    parser.add_argument("--guidances", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0, 8.0],
                        help="classifier-free guidance scales (1: conditional model, no guidance)")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--physical-batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.best:
        print(best_arguments(args.best))
        return
    torch.set_num_threads(args.threads)

    x_train, y_train, x_val, y_val = validation_split()
    flat_val, labels_val = x_val.flatten(1).numpy(), y_val.numpy()
    for index, name in enumerate(args.variants):
        if index % args.shards != args.shard:
            continue
        config = {**BASELINE, **VARIANTS[name]}
        settings = argparse.Namespace(**config, dp_p_mean=config["p_mean"], mults=[1], p_std=1.2, delta=1e-5,
                                      device=args.device,
                                      physical_batch=args.physical_batch, seed=0, log_every=10 ** 9)
        start = time.perf_counter()
        ema, info = train(settings, x_train, y_train, args.epsilon)
        scores = {}
        for guidance in args.guidances:
            xs, ys = synthesize(ema, args.per_class, 18, guidance, seed=0)
            xs, ys = xs.numpy(), ys.numpy()
            scores[f"{guidance:g}"] = {"logreg": accuracy(xs, ys, flat_val, labels_val)}
            if not args.no_mlp:
                scores[f"{guidance:g}"]["mlp"] = mlp_accuracy(xs, ys, flat_val, labels_val)
        print(json.dumps({"variant": name, "config": config,
                          "noise_multiplier": info["noise_multiplier"], "scores": scores,
                          "seconds": time.perf_counter() - start}), flush=True)
        print(f"{name} done", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
