"""A particle stack as the array napari slices: images are read only when shown.

napari asks an image layer's data for ``shape``, ``dtype``, ``ndim``, ``size``
and for one 2-D plane at a time (``data[i]`` or ``data[i, :, :]``). Wrapping a
:class:`recon.io.ImageStack` (memory-mapped MRC stacks) in :class:`LazyImages`
answers those without reading pixels, so a 100k-particle stack opens as fast
as its headers can be read, and each move of the slider reads one image.
"""

from __future__ import annotations

import numpy as np

from recon.io import ImageStack


class LazyImages:
    """``[n, y, x]`` float32 view of an :class:`~recon.io.ImageStack` for a napari image layer.

    Indexing takes a key on the first (particle) axis, as the stack does, then
    applies the rest of the key to the images read; ``np.asarray`` of it reads
    every image.
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, stack: ImageStack):
        self.stack = stack

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.stack), self.stack.box, self.stack.box)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.stack)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        if isinstance(first, (int, np.integer)):
            return self.stack[int(first)][rest]
        return self.stack[first][(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None):
        images = self.stack[np.arange(len(self.stack))]
        return images if dtype is None else images.astype(dtype)

    def sample(self, n: int = 16) -> np.ndarray:
        """Up to ``n`` images ``[m, y, x]`` spread evenly over the stack (for contrast limits)."""
        return self.stack[np.unique(np.linspace(0, len(self.stack) - 1, n).astype(np.intp))]
