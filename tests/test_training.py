"""VAE training: exact resume after a kill, a clear stop on a non-finite loss,
the run directory's files, and the train-vae / eval-vol commands."""

import json

import h5py
import numpy as np
import pytest
import torch

import recon.training as training
from cryodiff.cli.main import main
from recon.errors import InputError, TrainingDiverged
from recon.io import read_particles, read_volume
from recon.run import load_run
from recon.synthetic import write_synthetic_dataset
from recon.training import TrainingData, TrainSettings, train_vae
from recon.vae import Architecture


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    write_synthetic_dataset(out, n=96, box=16, apix=6.0, snr=1.0, seed=2, grid=2)
    return out


def _data(path):
    p = read_particles(path / "particles.star")
    m = p.meta
    return TrainingData(p.images, np.arange(len(p)), m.rotations, m.shifts_px, m.ctf, m.box, m.apix, {"particles": str(path)})


ARCH = dict(box=16, zdim=2, enc_dim=24, enc_layers=1, dec_dim=24, dec_layers=1)


def test_resume_after_kill_reaches_the_uninterrupted_result(dataset, tmp_path):
    settings = TrainSettings(epochs=3, batch_size=8, lr=1e-3, seed=5)
    full = train_vae(_data(dataset), Architecture(**ARCH), settings, tmp_path / "full", show_progress=False)

    def kill(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vae(_data(dataset), Architecture(**ARCH), settings, tmp_path / "killed", show_progress=False, after_epoch=kill)
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    resumed = train_vae(_data(dataset), Architecture(**ARCH), settings, tmp_path / "killed", resume=True, show_progress=False)
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    with h5py.File(tmp_path / "full" / "latents.h5") as f1, h5py.File(tmp_path / "killed" / "latents.h5") as f2:
        np.testing.assert_array_equal(f1["z_mu"][()], f2["z_mu"][()])
        assert f1["z_mu"].shape == (96, 2) and f1["z_logvar"].shape == (96, 2)
        np.testing.assert_array_equal(f1["indices"][()], np.arange(96))
    lines = (tmp_path / "full" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    assert config["training"]["beta"] == 0.5 and config["normalization"]["std"] > 0


def test_non_finite_loss_stops_with_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    real_loss = training._loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        out = real_loss(*args, **kwargs)
        return (out[0] * float("nan"),) + out[1:] if calls["n"] > 12 else out  # 12 batches = epoch 1

    monkeypatch.setattr(training, "_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"epoch 2.*checkpoint.pt \(epoch 1\)"):
        train_vae(_data(dataset), Architecture(**ARCH), TrainSettings(epochs=3, batch_size=8), tmp_path / "run", show_progress=False)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_training_data_reads_the_selected_particles_and_records_the_files(dataset, tmp_path):
    np.save(tmp_path / "ind.npy", np.array([5, 1, 7]))
    data = training.training_data(dataset / "particles.star", ind=tmp_path / "ind.npy")
    everything = read_particles(dataset / "particles.star")
    np.testing.assert_array_equal(data.indices, [5, 1, 7])
    np.testing.assert_array_equal(data.rotations, everything.meta.rotations[[5, 1, 7]])
    np.testing.assert_array_equal(data.shifts_px, everything.meta.shifts_px[[5, 1, 7]])
    np.testing.assert_array_equal(data.ctf, everything.meta.ctf[[5, 1, 7]])
    np.testing.assert_array_equal(data.images[[5, 1]], everything.images[[5, 1]])  # indexed by absolute particle index
    assert (data.box, data.apix) == (16, 6.0)
    assert data.source == {"particles": str((dataset / "particles.star").resolve()), "datadir": None, "poses": None,
                           "ctf": None, "ind": str((tmp_path / "ind.npy").resolve())}
    np.save(tmp_path / "none.npy", np.zeros(96, dtype=bool))
    with pytest.raises(InputError, match="selects no particles"):
        training.training_data(dataset / "particles.star", ind=tmp_path / "none.npy")
    with pytest.raises(InputError, match="no 3-D poses"):
        training.training_data(dataset / "particles.mrcs", apix=6.0)


def test_train_vae_and_eval_vol_commands(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train-vae", str(dataset / "particles.star"), "-o", str(run), "--zdim", "2", "-n", "1", "-b", "8",
            "--enc-dim", "16", "--dec-dim", "16", "--enc-layers", "1", "--dec-layers", "1"]
    assert main(args) == 0
    assert main(args) == 2  # refuses to overwrite a trained run
    assert "--resume" in capsys.readouterr().err
    trained = load_run(run)
    assert trained.z_mu.shape == (96, 2) and trained.apix == 6.0

    assert main(["eval-vol", str(run), "-z", "0", "0", "1", "-1", "-o", str(tmp_path / "vols"), "-D", "8"]) == 0
    vol, apix = read_volume(tmp_path / "vols" / "vol_001.mrc")
    assert vol.shape == (8, 8, 8) and apix == pytest.approx(12.0)
    np.testing.assert_allclose(vol, trained.volume([1, -1], box=8), atol=1e-6)
    assert not (tmp_path / "vols" / "vol_002.mrc").exists()
    assert main(["eval-vol", str(run), "-z", "0", "0", "1", "-o", str(tmp_path / "bad")]) == 2


def test_no_window_is_recorded_and_resume_must_match(dataset, tmp_path, capsys):
    run = tmp_path / "nowin"
    base = ["train-vae", str(dataset / "particles.star"), "-o", str(run), "--zdim", "2", "-b", "8",
            "--enc-dim", "16", "--dec-dim", "16", "--enc-layers", "1", "--dec-layers", "1"]
    assert main(base + ["-n", "1", "--no-window"]) == 0
    assert json.loads((run / "config.json").read_text())["training"]["window"] is False
    assert main(base + ["-n", "2", "--resume"]) == 2  # the window setting differs from the run
    assert "window" in capsys.readouterr().err
    assert main(base + ["-n", "2", "--resume", "--no-window"]) == 0
    assert len((run / "log.jsonl").read_text().splitlines()) == 2
