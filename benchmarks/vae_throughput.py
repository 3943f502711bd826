"""Training throughput of the VAE (images/s) on in-memory random data, as JSON.

Measures full optimisation steps (encoder, half-slice decoder, CTF multiply,
loss, backward, Adam) for each combination of box, width and precision, after
warm-up. Use it to compare settings on one machine; compare with cryoDRGN with
benchmarks/vs_cryodrgn.py.

    python benchmarks/vae_throughput.py --box 64 128 --dim 256 1024 --amp off on
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from scipy.spatial.transform import Rotation

from recon.ctf import ctf_from_params
from recon.training import _loss, training_networks
from recon.vae import Architecture, HetVAE


class _Batch:
    def __init__(self, model: HetVAE, n: int, device):
        ctf = torch.tensor([[model.arch.box, 2.0, 15000, 14000, 10, 300, 2.7, 0.1, 0]] * n, device=device)
        self.ctf = ctf_from_params(model.coords[:, :2], ctf)
        self.target = torch.randn(n, model.n_pixels, device=device)
        self.encoder_input = self.target * torch.sign(self.ctf)
        self.rotations = torch.as_tensor(Rotation.random(n, random_state=0).as_matrix(), dtype=torch.float32, device=device)


def training_step(model: HetVAE, optimizer, networks, batch: _Batch, generator: torch.Generator) -> None:
    """One full optimisation step on ``batch`` (KL weight 1/8, zdim 8)."""
    noise = torch.randn(len(batch.target), 8, generator=generator, device=batch.target.device)
    loss = _loss(networks, model, batch, 0.125, noise, 1 / len(batch.target))[0]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(box: int, dim: int, batch_size: int, amp: bool, compile_: bool, steps: int, device) -> float:
    torch.manual_seed(0)
    model = HetVAE(Architecture(box=box, zdim=8, enc_dim=dim, dec_dim=dim)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    batch = _Batch(model, batch_size, device)
    networks = training_networks(model, amp, compile_)

    def step():
        training_step(model, opt, networks, batch, gen)

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--box", type=int, nargs="+", default=[64])
    parser.add_argument("--dim", type=int, nargs="+", default=[256])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--amp", nargs="+", default=["off"], choices=["off", "on"])
    parser.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for box in args.box:
        for dim in args.dim:
            for amp in args.amp:
                for comp in args.compile:
                    rate = measure(box, dim, args.batch_size, amp == "on", comp == "on", args.steps, device)
                    rows.append({"box": box, "dim": dim, "batch_size": args.batch_size, "amp": amp, "compile": comp, "images_per_s": round(rate, 1)})
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(json.dumps({"device": name, "torch": torch.__version__, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
