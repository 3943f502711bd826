"""Our DDIM, DPM-Solver++(2M) and flow Euler against diffusers' schedulers on the exact mixture denoiser.

Both sides see the same denoiser and the same noise levels; diffusers works in
VP (or flow) scaling with an eps (or velocity) model built from that denoiser,
we work in VE scaling. With diffusers' schedule tensors promoted to float64 the
DDIM samples agree to ~1e-14. DPMSolverMultistepScheduler and the flow
scheduler cast the state to float32 in every step; they agree to ~1e-5 and
~1e-6. Deliberate difference: our flow grids start at
t_max < 1 (sigma finite), so diffusers is given the same custom sigmas.
"""

import torch

from generative.solvers import sample
from generative.schedules import flow_sigmas, flow_time

diffusers = __import__("diffusers")

N = 256


def _eps(mix, z, alpha, sigma):
    """eps model in VP scaling z = alpha x: (x - D(x, sigma)) / sigma with x = z / alpha."""
    x = z / alpha
    return (x - mix.denoise(x, torch.full((len(x),), sigma, dtype=x.dtype))) / sigma


def _diffusers_sample(sched, mix, z, sigmas):
    """Run a VP-scaled diffusers scheduler from ``z`` with the mixture's eps model; returns its end state."""
    for t, s in zip(sched.timesteps, sigmas):
        z = sched.step(_eps(mix, z, 1 / (1 + s ** 2).sqrt(), s.item()), t, z).prev_sample
    return z


def test_ddim_matches_ddimscheduler(mixture2d):
    sched = diffusers.DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(10)
    sched.alphas_cumprod = sched.alphas_cumprod.double()  # float64 arithmetic on both sides
    alpha_bar = sched.alphas_cumprod.double()[sched.timesteps]
    sigmas = torch.cat([((1 - alpha_bar) / alpha_bar).sqrt(), torch.zeros(1, dtype=torch.float64)])
    z = torch.randn(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = sample(mixture2d.denoise, z * (1 + sigmas[0] ** 2).sqrt(), sigmas, "ddim")
    assert (ours - _diffusers_sample(sched, mixture2d, z, sigmas)).abs().max() < 1e-10


def test_dpmpp_2m_matches_dpmsolvermultistepscheduler(mixture2d):
    sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, algorithm_type="dpmsolver++",
                                                  solver_order=2, final_sigmas_type="zero")
    sched.set_timesteps(12)
    sigmas = sched.sigmas.double()
    z = torch.randn(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = sample(mixture2d.denoise, z * (1 + sigmas[0] ** 2).sqrt(), sigmas, "dpmpp_2m")
    assert (ours - _diffusers_sample(sched, mixture2d, z, sigmas)).abs().max() < 3e-5


def test_flow_euler_matches_flowmatcheulerdiscretescheduler(mixture2d):
    n, shift, t_max = 10, 3.0, 0.999
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(sigmas=torch.linspace(t_max, t_max / n, n).tolist())
    grid = flow_sigmas(n, shift=shift, t_max=t_max)
    assert (sched.sigmas.double() - flow_time(grid)).abs().max() < 1e-6
    ts = sched.sigmas.double()
    sigmas = torch.cat([ts[:-1] / (1 - ts[:-1]), torch.zeros(1, dtype=torch.float64)])
    z = torch.randn(N, 2, generator=torch.Generator().manual_seed(2))
    ours = sample(mixture2d.denoise, z.double() / (1 - ts[0]), sigmas, "flow_euler")
    for t, tt, s in zip(sched.timesteps, ts, sigmas):
        x = z.double() / (1 - tt)
        velocity = (z.double() - mixture2d.denoise(x, torch.full((N,), s.item(), dtype=torch.float64))) / tt
        z = sched.step(velocity.float(), t, z).prev_sample
    assert (ours - z.double()).abs().max() < 1e-5
