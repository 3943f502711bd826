"""A small training loop: Adam, EMA, gradient clipping, atomic checkpoints, JSON logs, hooks.

The trainer knows nothing about diffusion: it minimises ``loss_fn(model, batch,
generator) -> [N] or scalar`` over batches from ``batch_fn(step, generator)``.
Each step gets its own ``torch.Generator`` seeded from ``(seed, step)``, so a run
resumed from a checkpoint repeats the uninterrupted run exactly (on CPU).

A :class:`Hook` extends the loop without subclassing it: after every optimiser
step (before the EMA update) its ``after_step(trainer, generator)`` runs (a
second player's update with its own optimiser, quantised weights written into
the model, a privacy accountant's step); its ``log_fields(trainer)`` join each
log record; its ``state_dict()`` is saved in the checkpoint under its ``name``
and given back to ``load_state_dict(state, path)`` on resume, so a resumed run
stays identical.

Several processes started by ``torchrun`` (a process group already initialised by the
caller) train one model with DistributedDataParallel: every process draws the same
global batch from the step's generator and evaluates the loss on its contiguous share of
the rows (:func:`shard_rows`), weighted so that the averaged gradient is the gradient of
the global batch mean; the loss's own random draws (noise levels, noise) come from a
generator of the step and the share's first row. Only rank 0 writes the checkpoint and
the log and shows progress; the checkpoint does not depend on the number of processes,
so a run resumes with any number. Each process count draws its own loss noise: runs with
1 and 2 processes train equally well but do not end with identical weights.
"""

import copy
import json
import os
import tempfile
import time

import torch
import torch.distributed as dist
from tqdm import tqdm


def world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_rows(batch, rank: int, world: int):
    """``(rows of batch this rank owns, their slice, number of rows)``: a contiguous share of
    the leading dimension of a tensor, or of every tensor in a tuple, list or dict (same
    length). Shares differ in size by at most one row."""
    if isinstance(batch, torch.Tensor):
        n = len(batch)
    elif isinstance(batch, dict):
        n = len(next(iter(batch.values())))
    else:
        n = len(batch[0])
    start, stop = rank * n // world, (rank + 1) * n // world

    def take(x):
        return x[start:stop] if isinstance(x, torch.Tensor) else x

    rows = slice(start, stop)
    if isinstance(batch, torch.Tensor):
        return take(batch), rows, n
    if isinstance(batch, dict):
        return {k: take(v) for k, v in batch.items()}, rows, n
    return type(batch)(take(x) for x in batch), rows, n


class Hook:
    """Base of trainer hooks; every method is optional (the defaults do nothing)."""

    #: Key of this hook's state in the checkpoint.
    name = "hook"

    def after_step(self, trainer, generator) -> None:
        """Runs after the optimiser step and before the EMA update; ``generator`` is the step's own."""

    def log_fields(self, trainer) -> dict:
        """Extra entries of the log record written at this step."""
        return {}

    def state_dict(self) -> dict | None:
        """What a resumed run needs (tensors, numbers, lists, dicts), or None."""
        return None

    def load_state_dict(self, state: dict, path) -> None:
        """Restore :meth:`state_dict` read from checkpoint ``path``."""


class Trainer:
    """Trains ``model`` and keeps an exponential moving average ``self.ema`` of it.

    Args:
        model: ``nn.Module`` optimised in place.
        loss_fn: ``loss_fn(model, batch, generator)``; the mean of its output is minimised.
        batch_fn: ``batch_fn(step, generator) -> batch`` (any object ``loss_fn`` accepts).
        lr: Adam learning rate. ema_decay: EMA factor per step (0 copies the model).
        grad_clip: max global gradient norm (``None`` disables clipping).
        seed: base seed of the per-step generators.
        checkpoint_path: file written every ``checkpoint_every`` steps and at the end of
            :meth:`fit` (atomically: temp file + ``os.replace``); ``None`` disables.
        log_path: JSON-lines file; one line ``{"step", "loss", "grad_norm", "lr", "seconds"}``
            every ``log_every`` steps (loss averaged over those steps).
        progress: show a tqdm progress bar.
        bf16: run the forward pass under bfloat16 autocast on the model's device.
        optimizer: ``optimizer(model) -> torch.optim.Optimizer`` for other optimisers or parameter
            groups (e.g. per-group learning rates); default Adam over all parameters at ``lr``.
        hooks: :class:`Hook` objects, run in order (names must differ).
    """

    def __init__(self, model, loss_fn, batch_fn, *, lr=1e-3, ema_decay=0.999, grad_clip=1.0,
                 seed=0, checkpoint_path=None, checkpoint_every=1000, log_path=None,
                 log_every=100, progress=False, bf16=False, optimizer=None, hooks=()):
        self.model = model
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.loss_fn, self.batch_fn = loss_fn, batch_fn
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr) if optimizer is None else optimizer(model)
        self.hooks = list(hooks)
        names = [hook.name for hook in self.hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"hook names must differ, got {names}")
        self.ema_decay, self.grad_clip, self.seed = ema_decay, grad_clip, seed
        self.checkpoint_path, self.checkpoint_every = checkpoint_path, checkpoint_every
        self.log_path, self.log_every = log_path, log_every
        self.progress, self.bf16 = progress, bf16
        self.step = 0
        self.device = next(model.parameters()).device
        self.rank, self.world = world()
        self.network = model
        if self.world > 1:
            ids = None if self.device.type == "cpu" else [self.device]
            self.network = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.is_main = self.rank == 0

    def _generator(self, offset=0):
        return torch.Generator(self.device).manual_seed(self.seed * 1_000_003 + self.step + offset)

    def train_step(self):
        """One optimisation step; returns ``(loss, grad_norm)`` as floats (the loss of the global batch)."""
        g = self._generator()
        batch = self.batch_fn(self.step, g)
        weight = 1.0
        if self.world > 1:  # this rank's rows; its loss noise from the step and its first row
            batch, rows, n = shard_rows(batch, self.rank, self.world)
            g = self._generator(offset=(rows.start + 1) * 7_919_009)
            weight = (rows.stop - rows.start) * self.world / n
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.loss_fn(self.network, batch, g).float().mean() * weight
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:  # the global batch mean, for the log: DDP averaged the gradients already
            loss = loss.detach().clone()
            dist.all_reduce(loss)
            loss /= self.world
        max_norm = float("inf") if self.grad_clip is None else self.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.optimizer.step()
        self.finish_step(g)
        return loss.item(), grad_norm.item()

    def finish_step(self, generator):
        """After the optimiser step: the hooks, the EMA update, and the step count."""
        for hook in self.hooks:
            hook.after_step(self, generator)
        self.update_ema()
        self.step += 1

    @torch.no_grad()
    def update_ema(self):
        """Move the EMA weights towards the model's by ``1 - ema_decay``; copy its buffers."""
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.lerp_(p, 1 - self.ema_decay)
        for e, b in zip(self.ema.buffers(), self.model.buffers()):
            e.copy_(b)

    def fit(self, steps):
        """Train until ``self.step == steps``; returns the log records written during this call."""
        records, losses, start = [], [], time.time()
        bar = tqdm(total=steps, initial=self.step, disable=not (self.progress and self.is_main), desc="train")
        while self.step < steps:
            loss, grad_norm = self.train_step()
            losses.append(loss)
            bar.update(1)
            if self.step % self.log_every == 0:
                records.append(self._log(sum(losses) / len(losses), grad_norm, start))
                bar.set_postfix(loss=f"{records[-1]['loss']:.4f}")
                losses = []
            if self.checkpoint_path and self.step % self.checkpoint_every == 0:
                self.save(self.checkpoint_path)
        bar.close()
        if self.checkpoint_path:
            self.save(self.checkpoint_path)
        return records

    def _log(self, loss, grad_norm, start):
        record = {"step": self.step, "loss": loss, "grad_norm": grad_norm}
        for hook in self.hooks:
            record.update(hook.log_fields(self))
        record.update(lr=self.optimizer.param_groups[0]["lr"], seconds=time.time() - start)
        self._write_log(record)
        return record

    def _write_log(self, record):
        """Append ``record`` as one JSON line to ``log_path`` (never through a symbolic link; rank 0 only)."""
        if self.log_path and self.is_main:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "a") as f:
                f.write(json.dumps(record) + "\n")

    def _trim_log(self):
        """Drop log lines of steps after the checkpoint just loaded: a resumed run logs them
        again, so the log holds each step once."""
        if not self.log_path or not os.path.isfile(self.log_path) or os.path.islink(self.log_path):
            return
        with open(self.log_path) as f:
            lines = f.readlines()
        kept = []
        for line in lines:
            try:
                if json.loads(line)["step"] <= self.step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the kill
        if len(kept) != len(lines):
            folder = os.path.dirname(os.path.abspath(self.log_path))
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".log-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.writelines(kept)
            os.replace(tmp, self.log_path)

    def state_dict(self):
        state = {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "step": self.step}
        for hook in self.hooks:
            hook_state = hook.state_dict()
            if hook_state is not None:
                state[hook.name] = hook_state
        return state

    def save(self, path):
        """Write a checkpoint atomically (temp file in the same folder, then ``os.replace``); with
        several processes rank 0 writes it and the others wait until it is on disk."""
        if not self.is_main:
            dist.barrier()
            return
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ckpt-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.state_dict(), f)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        if self.world > 1:
            dist.barrier()

    def load(self, path):
        """Resume from a checkpoint written by :meth:`save` (loaded with ``weights_only=True``);
        log lines written after that checkpoint are dropped (the resumed run writes them again)."""
        self._load_state(torch.load(path, map_location=self.device, weights_only=True), path)
        if self.is_main:
            self._trim_log()

    def _load_state(self, state, path):
        """Restore the trainer and its hooks from checkpoint ``state`` (read from ``path``); a hook whose
        state the checkpoint lacks is a ``ValueError``."""
        for hook in self.hooks:
            if hook.state_dict() is not None:
                if hook.name not in state:
                    raise ValueError(f"checkpoint {path} has no state of the {hook.name!r} hook: it was written by another set-up")
                hook.load_state_dict(state[hook.name], path)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
