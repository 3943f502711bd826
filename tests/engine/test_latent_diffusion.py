"""LatentDiffusion: an MMDiT with a text encoder and micro-conditioning under rectified flow learns a
caption-dependent toy latent; guidance 0 (the unconditional branch alone) gives both captions' latents."""

import torch

from generative.blocks.mmdit import MMDiT
from generative.conditioning import Conditioner, ScalarEmbedder, TextEmbedder
from generative.formulations import RectifiedFlow
from generative.latent_diffusion import LatentDiffusion
from generative.text import TextEncoder
from generative.trainer import Trainer

C, SIZE = 2, 4


def _model(seed=0):
    torch.manual_seed(seed)
    conditioner = Conditioner([TextEmbedder("tokens", TextEncoder(3, dim=16, depth=1, heads=2, length=2), drop_rate=0.5),
                               ScalarEmbedder("crop", 8)])
    net = MMDiT(C, context_dim=16, vector_dim=16 + 2 * 8, dim=32, depth=2, heads=2, patch=2, pos_grid=4)
    return LatentDiffusion(net, conditioner, RectifiedFlow())


def _batch(n, generator):
    """Word 1 -> latent +1 everywhere, word 2 -> -1 (plus a little noise); crops are random and ignored."""
    words = torch.randint(1, 3, (n,), generator=generator)
    sign = (3 - 2 * words).float()[:, None, None, None]
    latent = sign + 0.05 * torch.randn(n, C, SIZE, SIZE, generator=generator)
    ids = torch.stack([words, torch.zeros_like(words)], dim=1)
    return {"tokens": ids, "crop": torch.randint(0, 4, (n, 2), generator=generator).float(), "latent": latent}


def test_mmdit_latent_diffusion_learns_the_caption_and_the_unconditional_branch_the_mixture():
    model = _model()
    trainer = Trainer(model, lambda m, batch, g: m.loss(batch, g), lambda step, g: _batch(32, g),
                      lr=2e-3, ema_decay=0.0, seed=0, log_every=25)
    losses = [r["loss"] for r in trainer.fit(150)]
    assert losses[-1] < 0.5 * losses[0]
    prompts = {"tokens": torch.tensor([[1, 0]] * 8 + [[2, 0]] * 8), "crop": torch.zeros(16, 2)}
    g = torch.Generator().manual_seed(1)
    out = model.sample(prompts, (C, SIZE, SIZE), solver="flow_euler", steps=10, generator=g)
    means = out.flatten(1).mean(1)
    assert out.shape == (16, C, SIZE, SIZE)
    assert (means[:8] > 0.5).all() and (means[8:] < -0.5).all()
    guided = model.sample(prompts, (C, SIZE, SIZE), solver="flow_euler", steps=10,
                          generator=torch.Generator().manual_seed(1), guidance=1.0)
    torch.testing.assert_close(guided, out, atol=0, rtol=0)  # scale 1 is the conditional model itself
    unconditional = model.sample(prompts, (C, SIZE, SIZE), solver="flow_euler", steps=10,
                                 generator=torch.Generator().manual_seed(2), guidance=0.0).flatten(1).mean(1)
    assert (unconditional > 0.5).sum() >= 3 and (unconditional < -0.5).sum() >= 3
    assert model.training  # sampling puts the module back in training mode
