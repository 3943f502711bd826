"""A :class:`generative.Trainer` that trains with DP-SGD and accounts for the privacy it spends.

Each step draws a Poisson batch, computes per-example gradients of the loss
averaged over ``noise_draws`` draws, clips them to ``max_grad_norm``, adds Gaussian
noise and takes an Adam step (see :mod:`generative.dp`); the EMA of the weights
is post-processing and as private as the weights. An opacus accountant records
every step, so the spent epsilon is exact for the steps taken, survives a resume
from a checkpoint and is stored in it.

What the guarantee covers: the weights and EMA (and anything computed from them
alone, e.g. samples). The logged training loss, batch size and clipped fraction
are computed from the private batch without noise and are not covered: use them
for monitoring, do not publish them. Noise comes from torch's seeded
pseudo-random generator, as in opacus's default (non-secure) mode.
"""

import torch
from torch.utils._pytree import tree_map

from . import privacy
from .dp import add_noise, clip_and_sum, per_example_gradients, poisson_indices
from .trainer import Hook, Trainer, world

#: Settings a resumed run must share with the checkpoint it resumes.
_RESUME_SETTINGS = ("noise_multiplier", "sample_rate", "delta", "max_grad_norm", "num_examples")


class PrivacyAccounting(Hook):
    """The trainer hook that accounts for DP-SGD: one accountant step per optimiser step, the epsilon
    spent (and the last batch's size and clipped fraction) in each log record, the accountant's
    history in the checkpoint (key ``privacy``, with the settings, which a resume must share)."""

    name = "privacy"

    def __init__(self, trainer, mechanism: str):
        self.trainer = trainer
        self.accountant = privacy.make_accountant(mechanism)

    def after_step(self, trainer, generator) -> None:
        self.accountant.step(noise_multiplier=trainer.noise_multiplier, sample_rate=trainer.sample_rate)

    def log_fields(self, trainer) -> dict:
        return {"epsilon": trainer.epsilon(), **trainer.last_batch}

    def state_dict(self) -> dict:
        return {**self.trainer.privacy_report(), "accountant_state": self.accountant.state_dict()}

    def load_state_dict(self, state: dict, path) -> None:
        for key in _RESUME_SETTINGS:
            if state[key] != getattr(self.trainer, key):
                raise ValueError(f"checkpoint {path} was trained with {key} = {state[key]}, this "
                                 f"trainer has {getattr(self.trainer, key)}: use the same privacy settings")
        self.accountant.load_state_dict(state["accountant_state"])


class DPTrainer(Trainer):
    """Differentially private training of ``model`` with an EMA ``self.ema`` (DPDM recipe).

    Args:
        model: ``nn.Module`` optimised in place; no BatchNorm (per-example losses
            must be independent).
        loss_fn: ``loss_fn(model, batch, generator) -> [B]`` per-example losses, as for
            :class:`generative.Trainer`, with the constraints in :mod:`generative.dp`.
        examples_fn: ``examples_fn(indices) -> batch``: the training examples at
            ``indices`` (int64 CPU tensor ``[b]``, values in ``[0, num_examples)``),
            a tensor or tuple/list/dict of tensors with leading dimension ``b``
            (moved to the model's device here).
        num_examples: ``N``, the size of the private data set.
        sample_rate: ``q``, each example's probability of joining a step's batch
            (expected batch size ``q N``).
        delta: target delta, below ``1 / N``.
        target_epsilon: privacy budget. With ``steps`` and no ``noise_multiplier`` the
            noise is calibrated so that ``steps`` steps spend at most this epsilon;
            :meth:`fit` refuses to train past the budget in any case.
        steps: number of steps the budget must cover (for calibration; see
            :func:`generative.privacy.steps_for_epochs`).
        noise_multiplier: noise standard deviation over ``max_grad_norm``; give it
            instead of ``target_epsilon`` and ``steps`` to set the noise directly.
        max_grad_norm: per-example clipping norm ``C``.
        noise_draws: ``K``, loss draws averaged per example before clipping.
        physical_batch: examples per ``vmap`` call (memory only; does not change the result
            beyond float rounding, but does change which random numbers each example gets).
        accountant: ``"rdp"`` or ``"prv"`` (:mod:`generative.privacy`).
        lr, ema_decay, seed, checkpoint_path, checkpoint_every, log_path, log_every,
            progress: as for :class:`generative.Trainer`; log records add ``epsilon``
            (spent so far), ``batch_size`` and ``clipped_fraction`` of the last step,
            and ``grad_norm`` is the norm of the noisy mean gradient.

    Raises:
        ValueError: on invalid settings or a target that cannot be met, before any training.
    """

    def __init__(self, model, loss_fn, examples_fn, num_examples, *, sample_rate, delta,
                 target_epsilon=None, steps=None, noise_multiplier=None, max_grad_norm=1.0,
                 noise_draws=1, physical_batch=256, accountant="rdp", lr=1e-3, ema_decay=0.999,
                 seed=0, checkpoint_path=None, checkpoint_every=1000, log_path=None,
                 log_every=100, progress=False):
        privacy.check_settings(sample_rate, 1 if steps is None else steps, delta, accountant)
        if world()[1] > 1:
            raise ValueError("differentially private training runs in one process: its noise is added once "
                             "to the sum of the clipped per-example gradients; start it without torchrun")
        if num_examples < 1:
            raise ValueError(f"num_examples must be >= 1, got {num_examples}")
        if delta >= 1 / num_examples:
            raise ValueError(f"delta {delta} is not below 1 / N = {1 / num_examples:.3g}: such a "
                             "delta allows publishing some training examples outright; lower delta")
        if max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive, got {max_grad_norm}")
        if noise_draws < 1 or physical_batch < 1:
            raise ValueError(f"noise_draws and physical_batch must be >= 1, got {noise_draws} "
                             f"and {physical_batch}")
        if noise_multiplier is None:
            if target_epsilon is None or steps is None:
                raise ValueError("give either noise_multiplier, or target_epsilon and steps to "
                                 "calibrate it")
            noise_multiplier = privacy.noise_multiplier(target_epsilon, sample_rate, steps, delta,
                                                        accountant)
        elif noise_multiplier <= 0:
            raise ValueError(f"noise_multiplier must be positive, got {noise_multiplier}")
        if target_epsilon is not None and steps is not None:
            spent = privacy.epsilon(noise_multiplier, sample_rate, steps, delta, accountant)
            if spent > target_epsilon:
                raise ValueError(f"noise multiplier {noise_multiplier} spends epsilon {spent:.4g} in "
                                 f"{steps} steps, above the target {target_epsilon}: raise the "
                                 "noise multiplier or lower the steps")
        super().__init__(model, loss_fn, None, lr=lr, ema_decay=ema_decay, grad_clip=None,
                         seed=seed, checkpoint_path=checkpoint_path,
                         checkpoint_every=checkpoint_every, log_path=log_path,
                         log_every=log_every, progress=progress)
        self.examples_fn, self.num_examples = examples_fn, num_examples
        self.sample_rate, self.delta, self.target_epsilon = sample_rate, delta, target_epsilon
        self.noise_multiplier, self.max_grad_norm = float(noise_multiplier), max_grad_norm
        self.noise_draws, self.physical_batch = noise_draws, physical_batch
        self.privacy = PrivacyAccounting(self, accountant)
        self.hooks.insert(0, self.privacy)
        self.last_batch = {"batch_size": 0, "clipped_fraction": 0.0}

    @property
    def accountant(self):
        """The opacus accountant holding the privacy history of the steps taken."""
        return self.privacy.accountant

    def epsilon(self):
        """Epsilon spent so far (at ``self.delta``) by the steps taken, 0 before the first."""
        return float(self.accountant.get_epsilon(delta=self.delta)) if self.accountant.history else 0.0

    def projected_epsilon(self, steps):
        """Epsilon that training until ``self.step == steps`` would spend in total."""
        acc = privacy.make_accountant(self.accountant.mechanism(), self.accountant.history)
        for _ in range(self.step, steps):
            acc.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return float(acc.get_epsilon(delta=self.delta)) if acc.history else 0.0

    def privacy_report(self):
        """JSON-serialisable summary of the guarantee: epsilon spent, delta and the mechanism's settings."""
        return {"epsilon": self.epsilon(), "delta": self.delta, "steps": self.step,
                "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate,
                "max_grad_norm": self.max_grad_norm, "noise_draws": self.noise_draws,
                "num_examples": self.num_examples, "accountant": self.accountant.mechanism(),
                "target_epsilon": self.target_epsilon}

    def fit(self, steps):
        """Train until ``self.step == steps``; raises ``ValueError`` first if that exceeds ``target_epsilon``."""
        if self.target_epsilon is not None and steps > self.step:
            projected = self.projected_epsilon(steps)
            if projected > self.target_epsilon:
                raise ValueError(f"training to step {steps} would spend epsilon {projected:.4g}, "
                                 f"above the budget {self.target_epsilon}: train fewer steps or "
                                 "start again with more noise")
        return super().fit(steps)

    def train_step(self):
        """One DP-SGD step; returns ``(mean loss of the batch, norm of the noisy mean gradient)``."""
        g = self._generator()
        indices = poisson_indices(self.num_examples, self.sample_rate, g, self.device).cpu()
        params = {k: p for k, p in self.model.named_parameters() if p.requires_grad}
        summed = {k: torch.zeros_like(p) for k, p in params.items()}
        loss_sum, clipped = 0.0, 0
        for chunk in indices.split(self.physical_batch) if len(indices) else ():
            batch = tree_map(lambda t: t.to(self.device), self.examples_fn(chunk))
            grads, losses = per_example_gradients(self.model, self.loss_fn, batch, g, self.noise_draws)
            part, norms = clip_and_sum(grads, self.max_grad_norm)
            for k in summed:
                summed[k] += part[k]
            loss_sum += losses.sum().item()
            clipped += int((norms > self.max_grad_norm).sum())
        noisy = add_noise(summed, self.noise_multiplier, self.max_grad_norm,
                          self.sample_rate * self.num_examples, g)
        for k, p in params.items():
            p.grad = noisy[k]
        self.optimizer.step()
        b = len(indices)
        self.last_batch = {"batch_size": b, "clipped_fraction": clipped / b if b else 0.0}
        self.finish_step(g)
        grad_norm = torch.sqrt(sum(v.double().pow(2).sum() for v in noisy.values()))
        return (loss_sum / b if b else float("nan")), grad_norm.item()
