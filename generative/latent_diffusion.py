"""A conditional diffusion model on latents: network + conditioner + formulation, one module.

:class:`LatentDiffusion` is what the :class:`generative.trainer.Trainer` trains
(its EMA copies the network and the conditioner's learned embedders together)
and what samples with classifier-free guidance. It sees latents only: encode
images first with a frozen first stage (:class:`generative.autoencoder.AutoencoderKL`
``to_latent``) and decode samples with ``from_latent``.

A batch is a dict: the conditioner's keys (e.g. ``tokens``, ``original_size``,
``crop``, ``target_size``) plus ``"latent"`` ``[N, C, h, w]`` for training.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .conditioning import Conditioner, cfg
from .solvers import options, sample


class LatentDiffusion(nn.Module):
    """``formulation.wrap(network)`` conditioned by ``conditioner``.

    Args:
        network: ``network(x [N, C, h, w], c_noise [N], cond) -> [N, C, h, w]`` (a
            :class:`generative.blocks.UNet` or :class:`generative.blocks.mmdit.MMDiT`).
        conditioner: :class:`generative.conditioning.Conditioner` building ``cond`` from the batch.
        formulation: an engine formulation of the ``sigma`` or ``flow`` family
            (:mod:`generative.formulations`, e.g. ``RectifiedFlow(shift=...)`` or ``EDM()``).
    """

    def __init__(self, network: nn.Module, conditioner: Conditioner, formulation):
        super().__init__()
        self.model = formulation.wrap(network)
        self.conditioner = conditioner
        self.formulation = formulation

    def loss(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-example training loss ``[N]`` of ``batch["latent"]``; the conditioner drops conditions at
        its embedders' rates (in training mode)."""
        cond = self.conditioner(batch, generator=generator)
        return self.formulation.loss(self.model, batch["latent"], cond=cond, generator=generator)

    def denoiser(self, batch: dict, guidance: float | torch.Tensor = 1.0, zero: Iterable[str] | None = None):
        """``(denoise(x, sigma, cond), cond)`` for the conditions of ``batch``; with ``guidance != 1``
        (or a tensor of scales broadcasting against the latents, e.g. per frame) the denoiser is
        classifier-free guided against :meth:`Conditioner.unconditional` (zeroing the keys ``zero``;
        default those with a drop rate)."""
        denoise = self.formulation.denoiser(self.model)
        cond = self.conditioner(batch)
        if isinstance(guidance, torch.Tensor) or guidance != 1.0:
            denoise = cfg(denoise, self.conditioner.unconditional(batch, zero), guidance)
        return denoise, cond

    @torch.no_grad()
    def sample(self, batch: dict, shape: tuple[int, ...], *, guidance: float | torch.Tensor = 1.0, solver: str | None = None,
               steps: int | None = None, generator: torch.Generator | None = None,
               zero: Iterable[str] | None = None, callback=None) -> torch.Tensor:
        """One latent ``[N, *shape]`` (``shape = (C, h, w)``, or ``(T, C, h, w)`` for a video network) per
        example of ``batch`` (its conditions; no ``"latent"`` needed) with the formulation's ``solver`` over ``steps`` intervals (defaults: the
        formulation's first solver and its steps), guidance scale ``guidance``, noise from ``generator``."""
        was_training = self.training
        self.eval()
        try:
            solver, steps = self.formulation.resolve(solver, steps)
            denoise, cond = self.denoiser(batch, guidance, zero)
            grid = self.formulation.grid(solver, steps)
            n = len(next(iter(cond.values())))
            x_T = self.formulation.start(grid, n, tuple(shape), self.model, generator)
            return sample(denoise, x_T, grid, solver, **options(solver, cond=cond, callback=callback, generator=generator))
        finally:
            self.train(was_training)
