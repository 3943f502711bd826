import math

import pytest
import torch

from generative import schedules


def test_karras_grid_endpoints_and_spacing():
    s = schedules.karras_sigmas(10, 0.002, 80.0, 7.0)
    assert len(s) == 11 and s[-1] == 0
    assert math.isclose(s[0].item(), 80.0) and math.isclose(s[-2].item(), 0.002)
    assert bool((s[:-1].diff() < 0).all())
    roots = s[:-1] ** (1 / 7)
    torch.testing.assert_close(roots.diff(), roots.diff()[:1].expand(9))


def test_vp_time_inverts_vp_sigma_and_matches_alpha_bar():
    t = torch.linspace(1e-3, 1, 50, dtype=torch.float64)
    sigma = schedules.vp_sigma(t)
    torch.testing.assert_close(schedules.vp_time(sigma), t)
    log_alpha_bar = -(0.5 * 19.9 * t ** 2 + 0.1 * t)
    torch.testing.assert_close(1 / (1 + sigma ** 2), log_alpha_bar.exp())
    grid = schedules.vp_sigmas(8)
    torch.testing.assert_close(schedules.vp_time(grid[:-1]), torch.linspace(1, 1e-3, 8, dtype=torch.float64))


def test_flow_shift_and_grid():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(schedules.flow_shift(t, 1.0), t)
    shifted = schedules.flow_shift(t, 3.0)
    assert bool((shifted[1:-1] > t[1:-1]).all()) and shifted[-1] == 1 and shifted[0] == 0
    assert math.isclose(schedules.resolution_shift(1024 ** 2 * 4, 1024 ** 2), 2.0)
    grid = schedules.flow_sigmas(5, shift=3.0, t_max=0.99)
    t_grid = schedules.flow_time(grid[:-1])
    expected = schedules.flow_shift(torch.linspace(0.99, 0.99 / 5, 5, dtype=torch.float64), 3.0)
    torch.testing.assert_close(t_grid, expected)
    torch.testing.assert_close(schedules.flow_sigma(t_grid), grid[:-1])
    with pytest.raises(ValueError):
        schedules.flow_sigmas(5, t_max=1.0)
