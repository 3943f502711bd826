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
* a cryodiff run directory (``config.json``): the latent landscape as a
  points layer beside the volume of the particle nearest the mean latent
  (open the Latent explorer to click through it).

A file the readers refuse (:class:`recon.errors.InputError`: missing
stacks, truncated MRC, ...) shows an error notification naming the file and
the fix, and adds no layer; the viewer keeps running.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from cryodiff.napari._landscape import histogram_density, pca_xy
from cryodiff.napari._layers import volume_kwargs
from cryodiff.napari._lazy import LazyImages
from recon.errors import InputError
from recon.io import ImageStack, read_particles, read_volume
from recon.io.mrc import inspect_stack
from recon.training import CONFIG

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
    """The reader of ``path`` (one file or run directory), or ``None`` if this plugin does not read it."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.is_dir():
        return _reporting_input_errors(read_run) if (path / CONFIG).is_file() else None
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


def latent_points(xy: np.ndarray, extent: float, name: str, **features) -> tuple:
    """Points layer data of plot coordinates ``xy`` [N, 2] (x right, y up) drawn beside a volume.

    The cloud is scaled to a square of ``extent`` Å (the volume's width) and
    placed to the right of the volume (which spans 0..extent in y and x),
    coloured by :func:`histogram_density`; ``features`` (arrays [N]) become
    the layer's features with the plot coordinates as ``x`` and ``y``.
    """
    lo, span = xy.min(0), np.ptp(xy, axis=0).max() or 1.0
    unit = (xy - lo) / span  # both axes on one scale, so the plot keeps its aspect
    yx = np.c_[extent * (1 - unit[:, 1]), extent * (1.1 + unit[:, 0])]
    density, _ = histogram_density(xy)
    kwargs = {"name": name, "features": {"x": xy[:, 0], "y": xy[:, 1], "density": density.astype(np.float64), **features},
              "face_color": "density", "face_colormap": "viridis", "border_width": 0, "size": extent / 80,
              "units": ("angstrom", "angstrom"), "axis_labels": ("y", "x")}
    return yx, kwargs, "points"


def read_run(path) -> list[tuple]:
    """A cryodiff run: the volume at the particle nearest the mean latent and the latents in PC1/PC2.

    Layer metadata ``cryodiff_run`` holds the run's path (the Latent explorer offers it).
    """
    from cryodiff.commands.analyze import latents_of
    from recon.analysis import nearest_rows, pca
    from recon.run import load_run

    run = load_run(path)
    z = latents_of(run)
    row = int(nearest_rows(z, z.mean(0, keepdims=True))[0])
    volume = run.volume(z[row])
    name = Path(path).name
    image = volume_kwargs(volume, run.apix, f"{name}: particle {row}", cryodiff_run=str(path), row=row)
    xy, _ = pca_xy(pca(z))
    points = latent_points(xy, run.box * run.apix, f"{name}: latents (PC1 →, PC2 ↑)", row=np.arange(len(z)))
    points[1]["metadata"] = {"cryodiff_run": str(path)}
    return [(volume, image, "image"), points]
