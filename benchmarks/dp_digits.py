"""Differentially private diffusion (DPDM) on scikit-learn's 8x8 digits. Printed as JSON.

Fixed stratified split of ``load_digits`` (1797 images): 360 held-out test
digits, 1437 training digits; pixels 0..16 scaled to [-1, 1] (a public,
data-independent scaling). A class-conditional EDM denoiser
(a UNet with ``vector_dim`` under ``Preconditioned``, the class embedded by a
``Conditioner`` whose ``ClassEmbedder`` drops it with probability
``--p-uncond`` for classifier-free guidance) is trained three times on the
training digits: without privacy (``generative.Trainer``, ``--non-private-steps``
steps, batches of ``sample_rate * N`` drawn with replacement, EDM's training
noise levels ``ln sigma ~ N(--p-mean, --p-std^2)``) and with DP-SGD
(``generative.DPTrainer``, ``--steps`` steps) at each of ``--epsilons`` (delta
``--delta``, RDP accountant, Poisson sampling at ``--sample-rate``, noise
multiplicity ``--noise-draws``, clipping norm 1), with noise levels shifted up to
``ln sigma ~ N(--dp-p-mean, --p-std^2)``. All use Adam and an EMA. Each model
generates ``--per-class`` labelled digits per class (Heun, ``--sample-steps``
steps, guidance scale ``--guidance`` without privacy, ``--dp-guidance`` with).
The private recipe was chosen on validation digits carved from the training
set (``benchmarks/dp_digits_sweep.py``), never on the test digits. Reported per
training set (real, non-private synthetic, each private synthetic):

* ``accuracy``: a multinomial logistic regression (scikit-learn, the same
  settings for every set) trained on that set only, on the 360 real test digits;
* ``mlp_accuracy``: the same for a one-hidden-layer MLP classifier (128 units);
* ``frechet``: Frechet distance between the set and the real test digits in the
  feature space of a small MLP classifier trained on the real training digits
  (activations of its last hidden layer, 64 units); ``real`` gives the floor
  set by the real training digits themselves;
* ``label_agreement``: fraction of synthetic digits that this MLP assigns to
  the class they were generated for.

    python benchmarks/dp_digits.py --steps 200 --epsilons 10 1 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from generative import (DPTrainer, Preconditioned, Trainer, UNet, denoising_loss, edm_weight, karras_sigmas,
                        lognormal_sigmas, privacy, sample)
from generative.conditioning import ClassEmbedder, Conditioner, cfg
from generative.preconditioning import edm

SIGMA_DATA = 0.5
CLASSES = 10


def digits_split(test_size=360, seed=0):
    """``(x_train [N, 1, 8, 8], y_train [N], x_test, y_test)``, pixels in [-1, 1], stratified split."""
    digits = load_digits()
    x = torch.tensor(digits.images / 8.0 - 1.0, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target)
    train, test = train_test_split(np.arange(len(y)), test_size=test_size, stratify=digits.target,
                                   random_state=seed)
    return x[train], y[train], x[test], y[test]


def make_model(base, mults, seed, p_uncond):
    """``{"denoiser": Preconditioned(UNet), "classes": Conditioner}``: the trained module (the class table
    trains with the network); the class embedding is dropped with probability ``p_uncond``."""
    torch.manual_seed(seed)
    unet = UNet(1, 1, base=base, mults=tuple(mults), time_embed_dim=32, vector_dim=32)
    return torch.nn.ModuleDict({"denoiser": Preconditioned(unet, edm(SIGMA_DATA)),
                                "classes": Conditioner([ClassEmbedder("label", CLASSES, 32, drop_rate=p_uncond)])})


def conditional_loss(p_mean=-1.2, p_std=1.2):
    """EDM loss of the model of :func:`make_model` on ``(x0, labels)``; training noise levels
    ``ln sigma ~ N(p_mean, p_std^2)``."""
    weight = edm_weight(SIGMA_DATA)

    def loss_fn(model, batch, g):
        x0, labels = batch
        cond = model["classes"]({"label": labels}, generator=g)
        sigmas = lognormal_sigmas(len(x0), p_mean, p_std, generator=g, device=x0.device)
        return denoising_loss(model["denoiser"], x0, sigmas, weight, generator=g, cond=cond)

    return loss_fn


@torch.no_grad()
def synthesize(model, per_class, steps, guidance, seed):
    """``per_class`` digits of every class from ``model`` (EMA), as ``(x [n, 64] in [-1, 1], y [n])``."""
    device = next(model.parameters()).device
    labels = torch.arange(CLASSES, device=device).repeat_interleave(per_class)
    classes = model["classes"].eval()
    cond, uncond = classes({"label": labels}), classes.unconditional({"label": labels})
    sigmas = karras_sigmas(steps, sigma_max=80.0).float()
    x_T = sigmas[0] * torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    x = sample(cfg(model["denoiser"], uncond, guidance), x_T.to(device), sigmas.to(device), "heun", cond=cond)
    return x.clamp(-1, 1).flatten(1).cpu(), labels.cpu()


def accuracy(x_train, y_train, x_test, y_test):
    clf = LogisticRegression(max_iter=3000, C=0.1).fit(x_train, y_train)
    return float(clf.score(x_test, y_test))


def mlp_accuracy(x_train, y_train, x_test, y_test, seed=0):
    """Test accuracy of a one-hidden-layer MLP classifier (128 units) trained on ``(x_train, y_train)``."""
    clf = MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=500, random_state=seed)
    return float(clf.fit(x_train, y_train).score(x_test, y_test))


def feature_map(x_train, y_train, seed):
    """Last-hidden-layer activations ``[n, 64]`` of an MLP classifier trained on the real training digits."""
    mlp = MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=1000, random_state=seed).fit(x_train, y_train)

    def features(x):
        h = x
        for w, b in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
            h = np.maximum(h @ w + b, 0)
        return h

    return features, mlp


def frechet(a, b):
    """Frechet distance between Gaussians fitted to feature sets ``a [n, d]`` and ``b [m, d]``."""
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(ca cb) = sum of the square roots of the (real, non-negative) eigenvalues of ca cb
    root_trace = np.sqrt(np.linalg.eigvals(ca @ cb).real.clip(min=0)).sum()
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2 * root_trace)


def train(args, x, y, epsilon):
    """EMA denoiser trained without privacy (``epsilon=None``) or with DP-SGD; ``(ema, info)``."""
    model = make_model(args.base, args.mults, args.seed, args.p_uncond).to(args.device)
    p_mean = args.p_mean if epsilon is None else args.dp_p_mean
    loss_fn = conditional_loss(p_mean, args.p_std)
    x, y = x.to(args.device), y.to(args.device)
    start = time.perf_counter()
    if epsilon is None:
        batch = round(args.sample_rate * len(x))

        def batch_fn(step, g):
            idx = torch.randint(len(x), (batch,), generator=g, device=x.device)
            return x[idx], y[idx]

        trainer = Trainer(model, loss_fn, batch_fn, lr=args.lr, ema_decay=args.ema, grad_clip=None,
                          seed=args.seed, log_every=args.log_every)
        steps, info = args.non_private_steps, {"steps": args.non_private_steps}
    else:
        trainer = DPTrainer(model, loss_fn, lambda idx: (x[idx], y[idx]), len(x),
                            sample_rate=args.sample_rate, delta=args.delta, target_epsilon=epsilon,
                            steps=args.steps, noise_draws=args.noise_draws, lr=args.lr,
                            ema_decay=args.ema, seed=args.seed, log_every=args.log_every,
                            physical_batch=args.physical_batch)
        steps, info = args.steps, {"steps": args.steps, "noise_multiplier": trainer.noise_multiplier}
    for record in _fit(trainer, steps, args.log_every):
        print(f"[eps={epsilon}] {json.dumps(record)}", file=sys.stderr, flush=True)
    info["train_seconds"] = time.perf_counter() - start
    if epsilon is not None:
        info["privacy"] = trainer.privacy_report()
    return trainer.ema, info


def _fit(trainer, steps, every):
    while trainer.step < steps:
        yield from trainer.fit(min(steps, trainer.step + every))


def save_grids(grids, results, path, per_class=8):
    """PNG of ``per_class`` digits of each class (columns 0..9) from each training set, side by side."""
    import matplotlib
    matplotlib.use("Agg")  # a script writing a file: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(grids), figsize=(2.6 * len(grids), 2.6))
    for ax, (name, (x, y)) in zip(np.atleast_1d(axes), grids.items()):
        rows = [np.pad(x[y == digit][:per_class].reshape(-1, 8, 8), ((0, 0), (1, 1), (1, 1)), constant_values=-1)
                for digit in range(CLASSES)]  # one blank pixel around each digit
        mosaic = np.block([[rows[d][i] for d in range(CLASSES)] for i in range(per_class)])
        ax.imshow(mosaic, cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(f"{name.replace('_', ' ')}\naccuracy {results[name]['accuracy']:.3f}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epsilons", type=float, nargs="*", default=[10.0, 1.0])
    parser.add_argument("--skip-non-private", action="store_true", help="train only the private models")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--steps", type=int, default=200, help="DP-SGD steps of each private model")
    parser.add_argument("--non-private-steps", type=int, default=500)
    parser.add_argument("--sample-rate", type=float, default=0.5,
                        help="Poisson rate (DP); the non-private batch is this times N")
    parser.add_argument("--noise-draws", type=int, default=16, help="noise multiplicity K")
    parser.add_argument("--physical-batch", type=int, default=128)
    parser.add_argument("--base", type=int, default=16, help="UNet channels at 8x8")
    parser.add_argument("--mults", type=int, nargs="+", default=[1], help="UNet channel multipliers")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--ema", type=float, default=0.98)
    parser.add_argument("--p-uncond", type=float, default=0.1)
    parser.add_argument("--p-mean", type=float, default=-1.2,
                        help="mean of ln sigma in non-private training (EDM's default)")
    parser.add_argument("--dp-p-mean", type=float, default=1.0,
                        help="mean of ln sigma in DP training (chosen on validation digits, "
                             "benchmarks/dp_digits_sweep.py)")
    parser.add_argument("--p-std", type=float, default=1.2, help="std of ln sigma in training")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--sample-steps", type=int, default=18)
    parser.add_argument("--guidance", type=float, default=2.0,
                        help="classifier-free guidance scale of the non-private model")
    parser.add_argument("--dp-guidance", type=float, default=1.0,
                        help="guidance scale of the private models (1: conditional model, no guidance)")
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--figure", help="write a PNG of digits from each training set here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.figure and not Path(args.figure).resolve().parent.is_dir():
        parser.error(f"--figure {args.figure}: its folder does not exist; create it first")
    x_train, y_train, x_test, y_test = digits_split()
    if args.epsilons and args.delta >= 1 / len(y_train):
        parser.error(f"--delta {args.delta}: not below 1 / N = {1 / len(y_train):.3g}; lower it")
    for epsilon in args.epsilons:  # before any training: settings that no noise can meet
        try:
            privacy.noise_multiplier(epsilon, args.sample_rate, args.steps, args.delta)
        except ValueError as err:
            parser.error(f"--epsilons {epsilon:g}: {err}")
    torch.set_num_threads(args.threads)

    flat_train, flat_test = x_train.flatten(1).numpy(), x_test.flatten(1).numpy()
    features, mlp = feature_map(flat_train, y_train.numpy(), args.seed)
    test_features = features(flat_test)
    results = {"real": {"accuracy": accuracy(flat_train, y_train.numpy(), flat_test, y_test.numpy()),
                        "mlp_accuracy": mlp_accuracy(flat_train, y_train.numpy(), flat_test,
                                                     y_test.numpy()),
                        "frechet": frechet(features(flat_train), test_features)}}
    grids = {"real": (flat_train, y_train.numpy())}
    for epsilon in ([] if args.skip_non_private else [None]) + args.epsilons:
        name = "non_private" if epsilon is None else f"epsilon_{epsilon:g}"
        ema, info = train(args, x_train, y_train, epsilon)
        start = time.perf_counter()
        guidance = args.guidance if epsilon is None else args.dp_guidance
        xs, ys = synthesize(ema, args.per_class, args.sample_steps, guidance, args.seed)
        info["sample_seconds"] = time.perf_counter() - start
        xs, ys = xs.numpy(), ys.numpy()
        results[name] = {"accuracy": accuracy(xs, ys, flat_test, y_test.numpy()),
                         "mlp_accuracy": mlp_accuracy(xs, ys, flat_test, y_test.numpy()),
                         "frechet": frechet(features(xs), test_features),
                         "label_agreement": float(mlp.score(xs, ys)), **info}
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
        grids[name] = (xs, ys)
    if args.figure:
        save_grids(grids, results, args.figure)

    print(json.dumps({
        "data": {"train": len(y_train), "test": len(y_test), "synthetic_per_class": args.per_class},
        "settings": {k: v for k, v in vars(args).items()},
        "classifier": "LogisticRegression(C=0.1) on 64 pixels in [-1, 1]",
        "features": "last hidden layer (64) of MLPClassifier(128, 64) trained on real training digits",
        "feature_mlp_test_accuracy": float(mlp.score(flat_test, y_test.numpy())),
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
