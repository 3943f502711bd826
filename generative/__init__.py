"""A diffusion engine with no cryo-EM knowledge (see docs/engine.md).

Denoiser contract: ``denoise(x, sigma[, cond]) -> x0_hat`` with ``x = x0 + sigma * eps``
(EDM/VE convention), ``x [N, ...]``, ``sigma [N]`` in data units. Sample with
``generative.sample(model, x_T, grid, solver="heun", **options)`` (solvers in
:mod:`generative.solvers`); formulations (EDM, rectified flow, CLD) in
:mod:`generative.formulations`.
"""

from .adapters import from_eps, from_v, from_velocity, guided
from .cld import (CLD, VelocityScore, cld_pf_ode_drift, cld_times, cld_training_times,
                  gaussian_velocity_score, hsm_loss, mixture_velocity_score,
                  sample_cld_euler_maruyama, sample_cld_pf_ode, sample_sscs)
from .flow import flow_matching_loss, logit_normal_times
from .genie import GenieHead, eps_and_derivative, genie_distillation_loss
from .likelihood import encode, log_likelihood
from .losses import (denoising_loss, edm_weight, inverse_variance_weight, lognormal_sigmas,
                     loguniform_sigmas, vp_training_sigmas)
from .metrics import energy_distance, frechet_distance, mmd
from .mixtures import GaussianMixture
from .blocks import FourierEmbedding, ResidualMLP
from .preconditioning import Preconditioned
from .solvers import SOLVERS, Solver, register, sample
from . import formulations
from .schedules import (flow_shift, flow_sigma, flow_sigmas, flow_time, karras_sigmas,
                        resolution_shift, vp_sigma, vp_sigmas, vp_time)
from .trainer import Trainer
from .blocks.unet import UNet
from .blocks.mmdit import MMDiT
from .autoencoder import AutoencoderKL
from .latent_diffusion import LatentDiffusion
from .img2img import handoff, sdedit
from . import privacy
from .dp import add_noise, clip_and_sum, per_example_gradients, poisson_indices
from .dp_trainer import DPTrainer

__all__ = [
    "SOLVERS", "Solver", "register", "formulations", "FourierEmbedding", "GaussianMixture", "GenieHead", "Preconditioned", "ResidualMLP",
    "Trainer", "UNet", "denoising_loss", "edm_weight", "encode", "energy_distance", "eps_and_derivative",
    "flow_matching_loss", "flow_shift", "flow_sigma", "flow_sigmas", "flow_time", "from_eps",
    "from_v", "from_velocity", "genie_distillation_loss", "guided", "inverse_variance_weight",
    "karras_sigmas", "log_likelihood", "logit_normal_times", "lognormal_sigmas",
    "loguniform_sigmas", "mmd", "resolution_shift", "sample", "vp_sigma", "vp_sigmas",
    "vp_time", "vp_training_sigmas",
    # image latent diffusion (see docs/image_ldm.md)
    "AutoencoderKL", "LatentDiffusion", "MMDiT", "frechet_distance", "handoff", "sdedit",
    # critically damped Langevin diffusion (state (x, v); see generative.cld)
    "CLD", "VelocityScore", "cld_pf_ode_drift", "cld_times", "cld_training_times",
    "gaussian_velocity_score", "hsm_loss", "mixture_velocity_score", "sample_cld_euler_maruyama",
    "sample_cld_pf_ode", "sample_sscs",
    # differentially private training (DP-SGD; see generative.dp and generative.privacy)
    "DPTrainer", "add_noise", "clip_and_sum", "per_example_gradients", "poisson_indices", "privacy",
]
