"""Screenshots of the napari plugin on a simulated run, for docs/napari.md.

Make the run once (about 10 minutes on 2 CPU cores, not committed), then
render under a virtual display::

    cryodiff demo /tmp/demo64 -D 64 -n 2000
    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/napari_screenshots.py /tmp/demo64

Writes into docs/images (or --out):

    napari_run.png        the run folder opened by the reader: its shown volume (a section, as napari starts in 2-D)
    napari_explorer.png   then Plugins > Latent explorer: it opens that run; PCA plot by k-means cluster,
                          the clicked particle's volume in the same layer
    napari_prior.png      prior and N(0, I) samples on the density plot, a prior sample's volume
    napari_path.png       a PF-ODE path A -> B (B the cluster farthest from A) on the plot and its volumes,
                          half-way along
    napari_selection.png  a polygon drawn around one k-means cluster, its particles' gold-standard map
                          (green, left) with the half-map FSC in the dock
    napari_particles.png  the demo's particle file opened by the reader (images and centre markers)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("NAPARI_CONFIG", str(Path(tempfile.mkdtemp()) / "napari_settings.yaml"))

WINDOW = (1600, 1000)


def settle(explorer=None) -> None:
    """Run the event loop until the explorer's background jobs are done and the window has redrawn."""
    import time

    from qtpy.QtWidgets import QApplication

    while explorer is not None and explorer.busy:
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)


def new_viewer():
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*WINDOW)
    return viewer


def dismiss_notifications(viewer) -> None:
    """Close napari's notification pop-ups in the window of ``viewer``."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for notification in viewer.window._qt_window.findChildren(NapariQtNotification):
        notification.close()


def run_shots(run: Path, out: Path) -> None:
    """Open ``run`` as a user would (the reader, then Plugins > Latent explorer) and take the run, explorer,
    prior and path screenshots."""
    import numpy as np

    from cryodiff.napari._latent_plot import PARTICLE, PRIOR

    viewer = new_viewer()
    viewer.open(str(run), plugin="cryodiff")
    settle()
    viewer.screenshot(str(out / "napari_run.png"), canvas_only=False)
    dismiss_notifications(viewer)  # the reader's hint has been seen; it would cover the scale bar from now on

    _, explorer = viewer.window.add_plugin_dock_widget("cryodiff", "Latent explorer")  # it opens the run
    settle(explorer)
    land = explorer.loaded.land
    explorer.show_point(PARTICLE, int(land.centre_rows[-1]))
    settle(explorer)
    viewer.screenshot(str(out / "napari_explorer.png"), canvas_only=False)

    explorer.colour_box.setCurrentIndex(1)
    explorer.sample_prior(300)
    settle(explorer)
    prior_xy = explorer.plot.points(PRIOR)  # a sample in the lower left, far from the particle shown before
    corner = land.xy[land.centre_rows].min(0)
    explorer.show_point(PRIOR, int(np.argmin(((prior_xy - corner) ** 2).sum(1))))
    settle(explorer)
    viewer.screenshot(str(out / "napari_prior.png"), canvas_only=False)

    explorer.colour_box.setCurrentIndex(0)
    centres = land.xy[land.centre_rows]
    explorer.end_box.setCurrentIndex(int(np.argmax(((centres - centres[0]) ** 2).sum(1))))  # B far from A
    explorer.compute_path()
    settle(explorer)
    viewer.dims.set_current_step(0, len(explorer.path) // 2)
    settle()
    viewer.screenshot(str(out / "napari_path.png"), canvas_only=False)
    viewer.close()


def selection_shot(run: Path, png: Path) -> None:
    """A polygon around the largest k-means cluster (its convex hull, grown by 5 %), then its map."""
    import numpy as np
    from scipy.spatial import ConvexHull

    from cryodiff.napari._widget import ExplorerWidget

    viewer = new_viewer()
    explorer = ExplorerWidget(viewer)
    viewer.window.add_dock_widget(explorer, name="Latent explorer", area="right")
    explorer.load(run)
    settle(explorer)
    land = explorer.loaded.land
    cluster = land.xy[land.labels == np.argmax(np.bincount(land.labels))]
    hull = cluster[ConvexHull(cluster).vertices]
    centre = hull.mean(0)
    explorer.plot.select_polygon(centre + 1.05 * (hull - centre))
    explorer.selection_panel.reconstruct()
    settle(explorer)
    viewer.screenshot(str(png), canvas_only=False)
    viewer.close()


def reader_shot(path: Path, png: Path, step: int | None = None) -> None:
    """What napari shows when ``path`` is opened with the cryodiff readers (at image ``step`` of a stack)."""
    viewer = new_viewer()
    viewer.open(str(path), plugin="cryodiff")
    if step is not None:
        viewer.dims.set_current_step(0, step)
    viewer.reset_view()
    settle()
    viewer.screenshot(str(png), canvas_only=False)
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="output folder of cryodiff demo (vae/, prior/, data/)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    run_shots(args.demo / "vae", args.out)
    selection_shot(args.demo / "vae", args.out / "napari_selection.png")
    reader_shot(args.demo / "data" / "particles.star", args.out / "napari_particles.png", step=3)
    print(f"wrote screenshots to {args.out}")


if __name__ == "__main__":
    main()
