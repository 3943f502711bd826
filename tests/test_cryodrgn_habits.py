"""cryoDRGN users' habits: its option spellings, per-epoch outputs, run.log, and unknown
options answered with the subcommand's usage and the closest option."""

import subprocess
import sys

import numpy as np
import pytest

from cryodiff.cli.main import build_parser, main, parse
from recon.run import load_run
from recon.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def star(tmp_path_factory):
    out = tmp_path_factory.mktemp("habits")
    write_synthetic_dataset(out, n=64, box=16, apix=6.0, snr=1.0, seed=0, grid=2)
    return out / "particles.star"


def test_cryodrgn_spellings_mean_the_same():
    parser = build_parser()
    assert parse(parser, ["backproject", "p.star", "--Apix", "2.5", "-o", "m.mrc"]).apix == 2.5
    assert parse(parser, ["eval-vol", "run", "-z", "0", "-o", "v", "-d", "32"]).box == 32
    assert parse(parser, ["analyze", "run", "19", "--downsample", "48"]).epoch == 19
    assert parse(parser, ["train_vae", "p.star", "-o", "r", "--zdim", "8", "--load", "latest"]).load == "latest"


def test_unknown_option_gets_the_subcommand_usage_and_a_suggestion():
    result = subprocess.run([sys.executable, "-m", "cryodiff.cli.main", "train-vae", "p.star", "-o", "r", "--zdim", "8", "--ksample", "3"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: cryodiff train-vae")
    assert "unrecognized arguments: --ksample 3" in result.stderr
    result = subprocess.run([sys.executable, "-m", "cryodiff.cli.main", "analyze", "run", "--ksampel", "3"], capture_output=True, text=True)
    assert "usage: cryodiff analyze" in result.stderr and "did you mean --ksample?" in result.stderr


def test_epoch_outputs_run_log_load_and_analyze_epoch(star, tmp_path, fails_with_one_line, capsys):
    run = tmp_path / "run"
    common = [str(star), "-o", str(run), "--zdim", "2", "--enc-dim", "16", "--enc-layers", "1", "--dec-dim", "16",
              "--dec-layers", "1", "-b", "32", "--lr", "1e-3", "--threads", "1"]
    assert main(["train-vae", *common, "-n", "2", "--checkpoint", "1"]) == 0
    assert sorted(p.name for p in (run / "epochs").iterdir()) == ["weights.1.pt", "weights.2.pt", "z.1.h5", "z.2.h5"]
    log_text = (run / "run.log").read_text()
    assert "epoch 1: loss" in log_text and "epoch 2: loss" in log_text
    assert (run / "loss.png").stat().st_size > 5000
    first = load_run(run, epoch=1)
    assert first.z_mu.shape == (64, 2) and not np.array_equal(first.z_mu, load_run(run, epoch=2).z_mu)

    assert main(["train-vae", *common, "-n", "3", "--load", "latest"]) == 0  # continues to epoch 3
    assert [r for r in (run / "run.log").read_text().splitlines() if "resuming" in r]
    assert not (run / "epochs" / "weights.3.pt").exists()  # --checkpoint is not carried over
    assert main(["analyze", str(run), "1", "--ksample", "3", "--skip-umap", "--pc", "1", "--n-per-pc", "2", "-d", "8"]) == 0
    assert (run / "analyze.1" / "kmeans3" / "vol_002.mrc").is_file() and (run / "analyze.1" / "training.png").is_file()
    capsys.readouterr()
    fails_with_one_line(["analyze", str(run), "7"], "epoch 7 was not kept", "--checkpoint")
    fails_with_one_line(["train-vae", *common, "-n", "3", "--load", str(tmp_path / "other" / "checkpoint.pt")], "--load", "not this run's checkpoint")
