"""Quantized cryo-EM networks: the VAE decoder and the latent prior under ProxConnect++.

The decoder is quantized by distillation, with no particle images: a copy of the trained
full-precision decoder (the teacher, frozen) is fine-tuned with
:class:`generative.quantization.ProxConnect` to give the teacher's Hartley values at random
frequencies inside the Nyquist sphere (fractions of the box, ``[x, y, z]`` rows as the
decoder takes them) and at latents drawn from the run's own ``z``. Only the hidden
(residual) layers are quantized; the input layer (positional encoding and ``z`` columns) and
the output layer stay full precision. The prior is quantized by fine-tuning on its own
training loss and latents.

Fake-quantized networks compute in float32 (weights on a grid, stored as floats), so they
are no faster than the full-precision ones; :func:`int8_linear_layers` runs the quantized
layers with int8 kernels where torch provides them, and only measured times are reported
(``benchmarks/quantize.py``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from generative.quantization import Annealing, ProxConnect, quantizable
from generative.trainer import Trainer


def decoder_weights(decoder: nn.Module) -> dict[str, nn.Parameter]:
    """The decoder weights that are quantized: every linear layer but the first and the last."""
    return quantizable(decoder, keep_first_last=True)


def _frequencies(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points ``[n, 3]`` uniform in the ball of radius 1/2 (Nyquist, fraction of the box)."""
    k = torch.empty(0, 3)
    while len(k) < n:
        trial = torch.rand(2 * n, 3, generator=generator) - 0.5
        k = torch.cat([k, trial[trial.norm(dim=1) <= 0.5]])
    return k[:n]


def quantize_decoder(model, z: np.ndarray, *, grid: str = "uniform4", method: str = "parq", steps: int = 2000,
                     lr: float = 1e-3, latents_per_step: int = 4, points: int = 2048, seed: int = 0,
                     progress: bool = False) -> tuple[nn.Module, ProxConnect, list[dict]]:
    """A quantized copy of ``model``'s decoder, distilled from it (see the module docstring).

    Args:
        model: a trained :class:`recon.vae.HetVAE` (not modified).
        z: latents ``[N, zdim]`` to distil at (the run's ``z_mu``).
        grid, method: ProxConnect's grid and method (:mod:`generative.quantization`).
        steps: Adam steps; annealing runs over the first 80 %.
        latents_per_step, points: latents and frequencies per step.

    Returns ``(decoder, optimizer, log)``: the quantized decoder (hard-quantized after annealing),
    the optimiser (for :func:`generative.quantization.pack`) and per-100-step relative errors.
    """
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    if z.ndim != 2 or len(z) == 0 or z.shape[1] != model.arch.zdim:
        raise ValueError(f"z must be [N, {model.arch.zdim}] with N > 0, got {tuple(z.shape)}")
    teacher = copy.deepcopy(model.decoder).eval().requires_grad_(False)
    student = copy.deepcopy(model.decoder).train()
    optimizer = ProxConnect(torch.optim.Adam(student.parameters(), lr), decoder_weights(student), grid=grid,
                            method=method, annealing=Annealing(0, max(1, int(0.8 * steps))))
    g = torch.Generator().manual_seed(seed)
    log, running = [], []
    for step in tqdm(range(steps), disable=not progress, desc="quantize decoder"):
        k = _frequencies(points, g).reshape(1, points, 3).expand(latents_per_step, points, 3)
        zb = z[torch.randint(len(z), (latents_per_step,), generator=g)]
        with torch.no_grad():
            target = teacher(k, zb)
        error = (student(k, zb) - target).pow(2).mean() / target.pow(2).mean().clamp(min=1e-12)
        optimizer.zero_grad()
        error.backward()
        optimizer.step()
        running.append(error.item())
        if (step + 1) % 100 == 0 or step + 1 == steps:
            log.append({"step": step + 1, "relative_error": float(np.mean(running)), "relaxation": optimizer.relaxation()})
            running = []
    return student.eval(), optimizer, log


def with_decoder(model, decoder: nn.Module):
    """A copy of ``model`` (a ``HetVAE``) whose decoder is ``decoder``."""
    out = copy.deepcopy(model)
    out.decoder = decoder
    return out


def quantize_prior(prior, latents: np.ndarray, *, grid: str = "uniform4", method: str = "parq", steps: int = 2000,
                   lr: float = 3e-4, batch_size: int = 512, seed: int = 0, progress: bool = False):
    """A copy of ``prior`` (:class:`cryodiff.prior.Prior`) whose network is fine-tuned under ProxConnect
    on its own loss and ``latents [N, zdim]`` (original units); first and last layers stay full precision.
    Returns ``(prior, optimizer)``."""
    u = prior.standardise(latents)
    model = copy.deepcopy(prior.model).train().requires_grad_(True)
    form = prior.engine

    def make(m):
        return ProxConnect(torch.optim.Adam(m.parameters(), lr), quantizable(m), grid=grid, method=method,
                           annealing=Annealing(0, max(1, int(0.8 * steps))))

    trainer = Trainer(model, lambda m, batch, g: form.loss(m, batch, generator=g),
                      lambda step, g: u[torch.randint(len(u), (batch_size,), generator=g)],
                      optimizer=make, ema_decay=0.0, grad_clip=1.0, seed=seed, progress=progress,
                      log_every=max(1, steps // 10))
    trainer.fit(steps)
    out = copy.copy(prior)
    out.model = trainer.model.eval().requires_grad_(False)
    return out, trainer.optimizer


def int8_linear_layers(decoder: nn.Module) -> nn.Module:
    """A copy of ``decoder`` whose quantized layers (:func:`decoder_weights`) run as torch's dynamic int8
    linear layers (int8 weights per output channel, activations quantized per batch on the fly; CPU only).

    torch's int8 kernels are the only ones that make a quantized decoder faster on a CPU; their weights are
    int8 with torch's own per-channel scale, not the ProxConnect grid, and the activations are rounded too,
    so the volumes differ slightly from the fake-quantized decoder's (measured in benchmarks/quantize.py)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {name.removesuffix(".weight") for name in decoder_weights(decoder)}
    return quantize_dynamic(copy.deepcopy(decoder).eval(), {name: per_channel_dynamic_qconfig for name in names},
                            dtype=torch.qint8)
