"""The explorer's selection panel: choose particles on the latent plot, write them, see their map.

A selection is the particles inside a polygon drawn on the latent plot
(:meth:`~cryodiff.napari._latent_plot.LatentPlot.draw_polygon`), and/or those
whose log-likelihood under the prior (a ``score-particles`` file) is at least
a threshold; both given, both must hold. From it:

* **Write star/.cs/ind…**: what ``cryodiff select`` writes
  (:func:`cryodiff.selection.write_selection`: RELION ``.star``, ``.ind.txt``,
  cryoDRGN ``.ind.pkl``, and a ``.cs`` subset when the run was trained on a
  cryoSPARC file), through the same output policy;
* **Reconstruct map**: a gold-standard backprojection of the selected particles
  with the run's poses and CTF, in a worker
  (:func:`cryodiff.selection.reconstruct_selection`); the half-map FSC curve
  and resolution appear in the panel and the map in the layer
  :data:`MAP_LAYER` (voxel size in Å, green, left of the shown volume);
* **Save maps…**: the map and its half maps as ``NAME.mrc``,
  ``NAME_half1.mrc``, ``NAME_half2.mrc``, as ``cryodiff backproject`` names them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QDoubleSpinBox, QFileDialog, QGroupBox, QLabel, QLineEdit, QPushButton, QVBoxLayout

from cryodiff.napari._fsc_plot import FscPlot
from cryodiff.napari._rows import side_by_side, with_browse_button
from cryodiff.napari._layers import surface_colormap, volume_kwargs
from recon.errors import InputError

#: The image layer of a selection's reconstruction.
MAP_LAYER = "cryodiff: selection map"
#: RGB of the selection map's surface.
MAP_COLOUR = (0.3, 0.75, 0.35)


class SelectionPanel(QGroupBox):
    """The "Selection" group of :class:`~cryodiff.napari._widget.ExplorerWidget` (``explorer``)."""

    #: Images backprojected so far (emitted from the worker thread; Qt queues it to the main thread).
    backprojected = Signal(int)

    def __init__(self, explorer):
        super().__init__("Selection")
        self.explorer = explorer
        self.polygon: np.ndarray | None = None  # plot coordinates of the closed polygon [V, 2]
        self.polygon_rows: np.ndarray | None = None  # rows inside it
        self.scores: np.ndarray | None = None  # log-likelihood of each row (nats)
        self.rows: np.ndarray | None = None  # the selection: rows of the run's latents
        self.map = None  # the last :class:`cryodiff.selection.SelectionMap`
        self.map_layer = None
        self._done = 0
        self._build()
        explorer.plot.lassoed.connect(self._polygon_closed)
        self.backprojected.connect(self._advance)

    def _build(self) -> None:
        self.draw_button = QPushButton("Draw polygon", checkable=True,
                                       toolTip="click corners on the plot; click the first corner to close")
        self.draw_button.toggled.connect(self._draw_toggled)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        self.scores_edit = QLineEdit(placeholderText="optional: particle scores (.h5 of score-particles)")
        self.scores_edit.editingFinished.connect(lambda: self.load_scores(self.scores_edit.text()))
        self.use_scores = QCheckBox("keep log p ≥", enabled=False)
        self.use_scores.toggled.connect(lambda _: self._update())
        self.min_score = QDoubleSpinBox(decimals=2, singleStep=0.5, enabled=False, toolTip="nats")
        self.min_score.valueChanged.connect(lambda _: self._update())
        self.count = QLabel("Draw a polygon on the plot (or load particle scores) to select particles.", wordWrap=True)
        self.write_button = QPushButton("Write star/.cs/ind…")
        self.write_button.clicked.connect(self._write_dialog)
        self.map_button = QPushButton("Reconstruct map")
        self.map_button.clicked.connect(self.reconstruct)
        self.save_button = QPushButton("Save maps…", enabled=False)
        self.save_button.clicked.connect(self._save_dialog)
        self.fsc_plot = FscPlot()
        self.fsc_plot.setVisible(False)
        self.map_status = QLabel("", wordWrap=True)

        layout = QVBoxLayout(self)
        layout.addLayout(side_by_side(self.draw_button, self.clear_button))
        layout.addLayout(with_browse_button(self.scores_edit, self._browse_scores, "choose a score file"))
        layout.addLayout(side_by_side(self.use_scores, self.min_score, stretch=True))
        layout.addWidget(self.count)
        layout.addLayout(side_by_side(self.write_button, self.map_button, self.save_button))
        layout.addWidget(self.map_status)
        layout.addWidget(self.fsc_plot)
        self._enable_actions()

    # ------------------------------------------------------------------ choosing

    def reset(self) -> None:
        """Forget the selection, the scores and the map (a new run was opened)."""
        self.scores = None
        self.scores_edit.clear()
        self.use_scores.setChecked(False)
        self.use_scores.setEnabled(False)
        self.min_score.setEnabled(False)
        self.clear()
        self.fsc_plot.setVisible(False)
        self.map_status.setText("")
        self.map = None
        self.save_button.setEnabled(False)

    def clear(self) -> None:
        """Remove the polygon (the score threshold stays)."""
        self.draw_button.setChecked(False)
        self.polygon = self.polygon_rows = None
        self._update()

    def relaid(self) -> None:
        """The plot's coordinates changed: the polygon is gone from it, the particles it chose stay ringed."""
        self.polygon = None
        self.draw_button.setChecked(False)
        self.explorer.plot.show_chosen(self.rows)

    def _draw_toggled(self, on: bool) -> None:
        if on != self.explorer.plot.drawing:
            self.explorer.plot.draw_polygon(on)

    def _polygon_closed(self, rows: np.ndarray, polygon: np.ndarray) -> None:
        self.polygon, self.polygon_rows = polygon, rows
        self.draw_button.setChecked(False)
        self._update()

    def _browse_scores(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Particle scores of cryodiff score-particles", "", "HDF5 (*.h5)")
        if path:
            self.scores_edit.setText(path)
            self.load_scores(path)

    def load_scores(self, path: str | Path) -> None:
        """Read each particle's log-likelihood from ``path`` (``score-particles`` output) and offer a threshold."""
        from cryodiff.selection import read_scores

        if not str(path):
            return
        try:
            scores = read_scores(path, np.asarray(self.explorer.loaded.run.indices))
        except InputError as err:
            self.explorer._failed(err)
            return
        self.scores_edit.setText(str(path))
        self.scores = scores
        lo, hi = float(np.floor(scores.min() * 100) / 100), float(np.ceil(scores.max() * 100) / 100)
        self.min_score.blockSignals(True)
        self.min_score.setRange(lo, hi)
        self.min_score.setValue(float(np.percentile(scores, 5)))
        self.min_score.blockSignals(False)
        self.min_score.setEnabled(True)
        self.use_scores.setEnabled(True)
        self.use_scores.setChecked(True)
        self._update()

    def _update(self) -> None:
        """Combine polygon and threshold into :attr:`rows`, ring them on the plot and say how many."""
        n = len(self.explorer.loaded.z) if self.explorer.loaded is not None else 0
        keep, parts = None, []
        if self.polygon_rows is not None:
            keep = np.zeros(n, bool)
            keep[self.polygon_rows] = True
            parts.append(f"{len(self.polygon_rows)} inside the polygon")
        if self.scores is not None and self.use_scores.isChecked():
            above = self.scores >= self.min_score.value()
            keep = above if keep is None else keep & above
            parts.append(f"{int(above.sum())} with log p ≥ {self.min_score.value():.2f}")
        self.rows = None if keep is None else np.flatnonzero(keep)
        if self.explorer.loaded is not None:
            self.explorer.plot.show_chosen(self.rows, self.polygon)
        if self.rows is None:
            self.count.setText("Draw a polygon on the plot (or load particle scores) to select particles.")
        else:
            self.count.setText(f"<b>{len(self.rows)} of {n} particles selected</b> ({', '.join(parts)}).")
        self._enable_actions()

    def _enable_actions(self) -> None:
        chosen = self.rows is not None and len(self.rows) > 0
        self.write_button.setEnabled(chosen)
        self.map_button.setEnabled(chosen and len(self.rows) >= 2)

    # ------------------------------------------------------------------ writing

    def _write_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Write the selected particles", "selection.star", "RELION star (*.star)")
        if path:
            self.write(path)

    def write(self, star: str | Path) -> list[Path]:
        """Write the selection as ``star`` with ``.ind.txt``, ``.ind.pkl`` (and ``.cs``) beside it, as
        ``cryodiff select`` does; an input or file error is shown instead of raised. Returns the files."""
        from cryodiff.selection import run_particles, write_selection

        run = self.explorer.loaded.run
        star = Path(star)
        if star.suffix.lower() != ".star":
            star = star.with_name(star.name + ".star")
        try:
            files = write_selection(star, run, self.rows, run_particles(run))
        except (InputError, OSError) as err:
            self.explorer._failed(err)
            return []
        self.count.setText(f"Wrote {len(self.rows)} particles: " + ", ".join(f.name for f in files) + f" in {star.parent}.")
        return files

    # ------------------------------------------------------------------ map

    def reconstruct(self) -> None:
        """Backproject the selected particles in the background; then show the map and its half-map FSC."""
        from cryodiff.selection import reconstruct_selection, run_particles

        rows, run = self.rows.copy(), self.explorer.loaded.run
        progress = self.explorer.progress
        progress.setVisible(True)
        progress.setRange(0, len(rows))
        progress.setValue(0)
        self._done = 0
        self.map_button.setEnabled(False)
        self.map_status.setText(f"Backprojecting {len(rows)} particles …")
        self.explorer._start(lambda: reconstruct_selection(run, rows, run_particles(run), progress=self.backprojected.emit),
                             done=self._show_map)

    def _advance(self, images: int) -> None:
        self._done += images
        self.explorer.progress.setValue(self._done)

    def _show_map(self, result) -> None:
        from cryodiff.selection import FSC_THRESHOLD

        self.map = result
        self.explorer.progress.setVisible(False)
        self._enable_actions()
        self.save_button.setEnabled(True)
        self.fsc_plot.setVisible(True)
        self.fsc_plot.show_curve(result.freqs, result.curve, result.apix, FSC_THRESHOLD, result.resolution,
                                 "half-map FSC of the selection")
        self.map_status.setText(f"<b>Resolution: {result.describe()}</b>; the map is the green layer.")
        viewer = self.explorer.viewer
        kwargs = volume_kwargs(result.volume, result.apix, MAP_LAYER, surface_colormap("cryodiff selection map", MAP_COLOUR),
                               particles=result.n_particles, resolution=result.resolution)
        width = result.volume.shape[-1] * result.apix
        kwargs["translate"] = (0.0, 0.0, -1.15 * width)  # left of the shown volume
        if self.map_layer is None or self.map_layer not in viewer.layers:
            self.map_layer = viewer.add_image(result.volume, **kwargs)
        else:
            layer = self.map_layer
            layer.scale, layer.translate, layer.data = kwargs["scale"], kwargs["translate"], result.volume
            layer.contrast_limits, layer.iso_threshold = kwargs["contrast_limits"], kwargs["iso_threshold"]
            layer.metadata.update(kwargs["metadata"])
        viewer.dims.ndisplay = 3
        viewer.reset_view()

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the selection's map and half maps", "selection.mrc", "MRC (*.mrc)")
        if path:
            self.save_maps(path)

    def save_maps(self, path: str | Path) -> list[Path]:
        """Write the last map as ``path`` (.mrc) and its half maps beside it (``_half1``, ``_half2``), voxel
        size in the headers, through the output policy; an input or file error is shown instead of raised."""
        from cryodiff.output_folder import output_files
        from recon.io import write_volume

        path = Path(path)
        if path.suffix.lower() != ".mrc":
            path = path.with_name(path.name + ".mrc")
        files = [path, *(path.with_name(f"{path.stem}_{half}.mrc") for half in ("half1", "half2"))]
        try:
            with output_files(files, "backproject"):
                for file, volume in zip(files, (self.map.volume, self.map.half1, self.map.half2)):
                    write_volume(file, volume, self.map.apix)
        except (InputError, OSError) as err:
            self.explorer._failed(err)
            return []
        self.map_status.setText(f"Wrote {', '.join(f.name for f in files)} in {path.parent}.")
        return files

