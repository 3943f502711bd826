"""A small version of the accuracy acceptance (benchmarks/accuracy.py runs the
full one): on simulated data with known states, the trained VAE's latents
recover the continuous state and the subunit, and the maps decoded at each true
state's latent medoid match the ground truth."""

import json

import numpy as np
import pytest
import torch

from recon.evaluation import per_state_fsc, state_r2, subunit_accuracy
from recon.io import read_particles
from recon.synthetic import read_truth, write_synthetic_dataset
from recon.training import TrainingData, TrainSettings, encode_all, train_vae
from recon.vae import Architecture


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("accuracy")
    write_synthetic_dataset(work / "data", n=3000, box=24, apix=8.0, snr=1.0, seed=1)
    particles = read_particles(work / "data" / "particles.star")
    particles.images.load()
    m = particles.meta
    data = TrainingData(particles.images, np.arange(len(particles)), m.rotations, m.shifts_px, m.ctf, m.box, m.apix)
    arch = Architecture(box=24, zdim=4, enc_dim=128, enc_layers=2, dec_dim=128, dec_layers=2)
    model = train_vae(data, arch, TrainSettings(epochs=10, batch_size=16, lr=1e-3, seed=0), work / "run", show_progress=False)
    scale = json.loads((work / "run" / "config.json").read_text())["normalization"]["std"]
    z, _ = encode_all(model, data, scale, invert=True)
    return work, model, z, read_truth(work / "data" / "truth.h5")


def test_latents_recover_state_and_subunit(trained):
    _, _, z, truth = trained
    assert state_r2(z, truth["state"]) >= 0.8
    assert subunit_accuracy(z, truth["subunit"]) >= 0.95
    # Control: latents that carry no information score near zero.
    noise = np.random.default_rng(0).normal(size=z.shape)
    assert state_r2(noise, truth["state"]) < 0.1


def test_maps_at_state_medoids_match_ground_truth(trained):
    work, model, z, truth = trained
    with torch.no_grad():
        rows = per_state_fsc(model.volume, z, truth, work / "data", 8.0, min_particles=50)
    assert len(rows) >= 6
    assert min(r["fsc0.5_nyquist_fraction"] for r in rows) >= 0.5
    # Subunit occupancy is resolved: the closest ground-truth map has the right subunit flag.
    assert all(r["closest_truth"]["subunit"] == r["subunit"] for r in rows)
