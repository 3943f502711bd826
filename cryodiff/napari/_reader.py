"""napari readers: MRC volumes, particle stacks, RELION/cryoSPARC particle files and cryodiff runs.

``napari_get_reader(path)`` returns the reader for ``path``, or ``None``
when the plugin does not handle it (napari then asks other plugins):

* ``.mrc``/``.map``: a volume ``[z, y, x]``, one image layer with the
  header's voxel size (Å) as scale, drawn as an iso-surface in 3-D;
* ``.mrcs``: a particle stack ``[n, y, x]``, memory-mapped (an image is
  read when shown); scale ``(1, apix, apix)`` from the header;
* ``.star``/``.cs``: the particles' images, lazily as above with the pixel
  size of the metadata, and a points layer marking each particle's centre
  (box centre minus its shift) whose features are the file's per-particle table;
* a cryodiff run directory (``config.json``), or its ``config.json``: the
  volume of the particle nearest the mean latent, as the run's shown volume
  (:data:`~cryodiff.napari._layers.SHOWN_VOLUME`, gray; the Latent explorer
  then shows its volumes in it, in red). The latents are not a layer: a 2-D
  points layer would sit inside the volume's 3-D scene, so the latent plot is
  the explorer's.

napari offers a folder to every reader that accepts folders, so
``napari RUN`` asks which plugin to use (the builtin reader cannot read a
run); ``napari --plugin cryodiff RUN``, ``viewer.open(RUN, plugin="cryodiff")``
or opening ``RUN/config.json`` (no other reader claims it) do not ask.

A file the readers refuse (:class:`recon.errors.InputError`: missing
stacks, truncated MRC, ...) shows an error notification naming the file and
the fix, and adds no layer; the viewer keeps running.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from cryodiff.napari._layers import shown_metadata, shown_volume_kwargs, volume_kwargs
from cryodiff.napari._lazy import LazyImages
from recon.errors import InputError
from recon.io import ImageStack, read_particles, read_volume
from recon.io.mrc import inspect_stack
from recon.run import CHECKPOINT, CONFIG

VOLUME_SUFFIXES = (".mrc", ".map")
STACK_SUFFIXES = (".mrcs",)
PARTICLE_SUFFIXES = (".star", ".cs")
#: The no-layer answer napari accepts from a reader that handled a path.
NO_LAYERS = [(None,)]


def _reporting_input_errors(reader):
    """Turn an :class:`InputError` of ``reader`` into an error notification and no layers."""

    @functools.wraps(reader)
    def read(path):
        from napari.utils.notifications import show_error

        try:
            return reader(path)
        except InputError as err:
            show_error(f"cryodiff could not open {err}")
            return NO_LAYERS

    return read


def napari_get_reader(path):
    """The reader of ``path`` (one file, a run directory or a run's ``config.json``), or ``None`` if this
    plugin does not read it."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.is_dir():
        return _reporting_input_errors(read_run) if (path / CONFIG).is_file() else None
    if path.name == CONFIG:
        return _reporting_input_errors(read_run_config) if (path.parent / CHECKPOINT).is_file() else None
    suffix = path.suffix.lower()
    if suffix in VOLUME_SUFFIXES:
        return _reporting_input_errors(read_volume_file)
    if suffix in STACK_SUFFIXES:
        return _reporting_input_errors(read_stack_file)
    if suffix in PARTICLE_SUFFIXES:
        return _reporting_input_errors(read_particle_file)
    return None


def read_volume_file(path) -> list[tuple]:
    """An MRC volume as one image layer ``[z, y, x]`` with scale = the header voxel size in Å
    (1 when the header leaves it unset, so distances are then in voxels)."""
    volume, apix = read_volume(path)
    kwargs = volume_kwargs(volume, apix or 1.0, Path(path).stem, source=str(path))
    if not apix:
        kwargs["units"] = ("pixel",) * 3
    return [(volume, kwargs, "image")]


def _stack_axes(apix: float) -> dict:
    """Scale, units and names of the axes of a particle stack ``[particle, y, x]`` (pixels of ``apix`` Å)."""
    return {"scale": (1.0, apix, apix), "units": ("", "angstrom", "angstrom"), "axis_labels": ("particle", "y", "x")}


def _stack_layer(stack: ImageStack, apix: float, name: str, source: Path) -> tuple:
    """Image layer data of a lazy stack ``[n, y, x]``, scale ``(1, apix, apix)``, contrast from a
    sample of 16 images (0.5th to 99.5th percentile), so opening reads no more than those."""
    images = LazyImages(stack)
    lo, hi = np.percentile(images.sample(), [0.5, 99.5])
    kwargs = {"name": name, "contrast_limits": (float(lo), float(max(hi, lo + 1e-6))), "colormap": "gray",
              "metadata": {"apix": apix, "source": str(source)}, **_stack_axes(apix)}
    return images, kwargs, "image"


def read_stack_file(path) -> list[tuple]:
    """An MRC stack as a lazy image layer ``[n, y, x]`` (pixel size from its header; 1 if unset)."""
    path = Path(path)
    return [_stack_layer(ImageStack([path]), inspect_stack(path).apix or 1.0, path.stem, path)]


def read_particle_file(path) -> list[tuple]:
    """A RELION ``.star`` or cryoSPARC ``.cs`` file: its images (lazy) and their centres as points.

    The points sit at ``(i, D/2 - shift_y, D/2 - shift_x)`` pixels of image i
    (the particle's centre once its shift is applied; the box centre without
    poses); their features are the file's columns, one row per particle.
    """
    path = Path(path)
    particles = read_particles(path)
    meta, stack = particles.meta, particles.images
    apix = meta.apix or 1.0
    shifts = meta.shifts_px if meta.shifts_px is not None else np.zeros((len(meta), 2))
    centres = np.c_[np.arange(len(meta)), stack.box / 2 - shifts[:, 1], stack.box / 2 - shifts[:, 0]]
    points = {"name": f"{path.stem}: centres", "features": meta.table, "symbol": "ring", "size": max(stack.box / 12, 3.0),
              "face_color": "yellow", "border_width": 0, "opacity": 0.7, "metadata": {"source": str(path)},
              **_stack_axes(apix)}
    return [_stack_layer(stack, apix, path.stem, path), (centres, points, "points")]


def read_run(path) -> list[tuple]:
    """A cryodiff run folder: the volume ``[z, y, x]`` of the particle nearest the mean latent, as the
    image layer :data:`~cryodiff.napari._layers.SHOWN_VOLUME` (scale = the run's voxel size in Å)."""
    from napari.utils.notifications import show_info

    from recon.analysis import nearest_rows
    from recon.run import load_run

    run = load_run(path)
    z = run.latents()
    row = int(nearest_rows(z, z.mean(0, keepdims=True))[0])
    volume = run.volume(z[row])
    metadata = shown_metadata(path, f"particle {row} (nearest the mean latent)", z[row], run.box, run.apix)
    show_info(f"Plugins ▸ Latent explorer plots the latents of {Path(path).resolve().name}")
    return [(volume, shown_volume_kwargs(volume, metadata), "image")]


def read_run_config(path) -> list[tuple]:
    """The run whose ``config.json`` is ``path``: :func:`read_run` of its folder."""
    return read_run(Path(path).parent)
