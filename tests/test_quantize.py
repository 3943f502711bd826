"""Quantized cryo-EM networks (cryodiff.quantize): the decoder distilled onto 4-bit and ternary grids keeps
the full-precision volumes (FSC against the full-precision decoder's volume), the prior keeps its samples."""

import numpy as np
import pytest
import torch

from cryodiff.quantize import decoder_weights, int8_linear_layers, quantize_decoder, quantize_prior, with_decoder
from generative.metrics import energy_distance
from generative.quantization import pack, rows, unpack
from recon.fsc import crossing, fsc
from recon.run import load_run


@pytest.mark.parametrize("grid, levels", [("uniform4", 16), ("ternary", 3)])
def test_quantized_decoder_keeps_the_volume(tiny_vae_run, one_torch_thread, grid, levels):
    run = load_run(tiny_vae_run)
    decoder, optimizer, log = quantize_decoder(run.model, run.z_mu, grid=grid, steps=300, lr=1e-3, points=1024)
    assert log[-1]["relaxation"] == 0.0
    for name, w in decoder_weights(decoder).items():
        assert max(len(torch.unique(r)) for r in rows(w)) <= levels
        assert not torch.equal(w, dict(run.model.decoder.named_parameters())[name])  # it did change
    quantized = with_decoder(run.model, decoder)
    for z in run.z_mu[:3]:
        full, small = run.model.volume(z), quantized.volume(z)
        freqs, curve = fsc(full, small)
        reach = crossing(freqs, curve, 0.5)
        assert reach is None or reach >= (0.9 if grid == "uniform4" else 0.6) * freqs.max(), (grid, reach)
    state = unpack(pack(decoder, optimizer))
    assert all(torch.equal(state[k], v) for k, v in decoder.state_dict().items())
    assert run.model.decoder is not decoder


def test_int8_decoder_is_close(tiny_vae_run, one_torch_thread):
    run = load_run(tiny_vae_run)
    fast = with_decoder(run.model, int8_linear_layers(run.model.decoder))
    full, small = run.model.volume(run.z_mu[0]), fast.volume(run.z_mu[0])
    assert np.corrcoef(full.ravel(), small.ravel())[0, 1] > 0.99


def test_quantized_prior_keeps_its_samples(latent_mixture, one_torch_thread, tmp_path):
    from cryodiff.prior import train_prior
    z = latent_mixture.sample(4000, torch.Generator().manual_seed(0))[0].float().numpy()
    prior = train_prior(z, tmp_path / "prior", steps=400, seed=0)
    small, optimizer = quantize_prior(prior, z, grid="uniform4", steps=200)
    for w in optimizer.weights:
        assert max(len(torch.unique(r)) for r in rows(w)) <= 16
    truth = latent_mixture.sample(1000, torch.Generator().manual_seed(1))[0]
    full_d = energy_distance(torch.as_tensor(prior.sample(1000, seed=2)), truth)
    small_d = energy_distance(torch.as_tensor(small.sample(1000, seed=2)), truth)
    assert small_d < max(2 * full_d, 0.05), (full_d, small_d)
