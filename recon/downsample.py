"""Fourier-crop downsampling of particle stacks, streamed to disk.

Cropping the centred Fourier transform from ``D`` to ``D'`` keeps all
information below the new Nyquist frequency and changes the pixel size from
``apix`` to ``apix * D / D'``. Pixel values keep their scale (see
:func:`recon.fourier.fourier_crop`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from recon.files import atomic_target
from recon.fourier import fourier_crop
from recon.io.mrc import new_stack_mmap, to_float16


def downsample_stack(
    images,
    new_box: int,
    out_path: str | Path,
    apix_out: float,
    *,
    indices: np.ndarray | None = None,
    batch_size: int = 512,
    float16: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write ``images[indices]`` cropped to ``new_box`` as a float32 .mrcs (float16 with ``float16``).

    ``images`` is anything indexable by an integer array returning
    ``[B, D, D]`` (e.g. :class:`recon.io.ImageStack`); memory use is one batch,
    so a stack of any size streams through. The output is written to a
    temporary file and renamed when complete. A pixel too large for float16 is
    a ``ValueError`` (and no output is left).
    """
    indices = np.arange(len(images)) if indices is None else np.asarray(indices)
    with atomic_target(out_path) as tmp:
        with new_stack_mmap(tmp, (len(indices), new_box, new_box), apix_out, float16=float16) as mrc:
            for start in range(0, len(indices), batch_size):
                idx = indices[start : start + batch_size]
                batch = torch.as_tensor(np.asarray(images[idx], dtype=np.float32))
                cropped = fourier_crop(batch, new_box).numpy()
                mrc.data[start : start + len(idx)] = to_float16(cropped) if float16 else cropped
                if progress is not None:
                    progress(len(idx))
