"""cryoDRGN's input pickles combined the way its users combine them: a CTF table made at
the original box used with a downsampled stack, and pose pickles with a particle file
that does not state its box (the stacks do)."""

import pickle

import numpy as np
import pytest

from cryodiff.cli.main import main
from recon.io import read_particles, read_volume
from recon.synthetic import write_synthetic_dataset

BOX, APIX = 16, 6.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cryodrgn_inputs")
    write_synthetic_dataset(folder, n=80, box=BOX, apix=APIX, snr=1.0, seed=1, grid=2)
    meta = read_particles(folder / "particles.star").meta
    with open(folder / "pose.pkl", "wb") as fh:  # cryoDRGN: translations as a fraction of the box
        pickle.dump((meta.rotations, meta.shifts_px / BOX), fh)
    with open(folder / "ctf.pkl", "wb") as fh:  # at the stack's box
        pickle.dump(meta.ctf, fh)
    at_twice_the_box = meta.ctf.copy()
    at_twice_the_box[:, 0], at_twice_the_box[:, 1] = 2 * BOX, APIX / 2  # the same physical images, before downsampling
    with open(folder / "ctf.original_box.pkl", "wb") as fh:
        pickle.dump(at_twice_the_box, fh)
    return folder, meta


def test_ctf_made_at_the_original_box_is_rescaled_to_the_stack(dataset):
    """cryoDRGN's downsampling workflow: ctf.pkl of the 32 px originals with the 16 px stack.
    The pixel size becomes 32 x 3 Å / 16 = 6 Å, which is the truth."""
    folder, truth = dataset
    particles = read_particles(folder / "particles.mrcs", poses=folder / "pose.pkl", ctf=folder / "ctf.original_box.pkl")
    assert particles.meta.apix == pytest.approx(APIX)
    np.testing.assert_allclose(particles.meta.ctf, truth.ctf, rtol=1e-6)


def test_backproject_with_an_original_box_ctf_equals_the_stack_box_ctf(dataset, tmp_path):
    folder, _ = dataset
    for name in ("ctf", "ctf.original_box"):
        assert main(["backproject", str(folder / "particles.mrcs"), "--poses", str(folder / "pose.pkl"),
                     "--ctf", str(folder / f"{name}.pkl"), "-o", str(tmp_path / f"{name}.mrc")]) == 0
    same, rescaled = (read_volume(tmp_path / f"{name}.mrc") for name in ("ctf", "ctf.original_box"))
    assert rescaled[1] == pytest.approx(APIX)
    np.testing.assert_allclose(rescaled[0], same[0], rtol=1e-5, atol=1e-6)


def test_pose_pickle_translations_use_the_box_of_the_stacks(dataset):
    """A particle list without a box: pose.pkl's translations (fractions of the box) become
    pixels with the stacks' box."""
    folder, truth = dataset
    particles = read_particles(folder / "particles.mrcs", poses=folder / "pose.pkl", apix=APIX)
    np.testing.assert_allclose(particles.meta.shifts_px, truth.shifts_px, atol=1e-9)


def test_toy_star_without_a_box_or_pixel_size_with_cryodrgn_pickles(formats_dir, tmp_path):
    """cryoDRGN's own test inputs: the star states neither box nor pixel size; the stacks give
    the box, test_ctf.pkl the pixel size."""
    data = formats_dir / "cryodrgn_tests"
    assert main(["backproject", str(data / "toy_projections.star"), "--poses", str(data / "toy_rot_trans.pkl"),
                 "--ctf", str(data / "test_ctf.pkl"), "-o", str(tmp_path / "toy.mrc")]) == 0
    volume, apix = read_volume(tmp_path / "toy.mrc")
    assert volume.shape == (30, 30, 30) and apix == pytest.approx(1.0)


def test_hand_stack_with_a_ctf_made_at_another_box(formats_dir):
    """test_ctf.100.pkl says box 30 at 1 Å/px; hand.mrcs is 64 px: cryoDRGN rescales to 30/64 Å/px."""
    data = formats_dir / "cryodrgn_tests"
    particles = read_particles(data / "hand.mrcs", poses=data / "hand_rot.pkl", ctf=data / "test_ctf.100.pkl")
    assert particles.meta.box == 64
    assert particles.meta.apix == pytest.approx(30 / 64)
    assert np.all(particles.meta.ctf[:, 0] == 64)


def test_select_on_a_run_from_pickles_writes_the_images_box_and_pixel_size(dataset, tmp_path):
    """A run trained on a stack with pose.pkl and a CTF table of the original box: the star that
    select writes states the images' box (16 px) and pixel size (6 Å), so that the shifts in Å
    (and any reader's shifts in pixels) are the true ones."""
    from recon.io import read_metadata

    folder, truth = dataset
    run = tmp_path / "run"
    assert main(["train-vae", str(folder / "particles.mrcs"), "--poses", str(folder / "pose.pkl"), "--ctf",
                 str(folder / "ctf.original_box.pkl"), "-o", str(run), "--zdim", "2", "-n", "1", "--enc-dim", "16",
                 "--dec-dim", "16", "--enc-layers", "1", "--dec-layers", "1", "--threads", "1"]) == 0
    chosen = tmp_path / "every_third.txt"
    np.savetxt(chosen, np.arange(0, 80, 3), fmt="%d")
    assert main(["select", str(run), "--ind-file", str(chosen), "-o", str(tmp_path / "sel.star")]) == 0
    written = read_metadata(tmp_path / "sel.star")
    assert written.box == BOX and written.apix == pytest.approx(APIX)
    np.testing.assert_allclose(written.shifts_px, truth.shifts_px[::3], atol=1e-4)


def test_cryodrgn_parses_the_selected_star_with_the_same_poses_and_ctf(run_cryodrgn, dataset, tmp_path):
    """cryoDRGN 4.3.1's own parsers read the star that select writes for a run made from pickles:
    the same rotations, the same translations (to 1e-6 of the box) and the same CTF."""
    from recon.io.pkl import read_cryodrgn_ctf, read_cryodrgn_poses

    folder, truth = dataset
    run = tmp_path / "run"
    assert main(["train-vae", str(folder / "particles.mrcs"), "--poses", str(folder / "pose.pkl"), "--ctf",
                 str(folder / "ctf.original_box.pkl"), "-o", str(run), "--zdim", "2", "-n", "1", "--enc-dim", "16",
                 "--dec-dim", "16", "--enc-layers", "1", "--dec-layers", "1", "--threads", "1"]) == 0
    rows = np.arange(1, 80, 4)
    np.savetxt(tmp_path / "rows.txt", rows, fmt="%d")
    assert main(["select", str(run), "--ind-file", str(tmp_path / "rows.txt"), "-o", str(tmp_path / "sel.star")]) == 0
    for command, out in (("parse_pose_star", "pose.pkl"), ("parse_ctf_star", "ctf.pkl")):
        run_cryodrgn(command, tmp_path / "sel.star", "-o", tmp_path / out)
    rotations, shifts = read_cryodrgn_poses(tmp_path / "pose.pkl", BOX)
    np.testing.assert_allclose(rotations, truth.rotations[rows], atol=1e-6)
    np.testing.assert_allclose(shifts / BOX, truth.shifts_px[rows] / BOX, atol=1e-6)
    np.testing.assert_allclose(read_cryodrgn_ctf(tmp_path / "ctf.pkl"), truth.ctf[rows], rtol=1e-5, atol=1e-4)
