"""Networks trained with each formulation on a 2-D mixture, and the Trainer's bookkeeping."""

import json

import pytest
import torch

from generative.adapters import from_velocity
from generative.flow import flow_matching_loss, logit_normal_times
from generative.losses import denoising_loss, edm_weight, lognormal_sigmas
from generative.metrics import energy_distance
from generative.blocks.mlp import ResidualMLP
from generative.preconditioning import Preconditioned, edm
from generative.solvers import sample
from generative.schedules import flow_sigmas, karras_sigmas
from generative.trainer import Trainer

SIGMA_DATA = 1.4  # overall std of the mixture2d fixture


def _edm_loss(model, batch, g):
    sigma = lognormal_sigmas(len(batch), p_mean=-0.5, p_std=1.5, generator=g)
    return denoising_loss(model, batch, sigma, edm_weight(SIGMA_DATA), generator=g)


def _flow_loss(model, batch, g):
    return flow_matching_loss(model, batch, logit_normal_times(len(batch), generator=g), generator=g)


def _quality(mix, x):
    ref, _ = mix.sample(1000, generator=torch.Generator().manual_seed(5))
    ref2, _ = mix.sample(1000, generator=torch.Generator().manual_seed(6))
    frac = torch.bincount(mix.assign(x.double()), minlength=len(mix.weights)).double() / len(x)
    return energy_distance(x, ref) / energy_distance(ref, ref2), (frac - mix.weights).abs().max()


@pytest.mark.parametrize("formulation", ["edm", "rectified_flow"])
def test_trained_mlp_matches_mixture(mixture2d, formulation):
    torch.manual_seed(0)
    net = ResidualMLP(2, hidden=64, depth=3)
    if formulation == "edm":
        model, loss, solver, grid = Preconditioned(net, edm(SIGMA_DATA)), _edm_loss, "heun", karras_sigmas(40)
    else:
        model, loss, solver, grid = net, _flow_loss, "flow_heun", flow_sigmas(40)
    trainer = Trainer(model, loss, lambda step, g: mixture2d.sample(256, generator=g)[0].float(),
                      lr=3e-3, ema_decay=0.99, log_every=250)
    records = trainer.fit(1000)
    assert records[-1]["loss"] < records[0]["loss"]
    denoise = trainer.ema if formulation == "edm" else from_velocity(trainer.ema)
    x_T = grid[0] * torch.randn(1000, 2, generator=torch.Generator().manual_seed(7))
    ratio, weight_err = _quality(mixture2d, sample(denoise, x_T, grid.float(), solver))
    assert ratio < 5.0, ratio
    assert weight_err < 0.04


def _small_trainer(tmp_path, **kw):
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 1)

    def batch_fn(step, g):
        x = torch.randn(32, 3, generator=g)
        return x, x @ torch.tensor([[1.0], [-2.0], [0.5]])

    def loss_fn(m, batch, g):
        x, y = batch
        return ((m(x) - y) ** 2).mean(1)

    return Trainer(model, loss_fn, batch_fn, lr=0.05, ema_decay=0.9, log_every=5, **kw)


def test_resume_reproduces_uninterrupted_run(tmp_path):
    full = _small_trainer(tmp_path)
    full.fit(20)
    ckpt = tmp_path / "ckpt.pt"
    first = _small_trainer(tmp_path, checkpoint_path=str(ckpt), checkpoint_every=10)
    first.fit(10)
    resumed = _small_trainer(tmp_path)
    resumed.load(str(ckpt))
    assert resumed.step == 10
    resumed.fit(20)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(full.ema.parameters(), resumed.ema.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp files left behind


def test_json_logs_and_ema(tmp_path):
    log = tmp_path / "log.jsonl"
    trainer = _small_trainer(tmp_path, log_path=str(log), progress=True)
    start = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit(30)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in lines] == [5, 10, 15, 20, 25, 30]
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert set(lines[0]) == {"step", "loss", "grad_norm", "lr", "seconds"}
    w, w_ema = trainer.model.weight, trainer.ema.weight  # the EMA lags behind the model
    assert (w_ema - start[0]).abs().sum() < (w - start[0]).abs().sum()
    assert not any(p.requires_grad for p in trainer.ema.parameters())


def test_gradient_clipping_bounds_the_update(tmp_path):
    trainer = _small_trainer(tmp_path, grad_clip=1e-3)
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=1.0)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    _, grad_norm = trainer.train_step()
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    assert grad_norm > 1e-3  # the reported norm is the pre-clipping one
    assert (after - before).norm() <= 1e-3 * (1 + 1e-5)


def test_bf16_autocast_trains(tmp_path):
    trainer = _small_trainer(tmp_path, bf16=True)
    records = trainer.fit(40)
    assert records[-1]["loss"] < 0.5 * records[0]["loss"]
