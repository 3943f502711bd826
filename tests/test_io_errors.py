"""Every bad input raises InputError naming the file, the field and a fix."""

import pickle

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from recon.errors import InputError
from recon.io import ImageStack, read_metadata, read_particles, write_stack


def _raises(call, *, names, says):
    """Run ``call``; check the InputError names ``names`` (file or field) and contains ``says``."""
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    for name in names:
        assert str(name) in message, message
    assert says in message and "Fix: " in message, message
    return message


def _stack(path, n=4, box=8, fill=0.0):
    write_stack(path, np.full((n, box, box), fill, np.float32), 1.0)
    return path


def _star(path, names, **columns):
    table = {
        "rlnImageName": names,
        "rlnDefocusU": 1e4,
        "rlnDefocusV": 1e4,
        "rlnDefocusAngle": 0.0,
        "rlnVoltage": 300.0,
        "rlnSphericalAberration": 2.7,
        "rlnAmplitudeContrast": 0.1,
        "rlnImagePixelSize": 1.0,
    }
    table.update(columns)
    starfile.write(pd.DataFrame({k: v for k, v in table.items() if v is not None}), path)
    return path


def test_missing_file(tmp_path):
    _raises(lambda: read_metadata(tmp_path / "nope.star"), names=["nope.star"], says="file not found")
    _raises(lambda: ImageStack([tmp_path / "nope.mrcs"]), names=["nope.mrcs"], says="file not found")


def test_unknown_extension(tmp_path):
    (tmp_path / "p.csv").write_text("x\n")
    _raises(lambda: read_metadata(tmp_path / "p.csv"), names=["p.csv"], says="unknown particle file type")


def test_truncated_mrc(tmp_path):
    raw = _stack(tmp_path / "full.mrcs", n=10).read_bytes()
    (tmp_path / "cut.mrcs").write_bytes(raw[:-100])
    _raises(lambda: read_particles(tmp_path / "cut.mrcs"), names=["cut.mrcs"], says="truncated")


@pytest.mark.parametrize("content", [b"tiny", b"this is not an MRC file at all " * 100])
def test_not_an_mrc(tmp_path, content):
    (tmp_path / "junk.mrcs").write_bytes(content)
    _raises(lambda: ImageStack([tmp_path / "junk.mrcs"]), names=["junk.mrcs"], says="not a readable MRC file")


def test_not_a_star_or_cs(tmp_path):
    (tmp_path / "junk.cs").write_bytes(b"\x00\x01 not numpy")
    _raises(lambda: read_metadata(tmp_path / "junk.cs"), names=["junk.cs"], says="not a cryoSPARC .cs file")
    (tmp_path / "empty.star").write_text("data_\n\nloop_\n_rlnFoo #1\n1\n")
    _raises(lambda: read_metadata(tmp_path / "empty.star"), names=["empty.star", "rlnImageName"], says="no particle")


def test_non_square_images(tmp_path):
    with mrcfile.new(tmp_path / "rect.mrcs") as mrc:
        mrc.set_data(np.zeros((3, 8, 10), np.float32))
    _raises(lambda: read_particles(tmp_path / "rect.mrcs"), names=["rect.mrcs"], says="not square")


def test_star_points_at_missing_stack(tmp_path):
    star = _star(tmp_path / "p.star", ["1@Extract/job3/gone.mrcs"])
    read_metadata(star)  # metadata alone does not need the stacks
    message = _raises(lambda: read_particles(star), names=["p.star", "gone.mrcs", "rlnImageName"], says="datadir")
    assert "not found" in message


def test_index_past_end_of_stack(tmp_path):
    _stack(tmp_path / "s.mrcs", n=4)
    star = _star(tmp_path / "p.star", ["1@s.mrcs", "5@s.mrcs"])
    message = _raises(lambda: read_particles(star), names=["s.mrcs", "p.star"], says="holds only 4 images")
    assert "image 5" in message


def test_bad_image_name(tmp_path):
    star = _star(tmp_path / "p.star", ["x@s.mrcs"])
    _raises(lambda: read_particles(star), names=["p.star", "rlnImageName", "x@s.mrcs"], says="index@stack")


def test_particle_count_mismatch_with_pose_pkl(tmp_path):
    _stack(tmp_path / "s.mrcs", n=4)
    with open(tmp_path / "pose.pkl", "wb") as f:
        pickle.dump((np.tile(np.eye(3), (3, 1, 1)), np.zeros((3, 2))), f)
    message = _raises(
        lambda: read_particles(tmp_path / "s.mrcs", poses=tmp_path / "pose.pkl"),
        names=["pose.pkl", "s.mrcs"],
        says="count mismatch",
    )
    assert "3 particles" in message and "has 4" in message


def test_ctf_pkl_count_mismatch(tmp_path):
    star = _star(tmp_path / "p.star", ["1@s.mrcs", "2@s.mrcs"])
    with open(tmp_path / "ctf.pkl", "wb") as f:
        pickle.dump(np.zeros((5, 9), np.float32), f)
    _raises(lambda: read_metadata(star, ctf=tmp_path / "ctf.pkl"), names=["ctf.pkl", "p.star"], says="holds 5")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_pixels(tmp_path, bad):
    images = np.zeros((6, 8, 8), np.float32)
    images[4, 2, 3] = bad
    write_stack(tmp_path / "s.mrcs", images, 1.0)
    stack = read_particles(tmp_path / "s.mrcs").images
    assert stack[[0, 1, 5]].shape == (3, 8, 8)  # clean images still read
    message = _raises(lambda: stack[[1, 4]], names=["s.mrcs"], says="NaN or infinite")
    assert "image 5 (1-based)" in message


@pytest.mark.parametrize("column", ["rlnDefocusV", "rlnVoltage", "rlnSphericalAberration", "rlnDefocusAngle"])
def test_missing_ctf_column(tmp_path, column):
    star = _star(tmp_path / "p.star", ["1@s.mrcs"], **{column: None})
    _raises(lambda: read_metadata(star), names=["p.star", column], says="missing")


def test_missing_pixel_size_and_amplitude_contrast(tmp_path):
    star = _star(tmp_path / "p.star", ["1@s.mrcs"], rlnImagePixelSize=None, rlnAmplitudeContrast=None)
    _raises(lambda: read_metadata(star, apix=1.0), names=["p.star", "rlnAmplitudeContrast"], says="amplitude_contrast=")
    _raises(lambda: read_metadata(star, amplitude_contrast=0.1), names=["p.star", "pixel size"], says="--apix")
    assert read_metadata(star, apix=1.0, amplitude_contrast=0.1).ctf[0, 7] == pytest.approx(0.1)


def test_mixed_box_sizes(tmp_path):
    _stack(tmp_path / "a.mrcs", box=8)
    _stack(tmp_path / "b.mrcs", box=12)
    star = _star(tmp_path / "p.star", ["1@a.mrcs", "1@b.mrcs"])
    _raises(lambda: read_particles(star), names=["b.mrcs", "a.mrcs"], says="mixed box sizes")
    (tmp_path / "list.txt").write_text("a.mrcs\nb.mrcs\n")
    _raises(lambda: read_particles(tmp_path / "list.txt"), names=["b.mrcs"], says="mixed box sizes")


def test_mixed_box_sizes_across_optics_groups(tmp_path):
    optics = pd.DataFrame({"rlnOpticsGroup": [1, 2], "rlnImageSize": [64, 128], "rlnImagePixelSize": [1.0, 1.0]})
    particles = pd.DataFrame({"rlnImageName": ["1@a.mrcs", "1@b.mrcs"], "rlnOpticsGroup": [1, 2]})
    starfile.write({"optics": optics, "particles": particles}, tmp_path / "p.star")
    _raises(lambda: read_metadata(tmp_path / "p.star"), names=["p.star", "rlnImageSize"], says="mixed box sizes")


def test_metadata_box_disagrees_with_stack(tmp_path):
    _stack(tmp_path / "s.mrcs", box=8)
    star = _star(tmp_path / "p.star", ["1@s.mrcs"], rlnImageSize=16)
    _raises(lambda: read_particles(star), names=["p.star"], says="stacks hold 8 px images")


def test_particle_in_unknown_optics_group(tmp_path):
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [1.0]})
    particles = pd.DataFrame({"rlnImageName": ["1@a.mrcs"], "rlnOpticsGroup": [3]})
    starfile.write({"optics": optics, "particles": particles}, tmp_path / "p.star")
    _raises(lambda: read_metadata(tmp_path / "p.star"), names=["p.star", "rlnOpticsGroup 3"], says="not in data_optics")


def test_partial_angles_and_origins(tmp_path):
    star = _star(tmp_path / "p.star", ["1@s.mrcs"], rlnAngleRot=1.0, rlnAngleTilt=2.0)
    _raises(lambda: read_metadata(star), names=["p.star", "rlnAnglePsi"], says="missing")
    star = _star(tmp_path / "q.star", ["1@s.mrcs"], rlnOriginXAngst=1.0)
    _raises(lambda: read_metadata(star), names=["q.star", "rlnOriginYAngst"], says="missing")


def test_cs_missing_ctf_field(tmp_path):
    dtype = [("blob/path", "S8"), ("blob/idx", "<u4"), ("blob/psize_A", "<f4"), ("ctf/df1_A", "<f4")]
    np.save(tmp_path / "p.npy", np.zeros(2, dtype=dtype))
    (tmp_path / "p.npy").rename(tmp_path / "p.cs")
    _raises(lambda: read_metadata(tmp_path / "p.cs"), names=["p.cs", "ctf/df2_A"], says="missing")
