"""Peak memory of lazy (--lazy) VAE training as the number of particles grows, as JSON.

For each N, a stack of N random 64 px images is written to a temporary folder
and one epoch of training runs in a fresh process with a small network
(enc/dec width 16), reading images per batch from disk. A thread samples
/proc/self/status every 50 ms and reports the peak anonymous memory
(RssAnon: what the process itself allocates, the memory that can run out) and
the peak file-backed resident memory (RssFile: pages of the memory-mapped
stack, which the kernel drops under memory pressure). Bounded lazy training
means RssAnon does not grow with N beyond the per-particle latents
(N x zdim floats).

    python benchmarks/lazy_memory.py --n 5000 20000 40000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
import mrcfile, numpy as np, torch

def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024  # MiB
    return out

peak = {"RssAnon": 0.0, "RssFile": 0.0}
def sample():
    while True:
        for k, v in status().items():
            peak[k] = max(peak[k], v)
        time.sleep(0.05)

n, box, folder = int(sys.argv[1]), 64, Path(sys.argv[2])
stack = folder / "stack.mrcs"
with mrcfile.new_mmap(stack, shape=(n, box, box), mrc_mode=2, overwrite=True) as mrc:
    rng = np.random.default_rng(0)
    for s in range(0, n, 2000):
        mrc.data[s:s + 2000] = rng.normal(size=(min(2000, n - s), box, box)).astype(np.float32)

from recon.io import ImageStack
from recon.training import TrainingData, TrainSettings, train_vae
from recon.vae import Architecture
from scipy.spatial.transform import Rotation

images = ImageStack([stack])
ctf = np.tile([box, 2.0, 15000, 14000, 0, 300, 2.7, 0.1, 0], (n, 1))
data = TrainingData(images, np.arange(n), Rotation.random(n, random_state=0).as_matrix(), np.zeros((n, 2)), ctf, box, 2.0)
threading.Thread(target=sample, daemon=True).start()
before = status()
start = time.perf_counter()
arch = Architecture(box=box, zdim=8, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1)
train_vae(data, arch, TrainSettings(epochs=1, batch_size=64), folder / "run", show_progress=False)
time.sleep(0.1)
print(json.dumps({"n_particles": n, "seconds": time.perf_counter() - start, "before_MiB": before,
                  "peak_RssAnon_MiB": peak["RssAnon"], "peak_RssFile_MiB": peak["RssFile"],
                  "stack_MiB": stack.stat().st_size / 2**20}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[5000, 20000, 40000])
    args = parser.parse_args()
    rows = []
    for n in args.n:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", CHILD, str(n), tmp], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"results": rows}, indent=1))


if __name__ == "__main__":
    main()
