"""Several processes training one model: PyTorch's own distributed engine, started by ``torchrun``.

``torchrun`` starts one process per device (or per CPU share) and tells each its place in
the environment variables ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`init_from_environment` joins the process group they describe (NCCL between GPUs,
gloo on CPUs). Without those variables, or with ``WORLD_SIZE=1``, nothing is initialised
and every helper here is the single-process identity, so the same training code runs
either way.

Conventions the training code keeps so that the number of processes never changes the
result:

* the order of the particles in an epoch and every random draw are functions of the seed
  and the epoch only, drawn identically on every rank;
* a global batch of ``B`` particles is split into ``WORLD_SIZE`` contiguous parts
  (:func:`shard`), one per rank; each rank's loss is its part's sum over particles divided
  by ``B`` and multiplied by ``WORLD_SIZE``, so that DistributedDataParallel's average of
  the ranks' gradients is the gradient of the global batch mean even when the parts differ
  in size;
* only rank 0 writes files (:func:`is_main`).
"""

from __future__ import annotations

import logging
import os
import sys

import numpy as np
import torch
import torch.distributed as dist


def init_from_environment() -> None:
    """Join the process group ``torchrun`` describes, once; a no-op for a single process.

    With GPUs each process takes the one numbered ``LOCAL_RANK`` and the group talks over
    NCCL; on CPUs over gloo. The rendezvous (address, port, several nodes) is torchrun's.
    """
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def end_process(code: int) -> None:
    """In a process of a torchrun group: leave the group and end the process at once with ``code``;
    without a process group, return.

    A process that used gloo can abort in the interpreter's own teardown, after every Python
    frame is gone ("terminate called without an active exception": a C++ thread of the
    transport destroyed while still running; about 1 run in 20 on 2 CPUs with torch 2.13, with
    or without ``destroy_process_group`` first), and torchrun then kills the other ranks while
    they write. So, once the command is done and its files are closed, the logs and standard
    streams are flushed and the process ends with ``os._exit``, which skips that teardown.
    """
    if not dist.is_initialized():
        return
    dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def rank() -> int:
    """This process's number, 0 to ``world_size() - 1`` (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes training together (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True in the one process that writes files, logs and shows progress."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process gets here (returns at once for a single process)."""
    if dist.is_initialized():
        dist.barrier()


def shard(count: int) -> slice:
    """This rank's contiguous part of ``count`` items (the sizes differ by at most one)."""
    world, me = world_size(), rank()
    bounds = np.linspace(0, count, world + 1).round().astype(int)
    return slice(int(bounds[me]), int(bounds[me + 1]))


def sum_over_ranks(array: np.ndarray, device: torch.device) -> np.ndarray:
    """The element-wise sum of ``array`` over all ranks (a copy of ``array`` for one process).

    Used to assemble per-particle results: each rank fills its own rows and leaves the
    others zero. ``device`` is where the collective runs (the GPU for NCCL)."""
    if not dist.is_initialized():
        return array.copy()
    tensor = torch.as_tensor(np.ascontiguousarray(array), device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()
