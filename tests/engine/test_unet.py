"""The image UNet: shapes, conditioning, and EDM training on 8x8 images with known modes.

Data: a bright 3x3 square (+1) on a dark background (-1) at one of four
positions (the class), plus N(0, 0.05^2) pixel noise. Samples are classified by
the nearest of the four noise-free templates.
"""

import pytest
import torch

from generative.adapters import guided
from generative.losses import denoising_loss, edm_weight, lognormal_sigmas
from generative.preconditioning import Preconditioned, edm
from generative.solvers import sample
from generative.schedules import karras_sigmas
from generative.trainer import Trainer
from generative.blocks.unet import Labelled, UNet, drop_labels

CORNERS = [(1, 1), (1, 4), (4, 1), (4, 4)]
STEPS = 600


def _templates():
    t = -torch.ones(4, 1, 8, 8)
    for k, (i, j) in enumerate(CORNERS):
        t[k, 0, i:i + 3, j:j + 3] = 1.0
    return t


TEMPLATES = _templates()
SIGMA_DATA = TEMPLATES.std().item()


def _batch(n, g):
    labels = torch.randint(0, 4, (n,), generator=g)
    return TEMPLATES[labels] + 0.05 * torch.randn(n, 1, 8, 8, generator=g), labels


def _classify(x):
    """(nearest-template label, RMS distance to that template) per image."""
    dist = ((x[:, None] - TEMPLATES[None]) ** 2).flatten(2).mean(2).sqrt()
    rms, label = dist.min(1)
    return label, rms


@pytest.mark.parametrize("size,mults", [(8, (1, 2)), (16, (1, 2)), (16, (1, 2, 2))])
def test_shapes_and_preconditioned(size, mults):
    net = UNet(3, 2, base=16, mults=mults, time_embed_dim=32, num_classes=5)
    x = torch.randn(4, 3, size, size)
    c_noise = torch.randn(4)
    assert net(x, c_noise).shape == (4, 2, size, size)
    assert net(x, c_noise, torch.tensor([0, 1, 4, 2])).shape == (4, 2, size, size)
    model = Preconditioned(Labelled(UNet(3, 3, base=16, mults=mults, time_embed_dim=32), None), edm(0.5))
    assert model(x.double(), torch.full((4,), 2.0, dtype=torch.float64)).dtype == torch.float64


def test_conditioning_and_null_class():
    torch.manual_seed(0)
    net = UNet(1, 1, base=8, time_embed_dim=16, num_classes=3)
    for m in net.modules():  # zero-initialised output convolutions would hide the labels
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.1)
    x, c_noise = torch.randn(2, 1, 8, 8), torch.zeros(2)
    null = torch.tensor([3, 3])
    torch.testing.assert_close(net(x, c_noise), net(x, c_noise, null), rtol=0, atol=0)
    assert (net(x, c_noise, torch.tensor([0, 0])) - net(x, c_noise, torch.tensor([1, 1]))).abs().max() > 1e-4
    with pytest.raises(ValueError):
        UNet(1, 1, base=8)(x, c_noise, torch.tensor([0, 0]))
    dropped = drop_labels(torch.zeros(10000, dtype=torch.long), 0.2, 3, torch.Generator().manual_seed(0))
    assert set(dropped.tolist()) == {0, 3}
    assert abs((dropped == 3).double().mean().item() - 0.2) < 0.02


@pytest.fixture(scope="module")
def trained():
    """A class-conditional UNet trained with EDM, labels dropped half the time (about 12 s of CPU)."""
    torch.manual_seed(0)
    net = UNet(1, 1, base=16, mults=(1, 2), time_embed_dim=64, num_classes=4)

    def loss(model, batch, g):
        x0, labels = batch
        sigma = lognormal_sigmas(len(x0), p_mean=-0.5, p_std=1.5, generator=g)
        denoise = Preconditioned(Labelled(model, drop_labels(labels, 0.5, 4, g)), edm(SIGMA_DATA))
        return denoising_loss(denoise, x0, sigma, edm_weight(SIGMA_DATA), generator=g)

    trainer = Trainer(net, loss, lambda step, g: _batch(32, g), lr=2e-3, ema_decay=0.95, log_every=100)
    records = trainer.fit(STEPS)
    assert records[-1]["loss"] < 0.5 * records[0]["loss"]
    return trainer.ema


def _sample(unet, labels, scale=None, n=200, seed=7):
    grid = karras_sigmas(18, sigma_max=20.0)
    x_T = grid[0] * torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    uncond = Preconditioned(Labelled(unet, None), edm(SIGMA_DATA))
    if labels is None:
        return sample(uncond, x_T, grid, "heun")
    cond = Preconditioned(Labelled(unet, labels), edm(SIGMA_DATA))
    return sample(cond if scale is None else guided(cond, uncond, scale), x_T, grid, "heun")


def test_unconditional_samples_cover_the_four_modes(trained):
    label, rms = _classify(_sample(trained, None, n=400))
    frac = torch.bincount(label, minlength=4).double() / len(label)
    assert (rms < 0.3).double().mean() > 0.9  # close to a template (templates are 1.06 apart in RMS)
    assert (frac - 0.25).abs().max() < 0.1


@pytest.mark.parametrize("scale", [None, 2.0])
def test_class_conditional_samples_have_the_requested_class(trained, scale):
    labels = torch.arange(200) % 4
    label, rms = _classify(_sample(trained, labels, scale))
    acc = (label == labels).double().mean().item()
    assert acc > 0.9
