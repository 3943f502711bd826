"""Environment and fixtures of the napari plugin tests.

The GUI tests need an X display: run them as ``xvfb-run -a pytest tests/napari``
(CI does). Here, before napari is imported, napari's settings go to a
temporary file (``NAPARI_CONFIG``, so a developer's own settings neither leak
in nor get overwritten), Qt gets a private ``XDG_RUNTIME_DIR`` (mode 0700, as
Qt requires) and pytest-qt is pointed at PyQt6. Without napari installed
these tests are not collected; without a display the tests that open a
viewer are skipped with a reason, the others still run.
"""

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="cryodiff-napari-tests-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
os.environ.setdefault("NAPARI_CONFIG", str(_TMP / "napari_settings.yaml"))
os.environ.setdefault("PYTEST_QT_API", "pyqt6")
if not os.environ.get("XDG_RUNTIME_DIR"):
    (_TMP / "xdg").mkdir(mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(_TMP / "xdg")

if importlib.util.find_spec("napari") is None:
    collect_ignore_glob = ["test_*.py"]

HAS_DISPLAY = sys.platform != "linux" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def pytest_collection_modifyitems(config, items):
    if HAS_DISPLAY:
        return
    skip = pytest.mark.skip(reason="no display for Qt: run under xvfb-run -a")
    here = Path(__file__).parent
    for item in items:
        if Path(item.fspath).parent == here and {"qtbot", "make_napari_viewer"} & set(item.fixturenames):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_prior(tiny_vae_run, tmp_path_factory) -> Path:
    """A diffusion prior trained for 300 steps on the tiny run's latents (kept away from
    ``RUN/prior`` and ``RUN/../prior``, so the run alone has no prior)."""
    import torch

    from cryodiff.prior import read_latents, train_prior

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny_prior") / "prior"
    train_prior(read_latents(tiny_vae_run), out, steps=300, batch_size=64, log_every=100, checkpoint_every=300)
    torch.set_num_threads(threads)
    return out


@pytest.fixture
def viewer(make_napari_viewer):
    """A napari viewer, shown (on Xvfb) so that its canvas renders as on a screen."""
    return make_napari_viewer(show=True)


@pytest.fixture
def explorer(viewer, qtbot):
    """The Latent explorer docked in ``viewer``; waits for its background jobs before the viewer closes."""
    from cryodiff.napari._widget import ExplorerWidget

    widget = ExplorerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Latent explorer", area="right")
    yield widget
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)


@pytest.fixture
def wait_idle(qtbot):
    """``wait_idle(explorer)``: let the event loop run until the explorer's jobs are done."""

    def wait(widget, timeout=60_000):
        qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)

    return wait
