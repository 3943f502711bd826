"""Rule 5: train-vae and train-prior killed with SIGKILL mid-run (a real process,
kill -9) and continued with --resume end bit-identical to an uninterrupted run
(checkpoint weights compared exactly); no log line appears twice (or goes
missing) after the resume; temporary files a kill leaves are cleaned; a running
training holds its folder against a second writer, and the kernel releases
that hold when the process dies.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid

import numpy as np
import pytest
import torch
from adversarial_helpers import (
    TINY_RUN_RESUME,
    TINY_VAE,
    last_line,
    load_config,
    popen_cli,
    wait_for,
)

VAE_EPOCHS = 12
PRIOR_STEPS = 1100  # the command line checkpoints every 1000 steps and logs every 100


def _vae_args(dataset):
    return [dataset / "particles.star", "--zdim", "2", *TINY_VAE, "-n", str(VAE_EPOCHS), "-b", "16", "--lr", "1e-3",
            "--seed", "3", "--threads", "1"]


def _prior_args(source):
    return [source, "--steps", str(PRIOR_STEPS), "-b", "16", "--seed", "2", "--threads", "1"]


def _lines(path):
    try:
        return [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _kill(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    if not proc._adv_log.closed:
        proc._adv_log.close()


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys differ"
        for key in a:
            _assert_same_tensors(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where}: tensors differ (max |diff| {float((a.double() - b.double()).abs().max()):.3g})"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _plant_temporaries(folder):
    """What a kill during an atomic write leaves behind (names as recon.files.atomic_target and the trainer make them)."""
    names = [f".checkpoint.pt.{uuid.uuid4().hex}.tmp", f".log.jsonl.{uuid.uuid4().hex}.tmp", ".ckpt-k1ll3d.tmp", ".log-k1ll3d.tmp"]
    for name in names:
        (folder / name).write_bytes(b"half written")
    (folder / "my_notes.tmp").write_text("the user's file, not a temporary of cryodiff")
    return names


# ----------------------------------------------------------------------------- the VAE

class _Reference:
    """An uninterrupted run trained by a background process (it runs while the test kills and
    resumes its own run, on the other core); ``path()`` waits for it."""

    def __init__(self, argv, folder):
        self.out = folder / "out"
        self.proc = popen_cli([*argv, "-o", self.out], folder / "reference.log")

    def path(self):
        code = self.proc.wait(timeout=600)
        self.proc._adv_log.close()
        assert code == 0, f"the uninterrupted reference run failed (exit {code}): {(self.out.parent / 'reference.log').read_text()[-800:]}"
        return self.out


@pytest.fixture(scope="module")
def vae_reference(dataset, tmp_path_factory):
    reference = _Reference(["train-vae", *_vae_args(dataset)], tmp_path_factory.mktemp("adv_vae_reference"))
    yield reference
    _kill(reference.proc)


def _check_vae_matches(run, reference):
    _assert_same_tensors(torch.load(run / "checkpoint.pt", weights_only=True)["model"],
                         torch.load(reference / "checkpoint.pt", weights_only=True)["model"], "checkpoint.pt model")
    import h5py

    with h5py.File(run / "latents.h5") as a, h5py.File(reference / "latents.h5") as b:
        np.testing.assert_array_equal(a["z_mu"][()], b["z_mu"][()])
    epochs = [json.loads(line)["epoch"] for line in _lines(run / "log.jsonl")]
    assert epochs == list(range(1, VAE_EPOCHS + 1)), f"log.jsonl epochs after the resume: {epochs}"
    logged = re.findall(r"epoch (\d+): loss", (run / "run.log").read_text())
    assert len(logged) == len(set(logged)), f"run.log repeats epochs: {logged}"


def test_train_vae_killed_and_resumed_matches_an_uninterrupted_run(vae_reference, dataset, tmp_path, cli):
    run = tmp_path / "run"
    proc = popen_cli(["train-vae", *_vae_args(dataset), "-o", run], tmp_path / "killed.log")
    try:
        started = wait_for(lambda: len(_lines(run / "log.jsonl")) >= 3, proc, timeout=180)
    finally:
        _kill(proc)
    assert started and not (run / "latents.h5").exists(), "the run was not caught mid-training"
    planted = _plant_temporaries(run)
    code, _, err = cli(["train-vae", *_vae_args(dataset), "-o", run, "--resume"])
    assert code == 0, last_line(err)
    _check_vae_matches(run, vae_reference.path())
    assert not any((run / name).exists() for name in planted), "temporary files of the killed run were kept"
    assert (run / "my_notes.tmp").is_file(), "a user's .tmp file was deleted"
    leftovers = sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp") and p.name != "my_notes.tmp")
    assert not leftovers, leftovers


def test_train_vae_interrupted_by_ctrl_c_exits_130_and_resumes_identically(vae_reference, dataset, tmp_path, cli, monkeypatch):
    from recon import training

    real = training._save_checkpoint

    def save_then_interrupt(run, model, optimizer, epoch, *rest):
        real(run, model, optimizer, epoch, *rest)
        if epoch == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "_save_checkpoint", save_then_interrupt)
    run = tmp_path / "run"
    code, _, err = cli(["train-vae", *_vae_args(dataset), "-o", run])
    assert code == 130 and "interrupted" in last_line(err), f"exit {code}: {last_line(err)!r}"
    monkeypatch.setattr(training, "_save_checkpoint", real)
    code, _, err = cli(["train-vae", *_vae_args(dataset), "-o", run, "--resume"])
    assert code == 0, last_line(err)
    _check_vae_matches(run, vae_reference.path())


def test_a_running_training_holds_its_folder_and_a_kill_releases_it(dataset, tmp_path, cli):
    run = tmp_path / "run"
    argv = ["train-vae", *_vae_args(dataset), "-o", run]
    argv[argv.index("-n") + 1] = "500"
    proc = popen_cli(argv, tmp_path / "busy.log")
    try:
        assert wait_for(lambda: len(_lines(run / "log.jsonl")) >= 1, proc, timeout=180), "training did not start"
        code, _, err = cli([*argv, "--resume"])
        assert code == 2 and "another cryodiff process" in last_line(err), f"second writer: exit {code}, {last_line(err)!r}"
    finally:
        _kill(proc)
    resume = [*argv, "--resume"]
    resume[resume.index("-n") + 1] = "1"  # nothing left to train: write the latents and finish
    code, _, err = cli(resume)
    assert code == 0, f"the lock of a killed process was not released: {last_line(err)!r}"


def test_resuming_a_finished_run_repeats_no_log_line(run_copy, cli):
    before = _lines(run_copy / "log.jsonl")
    weights = torch.load(run_copy / "checkpoint.pt", weights_only=True)["model"]
    star = load_config(run_copy)["data"]["particles"]
    planted = _plant_temporaries(run_copy)
    code, _, err = cli(["train-vae", star, "-o", run_copy, "--resume", "-n", "1", *TINY_RUN_RESUME])
    assert code == 0, last_line(err)
    assert _lines(run_copy / "log.jsonl") == before
    _assert_same_tensors(torch.load(run_copy / "checkpoint.pt", weights_only=True)["model"], weights, "checkpoint.pt")
    assert not any((run_copy / name).exists() for name in planted), "temporary files were kept"
    assert (run_copy / "my_notes.tmp").is_file()


# ----------------------------------------------------------------------------- the prior

@pytest.fixture(scope="module")
def prior_reference(tiny_vae_run, tmp_path_factory):
    reference = _Reference(["train-prior", *_prior_args(tiny_vae_run)], tmp_path_factory.mktemp("adv_prior_reference"))
    yield reference
    _kill(reference.proc)


def _check_prior_matches(prior, reference):
    _assert_same_tensors(torch.load(prior / "prior.pt", weights_only=True), torch.load(reference / "prior.pt", weights_only=True), "prior.pt")
    _assert_same_tensors(torch.load(prior / "checkpoint.pt", weights_only=True),
                         torch.load(reference / "checkpoint.pt", weights_only=True), "checkpoint.pt")
    steps = [json.loads(line)["step"] for line in _lines(prior / "log.jsonl")]
    assert steps == list(range(100, PRIOR_STEPS + 1, 100)), f"log.jsonl steps after the resume: {steps}"
    assert json.loads((prior / "prior.json").read_text())["steps_done"] == PRIOR_STEPS


def test_train_prior_killed_after_a_checkpoint_resumes_identically(prior_reference, tiny_vae_run, tmp_path, cli):
    prior = tmp_path / "prior"
    proc = popen_cli(["train-prior", *_prior_args(tiny_vae_run), "-o", prior], tmp_path / "killed.log")
    try:
        caught = wait_for(lambda: (prior / "checkpoint.pt").is_file(), proc, timeout=240)
    finally:
        _kill(proc)
    assert caught and not (prior / "prior.pt").exists(), "the prior was not caught between its checkpoint and its end"
    planted = _plant_temporaries(prior)
    code, _, err = cli(["train-prior", *_prior_args(tiny_vae_run), "-o", prior, "--resume"])
    assert code == 0, last_line(err)
    _check_prior_matches(prior, prior_reference.path())
    assert not any((prior / name).exists() for name in planted), "temporary files of the killed run were kept"
    assert (prior / "my_notes.tmp").is_file(), "a user's .tmp file was deleted"


def test_train_prior_killed_before_its_first_checkpoint_can_be_resumed(prior_reference, tiny_vae_run, tmp_path, cli):
    """Killed at step ~100 of 1100 (the first checkpoint comes at 1000): --resume must not leave
    the user stuck between "there is no prior to resume" and "already holds a prior"."""
    prior = tmp_path / "prior"
    proc = popen_cli(["train-prior", *_prior_args(tiny_vae_run), "-o", prior], tmp_path / "killed.log")
    try:
        caught = wait_for(lambda: len(_lines(prior / "log.jsonl")) >= 1, proc, timeout=240)
    finally:
        _kill(proc)
    assert caught and not (prior / "checkpoint.pt").exists(), "the prior was not caught before its first checkpoint"
    code, _, err = cli(["train-prior", *_prior_args(tiny_vae_run), "-o", prior, "--resume"])
    if code != 0:
        code2, _, err2 = cli(["train-prior", *_prior_args(tiny_vae_run), "-o", prior])
        pytest.fail(f"a killed prior cannot be continued: --resume exits {code} ({last_line(err)!r}); "
                    f"without --resume exits {code2} ({last_line(err2)!r})")
    _check_prior_matches(prior, prior_reference.path())


def test_resuming_a_finished_prior_repeats_no_log_line(prior_copy, tiny_vae_run, cli):
    before = _lines(prior_copy / "log.jsonl")
    weights = torch.load(prior_copy / "prior.pt", weights_only=True)
    planted = _plant_temporaries(prior_copy)
    code, _, err = cli(["train-prior", tiny_vae_run, "-o", prior_copy, "--steps", "100", "-b", "64", "--resume", "--threads", "1"])
    assert code == 0, last_line(err)
    assert _lines(prior_copy / "log.jsonl") == before
    _assert_same_tensors(torch.load(prior_copy / "prior.pt", weights_only=True), weights, "prior.pt")
    assert not any((prior_copy / name).exists() for name in planted), "temporary files were kept"
    assert (prior_copy / "my_notes.tmp").is_file()
