"""VAE training speed (images/s) against torch threads, competing CPU-bound
processes and the OpenMP wait policy, as JSON.

A small simulated data set is written to a temporary folder, then one epoch of
``cryodiff train-vae`` runs in a fresh process for every setting:

* threads: the ``--threads`` value, or ``auto`` for no ``--threads`` (the
  command's default);
* competitors: how many CPU-bound single-thread processes (a pure Python busy
  loop) run on the same CPUs during the epoch, like other users on a shared
  workstation;
* policy: what OpenMP threads do while they wait at the end of a parallel
  region. ``spin`` is libgomp's own default (busy-wait about 300000 spins,
  milliseconds, then sleep), set explicitly as ``GOMP_SPINCOUNT=300000``,
  which keeps spinning even where the command sets OMP_WAIT_POLICY=PASSIVE
  itself; ``passive`` is ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once);
  ``active`` is ``OMP_WAIT_POLICY=ACTIVE`` (spin much longer); ``spin10k`` is
  ``GOMP_SPINCOUNT=10000`` (a short spin, tens of microseconds, then sleep), ``spin2k`` a
  fifth of that.

Settings run round-robin ``--repeats`` times, so that load from other users
of the machine spreads over all of them. Each row reports the median images/s
of the epoch (from RUN/log.jsonl), its ratio to the idle 1-thread rate (the
row with 1 thread, no competitor, ``spin``), the trainer process's CPU seconds
per wall second (cores it kept busy, start-up and spinning included) and the
1-minute load average before each run. The machine block records the CPU
flags that select torch's kernels (avx2, avx512f, avx512_bf16, amx), the CPUs
this process may use, and the torch version and threading library.
``--shield`` (root) keeps other users' load out of the numbers.

    python benchmarks/threads_under_load.py            # 4 min on 2 idle cores (or --shield)
    python benchmarks/threads_under_load.py --threads 1 2 4 auto --competitors 0 2 \\
        --policy spin passive --repeats 3 --n 3000
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLICIES = {
    "spin": {"GOMP_SPINCOUNT": "300000"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
    "spin2k": {"GOMP_SPINCOUNT": "2000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
}
THREAD_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BUSY_LOOP = "while True: pass"
CLI = [sys.executable, "-m", "cryodiff.cli.main"]


def cpuinfo(field: str) -> str:
    """The first value of ``field`` in /proc/cpuinfo ("" where unknown)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":")[0].strip() == field), "")


def cpu_features() -> list[str]:
    """The CPU flags that decide which torch CPU kernels run (bf16 and AMX ones for --amp)."""
    flags = cpuinfo("flags").split()
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16") if f in flags]


def machine() -> dict:
    """CPU model, features, usable CPUs, torch version and threading library."""
    import torch

    from cryodiff.threads import available_cpus

    info = torch.__config__.parallel_info()
    return {
        "cpu": cpuinfo("model name") or "unknown",
        "cpu_features": cpu_features(),
        "logical_cpus": os.cpu_count(),
        "available_cpus": available_cpus(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "parallel_backend": next((line.split(":", 1)[1].strip() for line in info.splitlines() if "parallel backend" in line), "unknown"),
        "python": sys.version.split()[0],
    }


def simulate(folder: Path, n: int, box: int) -> Path:
    """Write n simulated particles of box px (6 Å/px, SNR 0.5); return the .star path."""
    subprocess.run([*CLI, "simulate", str(folder), "-n", str(n), "-D", str(box), "--apix", "6", "--snr", "0.5"],
                   check=True, capture_output=True)
    return folder / "particles.star"


def child_env(policy: str) -> dict:
    """The environment of a training run: this one without thread settings, plus the policy's."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    return {**env, **POLICIES[policy]}


def niced(cmd: list[str], shield: bool) -> list[str]:
    """``cmd`` at nice -20 when shielding (all runs alike, so they still compete evenly with each other)."""
    return ["nice", "-n", "-20", *cmd] if shield else cmd


@contextlib.contextmanager
def shielded(shield: bool):
    """While active, give this session's scheduler autogroup nice -20 (Linux,
    root), so that other users' sessions barely take CPU from the runs. Under
    autogroup scheduling a process's own nice value only counts against
    processes of the same session, so ``nice`` alone does not shield."""
    path = Path("/proc/self/autogroup")
    if not (shield and path.exists()):
        yield
        return
    before = path.read_text().split()[-1]
    path.write_text("-20")
    try:
        yield
    finally:
        path.write_text(before)


def start_competitors(count: int, shield: bool) -> list[subprocess.Popen]:
    """Start ``count`` single-thread busy-loop processes (each wants one full CPU)."""
    return [subprocess.Popen(niced([sys.executable, "-c", BUSY_LOOP], shield)) for _ in range(count)]


def stop(procs: list[subprocess.Popen]) -> None:
    """Kill and reap the given processes."""
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def train_once(star: Path, run: Path, threads: str, competitors: int, policy: str, args) -> dict:
    """One epoch in a fresh process; images/s of the epoch, trainer CPU s per wall s, load before."""
    load = float(Path("/proc/loadavg").read_text().split()[0])
    rivals = start_competitors(competitors, args.shield)
    try:
        time.sleep(0.5 if competitors else 0.0)  # let the busy loops reach full speed
        cmd = [*CLI, "train-vae", str(star), "-o", str(run), "--zdim", "8", "-n", "1", "--enc-dim", str(args.dim),
               "--dec-dim", str(args.dim), "-b", str(args.batch_size), "--lr", "1e-3"]
        if threads != "auto":
            cmd += ["--threads", threads]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        tic = time.perf_counter()
        subprocess.run(niced(cmd, args.shield), check=True, capture_output=True, env=child_env(policy))
        wall = time.perf_counter() - tic
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        stop(rivals)
    record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"images_per_s": record["images_per_s"], "cores_busy": cpu / wall, "load_1min": load}


def summarise(samples: dict, policies: list[str]) -> list[dict]:
    """Median per setting, with the ratio to the idle 1-thread rate of the reference policy."""
    reference_policy = "spin" if "spin" in policies else policies[0]
    reference = samples.get(("1", 0, reference_policy))
    ref_rate = statistics.median(s["images_per_s"] for s in reference) if reference else None
    rows = []
    for (threads, competitors, policy), runs in samples.items():
        rate = statistics.median(s["images_per_s"] for s in runs)
        rows.append({
            "threads": threads, "competitors": competitors, "policy": policy,
            "images_per_s": round(rate, 1),
            "ratio_to_idle_1_thread": round(rate / ref_rate, 2) if ref_rate else None,
            "cores_busy": round(statistics.median(s["cores_busy"] for s in runs), 2),
            "samples_images_per_s": [round(s["images_per_s"], 1) for s in runs],
            "load_1min_before": [s["load_1min"] for s in runs],
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", nargs="+", default=["1", "2"], help="--threads values, or auto (default: 1 2)")
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 2], help="busy-loop processes (default: 0 1 2)")
    parser.add_argument("--policy", nargs="+", default=["spin", "passive"], choices=list(POLICIES), help="OpenMP wait policies (default: spin passive)")
    parser.add_argument("--repeats", type=int, default=1, help="round-robin passes over all settings (default: 1)")
    parser.add_argument("--n", type=int, default=480, help="particles (default: 480)")
    parser.add_argument("--box", type=int, default=32, help="box size in px (default: 32)")
    parser.add_argument("--dim", type=int, default=256, help="encoder/decoder width (default: 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--shield", action="store_true",
                        help="run trainer and competitors at top priority (nice -20 and autogroup nice -20; root "
                             "only) so that other users' load barely disturbs them; it slows those users down")
    args = parser.parse_args()
    grid = list(itertools.product(args.threads, args.competitors, args.policy))
    samples: dict = {key: [] for key in grid}
    with tempfile.TemporaryDirectory() as tmp, shielded(args.shield):
        star = simulate(Path(tmp) / "data", args.n, args.box)
        for rep, (threads, competitors, policy) in itertools.product(range(args.repeats), grid):
            run = Path(tmp) / f"run_{rep}_{threads}_{competitors}_{policy}"
            samples[(threads, competitors, policy)].append(train_once(star, run, threads, competitors, policy, args))
            print(f"threads {threads}, competitors {competitors}, {policy}: "
                  f"{samples[(threads, competitors, policy)][-1]['images_per_s']:.1f} images/s", file=sys.stderr)
    settings = {"n": args.n, "box": args.box, "dim": args.dim, "batch_size": args.batch_size, "repeats": args.repeats, "shield": args.shield,
                "policies": {k: POLICIES[k] for k in args.policy}, "competitor": f"python -c '{BUSY_LOOP}'"}
    print(json.dumps({"machine": machine(), "settings": settings, "results": summarise(samples, args.policy)}, indent=1))


if __name__ == "__main__":
    main()
