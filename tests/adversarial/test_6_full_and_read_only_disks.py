"""Rule 6: writing to a full file system (a small tmpfs) or a read-only one gives
one line and exit status 2, leaves no temporary files, and leaves the input
tree unchanged; inputs on a read-only disk are read normally. The tests mount
tmpfs file systems (root in a mount-capable container) and skip, saying why,
where mounting is not permitted. Commands that write through a memory map
(simulate, downsample, demo) run in their own process: a write past the end of
a full tmpfs through a map is a SIGBUS, which would take the test run down.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from adversarial_helpers import (
    TINY_RUN_RESUME,
    assert_unchanged,
    fill,
    last_line,
    load_config,
    remount_read_only,
    run_cli_subprocess,
    snapshot,
    tmpfs,
)

Z4 = ["-z", "0", "0", "0", "0"]


def _no_temporaries(folder):
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp"))
    assert not left, f"temporary files left on the full disk: {left}"


def _one_line(code, err, *phrases):
    line = last_line(err)
    assert "Traceback" not in err, f"traceback:\n{err[-1500:]}"
    assert code == 2, f"exit {code}; last stderr line {line!r}"
    assert line.startswith("cryodiff ") and ": error:" in line and "Fix:" in line, line
    for phrase in phrases:
        assert str(phrase) in line, f"{phrase!r} not in {line!r}"
    return line


@pytest.fixture
def full(tmp_path):
    """A 2 MiB tmpfs at tmp_path/full."""
    with tmpfs(tmp_path / "full", "2m") as folder:
        yield folder


# ----------------------------------------------------------------------------- full disks, in this process

def test_train_vae_on_a_full_disk(refuses, dataset, full):
    out = full / "run"
    refuses(["train-vae", dataset / "particles.star", "-o", out, "--zdim", "2", "--enc-dim", "256", "--dec-dim", "256",
             "--enc-layers", "1", "--dec-layers", "1", "-n", "2", "--threads", "1"], str(full), tree=[dataset], seconds=120)
    _no_temporaries(full)


def test_train_prior_on_a_full_disk(refuses, tiny_vae_run, full):
    refuses(["train-prior", tiny_vae_run, "-o", full / "prior", "--steps", "20", "-b", "16", "--threads", "1"], str(full),
            tree=[tiny_vae_run], seconds=120)
    _no_temporaries(full)


def test_eval_vol_runs_out_of_space_halfway(refuses, tiny_vae_run, full, tmp_path):
    zfile = tmp_path / "z.txt"
    np.savetxt(zfile, np.random.default_rng(0).normal(size=(200, 4)))
    refuses(["eval-vol", tiny_vae_run, "--zfile", zfile, "-o", full / "vols"], str(full), tree=[tiny_vae_run, zfile], seconds=120)
    _no_temporaries(full)


@pytest.fixture
def nearly_full(full):
    fill(full, leave_bytes=8 * 1024)
    return full


def test_backproject_onto_a_full_disk(refuses, dataset, nearly_full):
    refuses(["backproject", dataset / "particles.star", "-o", nearly_full / "map.mrc"], str(nearly_full), tree=[dataset])
    _no_temporaries(nearly_full)


def test_score_particles_onto_a_full_disk(refuses, prior, tiny_vae_run, nearly_full):
    refuses(["score-particles", prior, "--run", tiny_vae_run, "-o", nearly_full / "s.h5", "--steps", "2"], str(nearly_full),
            tree=[prior, tiny_vae_run])
    _no_temporaries(nearly_full)


def test_fsc_plot_onto_a_full_disk(refuses, dataset, nearly_full):
    vols = dataset / "volumes"
    refuses(["fsc", vols / "state00_subunit0.mrc", vols / "state01_subunit0.mrc", "--plot", nearly_full / "fsc.png",
             "-o", nearly_full / "fsc.txt"], str(nearly_full), tree=[dataset])
    _no_temporaries(nearly_full)


def test_analyze_onto_a_full_disk(refuses, tiny_vae_run, nearly_full):
    refuses(["analyze", tiny_vae_run, "-o", nearly_full / "a", "--skip-umap", "--ksample", "3", "--pc", "1", "--n-per-pc", "2"],
            str(nearly_full), tree=[tiny_vae_run], seconds=120)
    _no_temporaries(nearly_full)


def test_select_onto_a_full_disk(refuses, tiny_vae_run, nearly_full, tmp_path):
    rows = tmp_path / "rows.txt"
    rows.write_text("\n".join(map(str, range(90))))
    refuses(["select", tiny_vae_run, "--ind-file", rows, "-o", nearly_full / "sel.star"], str(nearly_full), tree=[tiny_vae_run, rows])
    _no_temporaries(nearly_full)


def test_train_vae_resume_of_a_run_on_a_full_disk(refuses, tiny_vae_run, tmp_path):
    with tmpfs(tmp_path / "full", "2m") as disk:
        run = shutil.copytree(tiny_vae_run, disk / "run")
        fill(disk, leave_bytes=4 * 1024)
        before = snapshot(run, exclude=[run / "run.log", run / ".cryodiff-outputs.json"])
        star = load_config(run)["data"]["particles"]
        refuses(["train-vae", star, "-o", run, "--resume", "-n", "3", *TINY_RUN_RESUME], str(run), seconds=120)
        assert_unchanged(before, run, exclude=[run / "run.log", run / ".cryodiff-outputs.json", run / "filler.bin"])
        _no_temporaries(disk)


# ----------------------------------------------------------------------------- full disks, in their own process (memory maps)

def _subprocess_refuses(argv, *phrases, tree=()):
    before = snapshot(*tree)
    done = run_cli_subprocess(argv, timeout=300)
    _one_line(done.returncode, done.stderr, *phrases)
    assert_unchanged(before, *tree)


def test_simulate_onto_a_full_disk(full):
    _subprocess_refuses(["simulate", full / "sim", "-n", "3000", "-D", "16"], str(full))
    _no_temporaries(full)


def test_downsample_onto_a_full_disk(dataset, tmp_path):
    big = tmp_path / "big"
    from recon.synthetic import write_synthetic_dataset

    write_synthetic_dataset(big, n=1200, box=32, apix=3.0, snr=1.0, seed=0, grid=2)
    with tmpfs(tmp_path / "full", "2m") as disk:
        _subprocess_refuses(["downsample", big / "particles.star", "-D", "24", "-o", disk / "small.mrcs"], str(disk), tree=[big])
        _no_temporaries(disk)


def test_demo_onto_a_full_disk(full):
    _subprocess_refuses(["demo", full / "demo", "-n", "3000", "-D", "16", "--epochs", "1", "--prior-steps", "1"], str(full))
    _no_temporaries(full)


# ----------------------------------------------------------------------------- read-only disks

@pytest.fixture
def read_only(tmp_path, dataset, tiny_vae_run, prior):
    """A read-only tmpfs holding copies of the data set, the tiny run and the prior."""
    with tmpfs(tmp_path / "ro", "32m") as disk:
        shutil.copytree(dataset, disk / "data")
        run = shutil.copytree(tiny_vae_run, disk / "run")
        config = load_config(run)
        config["data"]["particles"] = str(disk / "data" / "particles.star")
        (run / "config.json").write_text(__import__("json").dumps(config))
        shutil.copytree(prior, disk / "prior")
        remount_read_only(disk)
        yield disk


@pytest.mark.parametrize("command", ["eval-vol", "backproject", "train-prior", "analyze", "simulate", "select", "traverse",
                                     "import-cryodrgn"])
def test_writing_onto_a_read_only_disk(refuses, read_only, cryodrgn_dir, tmp_path, command):
    rows = tmp_path / "rows.txt"
    rows.write_text("1\n2\n")
    argv = {
        "eval-vol": ["eval-vol", read_only / "run", *Z4, "-o", read_only / "vols"],
        "backproject": ["backproject", read_only / "data" / "particles.star", "-o", read_only / "map.mrc"],
        "train-prior": ["train-prior", read_only / "run", "-o", read_only / "p", "--steps", "5"],
        "analyze": ["analyze", read_only / "run", "--skip-umap", "--skip-vol", "--ksample", "2"],
        "simulate": ["simulate", read_only / "sim", "-n", "8", "-D", "16"],
        "select": ["select", read_only / "run", "--ind-file", rows, "-o", read_only / "data" / "sel.star"],
        "traverse": ["traverse", read_only / "run", "--pc", "1", "-n", "2", "--skip-vol"],
        "import-cryodrgn": ["import-cryodrgn", cryodrgn_dir, "-o", read_only / "imported"],
    }[command]
    refuses(argv, str(read_only), tree=[read_only, tmp_path, cryodrgn_dir])


def test_resuming_a_run_on_a_read_only_disk(refuses, read_only):
    star = read_only / "data" / "particles.star"
    refuses(["train-vae", star, "-o", read_only / "run", "--resume", "-n", "2", *TINY_RUN_RESUME], str(read_only / "run"),
            tree=[read_only])


@pytest.mark.parametrize("command", ["eval-vol", "backproject", "select", "score-particles", "traverse", "sample"])
def test_inputs_on_a_read_only_disk_are_read_normally(cli, read_only, tmp_path, command):
    rows = tmp_path / "rows.txt"
    rows.write_text("1\n2\n")
    out = tmp_path / "out"
    argv = {
        "eval-vol": ["eval-vol", read_only / "run", *Z4, "-o", out],
        "backproject": ["backproject", read_only / "data" / "particles.star", "-o", tmp_path / "map.mrc"],
        "select": ["select", read_only / "run", "--ind-file", rows, "-o", tmp_path / "sel.star"],
        "score-particles": ["score-particles", read_only / "prior", "--run", read_only / "run", "-o", tmp_path / "s.h5", "--steps", "2"],
        "traverse": ["traverse", read_only / "run", "--direct", "0", "1", "-n", "2", "-D", "8", "-o", out],
        "sample": ["sample", read_only / "prior", "-n", "2", "--steps", "2", "-o", tmp_path / "z.txt", "--volumes", out,
                   "--run", read_only / "run", "-D", "8"],
    }[command]
    before = snapshot(read_only)
    code, _, err = cli(argv)
    assert code == 0, f"reading from a read-only disk failed: {last_line(err)!r}"
    assert_unchanged(before, read_only)
