"""The command line as a user meets it: help, commands on simulated data, and
one clear line with exit status 2 for each kind of bad input."""

import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryodiff.cli.main import COMMANDS, main
from recon.io import read_metadata, read_volume
from recon.synthetic import write_synthetic_dataset


def cryodiff(*args):
    return subprocess.run([sys.executable, "-m", "cryodiff.cli.main", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    write_synthetic_dataset(out, n=200, box=32, apix=4.0, snr=1.0, seed=1, state=0.5, subunit_fraction=1.0, grid=1)
    return out


def test_help_lists_every_command_with_a_description():
    result = cryodiff("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout
    sub = cryodiff("simulate", "--help")
    assert "Å" in sub.stdout and "default: 0.1" in sub.stdout


def test_version():
    import cryodiff as package

    result = cryodiff("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"cryodiff {package.__version__}"


def test_underscore_aliases(monkeypatch):
    """cryoDRGN users type train_vae; every hyphenated command has that alias."""
    from cryodiff.cli import main as cli

    monkeypatch.setitem(cli.COMMANDS, "two-words", "fsc")
    parser = cli.build_parser()
    args = parser.parse_args(["two_words", "a.mrc", "b.mrc"])
    assert args.map_a == "a.mrc"


def test_backproject_fsc_and_downsample_commands(small_set, tmp_path):
    out = tmp_path / "map.mrc"
    assert main(["backproject", str(small_set / "particles.star"), "-o", str(out)]) == 0
    vol, apix = read_volume(out)
    assert vol.shape == (32, 32, 32) and apix == pytest.approx(4.0)
    assert (tmp_path / "map_half1.mrc").exists() and (tmp_path / "map_half2.mrc").exists()

    truth = small_set / "volumes" / "state00_subunit1.mrc"
    result = cryodiff("fsc", out, truth, "--plot", tmp_path / "fsc.png", "-o", tmp_path / "fsc.txt", "--mask", "sphere")
    assert result.returncode == 0, result.stderr
    assert "FSC = 0.5:" in result.stdout and "FSC = 0.143:" in result.stdout
    assert (tmp_path / "fsc.png").stat().st_size > 1000
    table = np.loadtxt(tmp_path / "fsc.txt")
    assert table.shape == (17, 3) and table[1, 2] > 0.9

    small = tmp_path / "small.mrcs"
    assert main(["downsample", str(small_set / "particles.star"), "-D", "16", "-o", str(small)]) == 0
    meta = read_metadata(small.with_suffix(".star"))
    assert (meta.box, meta.apix) == (16, pytest.approx(8.0))
    with mrcfile.open(small) as m:
        assert m.data.shape == (200, 16, 16) and m.voxel_size.x == pytest.approx(8.0)
    original = read_metadata(small_set / "particles.star")
    np.testing.assert_allclose(meta.shifts_px * 2, original.shifts_px, atol=1e-5)  # same shift in Å


def test_backproject_subset_with_ind(small_set, tmp_path):
    np.save(tmp_path / "ind.npy", np.arange(0, 200, 2))
    out = tmp_path / "subset.mrc"
    assert main(["backproject", str(small_set / "particles.star"), "--ind", str(tmp_path / "ind.npy"), "-o", str(out)]) == 0
    np.save(tmp_path / "bad.npy", np.array([0, 500]))
    result = cryodiff("backproject", small_set / "particles.star", "--ind", tmp_path / "bad.npy", "-o", out)
    assert result.returncode == 2 and "bad.npy" in result.stderr and "500" in result.stderr


def _assert_user_error(result, *words):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0].rstrip())  # the last thing printed
    assert "Fix:" in errors[0]
    for word in words:
        assert word in errors[0]


def test_bad_inputs_give_one_line_and_exit_2(small_set, tmp_path):
    _assert_user_error(cryodiff("backproject", tmp_path / "missing.star", "-o", tmp_path / "x.mrc"), "missing.star")

    junk = tmp_path / "junk.mrcs"
    junk.write_bytes(b"this is not an MRC file" * 100)
    _assert_user_error(cryodiff("backproject", junk, "-o", tmp_path / "x.mrc"), "junk.mrcs")

    nan_stack = tmp_path / "nan.mrcs"
    data = np.zeros((3, 16, 16), np.float32)
    data[1, 2, 3] = np.nan
    with mrcfile.new(nan_stack) as m:
        m.set_data(data)
    _assert_user_error(cryodiff("downsample", nan_stack, "-D", "8", "-o", tmp_path / "y.mrcs"), "nan.mrcs")

    no_ctf = tmp_path / "no_ctf.star"
    text = (small_set / "particles.star").read_text().replace("_rlnDefocusU", "_rlnSomethingElse")
    no_ctf.write_text(text)
    _assert_user_error(cryodiff("backproject", no_ctf, "-o", tmp_path / "x.mrc"), "rlnDefocusU")

    _assert_user_error(cryodiff("backproject", small_set / "particles.star", "-o", tmp_path / "x.txt"), "x.txt")
    _assert_user_error(cryodiff("simulate", tmp_path / "s", "-D", "33"), "--box")
    _assert_user_error(cryodiff("fsc", small_set / "volumes" / "state00_subunit1.mrc", tmp_path / "missing.mrc"), "missing.mrc")


def test_debug_shows_the_traceback(tmp_path):
    result = cryodiff("--debug", "backproject", tmp_path / "missing.star", "-o", tmp_path / "x.mrc")
    assert result.returncode != 0 and "Traceback" in result.stderr
