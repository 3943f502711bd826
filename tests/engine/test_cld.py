"""Critically damped Langevin diffusion: analytic kernel, exact mixture score, samplers, training.

Ground truth: 40-digit matrix exponentials (mpmath) and Van Loan's block
exponential for the linear SDE, a fine Euler-Maruyama simulation of the forward SDE, and for
Gaussian-mixture data the marginal built from explicit ``2d x 2d`` Gaussians
(velocity score by autograd).
"""

import math

import mpmath
import pytest
import torch
from torch import nn

from generative.cld import (CLD, VelocityScore, cld_times, cld_training_times, hsm_loss,
                            mixture_velocity_score, sample_cld_euler_maruyama, sample_cld_pf_ode,
                            sample_sscs)
from generative.metrics import energy_distance
from generative.mixtures import GaussianMixture
from generative.blocks.mlp import ResidualMLP
from generative.trainer import Trainer

PROCESS = CLD()
TIMES = [1e-5, 1e-3, 0.01, 0.05, 0.2, 0.6, 1.0]


def _drift_and_diffusion(process):
    """Per-dimension ``F = beta A`` and ``Q = G G^T`` of the forward SDE, float64."""
    m, g, b = process.mass, process.damping, process.beta
    f = b * torch.tensor([[0.0, 1 / m], [-1.0, -g / m]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.0], [0.0, 2 * g * b]], dtype=torch.float64)
    return f, q


def _expm(matrix):
    """Matrix exponential of a float64 tensor, evaluated with 40 digits (mpmath)."""
    with mpmath.workdps(40):
        e = mpmath.expm(mpmath.matrix([[float(c) for c in row] for row in matrix]))
        return torch.tensor([[float(e[i, j]) for j in range(e.cols)] for i in range(e.rows)],
                            dtype=torch.float64)


def _van_loan(process, t):
    """``(Phi, Q_t)``: transition matrix and noise covariance of the linear SDE over time t.

    Van Loan: ``exp([[-F, Q], [0, F^T]] t) = [[., E12], [0, Phi^T]]`` and ``Q_t = Phi E12``,
    with 40-digit exponentials since ``Q_t`` is ``O(t^3)`` in ``xx`` (float64 cancels).
    """
    f, q = _drift_and_diffusion(process)
    block = torch.zeros(4, 4, dtype=torch.float64)
    block[:2, :2], block[:2, 2:], block[2:, 2:] = -f * t, q * t, f.T * t
    with mpmath.workdps(40):
        e = mpmath.expm(mpmath.matrix([[float(c) for c in row] for row in block]))
        phi = e[2:4, 2:4].T
        noise = phi * e[0:2, 2:4]
        return tuple(torch.tensor([[float(a[i, j]) for j in range(2)] for i in range(2)],
                                  dtype=torch.float64) for a in (phi, noise))


def _as_matrix(entries):
    xx, xv, vv = (float(c) for c in entries)
    return torch.tensor([[xx, xv], [xv, vv]], dtype=torch.float64)


@pytest.mark.parametrize("t", TIMES)
def test_transition_is_the_matrix_exponential(t):
    f, _ = _drift_and_diffusion(PROCESS)
    d = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    for reverse, drift in [(False, f), (True, d @ f @ d)]:
        p, q, r, s = PROCESS.transition(t, reverse=reverse)
        got = torch.tensor([[float(p), float(q)], [float(r), float(s)]], dtype=torch.float64)
        torch.testing.assert_close(got, _expm(drift * t), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("t", TIMES)
@pytest.mark.parametrize("var_x0,var_v0", [(0.0, None), (0.3, 0.0), (2.0, 1.5)])
def test_covariance_matches_van_loan(t, var_x0, var_v0):
    phi, noise = _van_loan(PROCESS, t)
    v0 = PROCESS.gamma * PROCESS.mass if var_v0 is None else var_v0
    expected = phi @ torch.diag(torch.tensor([var_x0, v0], dtype=torch.float64)) @ phi.T + noise
    got = _as_matrix(PROCESS.covariance(t, var_x0=var_x0, var_v0=var_v0))
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_kernel_matches_forward_sde_monte_carlo():
    """Fine Euler-Maruyama (2000 steps) of the forward SDE from fixed x0, v0 ~ N(0, gamma M)."""
    g = torch.Generator().manual_seed(0)
    n, steps = 20000, 2000
    x0 = torch.tensor([1.0, -2.0], dtype=torch.float64).expand(n, 2)
    x = x0.clone()
    v0_std = math.sqrt(PROCESS.gamma * PROCESS.mass)
    v = v0_std * torch.randn(n, 2, generator=g, dtype=torch.float64)
    m, gam, b, dt = PROCESS.mass, PROCESS.damping, PROCESS.beta, 1.0 / steps
    checks = {100: 0.05, 500: 0.25, 2000: 1.0}
    for k in range(1, steps + 1):
        noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
        x, v = (x + b * v / m * dt,
                v + b * (-x - gam * v / m) * dt + math.sqrt(2 * gam * b * dt) * noise)
        if k in checks:
            t = checks[k]
            mx, mv = PROCESS.mean(x0[:1], t)
            xx, xv, vv = (float(c) for c in PROCESS.covariance(t))
            for dim in range(2):
                u = torch.stack([x[:, dim], v[:, dim]])
                se = torch.tensor([xx, vv]).sqrt() / math.sqrt(n)
                err = (u.mean(1) - torch.tensor([mx[0, dim], mv[0, dim]])).abs()
                assert (err < 4 * se + 2e-3).all(), (t, dim, err, se)
                cov = torch.cov(u)
                scale = math.sqrt(xx * vv)
                tol = 5 * math.sqrt(2 / n) * torch.tensor([[xx, scale], [scale, vv]]) + 2e-3 * scale
                assert ((cov - _as_matrix((xx, xv, vv))).abs() < tol).all(), (t, dim, cov)


def test_kernel_tends_to_the_stationary_law():
    p, q, r, s = PROCESS.transition(1.0)
    assert max(abs(float(c)) for c in (p, q, r, s)) < 0.01
    stationary = torch.diag(torch.tensor([1.0, PROCESS.mass], dtype=torch.float64))
    for var_x0 in (0.0, 4.0):
        cov = _as_matrix(PROCESS.covariance(1.0, var_x0=var_x0))
        torch.testing.assert_close(cov, stationary, rtol=0, atol=2e-4)
    x, v = PROCESS.prior(50000, 2, generator=torch.Generator().manual_seed(1))
    assert abs(x.var().item() - 1) < 0.02 and abs(v.var().item() / PROCESS.mass - 1) < 0.02


def test_hsm_target_is_the_kernel_velocity_score():
    """``-eps_v / l_vv`` is the v-part of ``-Sigma_t^-1 (u - mu_t)``; samples follow the kernel."""
    g = torch.Generator().manual_seed(2)
    t = torch.tensor([0.001, 0.03, 0.3, 1.0], dtype=torch.float64).repeat_interleave(20000)
    x0 = torch.randn(len(t), 3, generator=g, dtype=torch.float64)
    x, v, eps_v, l_vv = PROCESS.perturb(x0, t, g)
    for i, ti in enumerate([0.001, 0.03, 0.3, 1.0]):
        sl = slice(20000 * i, 20000 * (i + 1))
        phi, noise = _van_loan(PROCESS, ti)
        cov = phi @ torch.diag(torch.tensor([0.0, PROCESS.gamma * PROCESS.mass],
                                            dtype=torch.float64)) @ phi.T + noise
        resid = torch.stack([x[sl], v[sl]], -1) - x0[sl, :, None] * phi[:, 0]
        score = -torch.linalg.solve(cov, resid[..., None])[..., 1, 0]
        torch.testing.assert_close(-eps_v[sl] / l_vv[sl, None], score, rtol=1e-6, atol=1e-6)
        emp = torch.cov(resid.reshape(-1, 2).T)
        d = cov.diagonal()
        se = ((d[:, None] * d[None, :] + cov ** 2) / resid.reshape(-1, 2).shape[0]).sqrt()
        assert ((emp - cov).abs() < 5 * se).all(), (ti, emp, cov)


def test_sscs_linear_half_steps_preserve_the_stationary_law():
    """With the stationary score ``-v / M`` the score step vanishes and each (large) exact
    half-step keeps ``N(0, I) x N(0, M I)``; Euler-Maruyama does not."""
    g = torch.Generator().manual_seed(6)
    n = 40000
    x, v = PROCESS.prior(n, 2, generator=g, dtype=torch.float64)
    stationary = lambda x, v, t: -v / PROCESS.mass  # noqa: E731
    times = torch.tensor([1.0, 0.7, 0.2], dtype=torch.float64)
    xs, vs = sample_sscs(stationary, x, v, times, generator=g)
    xe, _ = sample_cld_euler_maruyama(stationary, x, v, times, generator=g)
    expected = torch.diag(torch.tensor([1.0, PROCESS.mass], dtype=torch.float64))
    d = expected.diagonal()
    se = ((d[:, None] * d[None, :] + expected ** 2) / (2 * n)).sqrt()
    cov = torch.cov(torch.stack([xs.flatten(), vs.flatten()]))
    assert ((cov - expected).abs() < 5 * se).all(), cov
    assert abs(xs.mean()) < 0.02 and abs(vs.mean()) < 0.01
    assert abs(xe.var() - 1) > 0.5


def _explicit_mixture_velocity_score(mixture, x, v, t):
    """``grad_v log p_t`` by autograd through explicit ``2d``-dimensional Gaussians (Van Loan)."""
    d = mixture.dim
    phi, noise = _van_loan(PROCESS, t)
    eye = torch.eye(d, dtype=torch.float64)
    big_phi = torch.kron(phi, eye)
    u = torch.cat([x, v], 1).requires_grad_(True)
    logs = []
    for w, mu, c in zip(mixture.weights, mixture.means, mixture.covs):
        start = torch.block_diag(c, PROCESS.gamma * PROCESS.mass * eye)
        cov = big_phi @ start @ big_phi.T + torch.kron(noise, eye)
        mean = big_phi @ torch.cat([mu, torch.zeros(d, dtype=torch.float64)])
        dist = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
        logs.append(w.log() + dist.log_prob(u))
    (grad,) = torch.autograd.grad(torch.logsumexp(torch.stack(logs), 0).sum(), u)
    return grad[:, d:]


@pytest.mark.parametrize("name", ["mixture2d", "mixture8d"])
@pytest.mark.parametrize("t", [0.001, 0.05, 0.3, 1.0])
def test_mixture_velocity_score_is_exact(request, name, t):
    mixture = request.getfixturevalue(name)
    g = torch.Generator().manual_seed(3)
    x0, _ = mixture.sample(200, generator=g)
    x, v, _, _ = PROCESS.perturb(x0, torch.full((200,), t, dtype=torch.float64), g)
    got = mixture_velocity_score(mixture)(x, v, torch.full((200,), t, dtype=torch.float64))
    expected = _explicit_mixture_velocity_score(mixture, x, v, t)
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-7 * expected.abs().max().item())


def test_mixed_parameterisation_is_exact_for_standard_normal_data():
    """With a zero residual network, ``VelocityScore`` is the exact score of N(0, I) data."""
    class Zero(nn.Module):
        def forward(self, u, t):
            return torch.zeros(u.shape[0], u.shape[1] // 2, dtype=u.dtype)

    normal = GaussianMixture.isotropic([1.0], [[0.0, 0.0, 0.0]], 1.0)
    g = torch.Generator().manual_seed(4)
    t = cld_training_times(500, t_min=1e-3, generator=g)
    x, v, _, _ = PROCESS.perturb(torch.randn(500, 3, generator=g, dtype=torch.float64), t, g)
    expected = mixture_velocity_score(normal)(x, v, t)
    torch.testing.assert_close(VelocityScore(Zero())(x, v, t), expected, rtol=1e-9, atol=1e-9)


def _quality(mixture, x, n_ref=2000):
    """(energy distance to a reference sample / mean floor of true samples, max weight error)."""
    ref, _ = mixture.sample(n_ref, generator=torch.Generator().manual_seed(5))
    fresh = [mixture.sample(len(x), generator=torch.Generator().manual_seed(s))[0]
             for s in range(10, 16)]
    floor = sum(energy_distance(y, ref) for y in fresh) / len(fresh)
    counts = torch.bincount(mixture.assign(x.double()), minlength=len(mixture.weights))
    frac = counts.double() / len(x)
    return energy_distance(x, ref) / floor, (frac - mixture.weights).abs().max().item()


def _run(sampler, score, dim, times, seed, n=2000):
    g = torch.Generator().manual_seed(seed)
    x, v = PROCESS.prior(n, dim, generator=g, dtype=torch.float64)
    if sampler is sample_cld_pf_ode:
        return sampler(score, x, v, times)[0]
    return sampler(score, x, v, times, generator=g)[0]


@pytest.mark.parametrize("name", ["mixture2d", "mixture8d"])
@pytest.mark.parametrize("sampler,steps", [(sample_sscs, 200), (sample_cld_euler_maruyama, 400),
                                           (sample_cld_pf_ode, 100)])
def test_exact_score_samplers_match_mixture(request, name, sampler, steps):
    mixture = request.getfixturevalue(name)
    x = _run(sampler, mixture_velocity_score(mixture), mixture.dim, cld_times(steps), seed=7)
    ratio, weight_err = _quality(mixture, x)
    assert ratio < 2.0, ratio
    assert weight_err < 0.03, weight_err


def test_sscs_beats_euler_maruyama_at_few_evaluations(mixture2d):
    """15 score evaluations on a uniform grid: the exact linear half-steps pay off.

    (With quadratic striding, ``rho = 2``, the two are close on this mixture.)
    """
    score = mixture_velocity_score(mixture2d)
    grid = cld_times(15, rho=1)
    for seed in (0, 1):
        sscs = _quality(mixture2d, _run(sample_sscs, score, 2, grid, seed))[0]
        em = _quality(mixture2d, _run(sample_cld_euler_maruyama, score, 2, grid, seed))[0]
        assert sscs < 0.6 * em, (sscs, em)


def test_hybrid_score_matching_trains_mlp(mixture2d):
    torch.manual_seed(0)
    net = ResidualMLP(4, hidden=64, depth=3)  # input (x, v / sqrt(M)); output eps_v
    net.out[-1] = nn.Linear(64, 2)
    model = VelocityScore(net)

    def loss(m, batch, g):
        return hsm_loss(m.eps, batch, cld_training_times(len(batch), generator=g), generator=g)

    trainer = Trainer(model, loss, lambda step, g: mixture2d.sample(256, generator=g)[0].float(),
                      lr=3e-3, ema_decay=0.99, log_every=250)
    records = trainer.fit(1000)
    assert records[-1]["loss"] < records[0]["loss"]
    g = torch.Generator().manual_seed(7)
    x, v = PROCESS.prior(1000, 2, generator=g)
    with torch.no_grad():
        samples, _ = sample_sscs(trainer.ema, x, v, cld_times(200), generator=g)
    ratio, weight_err = _quality(mixture2d, samples)
    assert ratio < 5.0, ratio
    assert weight_err < 0.04, weight_err
