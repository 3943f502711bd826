"""napari writer: an image layer as an MRC map whose header voxel size is the layer's scale."""

from __future__ import annotations

import numpy as np

from recon.errors import InputError
from recon.io import write_volume


def write_mrc(path: str, data, meta: dict) -> list[str]:
    """Write one image layer ``[z, y, x]`` (or a 2-D ``[y, x]`` image, as one section) to ``path``.

    The voxel size in the header is the layer's ``scale`` (Å per pixel; the
    readers and the explorer set it). MRC stores one voxel size per file, so
    a layer whose axes have different scales (a particle stack, ``(1, apix,
    apix)``, or a 4-D path) is refused with an :class:`InputError` saying so.
    Returns ``[path]``.
    """
    scale = np.asarray(meta.get("scale", (1.0,) * data.ndim), dtype=np.float64)
    if data.ndim not in (2, 3):
        raise InputError(path, f"layer {meta.get('name')!r} has {data.ndim} dimensions; an MRC map holds 2 or 3",
                         "save one volume (e.g. the explorer's path export writes one .mrc per step)")
    if not np.allclose(scale, scale[-1]):
        raise InputError(path, f"layer {meta.get('name')!r} has scale {tuple(scale.tolist())}, not one voxel size",
                         "save a volume layer (equal scale on z, y and x)")
    volume = np.asarray(data, dtype=np.float32)
    write_volume(path, volume if volume.ndim == 3 else volume[None], float(scale[-1]))
    return [path]
