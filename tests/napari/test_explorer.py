"""The Latent explorer, driven as a user would: open a run, click the plot, sample, compute and export a path."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from cryodiff.napari._latent_plot import GAUSSIAN, PARTICLE, PATH, PRIOR
from cryodiff.napari._widget import PATH_LAYER, VOLUME_LAYER
from recon.io import read_volume
from recon.run import load_run


@pytest.fixture(scope="module")
def run(tiny_vae_run):
    return load_run(tiny_vae_run)


def _open(explorer, wait_idle, run_path, prior=None):
    explorer.load(run_path, prior)
    wait_idle(explorer)
    assert explorer.loaded is not None, explorer.status.text()


def _click(qtbot, explorer, xy):
    qtbot.mouseClick(explorer.plot, Qt.MouseButton.LeftButton, pos=explorer.plot.position_of(xy))


def _drawn_path(plot):
    """The vertices [M, 2] of the path line drawn on ``plot`` and whether each of its M - 1 steps is dashed."""
    (steps,) = [artist for artist in plot.figure.axes[0].collections if artist.get_gid() == PATH]
    segments = steps.get_segments()
    vertices = np.array([segment[0] for segment in segments] + [segments[-1][1]])
    return vertices, [dashes is not None for _, dashes in steps.get_linestyles()]


def test_click_shows_that_particles_volume(explorer, viewer, qtbot, wait_idle, tiny_vae_run, run):
    _open(explorer, wait_idle, tiny_vae_run)
    assert explorer.loaded.prior is None and not explorer.prior_group.isEnabled()
    layer = viewer.layers[VOLUME_LAYER]  # the first volume appears without a click
    assert viewer.dims.ndisplay == 3 and layer.rendering == "iso"
    xy = explorer.plot.points(PARTICLE)
    assert xy.shape == (len(run.z_mu), 2)
    row = int(np.argmax(xy[:, 0]))  # the right-most particle: nothing hides it
    _click(qtbot, explorer, xy[row])
    wait_idle(explorer)
    assert layer.metadata["label"].startswith(f"particle {row} ")
    np.testing.assert_allclose(layer.data, run.volume(run.z_mu[row]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.scale, [run.apix] * 3)
    assert len(viewer.layers) == 1  # updated in place
    assert f"red: particle {row} " in viewer.canvas.overlays.text.text  # the canvas says what it shows


def test_smaller_box_and_stale_requests(explorer, viewer, wait_idle, tiny_vae_run, run):
    _open(explorer, wait_idle, tiny_vae_run)
    explorer.box_box.setCurrentIndex(explorer.box_box.findData(8))
    wait_idle(explorer)
    dropped = explorer.decoder.dropped
    for row in (3, 4, 5, 6, 7):  # faster than they can be decoded: 4, 5, 6 never run, 3's result is stale
        explorer.show_point(PARTICLE, row)
    wait_idle(explorer)
    assert explorer.decoder.dropped - dropped == 4
    layer = viewer.layers[VOLUME_LAYER]
    assert layer.metadata["label"].startswith("particle 7 ") and layer.data.shape == (8, 8, 8)
    np.testing.assert_allclose(layer.data, run.volume(run.z_mu[7], 8), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.scale, [run.apix_at(8)] * 3)
    assert run.apix_at(8) == pytest.approx(2 * run.apix)


def test_graph_path_plays_as_4d_layer_and_exports(explorer, viewer, wait_idle, tiny_vae_run, run, tmp_path):
    _open(explorer, wait_idle, tiny_vae_run)
    assert explorer.method_box.currentText() == "graph through the particles"  # no prior: no PF-ODE
    explorer.compute_path()
    wait_idle(explorer)
    steps = len(explorer.path)
    layer = viewer.layers[PATH_LAYER]
    assert steps >= 2 and layer.data.shape == (steps, 16, 16, 16)
    np.testing.assert_allclose(layer.scale, [1.0] + [run.apix] * 3)
    assert viewer.dims.axis_labels[0] == "path step" and viewer.dims.nsteps[0] == steps
    assert explorer.plot.points(PATH).shape == (steps, 2)
    np.testing.assert_allclose(layer.data[-1], run.volume(explorer.path[-1]), rtol=1e-5, atol=1e-6)

    files = explorer.export_volumes(tmp_path / "path")
    assert len(files) == steps
    volume, apix = read_volume(files[1])
    assert apix == pytest.approx(run.apix)
    np.testing.assert_allclose(volume, layer.data[1], rtol=1e-6)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "path" / "z.txt"), explorer.path, rtol=1e-6)

    import imageio.v3 as iio

    gif = explorer.export_movie(tmp_path / "path.gif")
    assert iio.imread(gif, index=None).shape[0] == steps


def test_prior_samples_and_pf_ode_path(explorer, viewer, qtbot, wait_idle, tiny_vae_run, tiny_prior, run):
    _open(explorer, wait_idle, tiny_vae_run, tiny_prior)
    assert explorer.prior_group.isEnabled()
    explorer.sample_prior(30)
    wait_idle(explorer)
    assert explorer.plot.points(PRIOR).shape == (30, 2) and explorer.plot.points(GAUSSIAN).shape == (30, 2)
    assert "N(0, I) samples" in explorer.sample_status.text()
    explorer.show_point(PRIOR, 4)
    wait_idle(explorer)
    layer = viewer.layers[VOLUME_LAYER]
    assert layer.metadata["label"] == "prior sample 4"
    np.testing.assert_allclose(layer.data, run.volume(explorer.samples.prior[4]), rtol=1e-5, atol=1e-6)

    explorer.set_path_end(explorer.start_box, "prior sample 4", explorer.samples.prior[4])
    explorer.n_steps.setValue(5)
    assert explorer.method_box.currentText() == "PF-ODE through the prior"
    explorer.compute_path()
    wait_idle(explorer)
    assert viewer.layers[PATH_LAYER].data.shape == (5, 16, 16, 16)
    np.testing.assert_allclose(explorer.path[0], explorer.samples.prior[4], atol=0.05)
    vertices, _ = _drawn_path(explorer.plot)  # drawn through every decoded point, not from A straight to B
    np.testing.assert_allclose(vertices, explorer.loaded.land.place(explorer.path), rtol=1e-6, atol=1e-9)


def test_path_is_drawn_through_its_points_and_jumps_are_dashed(qtbot):
    from cryodiff.napari._landscape import landscape
    from cryodiff.napari._latent_plot import LatentPlot

    rng = np.random.default_rng(0)
    islands = np.r_[rng.normal(-3.0, 0.3, (100, 4)), rng.normal(3.0, 0.3, (100, 4))]
    plot = LatentPlot()
    qtbot.addWidget(plot)
    plot.show_landscape(landscape(islands, "PCA", 2), "cluster")
    particles = plot.points(PARTICLE)
    xy = particles[np.argsort(particles[:, 0])[[0, 30, 60, 99, 100, 140, 170, 199]]]  # 4 particles on each island
    plot.set_points(PATH, xy)
    vertices, dashed = _drawn_path(plot)
    np.testing.assert_allclose(vertices, xy)  # one vertex per path point, in order
    assert dashed == [False, False, False, True, False, False, False]  # only the step across the empty band


def test_explorer_opened_after_the_run_reader_shows_one_volume(viewer, qtbot, wait_idle, tiny_vae_run, run):
    from cryodiff.napari._widget import ExplorerWidget

    viewer.open(str(tiny_vae_run), plugin="cryodiff")
    shown = viewer.layers[VOLUME_LAYER].metadata["label"]
    _, widget = viewer.window.add_plugin_dock_widget("cryodiff", "Latent explorer")  # as Plugins ▸ Latent explorer
    assert isinstance(widget, ExplorerWidget) and widget.run_edit.text() == str(tiny_vae_run)
    wait_idle(widget)  # it opens the run by itself
    assert widget.loaded is not None, widget.status.text()
    layer = viewer.layers[VOLUME_LAYER]
    assert [lyr.name for lyr in viewer.layers] == [VOLUME_LAYER]  # one shown volume; no latent points in 3-D
    assert layer.metadata["label"] == shown and widget.selection[0] == shown  # it starts at the reader's volume
    assert layer.colormap.name == "cryodiff shown volume"  # in the red of the plot's star, as the explorer's own
    assert viewer.dims.ndisplay == 3 and f"red: {shown}" in viewer.canvas.overlays.text.text
    widget.show_point(PARTICLE, 3)
    wait_idle(widget)
    assert [lyr.name for lyr in viewer.layers] == [VOLUME_LAYER] and viewer.layers[VOLUME_LAYER] is layer
    assert layer.metadata["label"].startswith("particle 3 ") and layer.metadata["cryodiff_run"] == str(tiny_vae_run)
    np.testing.assert_allclose(layer.data, run.volume(run.z_mu[3]), rtol=1e-5, atol=1e-6)


def test_drag_follows_the_mouse(explorer, viewer, qtbot, wait_idle, tiny_vae_run, run):
    _open(explorer, wait_idle, tiny_vae_run)
    xy = explorer.plot.points(PARTICLE)
    left, right = int(np.argmin(xy[:, 0])), int(np.argmax(xy[:, 0]))
    button = Qt.MouseButton.LeftButton
    qtbot.mousePress(explorer.plot, button, pos=explorer.plot.position_of(xy[left]))
    qtbot.mouseMove(explorer.plot, pos=explorer.plot.position_of(xy[[left, right]].mean(0)))
    qtbot.mouseMove(explorer.plot, pos=explorer.plot.position_of(xy[right]))
    qtbot.mouseRelease(explorer.plot, button, pos=explorer.plot.position_of(xy[right]))
    wait_idle(explorer)
    layer = viewer.layers[VOLUME_LAYER]
    assert layer.metadata["label"].startswith(f"particle {right} ")
    np.testing.assert_allclose(layer.data, run.volume(run.z_mu[right]), rtol=1e-5, atol=1e-6)


def test_umap_and_density_from_saved_analysis(explorer, wait_idle, tiny_vae_run, tmp_path, run):
    import shutil

    from cryodiff.cli.main import main

    copy = shutil.copytree(tiny_vae_run, tmp_path / "run")
    assert main(["analyze", str(copy), "--skip-vol", "--skip-umap", "--pc", "0"]) == 0
    umap = np.random.default_rng(2).standard_normal((len(run.z_mu), 2)).astype(np.float32)
    np.save(copy / "analyze" / "umap.npy", umap)  # stands in for a UMAP (computing one takes ~20 s)
    _open(explorer, wait_idle, copy)
    explorer.kind_box.setCurrentText("UMAP")
    wait_idle(explorer)
    np.testing.assert_array_equal(explorer.plot.points(PARTICLE), umap)
    explorer.colour_box.setCurrentText("density")
    assert explorer.plot._ax.get_xlabel() == "UMAP1" and len(explorer.plot.figure.axes) == 2  # plot and colour bar


def test_missing_run_is_reported(explorer, viewer, wait_idle, tmp_path):
    from napari.utils.notifications import notification_manager

    messages = []
    notification_manager.notification_ready.connect(lambda event: messages.append(str(event.message)))
    explorer.load(tmp_path / "nothing")
    wait_idle(explorer)
    assert explorer.loaded is None and "config.json missing" in explorer.status.text()
    assert len(viewer.layers) == 0
    assert any("nothing" in m and "Fix:" in m for m in messages), messages


def test_closing_the_dock_drops_running_jobs(viewer, qtbot, tiny_vae_run, run):
    from cryodiff.napari._widget import ExplorerWidget

    widget = ExplorerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Latent explorer")
    widget.load(tiny_vae_run)
    viewer.window.remove_dock_widget(widget)  # what the dock's close button does, while the run opens
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.loaded is None and len(viewer.layers) == 0  # the finished job added nothing

    widget = ExplorerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Latent explorer")
    widget.load(tiny_vae_run)
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    shown = viewer.layers[VOLUME_LAYER].metadata["label"]
    widget.show_point(PARTICLE, len(run.z_mu) - 1)
    viewer.window.remove_dock_widget(widget)  # while that volume decodes
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert viewer.layers[VOLUME_LAYER].metadata["label"] == shown
    viewer.dims.set_current_step(0, 1)  # the viewer no longer calls into the closed explorer


def test_volume_outside_the_data_is_flagged_on_the_canvas(explorer, viewer, wait_idle, tiny_vae_run, run, tmp_path):
    _open(explorer, wait_idle, tiny_vae_run)
    far = run.z_mu.mean(0) + 40 * run.z_mu.std(0)
    explorer._select("far point", far, explorer.loaded.land.place(far[None])[0])
    wait_idle(explorer)
    layer = viewer.layers[VOLUME_LAYER]
    assert layer.metadata["support"]["supported"] is False
    assert "outside the particles' support" in explorer.status.text()
    assert "OUTSIDE THE DATA" in viewer.canvas.overlays.text.text
    viewer.screenshot(str(tmp_path / "outside.png"), canvas_only=False)

    explorer.show_point(PARTICLE, 0)  # back among the particles: the warning goes
    wait_idle(explorer)
    assert layer.metadata["support"]["supported"] is True
    assert "outside" not in explorer.status.text() and "OUTSIDE" not in viewer.canvas.overlays.text.text
    assert "particles within" in explorer.status.text()
