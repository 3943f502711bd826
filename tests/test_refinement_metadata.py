"""What a refinement records beside the poses, read as the refinement meant it:
cryoSPARC shifts in the refinement's pixels (``alignments3D/psize_A``), and the
gold-standard half sets (RELION ``rlnRandomSubset``, cryoSPARC
``alignments3D/split``) that half maps must follow."""

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryodiff.cli.main import main
from recon import simulate as sim
from recon.backproject import backproject
from recon.fsc import fsc
from recon.io import read_metadata, read_particles, read_volume, write_stack, write_star
from recon.synthetic import write_synthetic_dataset

BOX, APIX = 32, 4.0


def _cs(path, rotations, shifts, ctf, apix, *, refinement_apix=None, split=None, box=BOX):
    """A cryoSPARC particle file for ``particles.mrcs`` beside it; shifts given in pixels of
    the refinement (``refinement_apix``, default: the images' own)."""
    n = len(rotations)
    fields = [("uid", "<u8"), ("blob/path", "S32"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4"),
              ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"), ("ctf/accel_kv", "<f4"),
              ("ctf/cs_mm", "<f4"), ("ctf/amp_contrast", "<f4"), ("ctf/phase_shift_rad", "<f4"),
              ("alignments3D/pose", "<f4", (3,)), ("alignments3D/shift", "<f4", (2,))]
    if refinement_apix is not None:
        fields.append(("alignments3D/psize_A", "<f4"))
    if split is not None:
        fields.append(("alignments3D/split", "<u4"))
    array = np.zeros(n, dtype=fields)
    array["uid"] = np.arange(n) + 10**9
    array["blob/path"] = b"particles.mrcs"
    array["blob/idx"] = np.arange(n)
    array["blob/shape"] = box
    array["blob/psize_A"] = apix
    array["ctf/df1_A"], array["ctf/df2_A"] = ctf[:, 2], ctf[:, 3]
    array["ctf/df_angle_rad"] = np.radians(ctf[:, 4])
    array["ctf/accel_kv"], array["ctf/cs_mm"], array["ctf/amp_contrast"] = ctf[:, 5], ctf[:, 6], ctf[:, 7]
    array["ctf/phase_shift_rad"] = np.radians(ctf[:, 8])
    # the project's matrices are the transpose of cryoSPARC's axis-angle rotation
    array["alignments3D/pose"] = Rotation.from_matrix(np.transpose(rotations, (0, 2, 1))).as_rotvec()
    array["alignments3D/shift"] = shifts
    if refinement_apix is not None:
        array["alignments3D/psize_A"] = refinement_apix
    if split is not None:
        array["alignments3D/split"] = split
    with open(path, "wb") as fh:  # np.save would add .npy to the name
        np.save(fh, array)
    return path


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """Noise-free particles with large shifts (std 2.6 px), their truth and the true map."""
    folder = tmp_path_factory.mktemp("shifted")
    rng = np.random.default_rng(3)
    mol = sim.make_molecule()
    n = 400
    truth = sim.sample_truth(n, BOX, APIX, rng, state=0.5, subunit_fraction=0.0)
    truth.shifts_px *= 4.0
    write_stack(folder / "particles.mrcs", sim.clean_images(mol, truth, np.arange(n), BOX).numpy(), APIX)
    reference = sim.render_volume(mol, 0.5, False, BOX)
    return folder, truth, reference


def _agreement(meta, images, reference) -> float:
    """Mean FSC to the true map over the shells below 0.3 cycles/px."""
    rec = backproject([(np.arange(len(meta)), images)], meta.rotations, meta.shifts_px, meta.ctf, BOX, APIX, reg=0.01)
    freqs, curve = fsc(rec.volume, reference)
    return float(curve[(freqs > 0) & (freqs <= 0.3)].mean())


def test_cs_shifts_in_refinement_pixels_are_converted_to_image_pixels(shifted):
    """cryoSPARC downsampled on the fly: the refinement's pixels are twice the images', so its
    shifts are half as many pixels. Read right, they are the true shifts in image pixels, and
    only then does the backprojection match the true map."""
    folder, truth, reference = shifted
    path = _cs(folder / "refined.cs", truth.rotations, truth.shifts_px / 2, truth.ctf, APIX, refinement_apix=2 * APIX)
    meta = read_metadata(path)
    np.testing.assert_allclose(meta.shifts_px, truth.shifts_px, atol=1e-4)

    images = read_particles(path).images[np.arange(len(meta))]
    right = _agreement(meta, images, reference)
    wrong = _agreement(dataclasses.replace(meta, shifts_px=truth.shifts_px / 2), images, reference)  # read as image pixels
    assert right > 0.9, right
    assert wrong < right - 0.1, (right, wrong)


def test_cs_without_refinement_pixel_size_keeps_the_shifts(shifted):
    folder, truth, _ = shifted
    meta = read_metadata(_cs(folder / "plain.cs", truth.rotations, truth.shifts_px, truth.ctf, APIX))
    np.testing.assert_allclose(meta.shifts_px, truth.shifts_px, atol=1e-4)


def test_cs_impossible_refinement_pixel_size_is_an_error(shifted, fails_with_one_line, tmp_path):
    folder, truth, _ = shifted
    path = _cs(folder / "zero.cs", truth.rotations, truth.shifts_px, truth.ctf, APIX, refinement_apix=0.0)
    fails_with_one_line(["backproject", str(path), "-o", str(tmp_path / "map.mrc")], "alignments3D/psize_A", "zero.cs")


def test_cs_split_gives_the_half_sets(shifted):
    folder, truth, _ = shifted
    split = np.random.default_rng(0).integers(0, 2, len(truth.rotations))
    meta = read_metadata(_cs(folder / "split.cs", truth.rotations, truth.shifts_px, truth.ctf, APIX, split=split))
    np.testing.assert_array_equal(meta.half_sets(), split)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subsets")
    write_synthetic_dataset(folder, n=120, box=16, apix=6.0, snr=1.0, seed=0, grid=2)
    return folder


def _with_subsets(dataset, folder, subsets, name="subsets.star"):
    meta = read_metadata(dataset / "particles.star")
    meta.table["rlnRandomSubset"] = subsets
    folder.mkdir(exist_ok=True)
    (folder / "particles.mrcs").symlink_to(dataset / "particles.mrcs")
    write_star(folder / name, meta)
    return folder / name


def test_half_maps_follow_rln_random_subset(dataset, tmp_path):
    """Subsets that are not even/odd (first half of the file vs the second): each half map is
    the reconstruction of exactly its subset's particles."""
    n = 120
    subsets = np.where(np.arange(n) < n // 2, 1, 2)
    star = _with_subsets(dataset, tmp_path / "data", subsets)
    assert main(["backproject", str(star), "-o", str(tmp_path / "map.mrc")]) == 0

    particles = read_particles(star)
    meta = particles.meta
    for half, rows in (("half1", np.arange(n // 2)), ("half2", np.arange(n // 2, n))):
        alone = backproject([(rows, particles.images[rows])], meta.rotations, meta.shifts_px, meta.ctf, 16, 6.0,
                            halves=np.zeros(n, np.int8))  # every selected particle in one half
        np.testing.assert_allclose(read_volume(tmp_path / f"map_{half}.mrc")[0], alone.half1, rtol=1e-4, atol=1e-5)


def test_impossible_random_subset_is_an_error(dataset, tmp_path, fails_with_one_line):
    star = _with_subsets(dataset, tmp_path / "data", np.full(120, 3))
    fails_with_one_line(["backproject", str(star), "-o", str(tmp_path / "map.mrc")], "rlnRandomSubset", "subsets.star")


def test_every_other_particle_still_fills_both_halves(dataset, tmp_path):
    """Without half sets in the file, a selection of the even particles alternates between the
    halves in selection order (particle-index parity would leave half 2 empty)."""
    ind = tmp_path / "even.txt"
    np.savetxt(ind, np.arange(0, 120, 2), fmt="%d")
    assert main(["backproject", str(dataset / "particles.star"), "--ind", str(ind), "-o", str(tmp_path / "map.mrc")]) == 0
    for half in ("half1", "half2"):
        assert np.abs(read_volume(tmp_path / f"map_{half}.mrc")[0]).max() > 0, half


def test_cryosparc_refinement_split_of_a_real_file(formats_dir):
    meta = read_metadata(formats_dir / "cryosparc_P12_J24_001_particles.cs")
    halves = meta.half_sets()
    assert halves is not None and sorted(np.bincount(halves)) == [1009, 1010]
