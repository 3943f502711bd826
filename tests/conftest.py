"""Shared fixtures: the real RELION/cryoSPARC sample files in ``../shared/formats``,
cryoDRGN 4.3.1 for side-by-side checks, and a tiny trained VAE run for command-line tests.

Both outside resources are optional: without them the tests that need them
skip with a reason. ``CRYODIFF_FORMATS_DIR`` points the sample files
elsewhere (CI sets it to a missing folder once, to prove the suite passes on
a fresh clone); ``CRYODRGN`` names a cryodrgn executable.
"""

import logging
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The repository sits beside ``shared/`` (in CI a copy of it), never inside it.
FORMATS_DIR = Path(os.environ.get("CRYODIFF_FORMATS_DIR", REPO.parent / "shared" / "formats"))


def pytest_collection_modifyitems(config, items):
    """Mark the tests that read the sample files, so ``-m shared_files`` selects them."""
    for item in items:
        if "formats_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_files)


@pytest.fixture
def formats_dir() -> Path:
    """Folder of real sample files; skips the test when it is absent (a fresh clone)."""
    if not (FORMATS_DIR / "expected").is_dir():
        pytest.skip(f"sample files not found at {FORMATS_DIR}")
    return FORMATS_DIR


def find_cryodrgn() -> Path | None:
    """The cryodrgn 4.3.1 executable: $CRYODRGN, the repository's ``.venv-cryodrgn`` (which
    ``.ci/run`` makes), or one on PATH; ``None`` if there is none."""
    candidates = [os.environ.get("CRYODRGN"), REPO / ".venv-cryodrgn" / "bin" / "cryodrgn", shutil.which("cryodrgn")]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="session")
def cryodrgn() -> Path:
    """cryoDRGN 4.3.1, run as a separate program (never imported); skips the test without it."""
    exe = find_cryodrgn()
    if exe is None:
        pytest.skip("cryoDRGN 4.3.1 not found: set CRYODRGN=/path/to/cryodrgn, or make .venv-cryodrgn "
                    "(python3 -m venv .venv-cryodrgn && .venv-cryodrgn/bin/pip install torch==2.13.0 cryodrgn==4.3.1)")
    return exe


@pytest.fixture(scope="session")
def run_cryodrgn(cryodrgn):
    """``run_cryodrgn(*args, cwd=None)``: cryoDRGN 4.3.1 on one thread; a failure fails the test with its stderr."""
    import subprocess

    def run(*args, cwd=None):
        env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        done = subprocess.run([str(cryodrgn), *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    return run


@pytest.fixture(scope="session")
def tiny_vae_run(tmp_path_factory) -> Path:
    """A VAE with zdim 4 (box 16) trained for one epoch on 96 simulated particles."""
    import numpy as np

    from recon.io import read_particles
    from recon.synthetic import write_synthetic_dataset
    from recon.training import TrainingData, TrainSettings, train_vae
    from recon.vae import Architecture

    root = tmp_path_factory.mktemp("tiny_vae")
    write_synthetic_dataset(root / "data", n=96, box=16, apix=6.0, snr=1.0, seed=0, grid=2)
    star = root / "data" / "particles.star"
    particles = read_particles(star)
    rotations, shifts = particles.meta.require_poses()
    data = TrainingData(
        images=particles.images, indices=np.arange(96), rotations=rotations, shifts_px=shifts, ctf=particles.meta.ctf,
        box=16, apix=6.0, source={"particles": str(star), "datadir": None, "poses": None, "ctf": None, "ind": None},
    )
    arch = Architecture(box=16, zdim=4, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1)
    train_vae(data, arch, TrainSettings(epochs=1, batch_size=32, lr=1e-3), root / "run", show_progress=False)
    return root / "run"


@pytest.fixture(scope="session")
def latent_mixture():
    """A 4-D stand-in for particle latents with a known density: three anisotropic
    components, unequal weights, away from the origin (not unit scale)."""
    import numpy as np

    from generative.mixtures import GaussianMixture

    means = [[3.0, 0.0, 1.0, -2.0], [-2.0, 2.0, 0.0, 1.0], [0.0, -3.0, -1.0, 4.0]]
    stds = [[0.5, 0.3, 0.8, 0.4], [0.4, 0.4, 0.4, 0.4], [0.6, 0.6, 0.3, 0.5]]
    covs = [np.diag(np.square(s)) for s in stds]
    covs[0][0, 2] = covs[0][2, 0] = 0.3  # one correlated component
    return GaussianMixture([0.5, 0.3, 0.2], means, np.array(covs))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module of tiny-tensor tests (avoids
    oversubscribing a small machine); restores the previous count after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fails_with_one_line(capsys):
    """``check(argv, *phrases)``: the command exits 2 and prints one error line
    ``cryodiff COMMAND: error: ...`` containing every phrase."""
    from cryodiff.cli.main import main

    def check(argv, *phrases):
        capsys.readouterr()  # what earlier commands of the test printed is not this command's
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith(f"cryodiff {argv[0]}: error:"), err
        for phrase in phrases:
            assert phrase in err, err

    return check


class _NumericLogRecord(logging.LogRecord):
    """A log record that keeps numbers as numbers (numpy scalars become Python ones) and turns
    everything else into text, so that it holds no references to objects (the leak safety
    napari's pytest plugin wants) and ``%d``/``%.3g`` still format numpy values."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.args, tuple):
            self.args = tuple(a.item() if hasattr(a, "item") and getattr(a, "ndim", None) == 0 else
                              a if isinstance(a, int | float) else str(a) for a in self.args)


@pytest.fixture(autouse=True, scope="session")
def numeric_log_arguments(request):
    """napari's pytest plugin (``use_leak_safe_log_records``) turns numpy log arguments into
    strings, which breaks ``log.info("%d", np.int64(3))`` in every test of the session; this
    replaces its record factory by one that keeps numbers."""
    try:
        request.getfixturevalue("use_leak_safe_log_records")
    except pytest.FixtureLookupError:
        pass  # napari not installed
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(_NumericLogRecord)
    yield
    logging.setLogRecordFactory(previous)
