"""CPU threads for torch: how many this process may use, and the default.

The default is the user's OMP_NUM_THREADS, else every CPU this process may
use (:func:`available_cpus`: the affinity mask intersected with the cgroup
CPU quota; torch's own default follows the affinity but ignores the quota),
and OpenMP threads spin only briefly before they sleep while they wait
(:func:`prepare_environment`, GOMP_SPINCOUNT=10000).

Why: torch's OpenMP runtime (libgomp) by default lets a thread that reaches
the end of a parallel region spin for about 300000 iterations (milliseconds)
before sleeping. The VAE runs thousands of short parallel regions per epoch;
when another process holds a CPU, a descheduled thread stalls each region
while the others burn CPU spinning, so more threads means slower training.
Sleeping at once (OMP_WAIT_POLICY=PASSIVE) avoids that but makes every region
pay a wake-up, which on an idle machine can cost a third of the speed. A short
spin keeps most of the idle speed and most of the protection.

Measured with benchmarks/threads_under_load.py (one epoch of ``cryodiff
train-vae``, 2,000 simulated particles, box 32, widths 256, batch 32, 2
threads, ``--shield``, on a 2-core Intel Xeon with AMX/avx512_bf16, torch
2.13; images/s, median of two runs where two are given):

===============================  ===========  ================  ===============
competing busy-loop processes    spin 300000  spin 10000        passive
===============================  ===========  ================  ===============
none                             920          878, 832          662, 618
1                                138          334, 324          485, 481
===============================  ===========  ================  ===============

(1 thread: 542 idle, 537 beside one busy loop.) On an earlier 2-core AMD
EPYC VM (avx2) passive waiting was as fast as spinning when idle and spinning
collapsed to 0.3-0.7x the 1-thread rate under other users' load
(docs/threads.md). On a shared machine, OMP_WAIT_POLICY=PASSIVE or fewer
threads is the better choice; the default favours a machine given to the job.
torch's inter-op pool is not used by training (no thread is started for it),
so only the intra-op count is set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("cryodiff.threads")

#: Where the cgroup file systems are mounted (v2 unified, or v1 per controller).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The process's cgroup membership: "0::/path" (v2) and "N:cpu,cpuacct:/path" (v1) lines.
MEMBERSHIP = Path("/proc/self/cgroup")
#: cgroup v1 mount points of the cpu controller, relative to CGROUP_ROOT.
V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def _read(path: Path) -> str | None:
    """The stripped text of ``path``, or None when it cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` ("QUOTA PERIOD", both in µs;
    QUOTA "max" = no limit): QUOTA / PERIOD, or None without a limit."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = int(fields[1]) if len(fields) > 1 else 100_000
    return int(fields[0]) / period


def parse_cfs(quota: str, period: str) -> float | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
    (µs; a quota of -1 = no limit), or None without a limit."""
    q = int(quota)
    return None if q < 0 else q / int(period)


def _membership(text: str) -> dict[str, str]:
    """Controller name -> cgroup path from /proc/self/cgroup text; "" is the v2 hierarchy."""
    paths = {}
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _ancestors(path: str) -> list[str]:
    """A cgroup path and its ancestors as relative paths, deepest first: "/a/b" -> ["a/b", "a", ""]."""
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[:i]) for i in range(len(parts), -1, -1)]


def _tightest(limits) -> float | None:
    """The smallest of the limits that exist (CPUs), or None when none does."""
    found = [x for x in limits if x is not None]
    return min(found) if found else None


def _parsed(parse, *texts: str | None) -> float | None:
    """``parse(*texts)`` in CPUs, or None when a file is missing or unreadable as a number."""
    if not all(texts):
        return None
    try:
        return parse(*texts)
    except (ValueError, ZeroDivisionError):
        return None


def _v2_limit(root: Path, path: str) -> float | None:
    """The tightest cgroup v2 CPU limit over the process's cgroup and its ancestors (CPUs)."""
    return _tightest(_parsed(parse_cpu_max, _read(root / rel / "cpu.max")) for rel in _ancestors(path))


def _v1_limit(root: Path, path: str) -> float | None:
    """The tightest cgroup v1 CFS CPU limit over the process's cgroup and its ancestors (CPUs)."""
    dirs = [root / mount / rel for mount in V1_CPU_MOUNTS for rel in _ancestors(path)]
    return _tightest(_parsed(parse_cfs, _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")) for d in dirs)


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, membership: Path = MEMBERSHIP) -> float | None:
    """The CPU quota of this process's cgroup (in CPUs, may be fractional), the
    tightest over cgroup v2 ``cpu.max`` and v1 ``cpu.cfs_quota_us`` of its
    cgroup and every ancestor, or None when there is no quota or no cgroup
    file system. A cgroup path missing under ``root`` (a container that sees
    only its own cgroup at ``root``) falls back to ``root`` itself."""
    paths = _membership(_read(membership) or "")
    v2 = _v2_limit(root, paths.get("", "/"))
    v1 = _v1_limit(root, paths.get("cpu", "/"))
    return _tightest([v2, v1])


def _affinity() -> set[int]:
    """CPUs the scheduler may run this process on (all CPUs where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


def available_cpus(root: Path = CGROUP_ROOT, membership: Path = MEMBERSHIP, affinity: set[int] | None = None) -> int:
    """CPUs this process may use: its affinity mask (taskset, SLURM, docker
    --cpuset-cpus) intersected with its cgroup CPU quota (docker --cpus,
    SLURM/systemd CPUQuota), a fractional quota rounded down, never below 1."""
    cpus = len(_affinity() if affinity is None else affinity)
    limit = cgroup_cpu_limit(root, membership)
    if limit is not None:
        cpus = min(cpus, int(limit))
    return max(1, cpus)


def _user_thread_count(environ) -> int | None:
    """A positive OMP_NUM_THREADS the user set (its first level), or None."""
    try:
        count = int(environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        return None
    return count if count > 0 else None


def default_threads(environ=os.environ) -> int:
    """Threads when --threads is not given: the user's OMP_NUM_THREADS if set,
    else every CPU this process may use (:func:`available_cpus`)."""
    return _user_thread_count(environ) or available_cpus()


def configure_threads(requested: int | None) -> int:
    """Set torch's intra-op threads to ``requested`` (a --threads value), or to
    :func:`default_threads` when None; return the number set. A request above
    the available CPUs is honoured with a warning; one below 1 raises
    ValueError."""
    if requested is not None and requested < 1:
        raise ValueError(f"the number of CPU threads must be 1 or more, got {requested}")
    import torch

    count = default_threads() if requested is None else requested
    cpus = available_cpus()
    if count > cpus:
        log.warning("%d threads on %d available CPUs: expect oversubscription", count, cpus)
    torch.set_num_threads(count)
    return count


#: OpenMP busy-wait iterations before a waiting thread sleeps (libgomp's own default: 300000).
SPIN_COUNT = "10000"


def prepare_environment(environ=os.environ) -> None:
    """Let OpenMP threads spin only briefly before they sleep while they wait
    (GOMP_SPINCOUNT=10000), unless the user chose a wait policy (OMP_WAIT_POLICY or
    GOMP_SPINCOUNT). Must run before torch is imported: the OpenMP runtime reads it
    once, when it loads."""
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["GOMP_SPINCOUNT"] = SPIN_COUNT
