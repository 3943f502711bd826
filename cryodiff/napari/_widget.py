"""The Latent explorer dock: the latent plot, the volume under the mouse, prior samples and paths.

Layout, top to bottom: the run and prior to open; how to lay the latents
out (PCA or UMAP, coloured by k-means cluster or density); the latent plot
(:class:`~cryodiff.napari._latent_plot.LatentPlot`); the box to decode at;
sampling from the prior; a path between two points. Everything slow (opening
the run, k-means, UMAP, decoding, sampling, paths) runs in napari thread
workers, so the viewer stays responsive; volumes requested while one is being
decoded replace each other and only the newest is shown
(:class:`~cryodiff.napari._latest.LatestOnly`).

napari layers it manages (updated in place, re-created if deleted):

* ``cryodiff: shown volume``: the volume ``[z, y, x]`` of the last point
  clicked, scale = voxel size in Å at the chosen box, iso-surface. If the
  viewer already has this layer (the run reader makes it), the explorer
  shows its volumes in it, so a run has one shown volume; opened on a viewer
  where the run reader opened a run, the explorer opens that run and starts
  at the volume shown;
* ``cryodiff: path``: the path's volumes ``[step, z, y, x]`` (scale
  ``(1, apix, apix, apix)``), to the right of the shown volume; the dims
  slider "path step" plays it.

Closing the dock (napari takes the widget out of it) stops the explorer: results
of jobs still running are dropped and a path being decoded stops at its next
volume, so nothing is added to the viewer after the dock is gone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QLabel, QLineEdit,
                            QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from cryodiff.napari import _jobs as jobs
from cryodiff.napari._landscape import KINDS
from cryodiff.napari._latent_plot import GAUSSIAN, PARTICLE, PATH, PRIOR, LatentPlot
from cryodiff.napari._latest import LatestOnly
from cryodiff.napari._rows import side_by_side, with_browse_button
from cryodiff.napari._selection_panel import SelectionPanel
from cryodiff.napari._layers import (PATH_COLOUR, SHOWN_VOLUME, shown_colormap, shown_metadata, shown_volume_kwargs,
                                     surface_colormap, volume_kwargs)

VOLUME_LAYER, PATH_LAYER = SHOWN_VOLUME, "cryodiff: path"
#: Colour of warnings under the plot.
WARNING_COLOUR = "#f0a030"
COLOURS = ("k-means cluster", "density")


class ExplorerWidget(QWidget):
    """Explore a cryodiff run in napari (dock widget; ``napari_viewer`` is given by napari)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.loaded: jobs.Loaded | None = None
        self.samples: jobs.Samples | None = None
        self.path: np.ndarray | None = None
        self.path_volumes: np.ndarray | None = None
        self.path_apix: float | None = None
        self.selection: tuple[str, np.ndarray] | None = None
        self.volume_layer = None
        self.path_layer = None
        self._workers: set = set()
        self._closed = False
        self._sample_seed = 0
        self.decoder = LatestOnly(self._show_volume, self._failed)
        self._build()
        self.viewer.dims.events.current_step.connect(self._step_changed)
        run = self._run_in_viewer()
        if run:
            self.load(run)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.run_edit = QLineEdit(placeholderText="run directory (train-vae output)")
        self.prior_edit = QLineEdit(placeholderText="optional: prior directory (train-prior output)")
        self.load_button = QPushButton("Open")
        self.load_button.clicked.connect(lambda: self.load(self.run_edit.text(), self.prior_edit.text() or None))
        self.kind_box = QComboBox(toolTip="coordinates of the plot")
        self.kind_box.addItems(KINDS)
        self.kind_box.currentTextChanged.connect(lambda _: self.relayout())
        self.colour_box = QComboBox()
        self.colour_box.addItems(COLOURS)
        self.colour_box.currentTextChanged.connect(lambda _: self.plot.set_colour(self._colour_key()))
        self.k_spin = QSpinBox(minimum=2, maximum=60, value=12, toolTip="number of k-means clusters")
        self.k_spin.editingFinished.connect(self.relayout)
        self.plot = LatentPlot()
        self.plot.picked.connect(self.show_point)
        self.box_box = QComboBox(toolTip="a smaller box decodes faster (larger voxels)")
        self.box_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.box_box.currentIndexChanged.connect(lambda _: self._redecode())
        self.status = QLabel("Open a run to see its latent landscape.", wordWrap=True)
        self.progress = QProgressBar(visible=False)

        top = QFormLayout()
        run_row = with_browse_button(self.run_edit, lambda: self._browse_dir(self.run_edit))
        run_row.addWidget(self.load_button)
        top.addRow("Run", run_row)
        top.addRow("Prior", with_browse_button(self.prior_edit, lambda: self._browse_dir(self.prior_edit)))
        top.addRow("Plot", side_by_side(self.kind_box, QLabel("colour"), self.colour_box, QLabel("K"), self.k_spin))

        main = QVBoxLayout(self)
        main.addLayout(top)
        main.addWidget(self.plot, 1)
        main.addLayout(side_by_side(QLabel("Decode at box"), self.box_box, stretch=True))
        main.addWidget(self.status)
        main.addWidget(self._build_prior_group())
        main.addWidget(self._build_path_group())
        self.selection_panel = SelectionPanel(self)
        main.addWidget(self.selection_panel)
        main.addWidget(self.progress)
        self._enable(False)

    def _build_prior_group(self) -> QGroupBox:
        self.prior_group = QGroupBox("Diffusion prior")
        self.n_samples = QSpinBox(minimum=1, maximum=5000, value=200,
                                  toolTip="samples from the prior, and as many from N(0, I)")
        self.sample_button = QPushButton("Sample from prior")
        self.sample_button.clicked.connect(lambda: self.sample_prior(self.n_samples.value()))
        self.sample_status = QLabel("", wordWrap=True)
        row = side_by_side(self.n_samples, self.sample_button)
        row.setStretch(1, 1)
        layout = QVBoxLayout(self.prior_group)
        layout.addLayout(row)
        layout.addWidget(self.sample_status)
        return self.prior_group

    def _build_path_group(self) -> QGroupBox:
        self.path_group = QGroupBox("Path A → B")
        self.start_box, self.end_box = QComboBox(), QComboBox()
        self.method_box = QComboBox()
        self.n_steps = QSpinBox(minimum=2, maximum=100, value=10, toolTip="points on a PF-ODE or straight path")
        self.path_button = QPushButton("Compute path")
        self.path_button.clicked.connect(self.compute_path)
        self.export_button = QPushButton("Export volumes…")
        self.export_button.clicked.connect(self._export_volumes_dialog)
        self.movie_button = QPushButton("Export movie…")
        self.movie_button.clicked.connect(self._export_movie_dialog)
        form = QFormLayout(self.path_group)
        for label, combo in (("A", self.start_box), ("B", self.end_box)):
            use = QPushButton("← shown point", toolTip="use the point whose volume is shown (the red star)")
            use.clicked.connect(lambda _=False, c=combo: self._use_selection(c))
            row = side_by_side(combo, use)
            row.setStretch(0, 1)
            form.addRow(label, row)
        method_row = side_by_side(self.method_box, QLabel("steps"), self.n_steps)
        method_row.setStretch(0, 1)
        form.addRow("via", method_row)
        form.addRow(side_by_side(self.path_button, self.export_button, self.movie_button))
        return self.path_group

    def _enable(self, loaded: bool) -> None:
        has_prior = loaded and self.loaded.prior is not None
        for widget in (self.kind_box, self.colour_box, self.k_spin, self.box_box, self.path_group, self.selection_panel):
            widget.setEnabled(loaded)
        self.prior_group.setEnabled(has_prior)
        if loaded and not has_prior:
            self.sample_status.setText("No prior loaded: train one with cryodiff train-prior RUN -o RUN/prior.")
        elif has_prior and self.samples is None:
            self.sample_status.setText("Prior samples (orange ▲) should lie where the particles are; as many N(0, I) "
                                       "samples (grey ×), what the VAE alone would generate, are drawn beside them.")
        has_path = self.path_volumes is not None
        self.export_button.setEnabled(has_path)
        self.movie_button.setEnabled(has_path)

    # ------------------------------------------------------------------ workers

    @property
    def busy(self) -> bool:
        """A background job (loading, decoding, sampling, a path) is running or waiting."""
        return bool(self._workers) or self.decoder.busy

    def _start(self, fn, *args, done, yielded=None) -> None:
        """Run ``fn(*args)`` in a thread worker; ``done(result)`` in the main thread unless the dock was closed."""
        from napari.qt.threading import create_worker

        connect = {"returned": self._unless_closed(done), "errored": self._unless_closed(self._failed)}
        if yielded:
            connect["yielded"] = self._unless_closed(yielded)
        worker = create_worker(fn, *args, _start_thread=False, _connect=connect)
        worker.finished.connect(lambda: self._workers.discard(worker))
        self._workers.add(worker)
        worker.start()

    def _unless_closed(self, callback):
        return lambda *args: None if self._closed else callback(*args)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        if event.type() == QEvent.Type.ParentChange and self.parent() is None and not self._closed:
            self.close_jobs()  # napari's dock close button takes the widget out of its dock

    def close_jobs(self) -> None:
        """Stop the explorer: drop the results of running jobs, stop decoding a path, leave the viewer alone."""
        self._closed = True
        self.decoder.cancel()
        for worker in list(self._workers):
            worker.quit()  # a path being decoded stops at its next volume; other jobs finish unseen
        self.viewer.dims.events.current_step.disconnect(self._step_changed)

    def _failed(self, err: Exception) -> None:
        """Say what went wrong, under the plot and as a napari error notification."""
        from napari.utils.notifications import show_error

        self.progress.setVisible(False)
        self.status.setText(f"<span style='color:#e05050'>{err}</span>")
        show_error(f"cryodiff explorer: {err}")

    # ------------------------------------------------------------------ run

    def _run_in_viewer(self) -> str:
        """The run whose volume the viewer shows (layer :data:`VOLUME_LAYER`, e.g. from the run reader), or ``""``."""
        return self._shown_metadata().get("cryodiff_run", "")

    def _shown_metadata(self) -> dict:
        """Metadata of the viewer's layer :data:`VOLUME_LAYER` (``{}`` if there is none)."""
        return self.viewer.layers[VOLUME_LAYER].metadata if VOLUME_LAYER in self.viewer.layers else {}

    def _browse_dir(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if folder:
            edit.setText(folder)

    def load(self, run_path: str | Path, prior_path: str | Path | None = None) -> None:
        """Open ``run_path`` (and ``prior_path``; if none, a prior trained on the same latents in
        ``RUN/prior`` or ``RUN/../prior`` is found) in the background."""
        run_path = Path(run_path)
        self.run_edit.setText(str(run_path))
        self.status.setText(f"Opening {run_path} …")
        self._start(jobs.load, run_path, prior_path, self.kind_box.currentText(), self.k_spin.value(),
                    done=self._loaded)

    def _loaded(self, loaded: jobs.Loaded) -> None:
        self.loaded, self.samples, self.path, self.path_volumes, self.selection = loaded, None, None, None, None
        self.sample_status.setText("")
        self.selection_panel.reset()
        self.prior_edit.setText(str(loaded.prior_path or ""))
        umap_ok = loaded.z.shape[1] >= 3
        self.kind_box.model().item(KINDS.index("UMAP")).setEnabled(umap_ok)
        self.box_box.blockSignals(True)
        self.box_box.clear()
        for box in jobs.decode_boxes(loaded.run.box):
            self.box_box.addItem(f"{box} px ({loaded.run.apix_at(box):.3g} Å/px)", box)
        self.box_box.blockSignals(False)
        self.method_box.clear()
        self.method_box.addItems([m for m in (jobs.PRIOR_PATH, jobs.GRAPH_PATH, jobs.LINE_PATH)
                                  if m != jobs.PRIOR_PATH or loaded.prior is not None])
        self._show_landscape(loaded.land)
        self._enable(True)
        self._show_first_volume()

    def _show_first_volume(self) -> None:
        """Go on showing the volume the viewer shows of this run (the run reader's, or an earlier explorer's),
        else show the particle at the centre of the largest cluster."""
        shown, land = self._shown_metadata(), self.loaded.land
        if "cryodiff_run" in shown and Path(shown["cryodiff_run"]).resolve() == self.loaded.run.path.resolve():
            self._select(shown["label"], shown["latent"], land.place(shown["latent"])[0])
        else:
            largest = int(np.argmax(np.bincount(land.labels)))
            self.show_point(PARTICLE, int(land.centre_rows[largest]))

    def relayout(self) -> None:
        """Lay the latents out again with the chosen coordinates and number of clusters (in the background)."""
        land = self.loaded.land if self.loaded is not None else None
        if land is None or (land.kind, len(land.centre_rows)) == (self.kind_box.currentText(), self.k_spin.value()):
            return
        from cryodiff.napari._landscape import landscape

        self.status.setText(f"Computing the {self.kind_box.currentText()} layout …")
        self._start(landscape, self.loaded.z, self.kind_box.currentText(), self.k_spin.value(), self.loaded.run.path,
                    done=self._show_landscape)

    def _colour_key(self) -> str:
        return "cluster" if self.colour_box.currentText() == COLOURS[0] else "density"

    def _show_landscape(self, land) -> None:
        self.loaded.land = land
        self.plot.show_landscape(land, self._colour_key())
        self.selection_panel.relaid()
        if self.samples is not None:
            self.plot.set_points(PRIOR, land.place(self.samples.prior))
            self.plot.set_points(GAUSSIAN, land.place(self.samples.gaussian))
        if self.path is not None:
            self.plot.set_points(PATH, land.place(self.path))
        if self.selection is not None:
            self.plot.select(land.place(self.selection[1])[0])
        for combo, cluster in ((self.start_box, 0), (self.end_box, len(land.centre_rows) - 1)):
            combo.clear()
            for i, row in enumerate(land.centre_rows):
                combo.addItem(f"cluster {i} (particle {row})", self.loaded.z[row])
            combo.setCurrentIndex(cluster)
        n = len(land.z)
        self.status.setText(f"{n} particles, zdim {land.z.shape[1]}, {land.kind}. Click a point to see its volume.")

    # ------------------------------------------------------------------ volumes

    def point(self, name: str, index: int) -> tuple[str, np.ndarray]:
        """``(label, latent)`` of plotted point ``index`` of set ``name`` (particle, sample or path point)."""
        if name == PARTICLE:
            cluster = int(self.loaded.land.labels[index])
            return f"particle {index} (cluster {cluster})", self.loaded.z[index]
        if name == PRIOR:
            return f"prior sample {index}", self.samples.prior[index]
        if name == GAUSSIAN:
            return f"N(0, I) sample {index}", self.samples.gaussian[index]
        return f"path step {index}", self.path[index]

    def show_point(self, name: str, index: int) -> None:
        """Show the volume of plotted point ``index`` of set ``name``, as a click on it does."""
        label, latent = self.point(name, index)
        self._select(label, latent, self.plot.points(name)[index])

    def _select(self, label: str, latent: np.ndarray, xy: np.ndarray) -> None:
        """Star ``xy`` (plot coordinates) and decode ``latent`` into the shown volume."""
        self.selection = (label, latent)
        self.plot.select(xy)
        self._request(label, latent)

    def _request(self, label: str, latent: np.ndarray) -> None:
        self.status.setText(f"Decoding {label} …")
        self.decoder.submit(jobs.decode, self.loaded.run, latent, self.box, label, self.loaded.support)

    def _redecode(self) -> None:
        if self.selection is not None:
            self._request(*self.selection)

    @property
    def box(self) -> int:
        """The box (voxels) volumes are decoded at."""
        return self.box_box.currentData() or self.loaded.run.box

    def _show_volume(self, decoded: jobs.Decoded) -> None:
        metadata = shown_metadata(self.loaded.run.path, decoded.label, decoded.latent, decoded.box, decoded.apix)
        metadata["support"] = support_metadata(decoded.support, 0)
        layer = self.volume_layer
        if layer is None or layer not in self.viewer.layers:
            self._take_volume_layer(decoded.volume, metadata)
            self.viewer.dims.ndisplay = 3
            self.viewer.canvas.overlays.scale_bar.visible = True
            self.viewer.reset_view()
        else:
            layer.scale = (decoded.apix,) * 3
            layer.data = decoded.volume
            layer.metadata = metadata
        if decoded.support.supported[0]:
            self.status.setText(f"{decoded.label}: box {decoded.box}, {decoded.apix:.3g} Å/px, decoded in "
                                f"{decoded.seconds:.2f} s; {decoded.support.describe(0)}.")
        else:
            self._warn_outside(f"{decoded.label} is outside the particles' support ({decoded.support.describe(0)}): "
                               "its volume is the decoder's extrapolation.")
        self._describe_canvas()

    def _warn_outside(self, warning: str) -> None:
        """Say ``warning`` under the plot (in colour) and as a napari warning notification."""
        from napari.utils.notifications import show_warning

        self.status.setText(f"<span style='color:{WARNING_COLOUR}'>⚠ {warning}</span>")
        show_warning(f"cryodiff explorer: {warning}")

    def _take_volume_layer(self, volume: np.ndarray, metadata: dict) -> None:
        """Show ``volume`` [z, y, x] in the explorer's red in the viewer's layer :data:`VOLUME_LAYER` (the run
        reader's, or an earlier explorer's), so a run keeps one shown volume; in a new layer if there is none."""
        kwargs = shown_volume_kwargs(volume, metadata, shown_colormap())
        if VOLUME_LAYER not in self.viewer.layers:
            self.volume_layer = self.viewer.add_image(volume, **kwargs)
            return
        layer = self.volume_layer = self.viewer.layers[VOLUME_LAYER]
        layer.scale, layer.data, layer.metadata = kwargs["scale"], volume, metadata
        layer.colormap, layer.contrast_limits, layer.iso_threshold = (kwargs["colormap"], kwargs["contrast_limits"],
                                                                      kwargs["iso_threshold"])

    def _describe_canvas(self) -> None:
        """Say in the corner of napari's canvas which surface is what."""
        parts = []
        if self.volume_layer is not None and self.volume_layer in self.viewer.layers:
            meta = self.volume_layer.metadata
            parts.append(f"red: {meta['label']}, box {meta['box']}" + _outside_note(meta.get("support")))
        if self.path_layer is not None and self.path_layer in self.viewer.layers and self.viewer.dims.ndim == 4:
            step, last = self.viewer.dims.current_step[0], len(self.path_layer.data) - 1
            steps = self.path_layer.metadata.get("support", [])
            parts.append(f"blue, right: path step {step} (of 0–{last})" + _outside_note(steps[step] if step < len(steps) else None))
        overlay = self.viewer.canvas.overlays.text
        overlay.text = "\n".join(parts)
        overlay.visible = bool(parts)
        overlay.font_size = 11

    # ------------------------------------------------------------------ prior samples

    def sample_prior(self, n: int) -> None:
        """Draw ``n`` latents from the prior and ``n`` from N(0, I) and plot both (in the background)."""
        self.sample_status.setText(f"Sampling {n} latents …")
        self._start(jobs.sample_comparison, self.loaded.prior, self.loaded.z, n, self._sample_seed,
                    done=self._show_samples)
        self._sample_seed += 1

    def _show_samples(self, samples: jobs.Samples) -> None:
        self.samples = samples
        land = self.loaded.land
        self.plot.set_points(PRIOR, land.place(samples.prior))
        self.plot.set_points(GAUSSIAN, land.place(samples.gaussian))
        self.sample_status.setText(
            f"Seed {samples.seed}. Mean distance to the 10 nearest particles (standardised latent units): "
            f"prior samples {samples.prior_distance:.2f}, N(0, I) samples {samples.gaussian_distance:.2f}. "
            "Click a sample to see its volume.")

    # ------------------------------------------------------------------ paths

    def _use_selection(self, combo: QComboBox) -> None:
        if self.selection is None:
            return
        label, latent = self.selection
        self.set_path_end(combo, label, latent)

    def set_path_end(self, combo: QComboBox, label: str, latent: np.ndarray) -> None:
        """Make ``latent`` an end of the path (``combo`` is ``start_box`` or ``end_box``)."""
        combo.insertItem(0, label, np.asarray(latent))
        combo.setCurrentIndex(0)

    def compute_path(self) -> None:
        """Compute the path A → B with the chosen method and decode its volumes (in the background)."""
        start, end = self.start_box.currentData(), self.end_box.currentData()
        method, box = self.method_box.currentText(), self.box
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"Computing the path ({method}) …")
        self._start(jobs.path_latents, method, self.loaded.z, start, end, self.n_steps.value(), self.loaded.prior,
                    done=lambda latents: self._decode_path(latents, box))

    def _decode_path(self, latents: np.ndarray, box: int) -> None:
        self.path = latents
        self.plot.set_points(PATH, self.loaded.land.place(latents))
        self.progress.setRange(0, len(latents))
        self.progress.setValue(0)
        self.status.setText(f"Decoding {len(latents)} volumes of the path …")
        self._start(jobs.decode_path, self.loaded.run, latents, box, self.loaded.support, yielded=self.progress.setValue,
                    done=lambda result: self._show_path(*result, self.loaded.run.apix_at(box)))

    def _show_path(self, volumes: np.ndarray, support, apix: float) -> None:
        self.path_volumes, self.path_apix = volumes, apix
        self.progress.setVisible(False)
        kwargs = volume_kwargs(volumes, apix, PATH_LAYER, surface_colormap("cryodiff path", PATH_COLOUR), ("path step",),
                               latents=self.path)
        if self.volume_layer is not None and self.volume_layer in self.viewer.layers:
            kwargs["iso_threshold"] = self.volume_layer.iso_threshold
            kwargs["contrast_limits"] = self.volume_layer.contrast_limits
        width = volumes.shape[-1] * apix
        kwargs["translate"] = (0.0, 0.0, 0.0, 1.15 * width)  # beside the shown volume
        layer = self.path_layer
        if layer is None or layer not in self.viewer.layers:
            self.path_layer = self.viewer.add_image(volumes, **kwargs)
            self.viewer.reset_view()
        else:
            layer.scale, layer.translate = kwargs["scale"], kwargs["translate"]
            layer.data = volumes
            layer.metadata.update(kwargs["metadata"])
        self.path_layer.metadata["support"] = [support_metadata(support, i) for i in range(len(volumes))]
        self.viewer.dims.set_current_step(0, 0)
        self._describe_canvas()
        self._enable(True)
        outside = np.flatnonzero(~support.supported)
        if len(outside):
            self._warn_outside(f"path steps {', '.join(map(str, outside))} (of 0–{len(volumes) - 1}) are outside the "
                               "particles' support: their volumes are the decoder's extrapolation.")
        else:
            self.status.setText(f"Path of {len(volumes)} steps: play it with the 'path step' slider under the canvas.")

    def _step_changed(self) -> None:
        if self.path_layer is not None and self.viewer.dims.ndim == 4:
            self.plot.mark_step(self.viewer.dims.current_step[0])
            self._describe_canvas()

    # ------------------------------------------------------------------ export

    def export_volumes(self, folder: str | Path) -> list[Path]:
        """Write the path's volumes as ``folder/vol_000.mrc ...`` (voxel size in the header) and ``z.txt``."""
        from cryodiff.napari._export import export_path_volumes

        files = export_path_volumes(folder, self.path_volumes, self.path, self.path_apix)
        self.status.setText(f"Wrote {len(files)} volumes and z.txt to {folder}.")
        return files

    def export_movie(self, path: str | Path, fps: float = 4.0) -> Path:
        """Play the path on napari's canvas and save each step's screenshot to a GIF or MP4 (by suffix)."""
        from cryodiff.movies import write_movie
        from cryodiff.napari._export import path_frames

        written = write_movie(path, path_frames(self.viewer, 0), fps)
        self.status.setText(f"Wrote {written}.")
        return written

    def _export_volumes_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the path's volumes")
        if folder:
            self._reporting(self.export_volumes, folder)

    def _export_movie_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the path as a movie", "path.mp4", "MP4 (*.mp4);;GIF (*.gif)")
        if path:
            self._reporting(self.export_movie, path)

    def _reporting(self, fn, *args) -> None:
        """``fn(*args)``, showing an input or file error as an error message instead of raising it."""
        from recon.errors import InputError

        try:
            fn(*args)
        except (InputError, OSError) as err:
            self._failed(err)


def support_metadata(support, i: int) -> dict:
    """Row ``i`` of a :class:`cryodiff.support.Support` as layer metadata: ``supported`` and its ``description``."""
    return {"supported": bool(support.supported[i]), "description": support.describe(i)}


def _outside_note(support: dict | None) -> str:
    """A second line, ``⚠ OUTSIDE THE DATA``, for a volume whose latent the particles do not support, else ``""``."""
    return "\n  ⚠ OUTSIDE THE DATA" if support is not None and not support["supported"] else ""
