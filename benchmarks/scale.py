"""Data sets larger than memory, on CPU: reading a float16 stack of several GB lazily, as JSON.

Stages (each measurement in a fresh process, which samples its own /proc/self/status every
50 ms for the peak resident memory: RssAnon, what it allocated, and RssFile, file pages
mapped into it):

1. simulate ``--subset`` particles at box ``--box`` (:func:`recon.synthetic.write_synthetic_dataset`,
   SNR 0.1): the "subset that fits" of the acceptance;
2. write a float16 (MRC mode 12) stack of at least ``--gigabytes`` GB by tiling those images
   with fresh noise (a simulated stack, deleted at the end);
3. drop the page cache (when permitted: root on Linux) and read one whole epoch of the big stack
   in the chunk-shuffled order (``recon.loader``, chunks of ``--chunk`` images, windows of 8,
   batches of 64, grouped reads as ``train-vae --lazy --shuffle-chunk`` does), then, from a
   cold cache again, ``--random-batches`` batches of the uniformly shuffled order: images/s and
   peak memory;
4. train the VAE for one epoch on the subset (``--dim`` x 2 networks, zdim 8, batch 64): images
   in memory, lazily in the shuffled order, lazily chunk-shuffled; images/s and peak memory.

    python benchmarks/scale.py [--gigabytes 8] [--box 128] [--quick]

The full stack is not trained on here: at box 128 this CPU's model step is the bottleneck by
orders of magnitude (stage 4's images/s against stage 3's), so an epoch of 250k particles
would take hours; the loader's rate shows that it would not slow such an epoch down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


class PeakMemory:
    """Samples this process's RssAnon and RssFile (MiB) every 50 ms in a thread."""

    def __init__(self):
        self.peak = {"RssAnon": 0.0, "RssFile": 0.0}
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            for line in open("/proc/self/status"):
                key, _, value = line.partition(":")
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(value.split()[0]) / 1024)
            time.sleep(0.05)

    def report(self) -> dict:
        time.sleep(0.1)
        return {"peak_RssAnon_MiB": round(self.peak["RssAnon"], 1), "peak_RssFile_MiB": round(self.peak["RssFile"], 1)}


def write_big_stack(small: Path, big: Path, gigabytes: float, seed: int = 0) -> int:
    """Tile the images of ``small`` (with fresh Gaussian noise of 0.3x their spread) into a float16
    stack at ``big`` of at least ``gigabytes`` GB; returns the number of images."""
    from recon.io import ImageStack
    from recon.io.mrc import new_stack_mmap

    source = ImageStack([small])
    images = source[:]
    box = source.box
    n = int(np.ceil(gigabytes * 1e9 / (2 * box * box)))
    spread = float(images.std())
    rng = np.random.default_rng(seed)
    with new_stack_mmap(big, (n, box, box), 1.0, float16=True) as mrc:
        for start in range(0, n, len(images)):
            count = min(len(images), n - start)
            noise = rng.standard_normal((count, box, box), dtype=np.float32) * (0.3 * spread)
            mrc.data[start:start + count] = (images[:count] + noise).astype(np.float16)
    return n


def drop_page_cache() -> bool:
    """Ask Linux to drop clean cached pages, so the next read comes from the disk (needs root)."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def phase_read(stack: str, order_kind: str, chunk: int, batches: int) -> dict:
    """Read the big stack in batches of 64 in one order; images/s and peak memory."""
    from recon.io import ImageStack
    from recon.loader import Batches, batches_of, epoch_order, file_order
    from recon.training import READ_BYTES

    memory = PeakMemory()
    images = ImageStack([stack])
    n, box = len(images), images.box
    indices = np.arange(n)
    if order_kind == "chunked":
        order = epoch_order(n, 0, 1, chunk=chunk, window=8, stored=file_order(images, indices))
        group = min(chunk * 8, READ_BYTES // (4 * box * box)) // 64
    else:
        order, group = epoch_order(n, 0, 1), 1
    parts = batches_of(order, 64)[:batches] if batches else batches_of(order, 64)
    start, count = time.perf_counter(), 0
    for _, batch in Batches(images, indices, box, parts, group):
        count += len(batch)
    seconds = time.perf_counter() - start
    return {"order": order_kind, "images": count, "seconds": round(seconds, 2), "images_per_s": round(count / seconds, 1),
            "MB_per_s": round(count * box * box * 2 / seconds / 1e6, 1), **memory.report()}


def phase_train(folder: str, mode: str, dim: int, chunk: int) -> dict:
    """One epoch of VAE training on the subset: ``memory``, ``lazy`` or ``lazy_chunked``."""
    import torch

    from recon.training import TrainSettings, default_amp, train_vae, training_data
    from recon.vae import Architecture

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    memory = PeakMemory()
    data = training_data(Path(folder) / "particles.star")
    if mode == "memory":
        data.images.load()
    arch = Architecture(box=data.box, zdim=8, enc_dim=dim, enc_layers=2, dec_dim=dim, dec_layers=2)
    settings = TrainSettings(epochs=1, batch_size=64, shuffle_chunk=chunk if mode == "lazy_chunked" else 0)
    with tempfile.TemporaryDirectory() as run:
        train_vae(data, arch, settings, run, show_progress=False)
        epoch = json.loads((Path(run) / "log.jsonl").read_text().splitlines()[0])
    return {"mode": mode, "images_per_s": round(epoch["images_per_s"], 2), "epoch_seconds": round(epoch["seconds"], 1),
            "amp_bf16": default_amp(torch.device("cpu")), **memory.report()}


def child(*args) -> dict:
    done = subprocess.run([sys.executable, __file__, "_phase", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"phase {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_phase":
        name, rest = sys.argv[2], sys.argv[3:]
        result = (phase_read(rest[0], rest[1], int(rest[2]), int(rest[3])) if name == "read"
                  else phase_train(rest[0], rest[1], int(rest[2]), int(rest[3])))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=8.0, help="size of the float16 stack (default: %(default)s)")
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--subset", type=int, default=4096, help="simulated particles, the subset that fits in memory")
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width for the training stage")
    parser.add_argument("--chunk", type=int, default=1024, help="images per chunk of the chunk-shuffled order")
    parser.add_argument("--random-batches", type=int, default=300, help="batches read in the uniformly shuffled order")
    parser.add_argument("--workdir", help="where to write the stacks (default: a temporary folder; removed at the end)")
    parser.add_argument("--quick", action="store_true", help="a 0.05 GB stack at box 32 (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.gigabytes, args.box, args.subset, args.dim, args.chunk, args.random_batches = 0.05, 32, 256, 32, 64, 20
    from threads_under_load import cpu_features

    from recon.synthetic import write_synthetic_dataset

    root = Path(tempfile.mkdtemp(prefix="cryodiff-scale-", dir=args.workdir))
    result = {"benchmark": "scale/lazy", "config": vars(args),
              "machine": {"cpu": platform.processor() or platform.machine(), "features": cpu_features(),
                          "threads": int(os.environ.get("OMP_NUM_THREADS", "2"))}}
    try:
        tic = time.perf_counter()
        write_synthetic_dataset(root / "subset", n=args.subset, box=args.box, apix=3.0, snr=0.1, seed=0, grid=2)
        result["simulate_seconds"] = round(time.perf_counter() - tic, 1)
        tic = time.perf_counter()
        big = root / "big.mrcs"
        n = write_big_stack(root / "subset" / "particles.mrcs", big, args.gigabytes)
        result["big_stack"] = {"images": n, "GB": round(big.stat().st_size / 1e9, 2), "mode": 12,
                               "write_seconds": round(time.perf_counter() - tic, 1)}
        result["cold_cache"] = drop_page_cache()
        result["read_epoch_chunked"] = child("read", big, "chunked", args.chunk, 0)
        drop_page_cache()
        result["read_shuffled"] = child("read", big, "shuffled", args.chunk, args.random_batches)
        train = {mode: child("train", root / "subset", mode, args.dim, args.chunk // 4)
                 for mode in ("memory", "lazy", "lazy_chunked")}
        result["train_subset"] = train
        for mode in ("lazy", "lazy_chunked"):
            result[f"{mode}_vs_memory_images_per_s"] = round(train[mode]["images_per_s"] / train["memory"]["images_per_s"], 3)
        result["loader_vs_training_images_per_s"] = round(
            result["read_epoch_chunked"]["images_per_s"] / train["memory"]["images_per_s"], 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
