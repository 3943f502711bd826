"""Readers and writer of the napari plugin: layer types, shapes, scales (voxel size in Å), laziness, errors."""

import mrcfile
import numpy as np
import pytest

from cryodiff.napari._layers import SHOWN_VOLUME
from cryodiff.napari._lazy import LazyImages
from cryodiff.napari._reader import napari_get_reader
from recon.errors import InputError
from recon.io import read_particles, read_volume, write_volume


def _volume(box=12):
    rng = np.random.default_rng(0)
    return rng.standard_normal((box, box, box)).astype(np.float32)


def test_get_reader_declines_other_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path)) is None  # a folder that is not a run
    (tmp_path / "config.json").write_text("{}")
    assert napari_get_reader(str(tmp_path / "config.json")) is None  # another tool's: no checkpoint.pt beside it
    assert napari_get_reader([str(tmp_path / "a.mrc"), str(tmp_path / "b.mrc")]) is None
    assert napari_get_reader(str(tmp_path / "map.MRC")) is not None


def test_volume_opens_with_voxel_size_as_scale(viewer, tmp_path):
    vol = _volume()
    write_volume(tmp_path / "map.mrc", vol, 2.5)
    layers = viewer.open(str(tmp_path / "map.mrc"), plugin="cryodiff")
    assert len(layers) == 1 and layers[0]._type_string == "image"
    layer = layers[0]
    np.testing.assert_array_equal(layer.data, vol)
    np.testing.assert_allclose(layer.scale, [2.5, 2.5, 2.5])
    assert layer.rendering == "iso"
    assert (vol > layer.iso_threshold).mean() == pytest.approx(0.01, abs=0.002)


def _sparse_stack(path, n, box, apix):
    """An MRC stack of n images whose header is real and whose data are a hole in the file (no disk used)."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.zeros((1, box, box), np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = apix
        mrc.header.nz = n
        mrc.header.mz = n
    with open(path, "r+b") as f:
        f.truncate(1024 + n * box * box * 4)


def test_large_stack_opens_lazily(viewer, tmp_path, monkeypatch):
    import recon.io.images

    path = tmp_path / "big.mrcs"
    _sparse_stack(path, 100_000, 16, 3.0)
    read = []
    real = recon.io.images.read_images
    monkeypatch.setattr(recon.io.images, "read_images", lambda mrc, idx: read.extend(idx) or real(mrc, idx))
    layer = viewer.open(str(path), plugin="cryodiff")[0]
    assert isinstance(layer.data, LazyImages) and layer.data.shape == (100_000, 16, 16)
    np.testing.assert_allclose(layer.scale, [1.0, 3.0, 3.0])
    viewer.dims.set_current_step(0, 54_321)
    assert len(read) < 40  # the contrast sample and the images shown, not 100k


def test_star_file_gives_images_and_particle_centres(viewer, tiny_vae_run):
    star = tiny_vae_run.parent / "data" / "particles.star"
    particles = read_particles(star)
    images, centres = viewer.open(str(star), plugin="cryodiff")
    assert images._type_string == "image" and centres._type_string == "points"
    assert images.data.shape == (96, 16, 16)
    np.testing.assert_array_equal(images.data[5], particles.images[5])
    np.testing.assert_allclose(images.scale, [1.0, 6.0, 6.0])
    assert list(centres.features.columns) == list(particles.meta.table.columns)
    np.testing.assert_allclose(centres.data[:, 0], np.arange(96))
    np.testing.assert_allclose(centres.data[:, 1:], 8 - particles.meta.shifts_px[:, ::-1])
    np.testing.assert_allclose(centres.scale, [1.0, 6.0, 6.0])


def test_cryosparc_file(formats_dir, viewer):  # formats_dir may skip: before the viewer
    images, centres = viewer.open(str(formats_dir / "empiar_10076_7.cs"), plugin="cryodiff")
    assert images.data.shape == (7, 320, 320)
    np.testing.assert_allclose(images.scale[1:], 1.31, atol=1e-4)
    assert "ctf/df1_A" in centres.features.columns and len(centres.features) == 7


def test_run_directory_gives_its_shown_volume_only(viewer, tiny_vae_run):
    from recon.analysis import nearest_rows
    from recon.run import load_run

    run = load_run(tiny_vae_run)
    z = run.latents()
    row = int(nearest_rows(z, z.mean(0, keepdims=True))[0])
    (volume,) = viewer.open(str(tiny_vae_run), plugin="cryodiff")  # no latent points in the volume's 3-D scene
    assert volume.name == SHOWN_VOLUME and volume.metadata["label"] == f"particle {row} (nearest the mean latent)"
    np.testing.assert_allclose(volume.metadata["latent"], z[row])
    np.testing.assert_allclose(volume.data, run.volume(z[row]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(volume.scale, [run.apix] * 3)
    assert volume.metadata["cryodiff_run"] == str(tiny_vae_run) and volume.rendering == "iso"
    assert volume.colormap.name == "gray"  # napari starts in 2-D: a section looks like any map's


def test_run_opens_without_choosing_a_plugin(viewer, tiny_vae_run):
    """What ``napari RUN/config.json``, drag and drop and File ▸ Open do: no plugin named, and none to choose
    (a folder is offered to every reader that reads folders, so napari would ask which)."""
    (volume,) = viewer.open(str(tiny_vae_run / "config.json"), plugin=None)
    assert volume.name == SHOWN_VOLUME and volume.metadata["cryodiff_run"] == str(tiny_vae_run)


def test_bad_file_is_reported_not_raised(viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    write_volume(tmp_path / "cut.mrc", _volume(), 1.0)
    data = (tmp_path / "cut.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(data[: len(data) // 2])
    messages = []
    notification_manager.notification_ready.connect(lambda event: messages.append(str(event.message)))
    assert viewer.open(str(tmp_path / "cut.mrc"), plugin="cryodiff") == []
    assert len(viewer.layers) == 0
    assert any("cut.mrc" in m and "truncated" in m and "Fix:" in m for m in messages), messages


def test_writer_saves_voxel_size(viewer, tmp_path):
    vol = _volume()
    viewer.add_image(vol, scale=(4.2, 4.2, 4.2), name="map")
    viewer.layers.save(str(tmp_path / "out.mrc"), plugin="cryodiff")
    back, apix = read_volume(tmp_path / "out.mrc")
    np.testing.assert_array_equal(back, vol)
    assert apix == pytest.approx(4.2)


def test_writer_refuses_mixed_scales(tmp_path):
    from cryodiff.napari._writer import write_mrc

    with pytest.raises(InputError, match="not one voxel size"):
        write_mrc(str(tmp_path / "stack.mrc"), np.zeros((3, 8, 8), np.float32), {"name": "stack", "scale": (1, 2, 2)})
    with pytest.raises(InputError, match="4 dimensions"):
        write_mrc(str(tmp_path / "path.mrc"), np.zeros((2, 4, 4, 4), np.float32), {"name": "path", "scale": (1, 2, 2, 2)})
