"""VAE training on one GPU at large boxes, as JSON: images/s and peak memory (about 10 minutes).

For box 128 and 256, cryoDRGN's default 1024 x 3 encoder and decoder, batch ``--batch-size``:
full optimisation steps (encoder, decoder on the half lattice, CTF, loss, backward, Adam) in
float32, bf16 autocast, and bf16 with ``torch.compile``; after ``--warmup`` steps, ``--steps``
timed steps. Each setting reports images/s and the peak memory the CUDA allocator held
(``torch.cuda.max_memory_allocated``), and a setting that runs out of memory is reported as
such, not skipped. Then one box-256 volume from the 1024 x 3 decoder (time, peak memory).

    python benchmarks/device.py                 # on a GPU machine
    python benchmarks/device.py --smoke         # box 32, tiny networks, on whatever device: a check of the script
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from vae_throughput import _Batch, training_step  # noqa: E402

from recon.training import training_networks  # noqa: E402
from recon.vae import Architecture, HetVAE  # noqa: E402


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None


def training_row(box: int, dim: int, batch: int, amp: bool, compile_: bool, warmup: int, steps: int,
                 device: torch.device) -> dict:
    row = {"box": box, "dim": dim, "batch_size": batch, "bf16": amp, "compile": compile_}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        torch.manual_seed(0)
        model = HetVAE(Architecture(box=box, zdim=8, enc_dim=dim, dec_dim=dim)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        generator = torch.Generator(device=device).manual_seed(0)
        data = _Batch(model, batch, device)
        networks = training_networks(model, amp, compile_)

        def step():
            training_step(model, optimizer, networks, data, generator)

        tic = time.perf_counter()
        for _ in range(warmup):
            step()
        _synchronize(device)
        row["warmup_seconds"] = round(time.perf_counter() - tic, 1)
        tic = time.perf_counter()
        for _ in range(steps):
            step()
        _synchronize(device)
        row["images_per_s"] = round(steps * batch / (time.perf_counter() - tic), 1)
        row["peak_MiB"] = _peak_mib(device)
    except torch.OutOfMemoryError:
        row["out_of_memory"] = True
        row["peak_MiB"] = _peak_mib(device)
    return row


@torch.no_grad()
def volume_row(box: int, dim: int, device: torch.device) -> dict:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = HetVAE(Architecture(box=box, zdim=8, enc_dim=16, enc_layers=1, dec_dim=dim)).to(device)
    model.volume(torch.zeros(8))  # warm-up
    _synchronize(device)
    tic = time.perf_counter()
    volume = model.volume(torch.zeros(8))
    _synchronize(device)
    return {"box": box, "dec_dim": dim, "shape": list(volume.shape), "seconds": round(time.perf_counter() - tic, 2),
            "peak_MiB": _peak_mib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16, help="images per step (cryoDRGN's default: 8)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="box 32, width 64: a check of the script")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    boxes, dim = ((32,), 64) if args.smoke else ((128, 256), 1024)
    settings = ((False, False), (True, False), (True, True))
    rows = [training_row(box, dim, args.batch_size, amp, comp, args.warmup, args.steps, device)
            for box in boxes for amp, comp in settings]
    result = {"benchmark": "device", "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "training": rows, "volume": volume_row(boxes[-1], dim, device)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
