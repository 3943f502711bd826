"""Critically damped Langevin diffusion, CLD (Dockhorn, Vahdat & Kreis, ICLR 2022).

State ``u = (x, v)``: data ``x [N, d]`` coupled to a velocity ``v [N, d]`` of the
same shape. Time ``t`` runs over ``[0, 1]`` (T = 1); the forward SDE acts on each
data dimension independently:

    dx = M^-1 v beta dt,
    dv = (-x - Gamma M^-1 v) beta dt + sqrt(2 Gamma beta) dW,

with mass ``M``, time scale ``beta`` and critical damping ``Gamma = 2 sqrt(M)``.
Per dimension the drift is ``beta A u`` with ``A = [[0, 1/M], [-1, -Gamma/M]]``,
whose eigenvalue ``-a``, ``a = 1/sqrt(M)``, is double, so with ``tau = beta t``

    exp(tau A) = e^(-a tau) [[1 + a tau, a^2 tau], [-tau, 1 - a tau]].

The stationary law is ``N(0, I) x N(0, M I)`` (covariance ``S = diag(1, M)`` per
dimension) and every covariance relaxes to it as
``Sigma_t = S + exp(tau A) (Sigma_0 - S) exp(tau A)^T``. Data start with
``v0 ~ N(0, gamma M I)``, so given ``x0`` the perturbation kernel is Gaussian with
mean ``exp(tau A) (x0, 0)`` and ``Sigma_0 = diag(0, gamma M)``.

2x2 matrices act per data dimension and are tuples of tensors: ``(p, q, r, s)``
for ``[[p, q], [r, s]]``, ``(xx, xv, vv)`` for a symmetric one. Coefficients are
computed in float64, small-t covariances without cancellation
(:meth:`CLD.noise_covariance`); the state keeps its own dtype.

A velocity score is a callable ``score(x, v, t) -> [N, d]`` approximating
``grad_v log p_t(x, v)``, with ``t`` a ``[N]`` tensor (and a conditioning dict as
a fourth argument when the samplers are given ``cond``). Samplers take
``(score, x, v, times)`` where ``(x, v)`` is the start state at ``times[0]``
(usually :meth:`CLD.prior` at t = 1) and ``times`` is a decreasing 1-D tensor
ending at ``t_min > 0`` (:func:`cld_times`); they return ``(x, v)`` at ``times[-1]``,
and call ``callback({"i", "x", "v", "t", "t_next"})`` after each step.
:mod:`generative.solvers` registers them (``cld_sscs``, ``cld_em``,
``cld_heun``) on the joint state ``cat(x, v)``.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn


def _like(c, x):
    """Coefficient ``c`` ([N] or 0-d, float64) as a factor broadcasting over ``x [N, ...]``."""
    c = c.to(dtype=x.dtype, device=x.device)
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim)) if c.ndim else c


def _cholesky(xx, xv, vv):
    """Lower Cholesky factor ``[[l_xx, 0], [l_vx, l_vv]]`` of ``[[xx, xv], [xv, vv]]``."""
    l_xx = xx.clamp_min(0).sqrt()
    l_vx = xv / l_xx
    return l_xx, l_vx, (vv - l_vx * l_vx).clamp_min(0).sqrt()


@dataclass(frozen=True)
class CLD:
    """Critically damped forward process; defaults as in the paper (``Gamma = 1``).

    Args:
        mass: ``M`` (velocity variance of the stationary law).
        beta: time scale; the SDE runs for ``beta * t`` units of Langevin time.
        gamma: the initial velocity variance is ``gamma * M``.
    """

    mass: float = 0.25
    beta: float = 4.0
    gamma: float = 0.04

    @property
    def damping(self):
        """Critical friction ``Gamma = 2 sqrt(M)``."""
        return 2 * math.sqrt(self.mass)

    @property
    def rate(self):
        """``a = Gamma / (2M) = 1 / sqrt(M)``, the decay rate per unit of ``beta t``."""
        return 1 / math.sqrt(self.mass)

    def transition(self, t, reverse=False):
        """Entries ``(p, q, r, s)`` of ``exp(beta t A)``, float64 shaped like ``t``.

        ``reverse=True`` gives ``exp(beta t B)`` with ``B = D A D``, ``D = diag(1, -1)``:
        the linear part ``[[0, -1/M], [1, -Gamma/M]]`` of the reverse-time SDE.
        """
        tau = self.beta * torch.as_tensor(t, dtype=torch.float64)
        a, sign = self.rate, -1.0 if reverse else 1.0
        decay = torch.exp(-a * tau)
        return (decay * (1 + a * tau), sign * decay * a * a * tau, -sign * decay * tau,
                decay * (1 - a * tau))

    def mean(self, x0, t):
        """Kernel mean ``(E[x_t | x0], E[v_t | x0])``; ``x0 [N, ...]``, ``t`` float or ``[N]``."""
        p, _, r, _ = self.transition(t)
        return _like(p, x0) * x0, _like(r, x0) * x0

    def noise_covariance(self, t):
        """Per-dimension ``(xx, xv, vv)`` of ``S - exp(beta t A) S exp(beta t A)^T``, float64.

        The covariance of ``(x_t, v_t)`` started from a point. With ``y = a beta t``:
        ``xx = 1 - e^(-2y) (1 + 2y + 2y^2)`` (an ``O(y^3)`` tail of the exponential
        series, summed as a series for ``y < 1`` to avoid cancellation),
        ``xv = 2 y beta t e^(-2y)``, ``vv = M (-expm1(-2y) + 2y (1 - y) e^(-2y))``.
        """
        tau = self.beta * torch.as_tensor(t, dtype=torch.float64)
        y = self.rate * tau
        decay = torch.exp(-2 * y)
        z = 2 * y.clamp(max=1.0)
        term = z ** 3 / 6
        tail = term
        for k in range(4, 40):
            term = term * z / k
            tail = tail + term
        xx = torch.where(y < 1, decay * tail, 1 - decay * (1 + 2 * y + 2 * y * y))
        vv = self.mass * (-torch.expm1(-2 * y) + 2 * y * (1 - y) * decay)
        return xx, 2 * y * tau * decay, vv

    def covariance(self, t, var_x0=0.0, var_v0=None):
        """Per-dimension covariance ``(xx, xv, vv)`` of ``(x_t, v_t)``, float64.

        ``Sigma_t = exp(beta t A) Sigma_0 exp(beta t A)^T + noise_covariance(t)`` for
        independent ``x0`` and ``v0`` of variances ``var_x0`` (0 for the kernel given
        ``x0``) and ``var_v0`` (default ``gamma M``); both may be tensors
        broadcasting with ``t``.
        """
        var_v0 = self.gamma * self.mass if var_v0 is None else var_v0
        p, q, r, s = self.transition(t)
        sx = torch.as_tensor(var_x0, dtype=torch.float64)
        sv = torch.as_tensor(var_v0, dtype=torch.float64)
        nxx, nxv, nvv = self.noise_covariance(t)
        return (nxx + p * p * sx + q * q * sv, nxv + p * r * sx + q * s * sv,
                nvv + r * r * sx + s * s * sv)

    def perturb(self, x0, t, generator=None):
        """Draw ``(x_t, v_t) ~ p(u_t | x0)`` with ``v0`` marginalised (hybrid score matching).

        ``(x_t, v_t) = mean + L_t (eps_x, eps_v)`` with ``L_t`` the Cholesky factor of the
        kernel covariance; returns ``x_t, v_t, eps_v`` and ``l_vv [N]`` (``L_t[1, 1]``,
        float64). The kernel's velocity score is ``-eps_v / l_vv`` (the paper's
        ``ell_t`` is ``1 / l_vv``). Requires ``t > 0``.
        """
        mx, mv = self.mean(x0, t)
        l_xx, l_vx, l_vv = _cholesky(*self.covariance(t))
        eps = torch.randn((2,) + x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        x = mx + _like(l_xx, x0) * eps[0]
        v = mv + _like(l_vx, x0) * eps[0] + _like(l_vv, x0) * eps[1]
        return x, v, eps[1], l_vv

    def prior(self, n, dim, generator=None, dtype=torch.float32):
        """Start state ``(x_T, v_T) ~ N(0, I) x N(0, M I)``, each ``[n, dim]``."""
        z = torch.randn(2, n, dim, generator=generator, dtype=dtype)
        return z[0], math.sqrt(self.mass) * z[1]


def cld_times(n, t_min=1e-3, t_max=1.0, rho=2.0):
    """``n + 1`` times decreasing from ``t_max`` to ``t_min`` (float64), uniform in ``t^(1/rho)``.

    ``rho = 1`` is uniform in ``t``; the default ``rho = 2`` (quadratic striding)
    concentrates steps near ``t_min``, where the velocity score is stiff (given
    ``x``, ``v`` has variance of order ``gamma M``): an Euler step on ``v`` is stable
    only for ``h < gamma M / (Gamma beta)`` there (0.0025 with the defaults).
    """
    i = torch.arange(n + 1, dtype=torch.float64) / n
    return (t_max ** (1 / rho) + i * (t_min ** (1 / rho) - t_max ** (1 / rho))) ** rho


def cld_training_times(n, t_min=1e-5, generator=None):
    """Training times ``t ~ U(t_min, 1)``, ``[n]`` float64."""
    return t_min + (1 - t_min) * torch.rand(n, generator=generator, dtype=torch.float64)


def gaussian_velocity_score(x, v, t, process=CLD()):
    """Exact velocity score of the marginal when the data are ``N(0, I)`` (float64 coefficients)."""
    xx, xv, vv = process.covariance(t, var_x0=1.0)
    det = xx * vv - xv * xv
    return -(_like(xx / det, v) * v - _like(xv / det, x) * x)


class VelocityScore(nn.Module):
    """Velocity score ``(x, v, t) -> grad_v log p_t`` from a network predicting ``eps_v``.

    ``net(u, t) -> [N, d]`` sees ``u = cat(x, v / sqrt(M)) [N, 2d]`` (both parts of unit
    stationary variance) and ``t [N]``. Parameterisation: ``eps_hat = net(u, t)`` plus,
    with ``mixed=True``, the exact ``eps_v`` prediction for ``N(0, I)`` data
    (``-l_vv`` times :func:`gaussian_velocity_score`; the network learns the
    residual, after the paper's mixed score). The score is ``-eps_hat / l_vv``.
    """

    def __init__(self, net, process=CLD(), mixed=True):
        super().__init__()
        self.net, self.process, self.mixed = net, process, mixed

    def eps(self, x, v, t, cond=None):
        """Predicted ``eps_v`` of :meth:`CLD.perturb`, ``[N, d]`` (``cond`` passed on to the network)."""
        t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])
        u = torch.cat([x, v / math.sqrt(self.process.mass)], dim=1)
        out = self.net(u, t.to(x.dtype)) if cond is None else self.net(u, t.to(x.dtype), cond)
        if self.mixed:
            l_vv = _cholesky(*self.process.covariance(t))[2]
            out = out - _like(l_vv, x) * gaussian_velocity_score(x, v, t, self.process)
        return out

    def forward(self, x, v, t, cond=None):
        t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])
        l_vv = _cholesky(*self.process.covariance(t))[2]
        return -self.eps(x, v, t, cond) / _like(l_vv, x)


def hsm_loss(eps_model, x0, t, process=CLD(), generator=None, cond=None):
    """Hybrid score matching, per example ``mean_dims (eps_model(x_t, v_t, t) - eps_v)^2``, ``[N]``.

    ``t [N]`` in ``(0, 1]``. Equals ``E |s - grad_v log p(u_t | x0)|^2`` weighted by
    ``l_vv^2`` (the paper's ``lambda(t) = ell_t^-2``), with ``s = -eps_model / l_vv``.
    ``cond`` (if given) is passed to ``eps_model`` as a fourth argument.
    """
    x, v, eps_v, _ = process.perturb(x0, t, generator)
    eps = eps_model(x, v, t) if cond is None else eps_model(x, v, t, cond)
    return ((eps - eps_v) ** 2).flatten(1).mean(1)


def mixture_velocity_score(mixture, process=CLD()):
    """Exact velocity score of the CLD marginal of a :class:`GaussianMixture` (ground truth).

    Component ``N(mu, C)`` with ``v0 ~ N(0, gamma M I)`` stays Gaussian: mean
    ``exp(beta t A) (mu, 0)`` and, in each eigendirection of ``C`` (eigenvalue
    ``lam``), the 2x2 covariance ``process.covariance(t, var_x0=lam)``. The
    marginal is the mixture of these; its ``grad_v log p_t`` is returned as
    ``score(x, v, t)``, computed in the mixture's dtype.
    """
    vecs, means, logw = mixture.eigvecs, mixture.means, mixture.weights.log()

    def score(x, v, t):
        dtype = x.dtype
        x, v = x.to(means.dtype), v.to(means.dtype)
        t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])
        p, _, r, _ = process.transition(t[:, None, None])
        xx, xv, vv = process.covariance(t[:, None, None], var_x0=mixture.eigvals)
        det = xx * vv - xv * xv
        y = torch.einsum("kji,nkj->nki", vecs, x[:, None, :] - p * means)
        z = torch.einsum("kji,nkj->nki", vecs, v[:, None, :] - r * means)
        quad = (vv * y * y - 2 * xv * y * z + xx * z * z) / det
        loglik = -0.5 * (quad + torch.log((2 * math.pi) ** 2 * det)).sum(-1)
        resp = torch.softmax(loglik + logw, dim=1)
        comp = torch.einsum("kij,nkj->nki", vecs, (xv * y - xx * z) / det)
        return torch.einsum("nk,nki->ni", resp, comp).to(dtype)

    return score


def _score(score, x, v, t, cond):
    return score(x, v, t) if cond is None else score(x, v, t, cond)


def _report(callback, i, x, v, t, t_next):
    if callback is not None:
        callback({"i": i, "x": x, "v": v, "t": t, "t_next": t_next})


def cld_pf_ode_drift(score, x, v, t, process=CLD(), cond=None):
    """Forward-time probability-flow ODE ``(dx/dt, dv/dt)``; ``t [N]`` or scalar.

    ``dx/dt = beta v / M``, ``dv/dt = -beta (x + Gamma v / M) - Gamma beta score_v``.
    """
    t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])
    b, g = process.beta, process.damping
    return b * v / process.mass, -b * (x + g * v / process.mass) - g * b * _score(score, x, v, t, cond)


def sample_cld_pf_ode(score, x, v, times, process=CLD(), *, cond=None, callback=None):
    """Heun (2 score evaluations per step) on the probability-flow ODE along ``times``."""
    for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        h = float(t_next - t)
        dx, dv = cld_pf_ode_drift(score, x, v, t, process, cond)
        xe, ve = x + h * dx, v + h * dv
        dx2, dv2 = cld_pf_ode_drift(score, xe, ve, t_next, process, cond)
        x, v = x + 0.5 * h * (dx + dx2), v + 0.5 * h * (dv + dv2)
        _report(callback, i, x, v, t, t_next)
    return x, v


def sample_cld_euler_maruyama(score, x, v, times, process=CLD(), generator=None, *, cond=None, callback=None):
    """Euler-Maruyama on the reverse SDE (1 score evaluation per step).

    In reverse time ``s = 1 - t``: ``dx = -beta v / M ds``,
    ``dv = (beta x + beta Gamma v / M + 2 Gamma beta score_v) ds + sqrt(2 Gamma beta) dW``.
    """
    b, g, m = process.beta, process.damping, process.mass
    for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        h = float(t - t_next)
        s = _score(score, x, v, t.expand(x.shape[0]), cond)
        noise = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
        x, v = (x - h * b * v / m,
                v + h * (b * x + b * g * v / m + 2 * g * b * s) + math.sqrt(2 * g * b * h) * noise)
        _report(callback, i, x, v, t, t_next)
    return x, v


def _reverse_linear_step(x, v, h, process, generator):
    """Exact solution over reverse time ``h`` of ``du = beta B u ds + sqrt(2 Gamma beta) dW_v``.

    Mean ``exp(beta h B) u``; noise covariance ``S - exp(beta h B) S exp(beta h B)^T``,
    which is ``D noise_covariance(h) D``: the forward one with ``xv`` negated.
    """
    p, q, r, s = (_like(c, x) for c in process.transition(h, reverse=True))
    xx, xv, vv = process.noise_covariance(h)
    l_xx, l_vx, l_vv = (_like(c, x) for c in _cholesky(xx, -xv, vv))
    z = torch.randn((2,) + x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return p * x + q * v + l_xx * z[0], r * x + s * v + l_vx * z[0] + l_vv * z[1]


def sample_sscs(score, x, v, times, process=CLD(), generator=None, *, cond=None, callback=None):
    """Symmetric splitting CLD sampler (SSCS), 1 score evaluation per step.

    The reverse SDE splits into the linear Ornstein-Uhlenbeck part
    ``du = beta B u ds + sqrt(2 Gamma beta) dW_v`` (solved exactly, stationary law
    ``N(0, I) x N(0, M I)``) and ``dv = 2 Gamma beta (score_v + v / M) ds``, which
    vanishes for the stationary score ``-v / M``. Each step from ``t`` to ``t'``
    (``h = t - t'``) is: exact half-step ``h/2``; Euler step ``h`` on ``v`` with the
    score at ``t - h/2``; exact half-step ``h/2``.
    """
    g2b = 2 * process.damping * process.beta
    for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        h = float(t - t_next)
        x, v = _reverse_linear_step(x, v, 0.5 * h, process, generator)
        mid = (t - 0.5 * h).expand(x.shape[0])
        v = v + h * g2b * (_score(score, x, v, mid, cond) + v / process.mass)
        x, v = _reverse_linear_step(x, v, 0.5 * h, process, generator)
        _report(callback, i, x, v, t, t_next)
    return x, v
