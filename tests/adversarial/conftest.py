"""Shared fixtures and checks of the adversarial suite (tests/adversarial).

The suite checks six promises of the ``cryodiff`` command line (see the
module docstring of each ``test_*.py``):

1. bad input: exit status 2 and one line ``cryodiff COMMAND: error: ... Fix: ...``
   naming the file or option, never a traceback;
2. physically impossible values are errors, never a plausible result;
3. nothing the user had is lost (:mod:`cryodiff.output_folder`);
4. corrupt or foreign run/prior files: one line, exit 2, no gigabyte allocations;
5. kill -9 and --resume end bit-identical, logs without repeats, temporary files cleaned;
6. full or read-only file systems: one line, exit 2, the input tree unchanged.

:func:`refuses` is the workhorse: it snapshots a checksum of every file under
the trees it is given (a ``.cryodiff.lock`` is ignored: it is the kernel lock
the output policy takes before it may look at a folder), runs the command in
this process, and checks the exit status, the last stderr line and that no
file changed, appeared or vanished.

Every test runs torch on one thread (``OMP_NUM_THREADS=1``): the suite must run
in a few minutes on a shared 2-core machine, and one thread keeps training
bit-reproducible between the uninterrupted and the resumed runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
#: Options that make every VAE tiny (box 16 data).
TINY_VAE = ["--enc-dim", "16", "--dec-dim", "16", "--enc-layers", "1", "--dec-layers", "1"]
#: The settings the shared ``tiny_vae_run`` fixture was trained with, for --resume.
TINY_RUN_RESUME = ["--zdim", "4", *TINY_VAE, "-b", "32", "--lr", "1e-3", "--threads", "1"]
#: Largest growth of the peak memory (KiB) a hostile-file test may cause.
MAX_RSS_GROWTH_KIB = 1 << 20  # 1 GiB
LOCK = ".cryodiff.lock"


# ----------------------------------------------------------------------------- environment

@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    """One OpenMP/torch thread per test (restored after): fast on a shared machine, reproducible."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- snapshots

def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def snapshot(*roots, exclude=()) -> dict[str, tuple]:
    """``{path: (kind, content)}`` for every entry under ``roots`` (links not followed), leaving
    out ``exclude`` (folders or files) and cryodiff's lock files."""
    exclude = [Path(os.path.abspath(e)) for e in exclude]
    state: dict[str, tuple] = {}
    for root in roots:
        root = Path(os.path.abspath(root))
        if not root.exists() and not root.is_symlink():
            continue
        stack = [root]
        while stack:
            entry = stack.pop()
            if any(_inside(entry, e) for e in exclude) or entry.name == LOCK:
                continue
            if entry.is_symlink():
                state[str(entry)] = ("link", os.readlink(entry))
            elif entry.is_dir():
                state[str(entry)] = ("dir",)
                stack.extend(entry.iterdir())
            else:
                state[str(entry)] = ("file", _digest(entry))
    return state


def describe_changes(before: dict, after: dict) -> str:
    changed = [p for p in before if p in after and before[p] != after[p]]
    appeared = [p for p in after if p not in before]
    vanished = [p for p in before if p not in after]
    parts = [f"{what}: {', '.join(sorted(paths)[:6])}" for what, paths in
             (("changed", changed), ("appeared", appeared), ("vanished", vanished)) if paths]
    return "; ".join(parts)


def assert_unchanged(before: dict, *roots, exclude=()) -> None:
    after = snapshot(*roots, exclude=exclude)
    diff = describe_changes(before, after)
    assert not diff, f"the tree changed: {diff}"


# ----------------------------------------------------------------------------- running commands

class Overrun(BaseException):
    """Raised by :func:`guarded` when a command runs past its time limit (a BaseException, so that
    no ``except Exception`` in the package swallows it)."""


def _vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def guarded(seconds: int = 30, extra_bytes: int = 3 << 30):
    """Run the body under a time limit and an address-space cap (current size + ``extra_bytes``),
    so that a command that tries to allocate gigabytes fails fast instead of taking the
    machine down; yields a dict that receives ``rss_growth_kib`` (peak memory growth)."""
    info: dict = {}

    def alarm(signum, frame):
        raise Overrun(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_size_bytes() + extra_bytes
    capped = hard == resource.RLIM_INFINITY or cap < hard
    if capped:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    signal.alarm(seconds)
    try:
        yield info
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if capped:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        info["rss_growth_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak


def run_main(argv) -> int:
    """``main(argv)`` in this process; an exception escaping it (the user would see a Python
    traceback and exit status 1) fails the test with its type and message."""
    from cryodiff.cli.main import main

    argv = [str(a) for a in argv]
    try:
        return main(argv)
    except Overrun:
        raise
    except BaseException as err:  # noqa: BLE001 - any escape is the finding
        if isinstance(err, SystemExit):
            pytest.fail(f"`cryodiff {' '.join(argv)}` raised SystemExit({err.code}) out of main()")
        pytest.fail(f"`cryodiff {' '.join(argv)}` escaped main() with a traceback: {type(err).__name__}: {str(err)[:300]}")


def last_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1].split("\r")[-1] if lines else ""


@pytest.fixture
def cli(capsys):
    """``cli(argv) -> (code, stdout, stderr)`` run in this process."""

    def call(argv):
        capsys.readouterr()
        code = run_main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def refuses(capsys):
    """``refuses(argv, *phrases, tree=(), exclude=(), guard=None)``: exit status 2, the last stderr
    line is ``cryodiff COMMAND: error: ...`` with "Fix:" and every phrase, no traceback, exactly
    one error line, and no file under ``tree`` (a path or a list) changed, appeared or vanished
    (``exclude``: the command's own output folder, which it may have created). Returns the line."""

    def check(argv, *phrases, tree=(), exclude=(), seconds: int | None = None):
        argv = [str(a) for a in argv]
        roots = [tree] if isinstance(tree, (str, os.PathLike)) else list(tree)
        excluded = [exclude] if isinstance(exclude, (str, os.PathLike)) else list(exclude)
        before = snapshot(*roots, exclude=excluded)
        capsys.readouterr()
        if seconds is None:
            code = run_main(argv)
        else:
            with guarded(seconds) as info:
                code = run_main(argv)
            assert info["rss_growth_kib"] < MAX_RSS_GROWTH_KIB, f"peak memory grew by {info['rss_growth_kib'] / 2**20:.1f} GiB"
        _, err = capsys.readouterr()
        line = last_line(err)
        assert "Traceback" not in err, f"traceback on stderr:\n{err[-2000:]}"
        assert code == 2, f"`cryodiff {' '.join(argv)}` exited {code}, not 2; last stderr line: {line!r}"
        assert line.startswith(f"cryodiff {argv[0]}: error:"), f"last stderr line is not the error line: {line!r}"
        assert "Fix:" in line, f"no fix in {line!r}"
        for phrase in phrases:
            assert str(phrase) in line, f"{str(phrase)!r} not named in {line!r}"
        errors = [x for x in err.splitlines() if ": error:" in x]
        assert len(errors) == 1, f"{len(errors)} error lines: {errors}"
        assert_unchanged(before, *roots, exclude=excluded)
        return line

    return check


def run_cli_subprocess(argv, timeout=120, env=None, cwd=None) -> subprocess.CompletedProcess:
    """``cryodiff argv`` in a fresh Python process (for what would take the test process down)."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cryodiff.cli.main", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=environ, cwd=cwd or REPO, check=False)


def popen_cli(argv, log_path: Path) -> subprocess.Popen:
    """``cryodiff argv`` started in the background, its output to ``log_path``."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    fh = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "cryodiff.cli.main", *map(str, argv)], stdout=fh, stderr=subprocess.STDOUT,
                            env=environ, cwd=REPO)
    proc._adv_log = fh  # type: ignore[attr-defined]
    return proc


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 120.0, poll: float = 0.02) -> bool:
    """Poll ``condition()`` until true; False when ``proc`` ended first or time ran out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(condition())
        time.sleep(poll)
    return False


# ----------------------------------------------------------------------------- data sets

@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """64 simulated particles, box 16, 6 Å/px: particles.star, particles.mrcs, volumes/, truth.h5."""
    from recon.synthetic import write_synthetic_dataset

    folder = tmp_path_factory.mktemp("adv_data") / "data"
    write_synthetic_dataset(folder, n=64, box=16, apix=6.0, snr=1.0, seed=0, grid=2)
    return folder


@pytest.fixture
def data_copy(dataset, tmp_path) -> Path:
    """A private copy of :func:`dataset` (tests that edit or place files beside it)."""
    return Path(shutil.copytree(dataset, tmp_path / "data"))


@pytest.fixture
def run_copy(tiny_vae_run, tmp_path) -> Path:
    """A private copy of the shared tiny VAE run (zdim 4, 96 particles, box 16; written by the
    library, so it has no output record)."""
    return Path(shutil.copytree(tiny_vae_run, tmp_path / "run"))


@pytest.fixture(scope="session")
def recorded_run(tiny_vae_run, tmp_path_factory) -> Path:
    """The tiny run continued once by ``cryodiff train-vae --resume``, so that it carries the
    output record (.cryodiff-outputs.json, kind train-vae) a command-line run has."""
    from cryodiff.cli.main import main

    run = Path(shutil.copytree(tiny_vae_run, tmp_path_factory.mktemp("adv_recorded") / "run"))
    star = load_config(run)["data"]["particles"]
    code = main(["train-vae", star, "-o", str(run), "--resume", "-n", "1", *TINY_RUN_RESUME])
    assert code == 0 and (run / ".cryodiff-outputs.json").is_file()
    return run


@pytest.fixture(scope="session")
def prior(tiny_vae_run, tmp_path_factory) -> Path:
    """A diffusion prior trained for 100 steps on the tiny run's latents (by the command line)."""
    from cryodiff.cli.main import main

    out = tmp_path_factory.mktemp("adv_prior") / "prior"
    assert main(["train-prior", str(tiny_vae_run), "-o", str(out), "--steps", "100", "-b", "64", "--threads", "1"]) == 0
    return out


@pytest.fixture
def prior_copy(prior, tmp_path) -> Path:
    return Path(shutil.copytree(prior, tmp_path / "prior"))


@pytest.fixture(scope="session")
def analyzed_run(recorded_run, tmp_path_factory) -> Path:
    """A copy of :func:`recorded_run` with ``cryodiff analyze --ksample 3`` (no UMAP, no volumes)."""
    from cryodiff.cli.main import main

    run = Path(shutil.copytree(recorded_run, tmp_path_factory.mktemp("adv_analyzed") / "run"))
    assert main(["analyze", str(run), "--skip-umap", "--skip-vol", "--ksample", "3", "--pc", "1", "--n-per-pc", "2"]) == 0
    return run


@pytest.fixture(scope="session")
def scores(prior, tiny_vae_run, tmp_path_factory) -> Path:
    """score-particles of the tiny run's latents under :func:`prior` (2 ODE steps)."""
    from cryodiff.cli.main import main

    out = tmp_path_factory.mktemp("adv_scores") / "scores.h5"
    assert main(["score-particles", str(prior), "--run", str(tiny_vae_run), "-o", str(out), "--steps", "2"]) == 0
    return out


def load_config(run: Path) -> dict:
    import json

    return json.loads((Path(run) / "config.json").read_text())


def save_config(run: Path, config: dict) -> None:
    import json

    (Path(run) / "config.json").write_text(json.dumps(config, indent=2))


# ----------------------------------------------------------------------------- editing particle files

def read_star_blocks(path: Path) -> dict:
    import starfile

    return starfile.read(path, always_dict=True)


def write_star_blocks(path: Path, blocks: dict) -> Path:
    import starfile

    starfile.write(blocks, path, overwrite=True)
    return path


def edited_star(dataset: Path, folder: Path, *, particles=None, optics=None, name="edited.star") -> Path:
    """A copy of the data set's star file in ``folder`` (with its stack beside it) after
    ``particles(table)`` / ``optics(table)`` edit the tables in place."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "particles.mrcs").exists():
        shutil.copy(dataset / "particles.mrcs", folder / "particles.mrcs")
    blocks = read_star_blocks(dataset / "particles.star")
    if particles is not None:
        particles(blocks["particles"])
    if optics is not None:
        optics(blocks["optics"])
    return write_star_blocks(folder / name, blocks)


def cs_from_dataset(dataset: Path, folder: Path, edit=None, name="particles.cs") -> Path:
    """A cryoSPARC .cs file for the data set's particles (stack copied beside it), after
    ``edit(array)`` changes fields in place."""
    from recon.io import read_metadata

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "particles.mrcs").exists():
        shutil.copy(dataset / "particles.mrcs", folder / "particles.mrcs")
    meta = read_metadata(dataset / "particles.star")
    n = len(meta)
    dtype = [("uid", "<u8"), ("blob/path", "S32"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4"),
             ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"), ("ctf/accel_kv", "<f4"),
             ("ctf/cs_mm", "<f4"), ("ctf/amp_contrast", "<f4"), ("ctf/phase_shift_rad", "<f4"),
             ("alignments3D/pose", "<f4", (3,)), ("alignments3D/shift", "<f4", (2,))]
    array = np.zeros(n, dtype=dtype)
    array["uid"] = np.arange(n) + 1000
    array["blob/path"] = b"particles.mrcs"
    array["blob/idx"] = np.arange(n)
    array["blob/shape"] = meta.box
    array["blob/psize_A"] = meta.apix
    array["ctf/df1_A"], array["ctf/df2_A"] = meta.ctf[:, 2], meta.ctf[:, 3]
    array["ctf/df_angle_rad"] = np.radians(meta.ctf[:, 4])
    array["ctf/accel_kv"], array["ctf/cs_mm"], array["ctf/amp_contrast"] = meta.ctf[:, 5], meta.ctf[:, 6], meta.ctf[:, 7]
    array["alignments3D/pose"] = np.random.default_rng(0).normal(0, 1.0, (n, 3))
    array["alignments3D/shift"] = meta.shifts_px
    if edit is not None:
        edit(array)
    path = folder / name
    with open(path, "wb") as fh:
        np.save(fh, array)
    return path


def hostile_pickle(marker: Path) -> bytes:
    """A pickle that, if unpickled by ``pickle.load``, creates ``marker`` (a program, not data)."""

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Evil())


def npy_declaring(path: Path, shape, dtype="<f4") -> Path:
    """A ~200-byte .npy whose header declares ``shape`` (e.g. 10^10 rows) but holds 64 bytes."""
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 64)
    return path


# ----------------------------------------------------------------------------- a cryoDRGN run folder

CD_BOX, CD_ZDIM, CD_DIM, CD_LAYERS, CD_N = 16, 3, 16, 1, 24


def cryodrgn_config(workdir: Path, **changes) -> dict:
    """cryoDRGN 4.x train_vae's config.yaml content (the keys cryodiff reads)."""
    model = {"activation": "relu", "domain": "fourier", "enc_mask": CD_BOX // 2, "encode_mode": "resid", "feat_sigma": 0.5,
             "pdim": CD_DIM, "pe_dim": None, "pe_type": "gaussian", "players": CD_LAYERS, "qdim": CD_DIM, "qlayers": CD_LAYERS,
             "zdim": CD_ZDIM}
    config = {
        "dataset_args": {"ctf": str(workdir / "ctf.pkl"), "datadir": None, "ind": None, "invert_data": True, "norm": [0.0, 50.0],
                         "particles": str(workdir / "particles.star"), "poses": str(workdir / "pose.pkl"), "window": True,
                         "window_r": 0.85},
        "lattice_args": {"D": CD_BOX + 1, "extent": 0.5, "ignore_DC": True},
        "model_args": model, "seed": 1, "version": "4.3.1",
    }
    for section, values in changes.items():
        if isinstance(values, dict) and isinstance(config.get(section), dict):
            config[section] = {**config[section], **values}
        else:
            config[section] = values
    return config


def cryodrgn_state_dict(rng) -> dict:
    """Weights with cryoDRGN's key names and the shapes of :func:`cryodrgn_config`'s model."""
    import torch

    from recon.io.cryodrgn_run import cryodrgn_encoder_mask

    def linear(prefix, n_out, n_in):
        return {f"{prefix}.weight": torch.tensor(rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)), dtype=torch.float32),
                f"{prefix}.bias": torch.tensor(rng.normal(0, 0.1, n_out), dtype=torch.float32)}

    def resid(prefix, n_in, hidden, n_out):
        sd = linear(f"{prefix}.0", hidden, n_in)
        for i in range(CD_LAYERS):
            sd |= linear(f"{prefix}.{2 + 2 * i}.linear", hidden, hidden)
        return sd | linear(f"{prefix}.{2 + 2 * CD_LAYERS}", n_out, hidden)

    pe_dim = CD_BOX // 2
    sd = resid("encoder.main", int(cryodrgn_encoder_mask(CD_BOX).sum()), CD_DIM, 2 * CD_ZDIM)
    sd["decoder.rand_freqs"] = torch.tensor(rng.normal(0, 0.5, (3 * pe_dim, 3)), dtype=torch.float32)
    return sd | resid("decoder.decoder.main", 6 * pe_dim + CD_ZDIM, CD_DIM, 2)


def write_cryodrgn_workdir(workdir: Path, config: dict | None = None, z_mu=None, state_dict=None, ctf=None) -> Path:
    """A cryoDRGN train_vae output folder (epoch 1): config.yaml, ctf.pkl, weights.1.pkl, z.1.pkl."""
    import torch
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config or cryodrgn_config(workdir)))
    if ctf is None:
        ctf = np.zeros((CD_N, 9))
        ctf[:, 0], ctf[:, 1], ctf[:, 2:4], ctf[:, 5], ctf[:, 6], ctf[:, 7] = CD_BOX, 3.0, 15000.0, 300.0, 2.7, 0.1
    (workdir / "ctf.pkl").write_bytes(pickle.dumps(ctf))
    sd = state_dict if state_dict is not None else cryodrgn_state_dict(rng)
    torch.save({"epoch": 1, "model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []}},
               workdir / "weights.1.pkl")
    if z_mu is None:
        z_mu = rng.normal(size=(CD_N, CD_ZDIM)).astype(np.float32)
    z_logvar = np.full_like(z_mu, -2.0)
    (workdir / "z.1.pkl").write_bytes(pickle.dumps(z_mu) + pickle.dumps(z_logvar))
    return workdir


@pytest.fixture(scope="session")
def cryodrgn_dir(tmp_path_factory) -> Path:
    """A valid cryoDRGN train_vae folder (zdim 3, box 16, 24 latents)."""
    return write_cryodrgn_workdir(tmp_path_factory.mktemp("adv_cryodrgn") / "cd")


@pytest.fixture(scope="session")
def imported_run(cryodrgn_dir, tmp_path_factory) -> Path:
    """:func:`cryodrgn_dir` imported (a zdim-3 run, for zdim mismatches)."""
    from cryodiff.cli.main import main

    out = tmp_path_factory.mktemp("adv_imported") / "run"
    assert main(["import-cryodrgn", str(cryodrgn_dir), "-o", str(out)]) == 0
    return out


# ----------------------------------------------------------------------------- mounts

@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "2m", read_only: bool = False):
    """A small tmpfs mounted at ``folder`` (skips the test when mounting is not permitted)."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root in a mount-capable container")
    try:
        yield folder
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def remount_read_only(folder: Path) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot remount {folder} read-only ({done.stderr.strip()})")


def fill(folder: Path, leave_bytes: int = 8 * 1024) -> None:
    """Fill the file system of ``folder`` until about ``leave_bytes`` are free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / "filler.bin", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))


# The test modules import the helpers above as ``adversarial_helpers``: every conftest.py of the
# repository is a module named "conftest", so that name does not say which one it is.
sys.modules["adversarial_helpers"] = sys.modules[__name__]
