"""Writers and readers agree: MRC stacks and volumes, STAR write-back, stack lists, datadir."""

import pickle
import tracemalloc

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from recon.io import (
    ImageStack,
    matrix_to_relion_euler,
    read_metadata,
    read_particles,
    read_volume,
    relion_euler_to_matrix,
    write_stack,
    write_star,
    write_volume,
)


def _images(n, box, seed=0):
    return np.random.default_rng(seed).normal(size=(n, box, box)).astype(np.float32)


def _star(path, stacks_and_indices, n_groups=1):
    """A RELION 3.1 star for the given (stack name, 1-based index) pairs, with poses and CTF."""
    rng = np.random.default_rng(1)
    n = len(stacks_and_indices)
    groups = np.arange(n) % n_groups + 1
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": np.arange(1, n_groups + 1),
            "rlnOpticsGroupName": [f"og{g}" for g in range(1, n_groups + 1)],
            "rlnAmplitudeContrast": 0.1,
            "rlnSphericalAberration": np.linspace(2.7, 2.0, n_groups),
            "rlnVoltage": np.linspace(300.0, 200.0, n_groups),
            "rlnImagePixelSize": np.linspace(1.5, 1.2, n_groups),
            "rlnImageSize": 16,
            "rlnImageDimensionality": 2,
            "rlnBeamTiltX": 0.25,
        }
    )
    particles = pd.DataFrame(
        {
            "rlnImageName": [f"{i:06d}@{s}" for s, i in stacks_and_indices],
            "rlnOpticsGroup": groups,
            "rlnAngleRot": rng.uniform(-180, 180, n).round(6),
            "rlnAngleTilt": rng.uniform(1, 179, n).round(6),
            "rlnAnglePsi": rng.uniform(-180, 180, n).round(6),
            "rlnOriginXAngst": rng.normal(0, 3, n).round(6),
            "rlnOriginYAngst": rng.normal(0, 3, n).round(6),
            "rlnDefocusU": rng.uniform(1e4, 2e4, n).round(6),
            "rlnDefocusV": rng.uniform(1e4, 2e4, n).round(6),
            "rlnDefocusAngle": rng.uniform(-90, 90, n).round(6),
            "rlnClassNumber": rng.integers(1, 4, n),
        }
    )
    starfile.write({"optics": optics, "particles": particles}, path)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float16, np.float32])
def test_every_mrc_mode_reads_as_float32(tmp_path, dtype):
    values = np.arange(4 * 8 * 8).reshape(4, 8, 8) % 100
    with mrcfile.new(tmp_path / "s.mrcs") as mrc:
        mrc.set_data(values.astype(dtype))
    stack = ImageStack([tmp_path / "s.mrcs"])
    batch = stack[[3, 0]]
    assert batch.dtype == np.float32 and batch.shape == (2, 8, 8)
    np.testing.assert_array_equal(batch, values[[3, 0]])
    assert stack[2].shape == (8, 8)


def test_write_stack_and_volume_round_trip(tmp_path):
    images = _images(6, 12)
    write_stack(tmp_path / "s.mrcs", images, 1.7)
    with mrcfile.open(tmp_path / "s.mrcs") as mrc:
        assert mrc.header.mode == 2 and mrc.is_image_stack()
        assert mrc.voxel_size.x == pytest.approx(1.7)
    np.testing.assert_array_equal(ImageStack([tmp_path / "s.mrcs"])[:], images)

    volume = _images(10, 10, seed=3)
    write_volume(tmp_path / "v.mrc", volume, 2.5)
    back, apix = read_volume(tmp_path / "v.mrc")
    np.testing.assert_array_equal(back, volume)
    assert apix == pytest.approx(2.5)
    with mrcfile.open(tmp_path / "v.mrc") as mrc:
        assert mrc.header.mode == 2 and mrc.is_volume()
        assert tuple(mrc.header.origin.item()) == (0.0, 0.0, 0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mrcs", "v.mrc"]  # no temp files left


def test_big_stack_is_indexed_without_loading(tmp_path):
    images = _images(5000, 32)  # 20 MB on disk
    write_stack(tmp_path / "big.mrcs", images, 1.0)
    stack = ImageStack([tmp_path / "big.mrcs"])
    rng = np.random.default_rng(7)
    tracemalloc.start()
    for _ in range(5):
        picks = rng.choice(len(stack), size=16, replace=False)
        np.testing.assert_array_equal(stack[picks], images[picks])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000, peak  # a few batches, nowhere near the 20 MB stack
    assert np.array_equal(stack[4990:], images[4990:])


def test_load_reads_everything_and_pickles_without_handles(tmp_path):
    images = _images(7, 8)
    write_stack(tmp_path / "s.mrcs", images, 1.0)
    particles = read_particles(tmp_path / "s.mrcs", lazy=False)
    np.testing.assert_array_equal(particles.images[[6, 1]], images[[6, 1]])
    lazy = read_particles(tmp_path / "s.mrcs").images
    lazy[0]
    copy = pickle.loads(pickle.dumps(lazy))
    np.testing.assert_array_equal(copy[[5]], images[[5]])


@pytest.mark.filterwarnings("ignore:.*pixel sizes:UserWarning")
def test_multi_stack_star_and_write_back(tmp_path):
    a, b = _images(5, 16, seed=1), _images(3, 16, seed=2)
    write_stack(tmp_path / "a.mrcs", a, 1.5)
    write_stack(tmp_path / "b.mrcs", b, 1.5)
    refs = [("a.mrcs", 2), ("b.mrcs", 3), ("a.mrcs", 5), ("b.mrcs", 1), ("a.mrcs", 1)]
    _star(tmp_path / "p.star", refs, n_groups=2)
    particles = read_particles(tmp_path / "p.star")
    expected = np.stack([(a if s == "a.mrcs" else b)[i - 1] for s, i in refs])
    np.testing.assert_array_equal(particles.images[:], expected)
    np.testing.assert_array_equal(particles.images[[4, 1]], expected[[4, 1]])

    meta = read_metadata(tmp_path / "p.star")
    subset = [4, 1, 2]
    write_star(tmp_path / "sel.star", meta, subset)
    back = read_metadata(tmp_path / "sel.star")
    chosen = meta.subset(subset)
    assert back.image_names == chosen.image_names == ["000001@a.mrcs", "000003@b.mrcs", "000005@a.mrcs"]
    np.testing.assert_allclose(back.rotations, chosen.rotations, atol=1e-7)
    np.testing.assert_allclose(back.shifts_px, chosen.shifts_px, atol=1e-6)
    np.testing.assert_allclose(back.ctf, chosen.ctf, rtol=1e-9, atol=1e-6)
    assert back.table["rlnClassNumber"].tolist() == chosen.table["rlnClassNumber"].tolist()
    assert back.optics["rlnBeamTiltX"].tolist() == [0.25, 0.25]  # other optics columns survive
    assert sorted(back.optics["rlnOpticsGroupName"]) == ["og1", "og2"]
    assert (tmp_path / "sel.star").read_text().count("# version 30001") == 2
    np.testing.assert_array_equal(read_particles(tmp_path / "sel.star").images[:], expected[subset])


@pytest.mark.filterwarnings("ignore:.*pixel sizes:UserWarning")
@pytest.mark.parametrize("name", ["relion31.6opticsgroups.star", "cryosparc_P12_J24_001_particles.cs"])
def test_write_star_from_real_files(formats_dir, tmp_path, name):
    meta = read_metadata(formats_dir / name)
    picks = np.arange(0, len(meta), 7)
    write_star(tmp_path / "out.star", meta, picks)
    back = read_metadata(tmp_path / "out.star")
    chosen = meta.subset(picks)
    assert back.image_names == chosen.image_names
    np.testing.assert_allclose(back.rotations, chosen.rotations, atol=1e-7)
    np.testing.assert_allclose(back.shifts_px, chosen.shifts_px, atol=1e-6)
    np.testing.assert_allclose(back.ctf, chosen.ctf, rtol=1e-6, atol=1e-6)


def test_euler_round_trip_including_gimbal_lock():
    rng = np.random.default_rng(3)
    rot, tilt, psi = rng.uniform(-180, 180, 50), rng.uniform(0, 180, 50), rng.uniform(-180, 180, 50)
    tilt[:2] = [0.0, 180.0]
    matrices = relion_euler_to_matrix(rot, tilt, psi)
    np.testing.assert_allclose(relion_euler_to_matrix(*matrix_to_relion_euler(matrices)), matrices, atol=1e-12)
    np.testing.assert_allclose(
        matrices @ matrices.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-12
    )


def test_txt_list_and_datadir(tmp_path):
    stacks_dir = tmp_path / "stacks"
    stacks_dir.mkdir()
    a, b = _images(2, 16, seed=4), _images(3, 16, seed=5)
    write_stack(stacks_dir / "a.mrcs", a, 1.0)
    write_stack(stacks_dir / "b.mrcs", b, 1.0)
    (stacks_dir / "list.txt").write_text("a.mrcs\n\nb.mrcs\n")
    particles = read_particles(stacks_dir / "list.txt", apix=1.0)
    assert len(particles) == 5 and particles.meta.image_names[2] == "1@b.mrcs"
    np.testing.assert_array_equal(particles.images[:], np.concatenate([a, b]))

    # The star lives elsewhere and names the stacks by their RELION job paths.
    project = tmp_path / "project"
    project.mkdir()
    _star(project / "p.star", [("Extract/job007/a.mrcs", 2), ("Extract/job007/b.mrcs", 3)])
    particles = read_particles(project / "p.star", datadir=stacks_dir)  # datadir + basename
    np.testing.assert_array_equal(particles.images[:], np.stack([a[1], b[2]]))
    nested = tmp_path / "mirror" / "Extract" / "job007"
    nested.mkdir(parents=True)
    write_stack(nested / "a.mrcs", a, 1.0)
    write_stack(nested / "b.mrcs", b, 1.0)
    particles = read_particles(project / "p.star", datadir=tmp_path / "mirror")  # datadir + path
    assert particles.images.files[0] == nested / "a.mrcs"


@pytest.mark.parametrize("order", [(3, 2, 1), (1, 2, 3), (2, 3, 1)])
def test_volume_in_another_axis_order_with_an_origin_reads_as_z_y_x(tmp_path, order):
    """A map whose header stores its axes in another order (mapc, mapr, maps), with a non-zero
    origin, reads back as the original [z, y, x] array."""
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(6, 7, 8)).astype(np.float32)  # [z, y, x], three different lengths
    maps, mapr, mapc = order  # the file axis (1 = x, 2 = y, 3 = z) of sections, rows, columns
    stored = volume.transpose([(3, 2, 1).index(axis) for axis in order])
    path = tmp_path / "map.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(stored))
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = mapc, mapr, maps
        mrc.header.origin = (12.5, -3.0, 40.0)
        mrc.voxel_size = 1.5
    read, apix = read_volume(path)
    np.testing.assert_array_equal(read, volume)
    assert apix == pytest.approx(1.5)
