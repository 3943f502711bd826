"""SDEdit and the base-to-refiner hand-off on the exact denoiser of a Gaussian mixture."""

import pytest
import torch

from generative.img2img import handoff, sdedit, start_index
from generative.schedules import flow_sigmas, karras_sigmas
from generative.solvers import sample


@pytest.mark.parametrize("solver,grid", [("heun", karras_sigmas(12, 0.002, 80.0)), ("flow_euler", flow_sigmas(12))])
def test_sdedit_at_strength_one_is_a_full_sample_from_the_same_noise(mixture2d, solver, grid):
    x0, _ = mixture2d.sample(64, generator=torch.Generator().manual_seed(0))
    edited = sdedit(mixture2d.denoise, x0, grid, 1.0, solver, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=x0.dtype)
    full = sample(mixture2d.denoise, grid[0] * noise, grid, solver)
    torch.testing.assert_close(edited, full, atol=0, rtol=0)


def test_low_strength_keeps_the_image_and_high_strength_forgets_it(mixture2d):
    """At a small strength each point stays in its mixture component; near 1 the component is redrawn."""
    grid = karras_sigmas(20, 0.002, 80.0)
    x0, _ = mixture2d.sample(2000, generator=torch.Generator().manual_seed(2))
    kept = {}
    for strength in (0.2, 0.95):
        out = sdedit(mixture2d.denoise, x0, grid, strength, "heun", generator=torch.Generator().manual_seed(3))
        kept[strength] = (mixture2d.assign(out) == mixture2d.assign(x0)).double().mean().item()
    assert kept[0.2] > 0.97
    assert kept[0.95] < 0.6  # the largest component holds 40 %: chance agreement is about 0.3


def test_start_index_counts_steps_from_the_end():
    grid = karras_sigmas(10, 0.002, 80.0)
    assert start_index(grid, 1.0) == 0 and start_index(grid, 0.3) == 7 and start_index(grid, 0.01) == 9
    with pytest.raises(ValueError, match="strength"):
        start_index(grid, 0.0)


def test_handoff_between_identical_models_equals_one_run(mixture2d):
    grid = karras_sigmas(16, 0.002, 80.0)
    x_T = grid[0] * torch.randn(32, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    calls = {"base": 0, "refiner": 0}

    def counted(name):
        def denoise(x, sigma):
            calls[name] += 1
            return mixture2d.denoise(x, sigma)
        return denoise

    out = handoff(counted("base"), counted("refiner"), x_T, grid, at_sigma=1.0, solver="heun")
    torch.testing.assert_close(out, sample(mixture2d.denoise, x_T, grid, "heun"), atol=1e-12, rtol=0)
    assert calls["base"] > 0 and calls["refiner"] > 0
    with pytest.raises(ValueError, match="not inside the grid"):
        handoff(mixture2d.denoise, mixture2d.denoise, x_T, grid, at_sigma=1000.0)
