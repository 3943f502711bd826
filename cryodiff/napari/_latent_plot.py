"""The latent plot: particles in 2-D with axes, legend and colour bar, in a Qt dock beside napari's canvas.

napari shows every layer in one scene with one camera; the volume wants
3-D, the latent plot wants 2-D with labelled axes, and napari has neither
axes nor legends. So the plot is a matplotlib canvas of its own
(:class:`LatentPlot`), and napari's canvas is left to the volumes.

A left click (or a drag) picks the plotted point nearest the mouse in
screen distance: a particle, a prior or N(0, I) sample, or a path point.
The canvas emits ``picked(set name, index)``. The selected point and the
current step of a path are drawn by blitting over a cached background, so
following the mouse redraws a marker, not 100k particles.

In drawing mode (:meth:`LatentPlot.draw_polygon`) clicks place the corners of
a polygon instead (matplotlib's ``PolygonSelector``); a click on the first
corner closes it and the canvas emits ``lassoed(rows, polygon)``: the particles inside.
Selected particles are ringed in black, the polygon stays drawn dashed.

A path is drawn through every one of its points, in order (each has a volume
in the path layer). A step that crosses a part of the plot without particles
(:func:`path_jumps`) is dashed: the path jumps there from one step to the
next, as a PF-ODE path between two islands of particles keeps its points on
the islands and crosses the empty band between them in one step.
"""

from __future__ import annotations

import matplotlib.patheffects as pe
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.path import Path as PolygonPath
from matplotlib.patches import Polygon
from matplotlib.widgets import PolygonSelector
from qtpy.QtCore import QPoint, Signal

from cryodiff.analysis_report import point_style, cluster_colours
from cryodiff.napari._landscape import Landscape
from cryodiff.napari._layers import PATH_COLOUR, SHOWN_COLOUR
from recon.analysis import nearest_rows

PARTICLE, PRIOR, GAUSSIAN, PATH = "particle", "prior sample", "N(0, I) sample", "path point"
#: gid of the rings around selected particles; their colour and the polygon's.
SELECTION, SELECTION_COLOUR = "selection", "#111111"
#: How the overlays are drawn: matplotlib scatter keywords per point set.
OVERLAY_STYLE = {
    PRIOR: {"marker": "^", "s": 22, "c": "#ffa31a", "edgecolors": "black", "linewidths": 0.4},
    GAUSSIAN: {"marker": "x", "s": 18, "c": "#555555", "linewidths": 0.9},
}
#: A path step is a jump (drawn dashed) where it runs farther than this fraction of the plot's extent
#: (the particles' larger span) from every particle.
GAP_FRACTION = 0.05
#: Points per step at which :func:`path_jumps` measures the distance to the particles.
GAP_SAMPLES = 16
#: Dash pattern of a jump (matplotlib: offset, (dash, gap) in line widths).
JUMP_DASHES = (0, (3, 2))
#: Outlines that keep text readable on any background: white around dark text, black around coloured text.
_OUTLINE = [pe.withStroke(linewidth=2.5, foreground="white")]
_OUTLINE_DARK = [pe.withStroke(linewidth=2.2, foreground="black")]


class LatentPlot(FigureCanvasQTAgg):
    """Matplotlib canvas of a :class:`~cryodiff.napari._landscape.Landscape` with overlays.

    ``picked(set, index)``: a click or drag picked point ``index`` of point set
    ``set`` (:data:`PARTICLE`, :data:`PRIOR`, :data:`GAUSSIAN` or :data:`PATH`).
    """

    picked = Signal(str, int)
    #: The polygon drawn in drawing mode was closed: ``(rows, polygon)``, the particles inside it
    #: (int64 [K]) and its corners [V, 2] in plot coordinates.
    lassoed = Signal(object, object)

    def __init__(self):
        super().__init__(Figure(figsize=(4.0, 4.4), dpi=100, layout="constrained"))
        self.setMinimumSize(320, 340)
        self._land: Landscape | None = None
        self._colour_by = "cluster"
        self._sets: dict[str, np.ndarray] = {}
        self._selected: np.ndarray | None = None
        self._step: np.ndarray | None = None
        self._background = None
        self._ax = None
        self._animated: list = []
        self._dragging: tuple[str, int] | None = None  # the point last picked while the button is down
        self._drawing = False  # clicks place polygon corners instead of picking points
        self._selector: PolygonSelector | None = None
        self._polygon: np.ndarray | None = None  # the closed polygon [V, 2], plot coordinates
        self._chosen: np.ndarray | None = None  # rows of the particles ringed as selected
        self.mpl_connect("draw_event", self._on_draw)
        self.mpl_connect("button_press_event", self._press)
        self.mpl_connect("motion_notify_event", self._motion)
        self.mpl_connect("button_release_event", self._release)

    # ------------------------------------------------------------------ content

    def show_landscape(self, land: Landscape, colour_by: str) -> None:
        """Plot ``land``'s particles coloured by ``"cluster"`` or ``"density"``; clears every overlay
        (a polygon drawn on other coordinates too; the selected particles stay ringed)."""
        self._land, self._colour_by = land, colour_by
        self._sets = {PARTICLE: land.xy}
        self._selected = self._step = self._polygon = None
        self._redraw()

    def draw_polygon(self, on: bool = True) -> None:
        """Start drawing a selection polygon (clicks place corners, a click on the first corner closes it,
        Esc starts over), or with ``on=False`` stop drawing and go back to picking points."""
        self._drawing = on
        self._redraw()

    @property
    def drawing(self) -> bool:
        """Clicks place polygon corners (not pick points)."""
        return self._drawing

    def show_chosen(self, rows: np.ndarray | None, polygon: np.ndarray | None = None) -> None:
        """Ring the particles at ``rows`` (``None``: none) and draw ``polygon`` [V, 2] dashed (``None``: none)."""
        self._chosen = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._polygon = None if polygon is None else np.asarray(polygon, dtype=np.float64)
        self._redraw()

    def select_polygon(self, vertices) -> None:
        """Close the polygon with corners ``vertices`` [V, 2] (plot coordinates), as a click on the first
        corner does in drawing mode: draw it, leave drawing mode, and emit ``lassoed``."""
        polygon = np.asarray(vertices, dtype=np.float64)
        self._drawing = False
        self._polygon = polygon
        self._redraw()
        self.lassoed.emit(rows_inside(self._land.xy, polygon), polygon)

    def set_colour(self, colour_by: str) -> None:
        """Colour the particles by ``"cluster"`` or ``"density"``."""
        self._colour_by = colour_by
        self._redraw()

    def set_points(self, name: str, xy: np.ndarray) -> None:
        """Show point set ``name`` (:data:`PRIOR`, :data:`GAUSSIAN`, :data:`PATH`) at ``xy`` [M, 2]
        (replacing the set shown before under that name)."""
        self._sets[name] = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if name == PATH:
            self._step = None
        self._redraw()

    def points(self, name: str) -> np.ndarray | None:
        """Plot coordinates [M, 2] of point set ``name``, or ``None`` if not shown."""
        return self._sets.get(name)

    def select(self, xy) -> None:
        """Mark the point whose volume is shown (a red star)."""
        self._selected = np.asarray(xy, dtype=np.float64)
        self._update_animated()

    def mark_step(self, index: int) -> None:
        """Ring path point ``index`` (the step the dims slider shows; none if there is no such point)."""
        path = self._sets.get(PATH)
        self._step = path[index] if path is not None and 0 <= index < len(path) else None
        self._update_animated()

    def position_of(self, xy) -> QPoint:
        """The widget position (Qt pixels from the top left) of data point ``xy``, for scripted clicks."""
        x, y = self._ax.transData.transform(np.asarray(xy, dtype=np.float64))
        ratio = self.device_pixel_ratio
        return QPoint(int(round(x / ratio)), int(round((self.figure.bbox.height - y) / ratio)))

    # ------------------------------------------------------------------ drawing

    def _redraw(self) -> None:
        fig = self.figure
        if self._selector is not None:
            self._selector.disconnect_events()
            self._selector = None
        fig.clear()
        self._background = None
        if self._land is None:
            self.draw_idle()
            return
        ax = self._ax = fig.add_subplot()
        land = self._land
        what = self._draw_particles(ax, land)
        handles = [Line2D([], [], marker="*", ms=11, mfc=SHOWN_COLOUR, mec="white", ls="none", label="shown volume")]
        for name, style in OVERLAY_STYLE.items():
            if name in self._sets:
                xy = self._sets[name]
                ax.scatter(xy[:, 0], xy[:, 1], zorder=4, **style)
                handles.append(Line2D([], [], ls="none", label=f"{name}s ({len(xy)})", **_legend_marker(style)))
        if PATH in self._sets:
            handles += self._draw_path(ax, self._sets[PATH])
        handles += self._draw_chosen(ax, land.xy)
        ax.set_xlabel(land.axis_labels[0], fontsize=8)
        ax.set_ylabel(land.axis_labels[1], fontsize=8)
        ax.tick_params(labelsize=7)
        how = ("drawing: click the corners of a polygon, click the first corner to close it (Esc: start over)"
               if self._drawing else "click or drag to show a point's volume")
        ax.set_title(f"{len(land.xy)} particles, colour: {what}\n{how}", fontsize=8,
                     color=SELECTION_COLOUR if self._drawing else "#222222")
        star = ax.plot([], [], marker="*", ms=16, mfc=SHOWN_COLOUR, mec="white", mew=1.0, ls="none", zorder=6,
                       animated=True)[0]
        ring = ax.plot([], [], marker="o", ms=13, mfc="none", mec=PATH_COLOUR, mew=2.5, ls="none", zorder=6,
                       animated=True)[0]
        self._animated = [star, ring]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7, frameon=False,
                   handletextpad=0.3, columnspacing=1.0)
        if self._drawing:
            self._selector = PolygonSelector(ax, self.select_polygon, useblit=True,
                                             props={"color": SELECTION_COLOUR, "linewidth": 1.5, "alpha": 0.9})
        self.draw_idle()

    def _draw_chosen(self, ax, xy: np.ndarray) -> list[Line2D]:
        """Ring the selected particles and draw the closed polygon; returns legend handles."""
        handles = []
        if self._chosen is not None and len(self._chosen):
            chosen = xy[self._chosen]
            ax.scatter(chosen[:, 0], chosen[:, 1], s=12, facecolors="none", edgecolors=SELECTION_COLOUR,
                       linewidths=0.4, zorder=3, gid=SELECTION)
            handles.append(Line2D([], [], ls="none", marker="o", ms=5, mfc="none", mec=SELECTION_COLOUR,
                                  label=f"selected ({len(self._chosen)})"))
        if self._polygon is not None:
            ax.add_patch(Polygon(self._polygon, closed=True, fill=False, ec=SELECTION_COLOUR, lw=1.4, ls="--",
                                 zorder=5))
        return handles

    def _draw_particles(self, ax, land: Landscape) -> str:
        """Scatter the particles; returns what their colour means."""
        xy, k = land.xy, len(land.centre_rows)
        style = point_style(len(xy))
        if self._colour_by == "density":
            order = np.argsort(land.density, kind="stable")  # densest on top
            dots = ax.scatter(xy[order, 0], xy[order, 1], c=land.density[order], cmap="viridis",
                              norm=LogNorm(vmin=1, vmax=max(land.density.max(), 2)), **{**style, "alpha": 0.8})
            bar = self.figure.colorbar(dots, ax=ax, shrink=0.85, pad=0.02)
            bar.set_label(f"particles per bin ({land.bins}×{land.bins} bins)", fontsize=7)
            bar.ax.tick_params(labelsize=7)
            return "density"
        colours = cluster_colours(k)
        ax.scatter(xy[:, 0], xy[:, 1], c=colours[land.labels], **style)
        for i, row in enumerate(land.centre_rows):
            ax.annotate(str(i), xy[row], fontsize=7, fontweight="bold", ha="center", va="center",
                        color=colours[i], path_effects=_OUTLINE_DARK, zorder=5)
        return f"k-means cluster (K = {k}), numbered at its centre"

    def _draw_path(self, ax, xy: np.ndarray) -> list[Line2D]:
        """Draw the path ``xy`` [M, 2] step by step through all its points, jumps dashed; returns legend handles."""
        jumps = path_jumps(self._land.xy, xy)
        steps = LineCollection(np.stack([xy[:-1], xy[1:]], axis=1), colors=[PATH_COLOUR], linewidths=1.6,
                               linestyles=[JUMP_DASHES if jump else "solid" for jump in jumps], zorder=5, gid=PATH)
        ax.add_collection(steps)
        ax.scatter(xy[:, 0], xy[:, 1], s=14, c="white", edgecolors=PATH_COLOUR, linewidths=1.0, zorder=5)
        for text, point in (("A", xy[0]), ("B", xy[-1])):
            ax.annotate(text, point, xytext=(4, 4), textcoords="offset points", fontsize=9, fontweight="bold",
                        color=PATH_COLOUR, path_effects=_OUTLINE, zorder=6)
        handles = [Line2D([], [], color=PATH_COLOUR, lw=1.6, marker="o", ms=4, mfc="white",
                          label=f"path A→B ({len(xy)} steps)")]
        if jumps.any():
            handles.append(Line2D([], [], color=PATH_COLOUR, lw=1.6, ls=JUMP_DASHES,
                                  label="jump: no particles in between"))
        return handles

    def _on_draw(self, _event) -> None:
        self._background = self.copy_from_bbox(self.figure.bbox)
        self._draw_animated()

    def _draw_animated(self) -> None:
        if not self._animated:
            return
        star, ring = self._animated
        for artist, xy in ((star, self._selected), (ring, self._step)):
            artist.set_data(([], []) if xy is None else ([xy[0]], [xy[1]]))
            self.figure.draw_artist(artist)

    def _update_animated(self) -> None:
        if self._background is None:
            self.draw_idle()
            return
        self.restore_region(self._background)
        self._draw_animated()
        self.blit(self.figure.bbox)

    # ------------------------------------------------------------------ mouse

    def _nearest(self, x: float, y: float) -> tuple[str, int]:
        """The plotted point nearest display position ``(x, y)``: ``(set name, index)``."""
        best = (np.inf, PARTICLE, 0)
        for name, xy in self._sets.items():
            d2 = ((self._ax.transData.transform(xy) - (x, y)) ** 2).sum(1)
            i = int(np.argmin(d2))
            best = min(best, (float(d2[i]), name, i))
        return best[1], best[2]

    def _press(self, event) -> None:
        if self._drawing:
            return
        if event.button == 1 and self._ax is not None and event.inaxes is self._ax:
            self._dragging = self._nearest(event.x, event.y)
            self.picked.emit(*self._dragging)

    def _motion(self, event) -> None:
        """While dragging, pick the point under the mouse when it differs from the last one picked."""
        if self._dragging and event.inaxes is self._ax:
            nearest = self._nearest(event.x, event.y)
            if nearest != self._dragging:
                self._dragging = nearest
                self.picked.emit(*nearest)

    def _release(self, _event) -> None:
        self._dragging = None


def rows_inside(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Rows (int64, ascending) of the points ``xy`` [N, 2] inside the closed ``polygon`` [V, 2]
    (same coordinates; matplotlib's even-odd point-in-polygon test)."""
    return np.flatnonzero(PolygonPath(polygon, closed=False).contains_points(xy)).astype(np.int64)


def path_jumps(particles: np.ndarray, path: np.ndarray) -> np.ndarray:
    """``[M - 1]`` bool: which steps of ``path`` [M, 2] cross a part of the plot without ``particles`` [N, 2]
    (both in plot coordinates): somewhere along the step (:data:`GAP_SAMPLES` points) the nearest particle is
    farther than :data:`GAP_FRACTION` of the particles' larger span."""
    t = np.linspace(0.0, 1.0, GAP_SAMPLES)[None, :, None]
    along = (path[:-1, None] + t * np.diff(path, axis=0)[:, None]).reshape(-1, 2)  # [(M - 1) * GAP_SAMPLES, 2]
    gaps = np.linalg.norm(along - particles[nearest_rows(particles, along)], axis=1)
    return gaps.reshape(len(path) - 1, GAP_SAMPLES).max(1) > GAP_FRACTION * np.ptp(particles, axis=0).max()


def _legend_marker(style: dict) -> dict:
    """Line2D marker keywords matching scatter keywords ``style``."""
    return {"marker": style["marker"], "ms": 6, "mfc": style["c"], "mec": style.get("edgecolors", style["c"]),
            "mew": style["linewidths"]}
