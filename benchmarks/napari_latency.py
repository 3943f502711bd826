"""Latency of the napari plugin: decoding a volume, and a click on the latent plot until the volume layer is updated.

Needs a trained run (e.g. ``cryodiff demo /tmp/demo64 -D 64 -n 2000``, box 64)
and a display (``xvfb-run -a`` on a headless machine)::

    xvfb-run -a -s "-screen 0 1280x1024x24" python benchmarks/napari_latency.py /tmp/demo64/vae

Prints one JSON object:

* ``decode_s``: seconds of ``run.volume(z, box)`` per box (the run's box and
  smaller ones), median/min/max over ``--repeats`` particles;
* ``click_to_layer_s`` per box: from a mouse click on a particle in the
  explorer's plot (a real Qt mouse event) until the napari volume layer holds
  that particle's volume, through the background worker, with the canvas in
  3-D; the window is left to finish drawing before each click;
* ``render_3d_frame_s``: one draw of napari's 3-D canvas (iso-surface), which
  comes on top once the layer is updated, and ``renderer``, the OpenGL
  renderer that drew it (under Xvfb: llvmpipe, on the CPU);
* ``open_stack_s``: opening a 100,000-image ``.mrcs`` stack (box 64) with
  the plugin's reader, whose data are a hole in a sparse file;
* ``torch_threads``, ``cpus``: the conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NAPARI_CONFIG", str(Path(tempfile.mkdtemp()) / "napari_settings.yaml"))


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4),
            "n": len(values)}


def decode_times(run, rows, boxes) -> dict:
    out = {}
    for box in boxes:
        run.volume(run.z_mu[rows[0]], box)  # warm-up
        times = []
        for row in rows:
            start = time.perf_counter()
            run.volume(run.z_mu[row], box)
            times.append(time.perf_counter() - start)
        out[str(box)] = summary(times)
    return out


def wait_for(condition, timeout=120.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the explorer did not answer in time")
        QApplication.processEvents()
        time.sleep(0.001)


def click_times(run_path: Path, rows, boxes) -> dict:
    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    from cryodiff.napari._latent_plot import PARTICLE
    from cryodiff.napari._widget import ExplorerWidget

    viewer = napari.Viewer(show=True)
    explorer = ExplorerWidget(viewer)
    viewer.window.add_dock_widget(explorer, area="right")
    explorer.load(run_path)
    wait_for(lambda: not explorer.busy and explorer.volume_layer is not None)
    xy = explorer.plot.points(PARTICLE)
    out = {}
    for box in boxes:
        explorer.box_box.setCurrentIndex(explorer.box_box.findData(box))
        wait_for(lambda: not explorer.busy)
        times = []
        for row in rows:
            settle()
            pos = explorer.plot.position_of(xy[row])
            start = time.perf_counter()
            QTest.mouseClick(explorer.plot, Qt.MouseButton.LeftButton, pos=pos)
            label = explorer.selection[0]
            wait_for(lambda: not explorer.busy and explorer.volume_layer.metadata["label"] == label)
            times.append(time.perf_counter() - start)
        out[str(box)] = summary(times)
    settle()
    frames = []
    for _ in range(3):
        start = time.perf_counter()
        viewer.screenshot(canvas_only=True)
        frames.append(time.perf_counter() - start)
    from vispy.gloo import gl

    renderer = gl.glGetParameter(gl.GL_RENDERER)
    viewer.close()
    return {"click_to_layer_s": out, "render_3d_frame_s": summary(frames), "renderer": renderer}


def settle() -> None:
    """Let the window finish pending redraws."""
    from qtpy.QtWidgets import QApplication

    for _ in range(3):
        QApplication.processEvents()
        time.sleep(0.01)


def open_stack_time(folder: Path) -> float:
    import mrcfile
    import numpy as np

    from cryodiff.napari._reader import napari_get_reader

    path, n, box = folder / "big.mrcs", 100_000, 64
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.zeros((1, box, box), np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = 3.0
        mrc.header.nz = mrc.header.mz = n
    with open(path, "r+b") as f:
        f.truncate(1024 + n * box * box * 4)
    start = time.perf_counter()
    napari_get_reader(str(path))(str(path))
    return round(time.perf_counter() - start, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="trained run directory")
    parser.add_argument("--repeats", type=int, default=6, help="particles per measurement (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: %(default)s)")
    args = parser.parse_args()
    import numpy as np
    import torch

    from cryodiff.napari._jobs import decode_boxes
    from recon.run import load_run

    torch.set_num_threads(args.threads)
    run = load_run(args.run)
    rows = np.random.default_rng(0).choice(len(run.z_mu), args.repeats, replace=False).tolist()
    boxes = [b for b in decode_boxes(run.box) if b in (run.box, run.box // 2)]
    with tempfile.TemporaryDirectory() as tmp:
        stack = open_stack_time(Path(tmp))
    record = {"run": str(args.run), "box": run.box, "torch_threads": args.threads, "cpus": os.cpu_count(),
              "decode_s": decode_times(run, rows, boxes), **click_times(args.run, rows, boxes),
              "open_stack_s": {"images": 100_000, "box": 64, "seconds": stack}}
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
