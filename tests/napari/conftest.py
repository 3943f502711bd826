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


#: napari's fixture that makes viewers; every fixture built on it (``viewer``, ``explorer``) makes one too.
VIEWER_MAKER = "make_napari_viewer"


def viewer_fixtures(item: pytest.Function) -> set[str]:
    """Names of the fixtures of ``item`` that make a napari viewer: :data:`VIEWER_MAKER` and every
    fixture that needs it, directly or through other fixtures."""
    defs = item._fixtureinfo.name2fixturedefs  # pytest's own table: the definitions of each fixture the item uses
    needs = {name: set(definitions[-1].argnames) for name, definitions in defs.items()}  # the last one applies
    makers = {VIEWER_MAKER}
    while grown := {name for name, args in needs.items() if args & makers} - makers:
        makers |= grown
    return makers & set(item.fixturenames)


def make_viewers_last(item: pytest.Function) -> None:
    """Set up every other fixture of ``item`` before any that makes a viewer.

    pytest sets fixtures up in the order of ``item.fixturenames`` (the test's
    arguments, left to right, within a scope). A fixture that skips the test
    when a resource is missing (``formats_dir`` on a fresh clone) must run
    before the viewer exists: napari's viewer teardown reads the report of
    the test call, which a test skipped during setup never has, and errors.
    """
    makers = viewer_fixtures(item)
    item.fixturenames.sort(key=lambda name: name in makers)  # stable: the order is otherwise kept


def pytest_collection_modifyitems(config, items):
    """In every test here, make viewers after the other fixtures; without a display, skip the tests needing Qt."""
    here = Path(__file__).parent
    ours = [item for item in items if Path(item.fspath).parent == here and isinstance(item, pytest.Function)]
    for item in ours:
        make_viewers_last(item)
    if HAS_DISPLAY:
        return
    skip = pytest.mark.skip(reason="no display for Qt: run under xvfb-run -a")
    for item in ours:
        if {"qtbot", VIEWER_MAKER} & set(item.fixturenames):
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
