"""MLPs trained with EDM, rectified flow and CLD on the 8-D mixture (three full-covariance components).

Quality is the energy distance to a reference sample divided by the mean energy
distance of fresh true samples of the same size (1 = at the floor), plus the
largest error of the mixture weights under the exact component assignment.
"""

import pytest
import torch

from generative.adapters import from_velocity
from generative.cld import CLD, VelocityScore, cld_times, cld_training_times, hsm_loss, sample_sscs
from generative.flow import flow_matching_loss, logit_normal_times
from generative.losses import denoising_loss, edm_weight, lognormal_sigmas
from generative.metrics import energy_distance
from generative.blocks.mlp import ResidualMLP
from generative.preconditioning import Preconditioned, edm
from generative.solvers import sample
from generative.schedules import flow_sigmas, karras_sigmas
from generative.trainer import Trainer

STEPS, BATCH, N = 1000, 256, 1000


def _quality(mixture, x):
    ref, _ = mixture.sample(2000, generator=torch.Generator().manual_seed(5))
    fresh = [mixture.sample(len(x), generator=torch.Generator().manual_seed(s))[0] for s in range(10, 14)]
    floor = sum(energy_distance(y, ref) for y in fresh) / len(fresh)
    counts = torch.bincount(mixture.assign(x.double()), minlength=len(mixture.weights))
    return energy_distance(x.double(), ref) / floor, \
        (counts.double() / len(x) - mixture.weights).abs().max().item()


def _train(mixture, model, loss):
    trainer = Trainer(model, loss, lambda step, g: mixture.sample(BATCH, generator=g)[0].float(),
                      lr=3e-3, ema_decay=0.99, log_every=250)
    records = trainer.fit(STEPS)
    assert records[-1]["loss"] < records[0]["loss"]
    return trainer.ema


def _samples(formulation, mixture):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    if formulation == "edm":
        sigma_data = mixture.sample(4096, generator=torch.Generator().manual_seed(1))[0].std().item()

        def loss(model, batch, g):
            sigma = lognormal_sigmas(len(batch), p_mean=-0.5, p_std=1.5, generator=g)
            return denoising_loss(model, batch, sigma, edm_weight(sigma_data), generator=g)

        model = _train(mixture, Preconditioned(ResidualMLP(8, hidden=128), edm(sigma_data)), loss)
        grid = karras_sigmas(40)
        return sample(model, grid[0] * torch.randn(N, 8, generator=g), grid.float(), "heun")
    if formulation == "rectified_flow":
        def loss(model, batch, g):
            return flow_matching_loss(model, batch, logit_normal_times(len(batch), generator=g), generator=g)

        model = _train(mixture, ResidualMLP(8, hidden=128), loss)
        grid = flow_sigmas(40)
        return sample(from_velocity(model), grid[0] * torch.randn(N, 8, generator=g), grid.float(),
                      "flow_heun")
    net = ResidualMLP(16, hidden=128, out_dim=8)  # input (x, v / sqrt(M)); output eps_v

    def loss(model, batch, g):
        return hsm_loss(model.eps, batch, cld_training_times(len(batch), generator=g), generator=g)

    model = _train(mixture, VelocityScore(net), loss)
    x, v = CLD().prior(N, 8, generator=g)
    with torch.no_grad():
        return sample_sscs(model, x, v, cld_times(200), generator=g)[0]


@pytest.mark.parametrize("formulation,bound", [("edm", 3.0), ("rectified_flow", 3.0), ("cld", 5.0)])
def test_trained_mlp_matches_8d_mixture(mixture8d, formulation, bound):
    """1000 steps of batch 256 each (a few seconds); measured ratios 1.3, 0.9 and 3.1 (docs/engine.md)."""
    ratio, weight_err = _quality(mixture8d, _samples(formulation, mixture8d))
    assert ratio < bound, ratio
    assert weight_err < 0.04, weight_err
