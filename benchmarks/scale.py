"""Scale on CPU, as JSON: stacks larger than memory (``lazy``) and a million latents (``latents``).

``lazy`` stages (each measurement in a fresh process, which samples its own /proc/self/status every
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

``latents`` stages, each in a fresh process with its peak memory: ``--latents`` latents of zdim 8
(six Gaussian blobs and a curved tube between two of them; ``--quick``: 20,000) written as .npy;
the steps of ``cryodiff analyze`` on them (PCA, UMAP fitted on 100k and the rest placed, k-means
on mini-batches, the scatter and hexbin plots); ``cryodiff train-prior`` with its default steps,
``cryodiff sample -n`` the same number, ``cryodiff score-particles`` on all of them (one
Hutchinson probe, 16 Heun steps).

    python benchmarks/scale.py lazy [--gigabytes 8] [--box 128] [--quick]
    python benchmarks/scale.py latents [--latents 1000000] [--quick]
    python benchmarks/scale.py memory [--quick]

``memory`` stages: the memory of a training step above the model's and Adam's own (peak RssAnon
of two steps in a fresh process) at box 64, 128 and 256, widths 256 and 1024 (3 hidden layers),
float32 and bf16 autocast, batches of 1 and 2 (their difference: memory per particle in a batch);
one box-256 volume from a 1024 x 3 decoder (time and peak memory).

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


def make_latents(n: int, path: Path, seed: int = 0) -> None:
    """``n`` latents ``[n, 8]``: 85 % in six Gaussian blobs of unequal weight, 15 % on a curved tube."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(6, 8))
    weights = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])
    blob = rng.choice(6, size=int(0.85 * n), p=weights)
    z_blobs = centres[blob] + rng.normal(scale=0.4, size=(len(blob), 8))
    t = rng.uniform(size=(n - len(blob), 1))
    bend = np.sin(np.pi * t) * np.linspace(1, -1, 8)
    z_tube = (1 - t) * centres[0] + t * centres[1] + 2.0 * bend + rng.normal(scale=0.15, size=(len(t), 8))
    np.save(path, rng.permutation(np.concatenate([z_blobs, z_tube])).astype(np.float32))


def phase_analyze(latents: str, out: str) -> dict:
    """The steps of ``cryodiff analyze`` on the latents (no volumes: no decoder here)."""
    from cryodiff import analysis_report as rep
    from recon.analysis import kmeans_centres, pca, umap_embedding

    memory = PeakMemory()
    z = np.load(latents)
    times = {}
    tic = time.perf_counter()
    fit = pca(z)
    times["pca"] = time.perf_counter() - tic
    tic = time.perf_counter()
    emb = umap_embedding(z)
    times["umap"] = time.perf_counter() - tic
    tic = time.perf_counter()
    labels, _, rows = kmeans_centres(z, 20)
    times["kmeans20"] = time.perf_counter() - tic
    tic = time.perf_counter()
    rep.plot_latent_scatter(emb, labels, emb[rows], ("UMAP1", "UMAP2"), "UMAP", Path(out) / "umap.png")
    rep.plot_latent_hexbin(emb, emb[rows], ("UMAP1", "UMAP2"), "UMAP", Path(out) / "umap_hexbin.png")
    rep.plot_latent_hexbin(fit.projections[:, :2], fit.projections[rows, :2], ("PC1", "PC2"), "PCA", Path(out) / "pca_hexbin.png")
    times["plots"] = time.perf_counter() - tic
    return {"seconds": {k: round(v, 1) for k, v in times.items()}, "total_seconds": round(sum(times.values()), 1),
            **memory.report()}


def phase_command(*argv: str) -> dict:
    """One ``cryodiff`` command, timed."""
    from cryodiff.cli.main import main as cryodiff

    memory = PeakMemory()
    tic = time.perf_counter()
    code = cryodiff(list(argv))
    if code not in (0, None):
        raise SystemExit(f"cryodiff {' '.join(argv)} exited with {code}")
    return {"command": argv[0], "seconds": round(time.perf_counter() - tic, 1), **memory.report()}


def latents_section(args) -> dict:
    n = 20_000 if args.quick else args.latents
    root = Path(tempfile.mkdtemp(prefix="cryodiff-latents-", dir=args.workdir))
    result = {"benchmark": "scale/latents", "latents": n, "zdim": 8}
    try:
        make_latents(n, root / "z.npy")
        result["analyze"] = child("analyze", root / "z.npy", root)
        steps = ["--steps", "200"] if args.quick else []
        result["train_prior"] = child("command", "train-prior", root / "z.npy", "-o", root / "prior", *steps)
        result["train_prior"]["steps"] = json.loads((root / "prior" / "prior.json").read_text())["settings"]["steps"]
        result["sample"] = child("command", "sample", root / "prior", "-n", n, "-o", root / "sampled.npy")
        # the exact divergence at the default 64 steps is hours for a million latents on 2 cores:
        # one Hutchinson probe and 16 steps, as docs/large_datasets.md advises for this size
        result["score_particles"] = child("command", "score-particles", root / "prior", "--latents", root / "z.npy",
                                          "-o", root / "scores.h5", "--probes", 1, "--steps", 16)
        result["score_particles"].update(probes=1, steps=16)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def phase_step_memory(box: str, dim: str, batch: str, amp: str) -> dict:
    """Peak memory above the model's own of two training steps (random targets, CTF, Adam)."""
    import torch
    from scipy.spatial.transform import Rotation

    from recon.ctf import ctf_from_params
    from recon.training import _loss, training_networks
    from recon.vae import Architecture, HetVAE

    box, dim, batch, amp = int(box), int(dim), int(batch), amp == "1"
    torch.manual_seed(0)
    model = HetVAE(Architecture(box=box, zdim=8, enc_dim=dim, dec_dim=dim))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    class Batch:
        ctf = ctf_from_params(model.coords[:, :2], torch.tensor([[box, 2.0, 15000, 14000, 10, 300, 2.7, 0.1, 0]] * batch))
        target = torch.randn(batch, model.n_pixels)
        encoder_input = target * torch.sign(ctf)
        rotations = torch.as_tensor(Rotation.random(batch, random_state=0).as_matrix(), dtype=torch.float32)

    networks = training_networks(model, amp)
    for _ in range(1):  # Adam's state exists before the baseline
        loss = _loss(networks, model, Batch, 0.125, torch.randn(batch, 8), 1 / batch)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    time.sleep(0.2)
    memory = PeakMemory()
    time.sleep(0.2)
    base = memory.peak["RssAnon"]
    tic = time.perf_counter()
    for _ in range(2):
        loss = _loss(networks, model, Batch, 0.125, torch.randn(batch, 8), 1 / batch)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = (time.perf_counter() - tic) / 2
    report = memory.report()
    return {"box": box, "dim": dim, "batch": batch, "amp_bf16": amp, "model_and_adam_MiB": round(base, 1),
            "step_MiB": round(report["peak_RssAnon_MiB"] - base, 1), "seconds_per_step": round(seconds, 2),
            "parameters": sum(p.numel() for p in model.parameters())}


def phase_volume(box: str, dim: str) -> dict:
    """One volume of an (untrained) VAE at box ``box`` with a ``dim`` x 3 decoder: time and peak memory."""
    import torch

    from recon.vae import Architecture, HetVAE

    box, dim = int(box), int(dim)
    model = HetVAE(Architecture(box=box, zdim=8, enc_dim=16, enc_layers=1, dec_dim=dim))
    memory = PeakMemory()
    time.sleep(0.2)
    base = memory.peak["RssAnon"]
    tic = time.perf_counter()
    volume = model.volume(torch.zeros(8))
    seconds = time.perf_counter() - tic
    report = memory.report()
    return {"box": box, "dec_dim": dim, "shape": list(volume.shape), "seconds": round(seconds, 1),
            "model_MiB": round(base, 1), "volume_peak_MiB": round(report["peak_RssAnon_MiB"] - base, 1)}


def memory_section(args) -> dict:
    """Training-step memory against box, width and precision; one box-256 volume."""
    rows = []
    boxes = (32,) if args.quick else (64, 128, 256)
    for box in boxes:
        for dim in ((64,) if args.quick else (256, 1024)):
            for batch in (1, 2):
                for amp in ("0", "1"):
                    rows.append(child("step_memory", box, dim, batch, amp))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # kept if the run is stopped
    per_particle = {}
    for row in rows:
        if row["batch"] == 2:
            one = next(r for r in rows if r["batch"] == 1 and r["box"] == row["box"] and r["dim"] == row["dim"]
                       and r["amp_bf16"] == row["amp_bf16"])
            per_particle[f"box{row['box']}_dim{row['dim']}_{'bf16' if row['amp_bf16'] else 'fp32'}"] = round(
                row["step_MiB"] - one["step_MiB"], 1)
    # the 4.4 million lattice points of half the Nyquist sphere go through the decoder: about 3e13
    # flops at 1024 x 3, many minutes on a 2-core CPU, seconds on a GPU (benchmarks/device.py)
    volume = child("volume", 32 if args.quick else 256, 64 if args.quick else 1024)
    return {"benchmark": "scale/memory", "steps": rows, "MiB_per_particle_in_batch": per_particle, "volume": volume}


def child(*args) -> dict:
    done = subprocess.run([sys.executable, __file__, "_phase", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"phase {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_phase":
        name, rest = sys.argv[2], sys.argv[3:]
        if name == "read":
            result = phase_read(rest[0], rest[1], int(rest[2]), int(rest[3]))
        elif name == "train":
            result = phase_train(rest[0], rest[1], int(rest[2]), int(rest[3]))
        elif name == "analyze":
            result = phase_analyze(*rest)
        elif name == "step_memory":
            result = phase_step_memory(*rest)
        elif name == "volume":
            result = phase_volume(*rest)
        else:
            result = phase_command(*rest)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=["lazy", "latents", "memory"])
    parser.add_argument("--latents", type=int, default=1_000_000, help="latents for the latents section")
    parser.add_argument("--gigabytes", type=float, default=8.0, help="size of the float16 stack (default: %(default)s)")
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--subset", type=int, default=4096, help="simulated particles, the subset that fits in memory")
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width for the training stage")
    parser.add_argument("--chunk", type=int, default=1024, help="images per chunk of the chunk-shuffled order")
    parser.add_argument("--random-batches", type=int, default=300, help="batches read in the uniformly shuffled order")
    parser.add_argument("--workdir", help="where to write the stacks (default: a temporary folder; removed at the end)")
    parser.add_argument("--quick", action="store_true", help="a 0.05 GB stack at box 32, 20k latents (smoke test)")
    args = parser.parse_args()
    machine = {"cpu": platform.processor() or platform.machine(), "threads": int(os.environ.get("OMP_NUM_THREADS", "2"))}
    if args.section in ("latents", "memory"):
        section = latents_section if args.section == "latents" else memory_section
        print(json.dumps(section(args) | {"machine": machine}, indent=1))
        return
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
