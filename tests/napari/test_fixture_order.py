"""A fixture that skips the test runs before napari's viewer is made, whatever the argument order
(``make_viewers_last`` in conftest.py); otherwise napari's viewer teardown errors on the skipped test."""

import pytest


@pytest.fixture
def missing_files():
    """Stands in for a fixture that skips when its files are absent (``formats_dir`` on a fresh clone)."""
    pytest.skip("stands in for absent sample files; skips before any viewer is made")


def test_skipping_fixture_after_viewer_skips_cleanly(viewer, missing_files):
    raise AssertionError("not reached: missing_files skips the test")


def test_fixtures_that_make_viewers_come_last(request, explorer, tmp_path):
    names = request.node.fixturenames
    assert names.index("tmp_path") < min(names.index(name) for name in ("explorer", "viewer", "make_napari_viewer"))
