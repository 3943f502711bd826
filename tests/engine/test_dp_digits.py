"""A class-conditional EDM denoiser trained with DP-SGD on scikit-learn's 8x8 digits learns
(held-out denoising loss falls) within its privacy budget. The full comparison of synthetic
data (classifier accuracy, Frechet distance) is ``benchmarks/dp_digits.py``."""

import torch
from sklearn.datasets import load_digits

from generative.dp_trainer import DPTrainer
from generative.losses import denoising_loss, edm_weight, lognormal_sigmas
from generative.preconditioning import Preconditioned, edm
from generative.blocks.unet import UNet
from generative.conditioning import ClassEmbedder, Conditioner


def _loss(model, batch, g):
    x0, labels = batch
    cond = model["classes"]({"label": labels}, generator=g)  # the class dropped for 10 % (guidance)
    return denoising_loss(model["denoiser"], x0, lognormal_sigmas(len(x0), generator=g), edm_weight(0.5), generator=g,
                          cond=cond)


@torch.no_grad()
def _held_out_loss(model, x, y):
    g = torch.Generator().manual_seed(123)
    cond = model["classes"].eval()({"label": y})
    losses = [denoising_loss(model["denoiser"], x, lognormal_sigmas(len(x), generator=g), edm_weight(0.5), generator=g,
                             cond=cond)
              for _ in range(8)]
    return torch.stack(losses).mean().item()


def test_dp_training_on_digits_learns_within_budget(tmp_path):
    digits = load_digits()
    x = torch.tensor(digits.images / 8.0 - 1.0, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target)
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({
        "denoiser": Preconditioned(UNet(1, 1, base=8, mults=(1, 2), time_embed_dim=16, vector_dim=16, groups=4), edm(0.5)),
        "classes": Conditioner([ClassEmbedder("label", 10, 16, drop_rate=0.1)]),
    })
    trainer = DPTrainer(model, _loss, lambda idx: (x_train[idx], y_train[idx]), len(x_train),
                        sample_rate=0.1, delta=1e-5, target_epsilon=10.0, steps=40, noise_draws=2,
                        lr=3e-3, ema_decay=0.9, log_every=40, checkpoint_path=str(tmp_path / "dp.pt"))
    before = _held_out_loss(trainer.ema, x_test, y_test)
    trainer.fit(40)
    after = _held_out_loss(trainer.ema, x_test, y_test)
    assert after < 0.85 * before, (before, after)
    assert 9.9 < trainer.epsilon() <= 10.0
    saved = torch.load(tmp_path / "dp.pt", weights_only=True)["privacy"]
    assert saved["epsilon"] == trainer.epsilon() and saved["num_examples"] == 1400
