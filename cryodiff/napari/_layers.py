"""Layer data for napari: volumes as iso-surfaces in Å, the units every layer of the plugin uses.

A napari ``LayerData`` tuple is ``(data, kwargs, layer_type)``. Volumes are
``[z, y, x]`` arrays; their ``scale`` is the voxel size in Å on every axis,
so maps of different box sizes (a volume decoded at a smaller box has a
larger voxel) overlay at the same physical size.

A run has one *shown volume*: the image layer :data:`SHOWN_VOLUME`. The run
reader makes it (the particle nearest the mean latent) and the Latent
explorer shows every volume picked in its plot in that same layer.
"""

from __future__ import annotations

import numpy as np

#: Name of the image layer of a run's shown volume (the run reader's, then the Latent explorer's).
SHOWN_VOLUME = "cryodiff: shown volume"
#: RGB of the shown volume's surface (the star in the explorer's plot) and of a path's surfaces (its line).
SHOWN_COLOUR, PATH_COLOUR = (0.93, 0.25, 0.2), (0.2, 0.55, 0.95)
#: Percentage of voxels enclosed by the first iso-surface (ChimeraX's initial level encloses 1 %).
ENCLOSED_PERCENT = 1.0


def iso_level(volume: np.ndarray) -> float:
    """The density above which :data:`ENCLOSED_PERCENT` % of the voxels of ``volume`` lie."""
    return float(np.percentile(volume, 100.0 - ENCLOSED_PERCENT))


def contrast_range(volume: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of ``volume`` (a flat map gets ``(v, v + 1)`` so napari's sliders still work)."""
    lo, hi = float(np.min(volume)), float(np.max(volume))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


#: Where the iso threshold sits on a coloured surface's colormap (0 black .. 1 full colour).
THRESHOLD_BRIGHTNESS = 0.75


def surface_colormap(name: str, rgb: tuple[float, float, float]):
    """A napari colormap from black to ``rgb``. napari shades an iso-surface by scaling the density at
    the surface with the lighting and then applying the colormap, so a ramp keeps the shading."""
    from napari.utils.colormaps import Colormap

    return Colormap(colors=[[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], name=name, display_name=name)


def volume_kwargs(volume: np.ndarray, apix: float, name: str, colormap=None, leading_axes: tuple[str, ...] = (),
                  **metadata) -> dict:
    """Keyword arguments of an image layer showing ``volume`` [..., z, y, x] as an iso-surface.

    ``scale`` is ``apix`` on z, y and x (units Å) and 1 on the axes named in
    ``leading_axes`` (e.g. ``("path step",)`` for ``[step, z, y, x]``); the iso threshold
    encloses :data:`ENCLOSED_PERCENT` % of the voxels (napari's layer
    controls adjust it). Without ``colormap`` the map is gray over its whole
    range (as slices look in 2-D); with one (e.g. :func:`surface_colormap`)
    the contrast limits put the threshold at :data:`THRESHOLD_BRIGHTNESS`
    of it, so the surface is bright. ``metadata`` lands in the layer's
    ``metadata`` with ``apix`` added.
    """
    threshold = iso_level(volume)
    lo, hi = contrast_range(volume)
    if colormap is not None:
        hi = lo + max(threshold - lo, 1e-12) / THRESHOLD_BRIGHTNESS
    return {
        "name": name,
        "scale": (1.0,) * len(leading_axes) + (apix,) * 3,
        "units": ("",) * len(leading_axes) + ("angstrom",) * 3,
        "axis_labels": (*leading_axes, "z", "y", "x"),
        "rendering": "iso",
        "iso_threshold": threshold,
        "contrast_limits": (lo, hi),
        "colormap": "gray" if colormap is None else colormap,
        "metadata": {"apix": apix, **metadata},
    }


def shown_metadata(run_path, label: str, latent: np.ndarray, box: int, apix: float) -> dict:
    """Layer metadata of a run's shown volume: the run folder (``cryodiff_run``), what the volume is
    (``label``, e.g. ``"particle 12 (cluster 3)"``), its ``latent`` [zdim] (VAE latent units) and the
    grid it was decoded on (``box`` voxels of ``apix`` Å)."""
    return {"cryodiff_run": str(run_path), "label": label, "latent": np.asarray(latent), "box": int(box),
            "apix": float(apix)}


def shown_volume_kwargs(volume: np.ndarray, metadata: dict, colormap=None) -> dict:
    """Keyword arguments of the image layer :data:`SHOWN_VOLUME` showing ``volume`` [z, y, x] as an iso-surface
    with scale ``metadata["apix"]`` Å (``metadata`` from :func:`shown_metadata`): gray, as any map (the run
    reader's), or in ``colormap`` (the explorer's :func:`shown_colormap`)."""
    kwargs = volume_kwargs(volume, metadata["apix"], SHOWN_VOLUME, colormap)
    kwargs["metadata"] = metadata
    return kwargs


def shown_colormap():
    """The Latent explorer's colormap of the shown volume: black to :data:`SHOWN_COLOUR`, its star's colour."""
    return surface_colormap("cryodiff shown volume", SHOWN_COLOUR)
