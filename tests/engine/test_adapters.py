"""Adapters must turn analytic eps-, v- and velocity-fields of a mixture into its exact denoiser."""

import torch

from generative.adapters import from_eps, from_v, from_velocity, guided
from generative.solvers import sample
from generative.schedules import karras_sigmas, vp_sigma, vp_time


def _noisy_points(mix, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0, _ = mix.sample(n, generator=g)
    sigma = torch.logspace(-2, 1.5, n, dtype=torch.float64)
    return x0 + sigma[:, None] * torch.randn(x0.shape, generator=g, dtype=torch.float64), sigma


def test_eps_networks_in_ve_and_vp_scaling(mixture8d):
    x, sigma = _noisy_points(mixture8d)

    def eps_ve(z, s):  # eps = -sigma * score of p_sigma
        return -s[:, None] * mixture8d.score(z, s)

    def eps_vp(z, t):  # z = alpha x0 + s eps with the VP marginal from the mixture's law
        s = vp_sigma(t)
        alpha = 1 / torch.sqrt(1 + s ** 2)
        out = [mixture8d.scaled(a.item(), (a * b).item()).score(zi[None]) * -(a * b)
               for zi, a, b in zip(z, alpha, s)]
        return torch.cat(out)

    expected = mixture8d.denoise(x, sigma)
    torch.testing.assert_close(from_eps(eps_ve)(x, sigma), expected)
    torch.testing.assert_close(from_eps(eps_vp, scaling="vp", time=vp_time)(x, sigma), expected)


def test_v_prediction_network(mixture2d):
    x, sigma = _noisy_points(mixture2d)

    def v_net(z, s):
        out = []
        for zi, si in zip(z, s):
            alpha = 1 / torch.sqrt(1 + si ** 2)
            sv = si * alpha
            score = mixture2d.scaled(alpha.item(), sv.item()).score(zi[None])
            eps = -sv * score
            x0 = (zi + sv ** 2 * score) / alpha
            out.append(alpha * eps - sv * x0)
        return torch.cat(out)

    torch.testing.assert_close(from_v(v_net)(x, sigma), mixture2d.denoise(x, sigma))


def test_flow_velocity_network(mixture2d):
    x, sigma = _noisy_points(mixture2d)

    def velocity(z, t):
        out = []
        for zi, ti in zip(z, t):
            score = mixture2d.scaled(1 - ti.item(), ti.item()).score(zi[None])
            eps = -ti * score
            x0 = (zi - ti * eps) / (1 - ti)
            out.append(eps - x0)
        return torch.cat(out)

    torch.testing.assert_close(from_velocity(velocity)(x, sigma), mixture2d.denoise(x, sigma))
    scaled_time = from_velocity(lambda z, tt: velocity(z, tt / 1000), time=lambda t: 1000 * t)
    torch.testing.assert_close(scaled_time(x, sigma), mixture2d.denoise(x, sigma))


def test_guidance_interpolates_and_extrapolates_scores(mixture2d):
    cond = mixture2d.component(0)
    x, sigma = _noisy_points(mixture2d)
    for w in (0.0, 1.0, 3.0):
        d = guided(cond.denoise, mixture2d.denoise, w)(x, sigma)
        score = mixture2d.score(x, sigma) + w * (cond.score(x, sigma) - mixture2d.score(x, sigma))
        torch.testing.assert_close(d, x + sigma[:, None] ** 2 * score)


def test_guided_sampling_concentrates_on_condition(mixture2d):
    cond = mixture2d.component(0)  # weight 0.1 in the unconditional mixture
    sigmas = karras_sigmas(40)
    x_T = sigmas[0] * torch.randn(1000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = sample(guided(cond.denoise, mixture2d.denoise, 2.0), x_T, sigmas, "heun")
    assert (mixture2d.assign(x) == 0).double().mean() > 0.97
    x = sample(mixture2d.denoise, x_T, sigmas, "heun")
    assert abs((mixture2d.assign(x) == 0).double().mean() - 0.1) < 0.03
