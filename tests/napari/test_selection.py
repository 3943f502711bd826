"""Selecting particles in the Latent explorer as a user does: a polygon drawn with real mouse events on
the latent plot, a score threshold, the files written, the map and its half-map FSC."""

import h5py
import numpy as np
import pytest
from qtpy.QtCore import Qt

from cryodiff.cli.main import main
from cryodiff.napari._latent_plot import PARTICLE, SELECTION
from cryodiff.napari._selection_panel import MAP_LAYER
from recon.fsc import fsc
from recon.io import read_metadata, read_volume
from recon.io.pkl import load_pickle_safely
from recon.run import load_run


@pytest.fixture(scope="module")
def run(tiny_vae_run):
    return load_run(tiny_vae_run)


def _open(explorer, wait_idle, run_path):
    explorer.load(run_path)
    wait_idle(explorer)
    assert explorer.loaded is not None, explorer.status.text()


def _split_x(xy: np.ndarray, plot) -> float:
    """An x between two particles of the middle half, in the widest gap there (several screen pixels wide,
    so a corner rounded to a pixel cannot change which particles fall inside)."""
    xs = np.sort(xy[:, 0])
    n = len(xs)
    middle = xs[n // 4: 3 * n // 4]
    gaps = np.diff(middle)
    i = int(np.argmax(gaps))
    left, right = (plot.position_of((x, xy[0, 1])).x() for x in (middle[i], middle[i + 1]))
    assert right - left >= 4, "the particles are too dense to split by a click"
    return float((middle[i] + middle[i + 1]) / 2)


def _draw(qtbot, plot, corners) -> None:
    """Move to and click each corner on the plot, then click the first one again to close the polygon."""
    for xy in [*corners, corners[0]]:
        pos = plot.position_of(xy)
        qtbot.mouseMove(plot, pos)
        qtbot.wait(50)  # the move reaches matplotlib (the selector locks onto the first corner) before the click
        qtbot.mouseClick(plot, Qt.MouseButton.LeftButton, pos=pos)


def test_polygon_selects_writes_and_reconstructs(explorer, viewer, qtbot, wait_idle, tiny_vae_run, run, tmp_path):
    _open(explorer, wait_idle, tiny_vae_run)
    panel, plot = explorer.selection_panel, explorer.plot
    assert not panel.write_button.isEnabled() and not panel.map_button.isEnabled()
    xy = plot.points(PARTICLE)
    x_split = _split_x(xy, plot)
    lo, hi = xy.min(0), xy.max(0)
    pad = 0.02 * (hi - lo)
    corners = [(lo[0] - pad[0], lo[1] - pad[1]), (x_split, lo[1] - pad[1]), (x_split, hi[1] + pad[1]), (lo[0] - pad[0], hi[1] + pad[1])]

    qtbot.mouseClick(panel.draw_button, Qt.MouseButton.LeftButton)
    assert plot.drawing
    qtbot.waitUntil(lambda: plot._background is not None)  # drawn: the axes have their final place
    shown = viewer.layers["cryodiff: shown volume"].metadata["label"]
    _draw(qtbot, plot, corners)
    wait_idle(explorer)

    expected = np.flatnonzero(xy[:, 0] < x_split)  # everything left of the split, by plain comparison
    assert 0 < len(expected) < len(xy)
    np.testing.assert_array_equal(panel.rows, expected)
    assert not plot.drawing and not panel.draw_button.isChecked()
    assert viewer.layers["cryodiff: shown volume"].metadata["label"] == shown  # drawing picked no point
    assert f"{len(expected)} of {len(xy)} particles selected" in panel.count.text()
    (rings,) = [c for c in plot.figure.axes[0].collections if c.get_gid() == SELECTION]
    assert len(rings.get_offsets()) == len(expected)

    files = panel.write(tmp_path / "sel.star")
    assert [f.name for f in files] == ["sel.star", "sel.ind.txt", "sel.ind.pkl"]  # no .cs: trained on a star
    chosen = np.sort(np.asarray(run.indices)[expected])
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "sel.ind.txt", dtype=np.int64, ndmin=1), chosen)
    np.testing.assert_array_equal(load_pickle_safely(tmp_path / "sel.ind.pkl"), chosen)
    source = read_metadata(run.config["data"]["particles"])
    written = read_metadata(tmp_path / "sel.star")
    assert [name.split("@")[0] for name in written.image_names] == [source.image_names[i].split("@")[0] for i in chosen]
    np.testing.assert_allclose(written.rotations, source.rotations[chosen], atol=1e-6)

    qtbot.mouseClick(panel.map_button, Qt.MouseButton.LeftButton)
    wait_idle(explorer)
    layer = viewer.layers[MAP_LAYER]
    assert layer.data.shape == (16, 16, 16)
    np.testing.assert_allclose(layer.scale, [run.apix] * 3)
    assert panel.fsc_plot.isVisible() and len(panel.fsc_plot.figure.axes[0].lines) >= 2
    assert "Resolution:" in panel.map_status.text() and f"{len(expected)} particles" in panel.map_status.text()

    # the same particles through the command line give the same map and half-map FSC
    out = tmp_path / "cli.mrc"
    assert main(["backproject", run.config["data"]["particles"], "--ind", str(tmp_path / "sel.ind.txt"), "-o", str(out)]) == 0
    np.testing.assert_allclose(layer.data, read_volume(out)[0], rtol=1e-4, atol=1e-5)
    half1, half2 = (read_volume(tmp_path / f"cli_half{h}.mrc")[0] for h in (1, 2))
    np.testing.assert_allclose(panel.map.curve, fsc(half1, half2)[1], atol=1e-4)


def test_score_threshold_combines_with_the_polygon(explorer, wait_idle, tiny_vae_run, run, tmp_path):
    _open(explorer, wait_idle, tiny_vae_run)
    panel = explorer.selection_panel
    n = len(run.indices)
    log_prob = np.linspace(-10.0, 0.0, n)[np.random.default_rng(0).permutation(n)]
    scores = tmp_path / "scores.h5"
    with h5py.File(scores, "w") as h5:  # the layout score-particles writes, in another particle order
        order = np.arange(n)[::-1]
        h5["indices"], h5["log_prob"] = np.asarray(run.indices)[order], log_prob[order]
    panel.load_scores(scores)
    assert panel.use_scores.isChecked()
    panel.min_score.setValue(-5.0)
    np.testing.assert_array_equal(panel.rows, np.flatnonzero(log_prob >= -5.0))

    xy = explorer.plot.points(PARTICLE)
    corners = np.array([[-1e3, -1e3], [np.median(xy[:, 0]), -1e3], [np.median(xy[:, 0]), 1e3], [-1e3, 1e3]])
    explorer.plot.select_polygon(corners)
    np.testing.assert_array_equal(panel.rows, np.flatnonzero((log_prob >= -5.0) & (xy[:, 0] < np.median(xy[:, 0]))))

    panel.use_scores.setChecked(False)
    np.testing.assert_array_equal(panel.rows, np.flatnonzero(xy[:, 0] < np.median(xy[:, 0])))

    bad = tmp_path / "other.h5"
    with h5py.File(bad, "w") as h5:
        h5["indices"], h5["log_prob"] = np.arange(3), np.zeros(3)
    panel.load_scores(bad)  # scores of other particles: an error in the dock, the old scores stay
    assert "has no score for particle" in explorer.status.text()
    assert panel.scores is not None and len(panel.scores) == n


def test_cs_run_selection_writes_a_cs_and_follows_its_half_sets(explorer, viewer, wait_idle, tmp_path):
    """A run trained on a cryoSPARC .cs with alignments3D/split: the panel writes a .cs subset with the
    chosen uids, its half maps follow the file's split, and the saved maps equal backproject's."""
    from recon.io import read_particles
    from recon.synthetic import write_synthetic_dataset
    from test_refinement_metadata import _cs

    write_synthetic_dataset(tmp_path / "data", n=60, box=16, apix=6.0, snr=1.0, seed=2, grid=2)
    meta = read_particles(tmp_path / "data" / "particles.star").meta
    split = np.random.default_rng(1).integers(0, 2, 60)  # not even/odd
    cs = _cs(tmp_path / "data" / "particles.cs", meta.rotations, meta.shifts_px, meta.ctf, 6.0, box=16, split=split)
    tiny = ["--zdim", "2", "-n", "1", "--enc-dim", "16", "--dec-dim", "16", "--enc-layers", "1", "--dec-layers", "1", "--threads", "1"]
    assert main(["train-vae", str(cs), "-o", str(tmp_path / "run"), *tiny]) == 0
    _open(explorer, wait_idle, tmp_path / "run")
    panel = explorer.selection_panel
    xy = explorer.plot.points(PARTICLE)
    middle = float(np.median(xy[:, 1]))
    explorer.plot.select_polygon([(-1e3, middle), (1e3, middle), (1e3, 1e3), (-1e3, 1e3)])  # the upper half
    expected = np.flatnonzero(xy[:, 1] > middle)
    np.testing.assert_array_equal(panel.rows, expected)

    files = panel.write(tmp_path / "upper.star")
    assert [f.name for f in files] == ["upper.star", "upper.ind.txt", "upper.ind.pkl", "upper.cs"]
    np.testing.assert_array_equal(np.load(tmp_path / "upper.cs")["uid"], np.load(cs)["uid"][expected])

    panel.reconstruct()
    wait_idle(explorer)
    assert panel.map.half_source == "alignments3D/split"
    saved = panel.save_maps(tmp_path / "upper.mrc")
    assert [f.name for f in saved] == ["upper.mrc", "upper_half1.mrc", "upper_half2.mrc"]
    assert main(["backproject", str(cs), "--ind", str(tmp_path / "upper.ind.txt"), "-o", str(tmp_path / "cli.mrc")]) == 0
    for ours, cli in zip(saved, ("cli.mrc", "cli_half1.mrc", "cli_half2.mrc")):
        np.testing.assert_allclose(read_volume(ours)[0], read_volume(tmp_path / cli)[0], rtol=1e-4, atol=1e-5)
