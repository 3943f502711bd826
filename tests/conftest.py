"""Shared fixtures: the real RELION/cryoSPARC sample files in ``../shared/formats``."""

from pathlib import Path

import pytest

#: The repository sits beside ``shared/`` (in CI a copy of it), never inside it.
FORMATS_DIR = Path(__file__).resolve().parents[2] / "shared" / "formats"


@pytest.fixture
def formats_dir() -> Path:
    """Folder of real sample files; skips the test when it is absent (a fresh clone)."""
    if not (FORMATS_DIR / "expected").is_dir():
        pytest.skip(f"sample files not found at {FORMATS_DIR}")
    return FORMATS_DIR
