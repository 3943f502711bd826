"""Aspect-ratio buckets (SDXL): every batch has one image size, drawn per step from a few buckets.

``BucketSampler(buckets, weights=None, seed=0)(step) -> (height, width)`` draws
bucket ``k`` with probability ``weights[k] / sum(weights)`` (uniform without
weights) from a generator seeded by a hash of ``(seed, step)`` alone, so the
size of a step's batch does not depend on what ran before it (a resumed
:class:`generative.Trainer` run repeats the uninterrupted one), does not consume
the step's generator and is not correlated with its numbers (the Trainer seeds
that one with ``seed * 1_000_003 + step``). In a ``batch_fn(step, generator)``::

    height, width = sampler(step)
    return make_batch(height, width, generator)

:func:`nearest_bucket` assigns an image to the bucket closest in aspect ratio
(distance ``|log(h / w) - log(bh / bw)|``, ties to the earlier bucket).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch


class BucketSampler:
    """Per-step ``(height, width)`` from ``buckets`` with probabilities proportional to ``weights``."""

    def __init__(self, buckets: Sequence[tuple[int, int]], weights: Sequence[float] | None = None, seed: int = 0):
        self.buckets = [(int(h), int(w)) for h, w in buckets]
        weights = torch.ones(len(self.buckets)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if not self.buckets or weights.shape != (len(self.buckets),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"need one non-negative weight per bucket, not all zero: {list(self.buckets)}, {weights.tolist()}")
        self.weights, self.seed = weights, seed

    def __call__(self, step: int) -> tuple[int, int]:
        digest = hashlib.blake2b(f"{self.seed}:{step}".encode(), digest_size=8).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        return self.buckets[torch.multinomial(self.weights, 1, generator=generator).item()]


def nearest_bucket(height: int, width: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is nearest to ``height / width`` on a log scale (ties: the earlier one)."""
    target = math.log(height / width)
    return min(buckets, key=lambda b: abs(math.log(b[0] / b[1]) - target))
