"""Latent adversarial diffusion distillation (LADD; Sauer et al. 2024, SD3-Turbo).

A student copy of a rectified-flow :class:`~generative.latent_diffusion.LatentDiffusion`
learns to generate in 1-4 steps against discriminator heads that read the features of the
frozen teacher:

1. a "real" latent ``x0`` (with its conditions) comes from a cache of teacher samples
   (:func:`cache_teacher_samples`, e.g. 40 guided steps);
2. the student sees ``x_t = (1 - t) x0 + t eps`` at one of its own ``steps`` times ``t``
   (:func:`student_times`, a shifted uniform grid) and predicts ``x0_hat = x_t - t v(x_t, t)``;
3. ``x0_hat`` (fake) and a real latent are re-noised at ``t'`` drawn logit-normal
   (``renoise_mean``, ``renoise_scale``; a positive mean biases ``t'`` to high noise) and the
   frozen teacher's image-token features after chosen blocks (:class:`TeacherFeatures`) go to
   light heads (:class:`Discriminator`) conditioned on ``t'`` and the pooled text;
4. non-saturating losses: the discriminator minimises ``softplus(-D(real)) + softplus(D(fake))``,
   the student ``softplus(-D(fake))``; an optional approximate R1 penalty
   ``r1_weight * |D(real + r1_sigma * eps) - D(real)|^2`` smooths the discriminator.

Optionally the student is first warm-started by guidance distillation (:meth:`LADD.guidance_loss`,
:func:`guidance_trainer`): the real data are guided teacher samples, and a student copied from
the teacher otherwise starts as the unguided model.

Training alternates: the engine's :class:`~generative.trainer.Trainer` takes the student's step
(:meth:`LADD.student_loss`) and the :class:`DiscriminatorStep` hook then takes the
discriminator's step with its own optimiser, so checkpoints, exact resume, progress and JSON
logs are the trainer's. Sample the student with :func:`student_sample`.

Latents are ``[N, C, h, w]``; times are flow times in ``(0, 1)`` (``t = 1`` pure noise).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks.embeddings import sinusoidal
from .flow import logit_normal_times
from .schedules import flow_shift
from .trainer import Hook


class TeacherFeatures(nn.Module):
    """A frozen network that returns the outputs of chosen sub-modules as token features.

    ``modules`` are sub-modules of ``network`` (e.g. ``mmdit.blocks[i]``); each one's output
    (its first element when it returns a tuple, as MMDiT blocks return ``(image, text)``) is
    captured by a forward hook and returned as ``[N, L, D]`` tokens (a ``[N, C, H, W]`` map
    becomes ``[N, H*W, C]``). The network's parameters never require gradients, but gradients
    flow through it to its input (the student's samples)."""

    def __init__(self, network: nn.Module, modules: Sequence[nn.Module]):
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self._captured: list[torch.Tensor] | None = None  # a list only while forward() runs
        self._handles = [m.register_forward_hook(self._capture) for m in modules]
        if not self._handles:
            raise ValueError("choose at least one teacher block to take features from")

    def _capture(self, module, inputs, output):
        if self._captured is None:  # the network called for its output, not through forward()
            return
        out = output[0] if isinstance(output, tuple) else output
        self._captured.append(out.flatten(2).transpose(1, 2) if out.ndim == 4 else out)

    def train(self, mode: bool = True):
        """The teacher stays in eval mode."""
        return super().train(False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> list[torch.Tensor]:
        self._captured = []
        try:
            self.network(x, t, cond)
            return self._captured
        finally:
            self._captured = None


class Head(nn.Module):
    """Discriminator head on tokens ``[N, L, dim]``: LayerNorm, a linear layer, a FiLM modulation by
    the conditioning ``c [N, cond_dim]``, SiLU and a linear read-out; logits averaged over tokens -> ``[N]``."""

    def __init__(self, dim: int, cond_dim: int, hidden: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.inp = nn.Linear(dim, hidden)
        self.film = nn.Linear(cond_dim, 2 * hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, tokens: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c)[:, None].chunk(2, dim=-1)
        h = F.silu(self.inp(self.norm(tokens)) * (1 + scale) + shift)
        return self.out(h)[..., 0].mean(1)


class Discriminator(nn.Module):
    """One :class:`Head` per teacher feature; conditioned on the re-noising time ``t'`` (sinusoidal,
    ``time_dim``) and the pooled text vector (``vector_dim``; 0 for none). Returns logits ``[N, heads]``."""

    def __init__(self, feature_dims: Sequence[int], vector_dim: int = 0, time_dim: int = 64, hidden: int = 64):
        super().__init__()
        self.time_dim = time_dim
        cond_dim = time_dim + vector_dim
        self.heads = nn.ModuleList(Head(d, cond_dim, hidden) for d in feature_dims)

    def forward(self, features: Sequence[torch.Tensor], t: torch.Tensor, vector: torch.Tensor | None = None) -> torch.Tensor:
        c = sinusoidal(1000 * t, self.time_dim)
        if vector is not None:
            c = torch.cat([c, vector.to(c.dtype)], dim=1)
        return torch.stack([head(f, c) for head, f in zip(self.heads, features)], dim=1)


def conditions(conditioner, batch: dict) -> dict:
    """``conditioner(batch)`` with every condition kept (no classifier-free dropping), whatever its mode."""
    was = conditioner.training
    conditioner.eval()
    try:
        return conditioner(batch)
    finally:
        conditioner.train(was)


def student_times(steps: int, shift: float = 1.0, t_max: float = 1.0) -> torch.Tensor:
    """The student's ``steps`` flow times, from ``t_max`` down: ``shift(t_max * (k / steps))`` for
    ``k = steps ... 1`` (float64, decreasing; ``t_max = 1`` starts from pure noise)."""
    k = torch.arange(steps, 0, -1, dtype=torch.float64)
    return flow_shift(t_max * k / steps, shift)


def student_x0(velocity: nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
    """``x0_hat = x_t - t v(x_t, t)`` for times ``t [N]``."""
    return x_t - t.view(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype) * velocity(x_t, t.to(x_t.dtype), cond)


@torch.no_grad()
def student_sample(student, batch: dict, shape: tuple[int, int, int], steps: int = 4, *, shift: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Latents ``[N, *shape]`` from a LADD student (a ``LatentDiffusion``) in ``steps`` network calls:
    at each of :func:`student_times` predict ``x0`` and re-noise it with fresh noise to the next time."""
    was = student.training
    student.eval()
    try:
        cond = conditions(student.conditioner, batch)
        n = len(next(iter(cond.values())))
        times = student_times(steps, shift).float()
        x = torch.randn(n, *shape, generator=generator)
        for i, t in enumerate(times):
            x0 = student_x0(student.model, x, t.expand(n), cond)
            if i + 1 < len(times):
                x = (1 - times[i + 1]) * x0 + times[i + 1] * torch.randn(x0.shape, generator=generator)
        return x0
    finally:
        student.train(was)


@torch.no_grad()
def cache_teacher_samples(teacher, batches, shape: tuple[int, int, int], *, steps: int = 40, guidance: float = 1.0,
                          solver: str = "flow_euler", seed: int = 0) -> dict:
    """The "real" data of LADD: one teacher latent per example of each batch in ``batches`` (dicts of
    conditions), sampled with ``solver`` over ``steps`` intervals at ``guidance``. Returns the
    concatenated conditions plus ``"latent"`` ``[N, *shape]``."""
    parts: dict[str, list] = {}
    g = torch.Generator().manual_seed(seed)
    for batch in batches:
        z = teacher.sample(batch, shape, guidance=guidance, solver=solver, steps=steps, generator=g)
        for key, value in {**batch, "latent": z}.items():
            parts.setdefault(key, []).append(value)
    return {key: torch.cat(values) for key, values in parts.items()}


class LADD:
    """The two players and their losses (see the module docstring).

    Args:
        teacher: the trained ``LatentDiffusion`` (rectified flow); never changed.
        feature_blocks: indices into ``teacher.model.blocks`` whose image tokens feed the heads.
        steps: the student's sampling steps (1-4); ``shift``: their time shift (:func:`student_times`).
        renoise_mean, renoise_scale: logit-normal of the re-noising time ``t'``.
        r1_weight, r1_sigma: approximate R1 penalty (0 disables it).
        head_hidden: width of each discriminator head.

    The teacher must be an MMDiT (:class:`generative.blocks.mmdit.MMDiT`) latent diffusion model.
    ``self.student`` (initialised as a copy of the teacher; its conditioner never drops conditions
    here) and ``self.discriminator`` are the trainable modules.
    """

    def __init__(self, teacher, feature_blocks: Sequence[int], *, steps: int = 4, shift: float = 1.0,
                 renoise_mean: float = 1.0, renoise_scale: float = 1.0, r1_weight: float = 0.0,
                 r1_sigma: float = 0.01, head_hidden: int = 64):
        if not 1 <= steps:
            raise ValueError(f"the student needs at least one step, got {steps}")
        frozen = copy.deepcopy(teacher).eval().requires_grad_(False)
        self.teacher = frozen
        blocks = frozen.model.blocks
        self.features = TeacherFeatures(frozen.model, [blocks[i] for i in feature_blocks])
        self.teacher_conditioner = frozen.conditioner
        self.student = copy.deepcopy(teacher).requires_grad_(True)
        dims = [blocks[i].norm.normalized_shape[0] for i in feature_blocks]
        vector_dim = frozen.model.vector_embed[0].in_features
        self.discriminator = Discriminator(dims, vector_dim, hidden=head_hidden)
        self.steps, self.shift = steps, shift
        self.renoise_mean, self.renoise_scale = renoise_mean, renoise_scale
        self.r1_weight, self.r1_sigma = r1_weight, r1_sigma

    def _noised(self, x0: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(t [N], x_t)``: ``x0`` noised at one of the student's times each."""
        times = student_times(self.steps, self.shift).float().to(x0.device)
        t = times[torch.randint(len(times), (len(x0),), generator=generator, device=x0.device)]
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        tt = t.view(-1, *([1] * (x0.ndim - 1)))
        return t, (1 - tt) * x0 + tt * eps

    def _fake(self, batch: dict, generator) -> tuple[torch.Tensor, dict]:
        """The student's ``x0_hat`` from the real latents of ``batch`` noised at one of its times."""
        t, x_t = self._noised(batch["latent"], generator)
        cond = conditions(self.student.conditioner, batch)
        return student_x0(self.student.model, x_t, t, cond), batch

    def _logits(self, x0: torch.Tensor, batch: dict, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Discriminator logits ``[N, heads]`` of ``x0`` re-noised at ``t`` with ``eps``."""
        cond = conditions(self.teacher_conditioner, batch)
        tt = t.view(-1, *([1] * (x0.ndim - 1)))
        features = self.features((1 - tt) * x0 + tt * eps, t, cond)
        return self.discriminator(features, t, cond.get("vector"))

    def _renoise(self, x0: torch.Tensor, generator):
        t = logit_normal_times(len(x0), self.renoise_mean, self.renoise_scale, generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return t.to(x0.dtype), eps

    def student_loss(self, batch: dict, generator=None) -> torch.Tensor:
        """Per-example ``mean_heads softplus(-D(fake))`` ``[N]``; gradients reach the student only."""
        self.discriminator.requires_grad_(False)
        try:
            fake, batch = self._fake(batch, generator)
            t, eps = self._renoise(fake, generator)
            return F.softplus(-self._logits(fake, batch, t, eps)).mean(1)
        finally:
            self.discriminator.requires_grad_(True)

    def guidance_loss(self, batch: dict, guidance: float, generator=None) -> torch.Tensor:
        """Guidance distillation, a warm start before the adversarial game: per-example mean squared
        difference ``[N]`` between the student's velocity and the frozen teacher's classifier-free
        guided velocity ``v_u + guidance (v_c - v_u)``, at the real latents of ``batch`` noised at
        the student's times. Gradients reach the student only.

        LADD's real data are guided teacher samples, but a student copied from the teacher starts
        as the *unguided* model; at small scale the discriminator alone does not close that gap
        (docs/ladd.md). Regressing onto the guided velocity first is stage one of Meng et al.
        (2023), "On distillation of guided diffusion models"."""
        t, x_t = self._noised(batch["latent"], generator)
        with torch.no_grad():
            teacher = self.teacher.model
            v_c = teacher(x_t, t, conditions(self.teacher_conditioner, batch))
            v_u = teacher(x_t, t, self.teacher_conditioner.unconditional(batch))
            target = v_u + guidance * (v_c - v_u)
        v = self.student.model(x_t, t, conditions(self.student.conditioner, batch))
        return (v - target).pow(2).flatten(1).mean(1)

    def discriminator_loss(self, batch: dict, generator=None) -> tuple[torch.Tensor, dict]:
        """``mean(softplus(-D(real)) + softplus(D(fake)))`` (+ the R1 term); the student is not differentiated.
        ``batch["latent"]`` holds the real latents. Returns ``(loss, parts)`` with the parts as floats."""
        with torch.no_grad():
            fake, batch = self._fake(batch, generator)
        real = batch["latent"]
        t_fake, eps_fake = self._renoise(fake, generator)
        t_real, eps_real = self._renoise(real, generator)
        real_logits = self._logits(real, batch, t_real, eps_real)
        fake_logits = self._logits(fake, batch, t_fake, eps_fake)
        loss_real, loss_fake = F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()
        loss = loss_real + loss_fake
        parts = {"d_real": loss_real.item(), "d_fake": loss_fake.item()}
        if self.r1_weight:
            bumped = real + self.r1_sigma * torch.randn(real.shape, generator=generator, device=real.device, dtype=real.dtype)
            r1 = (self._logits(bumped, batch, t_real, eps_real) - real_logits).pow(2).mean()
            loss = loss + self.r1_weight * r1
            parts["r1"] = r1.item()
        return loss, parts


class DiscriminatorStep(Hook):
    """Trainer hook: after each student step, one discriminator step on a fresh batch (drawn with the
    step's generator, so a resumed run repeats it) with its own Adam; its weights and optimiser state
    live in the checkpoint under ``"discriminator"``; logs ``d_real``, ``d_fake`` (and ``r1``)."""

    name = "discriminator"

    def __init__(self, ladd: LADD, batch_fn, lr: float = 1e-4, betas=(0.0, 0.99)):
        self.ladd, self.batch_fn = ladd, batch_fn
        self.optimizer = torch.optim.Adam(ladd.discriminator.parameters(), lr=lr, betas=betas)
        self.parts: dict = {}

    def after_step(self, trainer, generator) -> None:
        batch = self.batch_fn(trainer.step, generator)
        loss, self.parts = self.ladd.discriminator_loss(batch, generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def log_fields(self, trainer) -> dict:
        return dict(self.parts)

    def state_dict(self) -> dict:
        return {"weights": self.ladd.discriminator.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict, path) -> None:
        self.ladd.discriminator.load_state_dict(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])


def ladd_trainer(ladd: LADD, batch_fn, *, lr: float = 1e-5, discriminator_lr: float = 1e-4, **trainer_options):
    """The engine's :class:`~generative.trainer.Trainer` of the student (Adam at ``lr``) with the
    :class:`DiscriminatorStep` hook; ``batch_fn(step, generator)`` returns dicts with ``"latent"``
    (cached teacher samples) and their conditions. ``trainer_options`` go to the Trainer
    (``checkpoint_path``, ``log_path``, ``progress``, ``ema_decay``, ...)."""
    from .trainer import Trainer

    hook = DiscriminatorStep(ladd, batch_fn, lr=discriminator_lr)
    return Trainer(ladd.student, lambda model, batch, g: ladd.student_loss(batch, g), batch_fn, lr=lr,
                   hooks=[hook, *trainer_options.pop("hooks", ())], **trainer_options)


def guidance_trainer(ladd: LADD, batch_fn, guidance: float, *, lr: float = 1e-4, **trainer_options):
    """The engine's :class:`~generative.trainer.Trainer` of the student on :meth:`LADD.guidance_loss` at
    ``guidance`` (the scale the cached real data were sampled with): the warm start before
    :func:`ladd_trainer`. ``batch_fn`` and ``trainer_options`` as there; with an EMA, copy
    ``trainer.ema`` into ``ladd.student`` before the adversarial phase."""
    from .trainer import Trainer

    return Trainer(ladd.student, lambda model, batch, g: ladd.guidance_loss(batch, guidance, g), batch_fn, lr=lr,
                   **trainer_options)
