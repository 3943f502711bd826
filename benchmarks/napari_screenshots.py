"""Screenshots of the napari plugin on a simulated run, for docs/napari.md.

Make the run once (about 10 minutes on 2 CPU cores, not committed), then
render under a virtual display::

    cryodiff demo /tmp/demo64 -D 64 -n 2000
    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/napari_screenshots.py /tmp/demo64

Writes into docs/images (or --out):

    napari_explorer.png   the Latent explorer: PCA plot by k-means cluster, the clicked particle's volume
    napari_prior.png      prior and N(0, I) samples on the density plot, a prior sample's volume
    napari_path.png       a PF-ODE path A -> B on the plot and its volumes, half-way along
    napari_run.png        the run folder opened by the reader: a volume and the latents beside it
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


def explorer_shots(run: Path, out: Path) -> None:
    import numpy as np

    from cryodiff.napari._latent_plot import PARTICLE, PRIOR
    from cryodiff.napari._widget import ExplorerWidget

    viewer = new_viewer()
    explorer = ExplorerWidget(viewer)
    viewer.window.add_dock_widget(explorer, name="Latent explorer", area="right")
    explorer.load(run)
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
    explorer.compute_path()
    settle(explorer)
    viewer.dims.set_current_step(0, len(explorer.path) // 2)
    settle()
    viewer.screenshot(str(out / "napari_path.png"), canvas_only=False)
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
    explorer_shots(args.demo / "vae", args.out)
    reader_shot(args.demo / "vae", args.out / "napari_run.png")
    reader_shot(args.demo / "data" / "particles.star", args.out / "napari_particles.png", step=3)
    print(f"wrote screenshots to {args.out}")


if __name__ == "__main__":
    main()
