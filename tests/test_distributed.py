"""train-vae and train-prior under torchrun: two CPU processes (gloo) train the same VAE as one
process with the same global batch, only rank 0 writes, and killed two-process runs resume with
one (and, for the prior, exactly with two)."""

import json
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from cryodiff.cli.main import main
from recon.synthetic import write_synthetic_dataset

EPOCHS = 12  # about 2 s of training: long enough to kill a run in the middle
SIZES = ["--zdim", "2", "--enc-dim", "24", "--enc-layers", "1", "--dec-dim", "24", "--dec-layers", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_data")
    write_synthetic_dataset(out, n=90, box=16, apix=6.0, snr=1.0, seed=3, grid=2)  # 90 / 16: a short last batch
    return out


def _args(dataset, out, epochs):
    return ["train-vae", str(dataset / "particles.star"), "-o", str(out), "-n", str(epochs), "-b", "16", "--lr", "1e-3",
            "--seed", "4", "--threads", "1", "--no-amp", *SIZES]


def _torchrun(args, processes=2) -> subprocess.Popen:
    """``torchrun --standalone --nproc-per-node N -m cryodiff.cli.main ARGS`` in a new process group."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "cryodiff.cli.main", *args]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _kill_tree(job: subprocess.Popen) -> None:
    """SIGKILL torchrun and every worker it started, as a crash of the machine would."""
    import psutil

    tree = psutil.Process(job.pid)
    processes = [tree, *tree.children(recursive=True)]
    for process in processes:
        process.kill()
    psutil.wait_procs(processes, timeout=60)
    job.wait()


def _weights(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def _assert_same_run(a, b):
    for (name, x), (_, y) in zip(_weights(a).items(), _weights(b).items()):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)
    with h5py.File(a / "latents.h5") as fa, h5py.File(b / "latents.h5") as fb:
        np.testing.assert_allclose(fa["z_mu"][()], fb["z_mu"][()], rtol=1e-3, atol=1e-4)
        np.testing.assert_array_equal(fa["indices"][()], fb["indices"][()])


@pytest.fixture(scope="module")
def single(dataset, tmp_path_factory):
    """The reference: one process."""
    out = tmp_path_factory.mktemp("single") / "run"
    assert main(_args(dataset, out, EPOCHS)) in (0, None)
    return out


def test_two_processes_train_the_same_model_as_one(dataset, single, tmp_path):
    out = tmp_path / "ddp"
    done = _torchrun(_args(dataset, out, EPOCHS))
    log, _ = done.communicate(timeout=600)
    assert done.returncode == 0, log[-3000:]
    _assert_same_run(single, out)
    with h5py.File(out / "latents.h5") as f:
        assert f["z_mu"].shape == (90, 2)  # every particle once, in particle order
        np.testing.assert_array_equal(f["indices"][()], np.arange(90))
    # one set of outputs: rank 1 wrote nothing, and the log has one line per epoch
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["config.json", "checkpoint.pt", "log.jsonl", "latents.h5", "loss.png", "run.log"])
    assert len((out / "log.jsonl").read_text().splitlines()) == EPOCHS
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]


def test_killed_two_process_run_resumes_with_one_process(dataset, single, tmp_path):
    out = tmp_path / "ddp"
    job = _torchrun(_args(dataset, out, EPOCHS))
    deadline = time.time() + 600
    while not (out / "checkpoint.pt").exists():  # killed once epoch 1 (or later) is on disk
        assert job.poll() is None and time.time() < deadline, job.stdout.read()[-3000:] if job.stdout else ""
        time.sleep(0.05)
    _kill_tree(job)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] < EPOCHS and not (out / "latents.h5").exists()
    assert main(_args(dataset, out, EPOCHS) + ["--resume"]) in (0, None)
    _assert_same_run(single, out)


# ----------------------------------------------------------------------------- train-prior

PRIOR_STEPS = 3000  # checkpoints at 1000 and 2000: a run can be killed between them
BLOBS = np.array([[-3.0, 0.0], [3.0, 0.0]])


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    """2,000 latents of zdim 2 in two equally weighted blobs (sd 0.5) at x = -3 and 3."""
    rng = np.random.default_rng(5)
    z = BLOBS[rng.integers(2, size=2000)] + 0.5 * rng.standard_normal((2000, 2))
    path = tmp_path_factory.mktemp("latents") / "z.npy"
    np.save(path, z.astype(np.float32))
    return path


def _prior_args(latents, out):
    return ["train-prior", str(latents), "-o", str(out), "--steps", str(PRIOR_STEPS), "-b", "64", "--seed", "2",
            "--threads", "1"]


def _assert_prior_fits_blobs(out):
    """Samples of the prior fall in the two blobs, half in each (truth: 0.5, sd 0.5 around x = +-3)."""
    from cryodiff.prior import load_prior

    z = load_prior(out).sample(2000, seed=1)
    right = z[:, 0] > 0
    assert abs(right.mean() - 0.5) < 0.06
    centre = np.where(right[:, None], BLOBS[1], BLOBS[0])
    distance = np.linalg.norm(z - centre, axis=1)
    assert np.median(distance) < 0.9  # 0.59 for exact samples of the blobs


def test_train_prior_under_torchrun(latents, tmp_path):
    out = tmp_path / "prior"
    done = _torchrun(_prior_args(latents, out))
    log, _ = done.communicate(timeout=600)
    assert done.returncode == 0, log[-3000:]
    _assert_prior_fits_blobs(out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["prior.json", "prior.pt", "checkpoint.pt", "log.jsonl", "run.log"])
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(100, PRIOR_STEPS + 1, 100))  # one writer: each step logged once
    assert json.loads((out / "prior.json").read_text())["steps_done"] == PRIOR_STEPS


def test_killed_two_process_prior_resumes_with_two_or_one(latents, tmp_path):
    whole = tmp_path / "whole"
    assert _torchrun(_prior_args(latents, whole)).wait(timeout=600) == 0
    out = tmp_path / "killed"
    job = _torchrun(_prior_args(latents, out))
    deadline = time.time() + 600
    while not (out / "checkpoint.pt").exists():
        assert job.poll() is None and time.time() < deadline, job.stdout.read()[-3000:] if job.stdout else ""
        time.sleep(0.02)
    _kill_tree(job)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] < PRIOR_STEPS and not (out / "prior.pt").exists()
    copy = tmp_path / "killed_copy"
    shutil.copytree(out, copy)
    # the same number of processes: exactly the uninterrupted run
    assert _torchrun(_prior_args(latents, out) + ["--resume"]).wait(timeout=600) == 0
    for (name, x), (_, y) in zip(_prior_weights(whole).items(), _prior_weights(out).items()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    # one process: the checkpoint carries over, training finishes and fits the data
    assert main(_prior_args(latents, copy) + ["--resume"]) in (0, None)
    _assert_prior_fits_blobs(copy)
    steps = [json.loads(line)["step"] for line in (copy / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(100, PRIOR_STEPS + 1, 100))


def _prior_weights(out):
    return torch.load(out / "prior.pt", weights_only=True)["ema"]
