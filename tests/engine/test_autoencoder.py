"""The KL autoencoder (first stage of latent diffusion): shapes, the posterior's KL, the latent scale,
training on synthetic coloured shapes, the discriminator hook and an exact resume."""

import json

import numpy as np
import pytest
import torch

from generative.autoencoder import (Adversary, AutoencoderKL, PatchDiscriminator, Posterior, autoencoder_loss,
                                    psnr, train_autoencoder)


def _shapes(n, size=16, seed=0):
    """``[n, 3, size, size]`` images in [-1, 1]: a dark background of random colour, a disc and a rectangle
    of random colours at random places (the rectangle drawn last, possibly over the disc)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] + 0.5
    out = np.empty((n, 3, size, size), np.float32)
    for img in out:
        img[:] = rng.uniform(-1, 0, (3, 1, 1))
        cy, cx = rng.uniform(4, size - 4, 2)
        img[:, (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(2, 5) ** 2] = rng.uniform(-1, 1, (3, 1))
        (y0, x0), (h, w) = rng.integers(0, size - 4, 2), rng.integers(3, 8, 2)
        img[:, y0:y0 + h, x0:x0 + w] = rng.uniform(-1, 1, (3, 1, 1))
    return torch.from_numpy(out)


def _reconstruct(model, x):
    with torch.no_grad():
        return model.decode(model.encode(x).mean)


@pytest.fixture(scope="module")
def trained():
    """A tiny autoencoder (base 8, 4 channels per GroupNorm group) trained 300 steps of 32 images; held-out
    images and the held-out L1 error of the untrained model."""
    train, test = _shapes(512, seed=0), _shapes(64, seed=1)
    torch.manual_seed(0)
    model = AutoencoderKL(base=8, groups=2)
    l1_start = (_reconstruct(model, test) - test).abs().mean().item()
    trainer, records = train_autoencoder(model, train, 300, lr=3e-3, batch_size=32, log_every=50)
    return trainer, records, train, test, l1_start


@pytest.mark.parametrize("size", [(16, 16), (24, 40)])
def test_shapes(size):
    torch.manual_seed(0)
    model = AutoencoderKL(base=8)
    x = torch.rand(2, 3, *size) * 2 - 1
    posterior = model.encode(x)
    assert posterior.mean.shape == posterior.logvar.shape == (2, 4, size[0] // 4, size[1] // 4)
    reconstruction, posterior = model(x, torch.Generator().manual_seed(0))
    assert reconstruction.shape == x.shape and posterior.kl().shape == (2,)
    assert model.decode(posterior.mean).shape == x.shape
    assert autoencoder_loss(model, x).shape == (2,)
    with pytest.raises(ValueError, match="not divisible"):
        model.encode(torch.zeros(1, 3, 16, 18))


def test_posterior_kl_and_sampling():
    zeros = torch.zeros(3, 4, 2, 2)
    torch.testing.assert_close(Posterior(zeros, zeros).kl(), torch.zeros(3))
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    posterior = Posterior(mean, logvar)
    std_normal = torch.distributions.Normal(0.0, 1.0)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mean, (0.5 * logvar).exp()), std_normal)
    torch.testing.assert_close(posterior.kl(), expected.flatten(1).sum(1))
    torch.testing.assert_close(posterior.kl(), 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum((1, 2, 3)))
    assert Posterior(zeros, torch.full_like(zeros, -100.0)).logvar.min() == -30.0  # clamped
    draws = Posterior(torch.full((20000,), 0.5), torch.full((20000,), 2 * np.log(0.3))).sample(g)
    assert abs(draws.mean() - 0.5) < 0.01 and abs(draws.std() - 0.3) < 0.01
    same = [posterior.sample(torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(*same)


def test_psnr():
    x = torch.rand(2, 3, 4, 4) * 2 - 1
    torch.testing.assert_close(psnr(x, x + 0.1), torch.full((2,), 10 * np.log10(4 / 0.01)))


def test_fit_scale_factor_accepts_a_tensor_or_batches():
    torch.manual_seed(0)
    model = AutoencoderKL(base=8)
    images = _shapes(40)
    scale = model.fit_scale_factor(images, batch_size=16)
    assert scale == float(model.scale_factor) and scale != 1.0
    latents = model.to_latent(images).detach()
    assert abs(latents.std(unbiased=False).item() - 1) < 1e-4
    model.scale_factor.fill_(1.0)
    assert model.fit_scale_factor([(b, None) for b in images.split(7)]) == pytest.approx(scale, rel=1e-6)
    torch.testing.assert_close(model.from_latent(latents), _reconstruct(model, images))
    sampled = model.to_latent(images, sample=True, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(sampled, latents)


def test_training_reconstructs_held_out_shapes(trained):
    """Measured (CPU, torch 2.13): held-out L1 0.520 -> 0.178, PSNR 17.6 dB, training loss 0.32 -> 0.16 (means
    over the first and last 50 steps). The threshold, 1 dB above the best constant colour per image (15.5 dB,
    the most in PSNR a model can reach that encodes no spatial structure), asks for discs and rectangles."""
    trainer, records, _, test, l1_start = trained
    reconstruction = _reconstruct(trainer.model, test)
    l1 = (reconstruction - test).abs().mean().item()
    assert l1 < 0.5 * l1_start, (l1, l1_start)
    assert records[-1]["loss"] < 0.7 * records[0]["loss"]  # training loss, averaged over 50 steps
    mean_colour = test.mean((2, 3), keepdim=True).expand_as(test)
    baseline, value = psnr(mean_colour, test).mean().item(), psnr(reconstruction, test).mean().item()
    assert value > baseline + 1.0, (value, baseline)


def test_scale_factor_of_a_trained_model(trained):
    trainer, _, train, test, _ = trained
    model = trainer.model
    model.fit_scale_factor(train)
    with torch.no_grad():
        assert abs(model.to_latent(train).std(unbiased=False).item() - 1) < 1e-4
        assert abs(model.to_latent(test).std().item() - 1) < 0.1  # held-out images
        torch.testing.assert_close(model.from_latent(model.to_latent(test)), _reconstruct(model, test))


def _adversarial_trainer(folder, steps=6, **options):
    torch.manual_seed(0)
    model = AutoencoderKL(base=8, mults=(1, 2))
    adversary = Adversary(PatchDiscriminator(base=8), start_step=2, lr=1e-3)
    trainer, _ = train_autoencoder(model, _shapes(32, size=8), steps, batch_size=4, adversary=adversary,
                                   log_path=str(folder / "log.jsonl"), log_every=1, **options)
    return trainer, adversary


def test_discriminator_trains_after_its_start(tmp_path):
    trainer, adversary = _adversarial_trainer(tmp_path)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [("d_loss" in r) for r in records] == [False, False, True, True, True, True]
    d_losses = [r["d_loss"] for r in records[2:]]
    assert len(set(d_losses)) == len(d_losses) and all(np.isfinite(d_losses))
    assert all(0 < r["adv_weight"] < 1e4 for r in records[2:])
    x = _shapes(4, size=8, seed=3)
    plain = autoencoder_loss(trainer.model, x, torch.Generator().manual_seed(0))
    adversarial = autoencoder_loss(trainer.model, x, torch.Generator().manual_seed(0), adversary=adversary)
    assert not torch.allclose(plain, adversarial)
    adversary.after_step(trainer, None)  # one more update of the discriminator on that batch
    assert adversary.d_loss != d_losses[-1]
    fixed = Adversary(PatchDiscriminator(base=8), weight=0.1, adaptive=False, loss="softplus")
    reconstruction = trainer.model(x)[0]
    term = fixed.adversarial_term(trainer.model, x, reconstruction, None)
    torch.testing.assert_close(term, 0.1 * fixed.generator_loss(reconstruction))


def test_resume_with_the_discriminator_is_exact(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole, whole_adversary = _adversarial_trainer(tmp_path / "a")
    ckpt = tmp_path / "b" / "ckpt.pt"
    _adversarial_trainer(tmp_path / "b", steps=3, checkpoint_path=str(ckpt), checkpoint_every=3)
    torch.manual_seed(0)
    model = AutoencoderKL(base=8, mults=(1, 2))
    adversary = Adversary(PatchDiscriminator(base=8), start_step=2, lr=1e-3)
    resumed, _ = train_autoencoder(model, _shapes(32, size=8), 0, batch_size=4, adversary=adversary)
    resumed.load(str(ckpt))
    assert resumed.step == 3 and adversary.step == 3
    resumed.fit(6)
    for a, b in [(whole.model, resumed.model), (whole.ema, resumed.ema),
                 (whole_adversary.discriminator, adversary.discriminator)]:
        for x, y in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.equal(x, y)


def test_squared_error_reconstruction_loss_is_the_mean_squared_error():
    torch.manual_seed(0)
    model = AutoencoderKL(base=8, groups=2)
    images = torch.rand(3, 3, 8, 12) * 2 - 1
    decoded, _ = model(images, torch.Generator().manual_seed(5))
    l2 = autoencoder_loss(model, images, torch.Generator().manual_seed(5), kl_weight=0.0, reconstruction="l2")
    l1 = autoencoder_loss(model, images, torch.Generator().manual_seed(5), kl_weight=0.0)
    torch.testing.assert_close(l2, (images - decoded).square().flatten(1).mean(1))
    torch.testing.assert_close(l1, (images - decoded).abs().flatten(1).mean(1))
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        autoencoder_loss(model, images, reconstruction="l3")
