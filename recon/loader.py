"""The order of the particles in an epoch, and the image batches read from disk in that order.

Two orders, both functions of ``(seed, epoch)`` only (never of the number of processes, so a
run resumes identically with another one):

* **shuffled** (``chunk=0``): a uniform permutation of all particles. Right when the images
  are in memory, or when the stacks fit in the page cache.
* **chunk-shuffled** (``chunk > 0``): the particles, in the order they lie in their stacks,
  are cut into chunks of ``chunk`` consecutive images; the chunks are permuted, taken
  ``window`` at a time, and the particles of each window permuted together. A stretch of
  ``chunk * window`` particles of the order comes from ``window`` contiguous runs of the
  files, so a stack far larger than memory is read nearly sequentially, while a batch still
  mixes particles from ``window`` places in the data set (micrographs, defoci, orientations).

:class:`Batches` reads ``group`` batches at a time (their images sorted by place in the
files, one positioned read per contiguous run) in a background thread, one group ahead of
the training step: memory is two groups of images.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


def file_order(images, indices: np.ndarray) -> np.ndarray:
    """Positions ``0..len(indices)-1`` sorted by where their images lie: by stack file, then by
    image within the file (``images`` is a :class:`recon.io.ImageStack`), else by particle index."""
    indices = np.asarray(indices)
    if hasattr(images, "file_index"):
        return np.lexsort((images.image_index[indices], images.file_index[indices]))
    return np.argsort(indices, kind="stable")


def epoch_order(n: int, seed: int, epoch: int, *, chunk: int = 0, window: int = 8,
                stored: np.ndarray | None = None) -> np.ndarray:
    """The positions ``0..n-1`` in the order epoch ``epoch`` visits them (see the module doc).

    ``stored`` is the positions in the order their images lie on disk (:func:`file_order`;
    default ``0..n-1``); it matters only for ``chunk > 0``. ``window`` is in chunks."""
    rng = np.random.default_rng([seed, epoch])
    if chunk <= 0:
        return rng.permutation(n)
    stored = np.arange(n) if stored is None else np.asarray(stored)
    chunks = [stored[start : start + chunk] for start in range(0, n, chunk)]
    shuffled = [chunks[i] for i in rng.permutation(len(chunks))]
    windows = [np.concatenate(shuffled[start : start + window]) for start in range(0, len(shuffled), window)]
    return np.concatenate([rng.permutation(w) for w in windows]) if windows else np.zeros(0, np.intp)


def batches_of(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive ``batch_size`` positions of ``order`` (the last batch may be shorter)."""
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class Batches:
    """Iterates ``(positions, images)`` over ``batches`` (arrays of positions, rows of
    ``indices``), reading ``group`` batches at a time in a background thread.

    ``images`` is indexable by particle index (an :class:`recon.io.ImageStack` or an array);
    each yielded ``images`` is a float32 tensor ``[B, D, D]``.
    """

    def __init__(self, images, indices: np.ndarray, box: int, batches: list[np.ndarray], group: int = 1):
        self.images, self.indices, self.box = images, indices, box
        self.groups = [batches[start : start + max(1, group)] for start in range(0, len(batches), max(1, group))]
        self.pool = ThreadPoolExecutor(max_workers=1)

    def _read(self, group: list[np.ndarray]) -> list[tuple[np.ndarray, torch.Tensor]]:
        positions = np.concatenate(group)
        idx = self.indices[positions]
        sort = np.argsort(idx, kind="stable")  # sequential reads from the stacks
        images = np.empty((len(idx), self.box, self.box), np.float32)
        images[sort] = self.images[idx[sort]]
        images = torch.from_numpy(images)
        bounds = np.cumsum([0] + [len(pos) for pos in group])
        return [(pos, images[a:b]) for pos, a, b in zip(group, bounds[:-1], bounds[1:])]

    def __iter__(self):
        pending = self.pool.submit(self._read, self.groups[0]) if self.groups else None
        for nxt in range(1, len(self.groups) + 1):
            ready = pending.result()
            pending = self.pool.submit(self._read, self.groups[nxt]) if nxt < len(self.groups) else None
            yield from ready
        self.pool.shutdown()
