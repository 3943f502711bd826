"""Data sets larger than memory: the chunk-shuffled epoch order, grouped reads, positioned reads
of MRC stacks, and float16 (mode 12) stacks written by downsample."""

import mrcfile
import numpy as np
import pytest
import torch

from cryodiff.cli.main import main
from recon.errors import InputError
from recon.io import ImageStack, read_particles
from recon.io.mrc import write_stack
from recon.loader import Batches, batches_of, epoch_order, file_order
from recon.synthetic import write_synthetic_dataset
from recon.training import TrainingData, TrainSettings, train_vae
from recon.vae import Architecture


def test_shuffled_order_is_the_seeded_permutation():
    np.testing.assert_array_equal(epoch_order(50, 3, 2), np.random.default_rng([3, 2]).permutation(50))


def test_chunk_shuffled_order_reads_few_contiguous_runs_per_window():
    n, chunk, window = 1000, 25, 4
    stored = np.random.default_rng(0).permutation(n)  # where each position's image lies on disk
    order = epoch_order(n, 7, 1, chunk=chunk, window=window, stored=stored)
    assert sorted(order) == list(range(n))
    np.testing.assert_array_equal(order, epoch_order(n, 7, 1, chunk=chunk, window=window, stored=stored))
    assert not np.array_equal(order, epoch_order(n, 7, 2, chunk=chunk, window=window, stored=stored))
    place = np.argsort(stored)  # position -> place on disk
    for start in range(0, n, chunk * window):
        on_disk = np.sort(place[order[start : start + chunk * window]])
        assert len(on_disk) == chunk * window
        runs = 1 + np.count_nonzero(np.diff(on_disk) != 1)
        assert runs <= window  # the window is `window` chunks of consecutive images
        assert len(np.unique(on_disk // chunk)) == window
    # and the particles of a window are mixed: a batch does not come from one chunk
    first = place[order[:16]] // chunk
    assert len(np.unique(first)) > 1


def test_grouped_reads_give_the_batches_images(tmp_path):
    images = np.random.default_rng(1).normal(size=(60, 8, 8)).astype(np.float32)
    write_stack(tmp_path / "a.mrcs", images[:25], 2.0)
    write_stack(tmp_path / "b.mrcs", images[25:], 2.0)
    stack = ImageStack([tmp_path / "a.mrcs", tmp_path / "b.mrcs"])
    indices = np.arange(5, 60)
    order = epoch_order(len(indices), 0, 1, chunk=7, window=3, stored=file_order(stack, indices))
    batches = batches_of(order, 9)
    seen = []
    for pos, batch in Batches(stack, indices, 8, batches, group=4):
        np.testing.assert_array_equal(batch.numpy(), images[indices[pos]])
        seen.append(pos)
    assert [len(p) for p in seen] == [len(b) for b in batches]


def test_positioned_reads_match_mrcfile_across_runs_and_byte_orders(tmp_path):
    images = np.random.default_rng(2).normal(size=(30, 6, 6)).astype(">f4")
    path = tmp_path / "big_endian.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(images)
        mrc.set_extended_header(np.zeros(16, dtype=[("x", "<i4")]))  # data start after 64 more bytes
    stack = ImageStack([path])
    pick = np.array([29, 0, 1, 2, 7, 8, 15])
    np.testing.assert_array_equal(stack[pick], images[pick].astype(np.float32))


def test_truncated_read_names_the_file(tmp_path):
    path = tmp_path / "s.mrcs"
    write_stack(path, np.ones((10, 8, 8), np.float32), 1.0)
    stack = ImageStack([path])
    with open(path, "r+b") as f:  # cut short after it was opened (a copy still in progress)
        f.truncate(1024 + 4 * 8 * 8 * 4)
    with pytest.raises(InputError, match="ends before image 9"):
        stack[[8]]  # noqa: B018 - the read is the test
    np.testing.assert_array_equal(stack[[3]], np.ones((1, 8, 8)))


def test_float16_stack_round_trip_and_overflow(tmp_path):
    images = np.random.default_rng(3).normal(size=(4, 8, 8)).astype(np.float32)
    write_stack(tmp_path / "h.mrcs", images, 1.5, float16=True)
    with mrcfile.open(tmp_path / "h.mrcs") as mrc:
        assert mrc.header.mode == 12
    np.testing.assert_allclose(ImageStack([tmp_path / "h.mrcs"])[:], images, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="does not fit in float16"):
        write_stack(tmp_path / "big.mrcs", images * 1e5, 1.5, float16=True)


def test_downsample_writes_float16_particles(tmp_path, capsys):
    write_synthetic_dataset(tmp_path / "d", n=20, box=32, apix=3.0, snr=1.0, seed=1, grid=2)
    star = tmp_path / "d" / "particles.star"
    assert main(["downsample", str(star), "-D", "16", "-o", str(tmp_path / "f32.mrcs")]) in (0, None)
    assert main(["downsample", str(star), "-D", "16", "-o", str(tmp_path / "f16.mrcs"), "--float16"]) in (0, None)
    with mrcfile.open(tmp_path / "f16.mrcs") as mrc:
        assert mrc.header.mode == 12 and mrc.data.shape == (20, 16, 16)
    full, half = read_particles(tmp_path / "f32.star"), read_particles(tmp_path / "f16.star")
    scale = np.abs(full.images[:]).max()
    np.testing.assert_allclose(half.images[:], full.images[:], atol=1e-3 * scale)
    np.testing.assert_allclose(half.meta.rotations, full.meta.rotations)
    loud = tmp_path / "loud.mrcs"
    write_stack(loud, np.full((3, 32, 32), 1e6, np.float32), 3.0)
    capsys.readouterr()
    assert main(["downsample", str(loud), "-D", "16", "-o", str(tmp_path / "x.mrcs"), "--float16"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar of the images read so far
    assert last.startswith("cryodiff downsample: error:") and "does not fit in float16" in last and "drop --float16" in last
    assert not (tmp_path / "x.mrcs").exists()


def test_chunk_shuffled_training_resumes_exactly_and_refuses_another_order(tmp_path):
    write_synthetic_dataset(tmp_path / "d", n=64, box=16, apix=6.0, snr=1.0, seed=2, grid=2)
    p = read_particles(tmp_path / "d" / "particles.star")

    def data():
        return TrainingData(p.images, np.arange(64), p.meta.rotations, p.meta.shifts_px, p.meta.ctf, 16, 6.0, {})

    arch = Architecture(box=16, zdim=2, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1)
    settings = TrainSettings(epochs=2, batch_size=8, lr=1e-3, shuffle_chunk=8, shuffle_window=2)
    full = train_vae(data(), arch, settings, tmp_path / "full", show_progress=False)

    def kill(epoch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vae(data(), arch, settings, tmp_path / "killed", show_progress=False, after_epoch=kill)
    resumed = train_vae(data(), arch, settings, tmp_path / "killed", resume=True, show_progress=False)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    other = TrainSettings(epochs=3, batch_size=8, lr=1e-3, shuffle_chunk=0)
    with pytest.raises(InputError, match="shuffle_chunk differs"):
        train_vae(data(), arch, other, tmp_path / "killed", resume=True, show_progress=False)
