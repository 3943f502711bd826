"""A diffusion prior over the particle latents of a VAE run (Kreis et al. 2022).

A VAE's N(0, I) prior does not follow the distribution of the particle latents
``z_mu``; a diffusion model trained on those latents does. The prior

* standardises the latents per dimension, ``u = (z - mean) / std``, so that the
  EDM preconditioning can use ``sigma_data = 1``;
* trains the engine's :class:`generative.ResidualMLP` with one of three
  formulations (:mod:`cryodiff.prior_formulations`: EDM by default, rectified
  flow, critically damped Langevin) with the engine's
  :class:`generative.Trainer` (Adam, EMA, gradient clipping, atomic
  checkpoints, exact resume, JSON-lines log);
* samples with the engine's solvers and maps the result back to the original
  latent units ``z = mean + std * u``;
* gives ``log p(z)`` in the original units through the PF-ODE likelihood of
  the engine plus the log-determinant of the standardisation,
  ``log p(z) = log p_u(u) - sum_d log std_d``.

A prior directory (``train_prior(..., out_dir)``) holds

    prior.json      format, zdim, number of latents, mean and std (original
                    units), network and training settings, steps done
    prior.pt        EMA weights of the denoiser (``torch.load(weights_only=True)``)
    checkpoint.pt   trainer state (model, EMA, optimiser, step) for --resume
    log.jsonl       one line per ``log_every`` steps: step, loss, grad_norm, lr, seconds

Default training length (:func:`default_steps`) grows with the square root of
zdim and the logarithm of the number of latents N::

    steps = clip(2000 * sqrt(zdim) * (1 + log10(N / 1000)), 4000, 40000)

so 1k latents of zdim 8 train for 5,656 steps and 1M latents of zdim 64 for
40,000 (each step one batch of 512; on a CPU core a step of the default
network takes about 2-6 ms). The network widens with zdim (:func:`default_network`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cryodiff import prior_formulations as formulations
from generative.likelihood import log_likelihood
from generative.schedules import karras_sigmas
from generative.dp_trainer import DPTrainer
from generative.trainer import Trainer
from recon.errors import InputError
from recon.io.safe_read import load_npy, load_weights, open_h5, read_h5_array, read_json
from recon.files import atomic_target

log = logging.getLogger("cryodiff.prior")

SETTINGS, WEIGHTS, CHECKPOINT, LOG = "prior.json", "prior.pt", "checkpoint.pt", "log.jsonl"
FORMAT = "cryodiff-prior"
SIGMA_MIN, SIGMA_MAX = formulations.SIGMA_MIN, formulations.SIGMA_MAX
MIN_LATENTS = 10
#: Latents drawn at once by :meth:`Prior.sample` (about 200 MB of activations for the default network).
SAMPLE_CHUNK = 65536


@dataclass(frozen=True)
class PriorSettings:
    """Network and training settings of a prior (all stored in ``prior.json``).

    ``hidden``/``depth``/``embed_dim``: the ResidualMLP; ``steps``: optimiser
    steps; ``batch_size``: latents per step (drawn with replacement);
    ``lr``: Adam learning rate; ``ema_decay``: EMA factor per step;
    ``p_mean``/``p_std``: EDM log-normal training noise levels (standardised
    units); ``seed``: network initialisation and per-step batches and noise;
    ``formulation``: ``edm``, ``flow`` or ``cld`` (:mod:`cryodiff.prior_formulations`).
    ``dp_epsilon``/``dp_delta``: train with differential privacy for the
    particles (DP-SGD, :class:`generative.dp_trainer.DPTrainer`: Poisson batches
    of expected size ``batch_size``, per-latent clipping to norm 1, noise
    calibrated so that ``steps`` steps spend at most ``(dp_epsilon, dp_delta)``
    by the RDP accountant, ``dp_noise_draws`` loss draws per latent); ``None``
    trains without privacy. ``conditions``: names of the conditions a
    conditional prior knows (``None``: unconditional); each training latent's
    condition is dropped (replaced by the null condition) with probability
    ``condition_dropout``, so the same network is also the prior of all the
    latents together (classifier-free guidance's training).
    """

    hidden: int
    depth: int
    embed_dim: int
    steps: int
    batch_size: int
    lr: float
    ema_decay: float
    p_mean: float
    p_std: float
    seed: int
    formulation: str = "edm"
    dp_epsilon: float | None = None
    dp_delta: float | None = None
    dp_noise_draws: int = 4
    conditions: list | None = None
    condition_dropout: float = 0.1

    def __post_init__(self):
        for name, high in (("hidden", 8192), ("depth", 64), ("embed_dim", 4096), ("dp_noise_draws", 1024)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ValueError(f"{name} = {value!r} is not a whole number from 1 to {high}")


def default_steps(n: int, zdim: int) -> int:
    """Optimiser steps for ``n`` latents of dimension ``zdim`` (see the module docstring)."""
    steps = 2000 * math.sqrt(zdim) * (1 + math.log10(max(n, 1000) / 1000))
    return int(min(max(steps, 4000), 40000))


def default_network(zdim: int) -> tuple[int, int, int]:
    """``(hidden, depth, embed_dim)``: 128 wide up to zdim 8, 256 up to 32, 512 beyond; 4 blocks."""
    hidden = 128 if zdim <= 8 else 256 if zdim <= 32 else 512
    return hidden, 4, 64


def default_settings(n: int, zdim: int, *, steps: int | None = None, batch_size: int = 512,
                     lr: float = 1e-3, seed: int = 0, formulation: str = "edm",
                     dp_epsilon: float | None = None, dp_delta: float | None = None,
                     conditions: list | None = None) -> PriorSettings:
    """Settings for ``n`` latents of dimension ``zdim``; the EMA averages the last ~10% of the steps.
    With ``dp_epsilon``, ``dp_delta`` defaults to ``0.1 / n`` (below 1 / n, as DP requires)."""
    steps = default_steps(n, zdim) if steps is None else steps
    hidden, depth, embed_dim = default_network(zdim)
    ema_decay = min(max(1 - 10 / steps, 0.99), 0.9999)
    if dp_epsilon is not None and dp_delta is None:
        dp_delta = 0.1 / n
    return PriorSettings(hidden, depth, embed_dim, steps, batch_size, lr, ema_decay, -1.2, 1.2, seed, formulation,
                         dp_epsilon, dp_delta, conditions=list(conditions) if conditions else None)


# ----------------------------------------------------------------------------- reading latents

def _read_h5(path: Path) -> np.ndarray:
    with open_h5(path, "the latents file") as h5:
        if "z_mu" not in h5:
            raise InputError(path, f"no z_mu dataset (found: {', '.join(sorted(h5)) or 'nothing'})", "give an .h5 with the latents in z_mu, e.g. a cryodiff run's latents.h5")
        return read_h5_array(h5, "z_mu", path, "the latents file")


def _read_npy(path: Path) -> np.ndarray:
    return load_npy(path, "the latents")


def _read_pkl(path: Path) -> np.ndarray:
    from recon.io.cryodrgn_run import load_pickles_safely

    values = load_pickles_safely(path)
    if not values:
        raise InputError(path, "the pickle is empty", "give cryoDRGN's z.N.pkl")
    return values[0]


def _check_latents(path: Path, z) -> np.ndarray:
    """``z`` as float32 ``[N, zdim]`` (a 1-D array is zdim 1), or an InputError naming ``path``."""
    try:
        z = np.asarray(z, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(path, f"the latents are not a numeric array ({type(z).__name__})", "give an [N, zdim] array of numbers") from None
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or z.shape[1] < 1:
        raise InputError(path, f"the latents have shape {z.shape}", "give an [N, zdim] array, one latent per row")
    if len(z) < MIN_LATENTS:
        raise InputError(path, f"only {len(z)} latents", f"give at least {MIN_LATENTS} (a prior needs many particles)")
    if not np.isfinite(z).all():
        raise InputError(path, "the latents contain NaN or infinity", "remove the bad rows or retrain the VAE")
    return z


def read_latents(source: str | Path) -> np.ndarray:
    """Particle latents ``[N, zdim]`` (float32, original units) from ``source``.

    ``source`` is a cryodiff run directory (its ``latents.h5``), an ``.h5``
    with a ``z_mu`` dataset (e.g. ``latents.h5``), a cryoDRGN ``z.N.pkl``
    (read with the numpy-only unpickler; its first array is ``z_mu``) or an
    ``.npy`` array.
    """
    path = Path(source)
    if path.is_dir():
        if not (path / "latents.h5").is_file():
            raise InputError(path, "no latents.h5 in this directory", "give a finished cryodiff run (train-vae or import-cryodrgn), or a latents file")
        path = path / "latents.h5"
    elif not path.is_file():
        raise InputError(path, "file not found", "check the path of the latents")
    readers = {".h5": _read_h5, ".hdf5": _read_h5, ".npy": _read_npy, ".pkl": _read_pkl}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise InputError(path, f"unknown latents format {path.suffix!r}", "give a run directory, latents.h5, cryoDRGN z.pkl or .npy")
    return _check_latents(path, reader(path))


# ----------------------------------------------------------------------------- the model

def engine_formulation(settings: PriorSettings):
    """The engine's formulation object of ``settings`` (:func:`cryodiff.prior_formulations.formulation`)."""
    return formulations.formulation(settings.formulation, settings.p_mean, settings.p_std)


def build_network(zdim: int, settings: PriorSettings) -> nn.Module:
    """The prior's network for ``settings.formulation`` in standardised units (sigma_data 1)."""
    return formulations.build_network(engine_formulation(settings), zdim, settings.hidden, settings.depth, settings.embed_dim,
                                      classes=len(settings.conditions or []))


def standardisation(z: np.ndarray, path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension ``(mean [zdim], std [zdim])`` of ``z [N, zdim]`` (float64); refuses constant dimensions of ``path``."""
    z = np.asarray(z, dtype=np.float64)
    mean, std = z.mean(0), z.std(0)
    flat = np.flatnonzero(~(std > 1e-8 * np.maximum(1.0, np.abs(mean))))
    if len(flat):
        raise InputError(path, f"latent dimension(s) {flat.tolist()} are constant", "drop those columns; a prior needs spread in every dimension")
    return mean, std


@dataclass
class Prior:
    """A trained diffusion prior.

    ``model`` is the trained network (EMA weights, eval mode, CPU) of
    ``settings.formulation``; for ``edm`` and ``flow`` priors
    ``denoiser(u [N, zdim], sigma [N]) -> [N, zdim]`` is its EDM-convention
    denoiser (``None`` for ``cld``). Both work in standardised units
    ``u = (z - mean) / std``; ``mean`` and ``std`` (``[zdim]``, float64) are in
    the original latent units.
    """

    model: nn.Module
    mean: np.ndarray
    std: np.ndarray
    settings: PriorSettings
    info: dict

    @property
    def zdim(self) -> int:
        return len(self.mean)

    @property
    def formulation(self) -> str:
        return self.settings.formulation

    @property
    def engine(self):
        """The engine's formulation object (:mod:`generative.formulations`) this prior was trained with."""
        return engine_formulation(self.settings)

    @property
    def denoiser(self):
        return self.engine.denoiser(self.model)

    @property
    def solvers(self) -> dict[str, int]:
        """Solvers that sample this prior, with their default steps."""
        return self.engine.solvers

    def require_denoiser(self, what: str):
        """The denoiser, or an InputError saying that ``what`` needs an ``edm`` or ``flow`` prior."""
        if self.denoiser is None:
            raise InputError(self.info.get("path", "prior"), f"{what} needs the probability-flow ODE of an edm or flow prior, "
                             f"and this prior is {self.formulation}", "train one with cryodiff train-prior --formulation edm")
        return self.denoiser

    def standardise(self, z) -> torch.Tensor:
        """``(z - mean) / std`` as a float32 tensor ``[N, zdim]``."""
        z = np.asarray(z, dtype=np.float64).reshape(-1, self.zdim)
        return torch.from_numpy((z - self.mean) / self.std).float()

    def destandardise(self, u: torch.Tensor) -> np.ndarray:
        """``mean + std * u`` as float32 ``[N, zdim]`` in the original units."""
        return (self.mean + self.std * u.double().numpy()).astype(np.float32)

    @property
    def conditions(self) -> list[str]:
        """Names of the conditions of a conditional prior (empty for an unconditional one)."""
        return list(self.settings.conditions or [])

    def cond(self, condition: str | None) -> dict | None:
        """The engine's ``cond`` for ``condition`` (a name in :attr:`conditions`; ``None``: all latents together)."""
        if condition is None:
            return None
        if condition not in self.conditions:
            known = ", ".join(self.conditions) or "none: the prior is unconditional (train-prior --condition)"
            raise InputError("--condition", f"{condition!r} is not a condition of this prior (conditions: {known})",
                             "name one of the prior's conditions")
        return {"class": torch.tensor(self.conditions.index(condition))}

    def resolve(self, solver: str | None, steps: int | None) -> tuple[str, int]:
        """The solver and steps :meth:`sample` uses for ``solver``/``steps`` (``None``: the defaults); an
        InputError for a solver this prior's formulation cannot sample with."""
        try:
            return self.engine.resolve(solver, steps)
        except ValueError as err:
            raise InputError("--solver/--steps", str(err), "see cryodiff sample --help") from None

    def sample(self, n: int, solver: str | None = None, steps: int | None = None, seed: int = 0,
               progress=None, condition: str | None = None) -> np.ndarray:
        """``n`` latents ``[n, zdim]`` (float32, original units).

        ``solver`` is one of :attr:`solvers` (default: the first, dpmpp_2m for
        edm, flow_heun for flow, cld_sscs for cld; the formulation's short names
        "dpmpp", "sscs", "em" and "euler_maruyama" (CLD's) are accepted); ``steps``
        grid intervals, default per solver (grids and start states of the engine's
        formulation, :meth:`generative.formulations.Formulation.draw`). The same
        seed gives the same samples. Latents are drawn :data:`SAMPLE_CHUNK` at a time
        from one generator, so memory stays bounded for any ``n``; ``progress(m)``
        is called after each chunk of ``m``. ``condition`` samples a conditional
        prior's condition (:meth:`cond`).
        """
        cond = self.cond(condition)
        solver, steps = self.resolve(solver, steps)
        generator = torch.Generator().manual_seed(seed)
        parts = []
        for start in range(0, n, SAMPLE_CHUNK):
            size = min(SAMPLE_CHUNK, n - start)
            parts.append(self.destandardise(self.engine.draw(self.model, size, self.zdim, solver, steps, generator, cond=cond)))
            if progress is not None:
                progress(size)
        return np.concatenate(parts) if parts else np.zeros((0, self.zdim), np.float32)

    def interpolate(self, z_a, z_b, n: int, steps: int = 64) -> np.ndarray:
        """``n`` latents ``[n, zdim]`` from ``z_a`` to ``z_b`` (original units) by slerp in the PF-ODE's
        noise (:func:`cryodiff.interpolation.pf_ode_interpolation`, Heun with ``steps`` intervals each way)."""
        from cryodiff.interpolation import pf_ode_interpolation

        return pf_ode_interpolation(self, z_a, z_b, n, steps=steps)

    def gaussian(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` draws of the VAE's own prior N(0, I) in the original latent units, ``[n, zdim]`` float32."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, self.zdim)).astype(np.float32)

    def log_prob(self, z, steps: int = 64, hutchinson_probes: int | None = None, seed: int = 0,
                 batch_size: int = 4096, condition: str | None = None) -> np.ndarray:
        """``log p(z)`` in nats (original units), ``[N]`` float64, for ``z [N, zdim]``.

        The PF-ODE likelihood of the engine (Heun, ``steps`` intervals of the
        Karras grid 0.002..80, exact divergence unless ``hutchinson_probes``)
        in standardised units, minus ``sum log std``. It is the density of the
        data smoothed by sigma 0.002 standardised units. The Heun error is
        second order and biases ``log p`` upwards: on a 4-D three-component
        mixture the mean over points is off by +0.95 nats at 16 steps, +0.21
        at 32 and about +0.02 at 64 (docs/prior.md). ``condition``: the density of
        a conditional prior's condition (:meth:`cond`).
        """
        denoiser, cond = self.require_denoiser("a log-likelihood"), self.cond(condition)
        if cond is not None:
            unconditional = denoiser

            def denoiser(x, sigma):
                return unconditional(x, sigma, cond)
        sigmas = karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX).flip(0)[1:].float()
        u = self.standardise(z)
        g = torch.Generator().manual_seed(seed)
        parts = [log_likelihood(denoiser, chunk, sigmas, hutchinson_probes, g).double()
                 for chunk in u.split(batch_size)]
        return torch.cat(parts).numpy() - np.log(self.std).sum()


def _write_json(path: Path, record: dict) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


def _record(zdim: int, n: int, mean, std, settings: PriorSettings, source: str | None, steps_done: int) -> dict:
    return {"format": FORMAT, "version": 1, "zdim": zdim, "n_latents": n, "mean": [float(m) for m in mean],
            "std": [float(s) for s in std], "settings": asdict(settings), "source": source, "steps_done": steps_done}


def _check_resume(out: Path, record: dict) -> None:
    """Refuse to resume a prior trained on other latents or with another network/training setup."""
    old = _read_settings(out / SETTINGS)
    try:
        same_data = old["zdim"] == record["zdim"] and old["n_latents"] == record["n_latents"] and \
            np.allclose(old["mean"], record["mean"]) and np.allclose(old["std"], record["std"])
        previous = asdict(PriorSettings(**old["settings"]))  # fills settings added since (e.g. formulation)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(out / SETTINGS, f"the prior's settings are incomplete or foreign ({type(err).__name__}: {err})",
                         "train a new prior in another folder") from None
    if not same_data:
        raise InputError(out, "the latents differ from those the prior was trained on", "resume with the original latents, or train a new prior")
    private = record["settings"]["dp_epsilon"] is not None  # its noise was calibrated for the planned steps
    for key, value in record["settings"].items():
        if (private or key not in ("steps", "ema_decay")) and previous[key] != value:
            raise InputError(out, f"setting {key} differs from the prior being resumed ({previous[key]} != {value})", "resume with the original settings")


def train_prior(latents, out_dir: str | Path, *, steps: int | None = None, batch_size: int = 512, lr: float = 1e-3,
                seed: int = 0, formulation: str = "edm", dp_epsilon: float | None = None,
                dp_delta: float | None = None, resume: bool = False, source: str | None = None, progress: bool = False,
                log_every: int = 100, checkpoint_every: int = 1000, labels=None, conditions: list | None = None) -> Prior:
    """Train (or resume) a diffusion prior on ``latents [N, zdim]`` (original units) into ``out_dir``.

    ``steps`` defaults to :func:`default_steps`; with ``resume`` the trainer
    state in ``out_dir/checkpoint.pt`` is loaded and training continues to
    ``steps`` (a resumed run reaches the weights of an uninterrupted one).
    ``source`` is recorded in ``prior.json``; ``formulation`` is ``edm``,
    ``flow`` or ``cld``; ``dp_epsilon`` (and ``dp_delta``) train with
    differential privacy (:class:`PriorSettings`), and ``prior.json`` then
    records the privacy spent. With ``labels`` (``[N]`` indices into
    ``conditions``, the names), the prior is conditional
    (:attr:`PriorSettings.conditions`). Returns the trained prior (EMA weights).
    """
    if formulation not in formulations.NAMES:
        raise InputError("--formulation", f"unknown formulation {formulation!r}", f"use one of {', '.join(formulations.NAMES)}")
    if dp_epsilon is not None and importlib.util.find_spec("opacus") is None:
        raise InputError("--dp-epsilon", "differentially private training needs the opacus package (its privacy accountants)",
                         "pip install 'cryodiff[dp]'")
    where = Path(source or "latents")
    z = _check_latents(where, latents)
    out = Path(out_dir)
    mean, std = standardisation(z, where)
    labels = _check_conditions(labels, conditions, len(z), formulation, dp_epsilon)
    settings = default_settings(len(z), z.shape[1], steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                formulation=formulation, dp_epsilon=dp_epsilon, dp_delta=dp_delta, conditions=conditions)
    record = _record(z.shape[1], len(z), mean, std, settings, source, 0)
    if resume:  # every process reads (a shared folder under torchrun); only rank 0 writes
        if not (out / SETTINGS).is_file():
            raise InputError(out, "there is no prior to resume here (prior.json missing)", "drop --resume to start a new prior")
        _check_resume(out, record)
        if not (out / CHECKPOINT).is_file():  # killed before its first checkpoint: nothing to continue from
            log.info("%s has no checkpoint yet: training starts from step 0", out)
            resume = False
    elif (out / SETTINGS).exists() and ((out / CHECKPOINT).exists() or (out / WEIGHTS).exists()):
        raise InputError(out, "already holds a prior", "use --resume to continue it, or another -o")
    main = _is_main()
    if main and not resume and (out / LOG).is_file() and not (out / LOG).is_symlink():
        (out / LOG).unlink()  # the log of a start that died before its first checkpoint
    try:  # before anything is written, so a refused run leaves no half-made prior behind
        trainer = _trainer(z, mean, std, settings, out, progress, log_every, checkpoint_every, labels)
    except ValueError as err:  # a privacy target that cannot be met (DPTrainer checks before any step)
        raise InputError("--dp-epsilon/--dp-delta", str(err), "see cryodiff train-prior --help") from None
    if resume:
        load_weights(out / CHECKPOINT, "the prior's checkpoint")  # a clear error for a corrupt file
        _check_log(out / LOG)
        try:
            trainer.load(str(out / CHECKPOINT))
        except (KeyError, TypeError, RuntimeError, ValueError) as err:
            raise InputError(out / CHECKPOINT, f"the checkpoint does not fit this prior ({str(err).splitlines()[0][:120]})",
                             "train a new prior in another folder") from None
    elif main:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / SETTINGS, record)
    trainer.fit(settings.steps)
    if main:
        with atomic_target(out / WEIGHTS) as tmp:
            torch.save({"ema": trainer.ema.state_dict()}, tmp)
        privacy = {"privacy": trainer.privacy_report()} if settings.dp_epsilon is not None else {}
        _write_json(out / SETTINGS, {**record, "steps_done": trainer.step, **privacy})
    if trainer.world > 1:
        torch.distributed.barrier()  # the prior is on disk before any process reads it
    return load_prior(out)


def _is_main() -> bool:
    """True without torchrun, and in rank 0 under it: the one process that writes the prior."""
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


def _check_conditions(labels, conditions, n: int, formulation: str, dp_epsilon) -> torch.Tensor | None:
    """``labels`` as a long tensor ``[n]`` after checking them against ``conditions`` (None: unconditional)."""
    if labels is None:
        return None
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if formulation == "cld" or dp_epsilon is not None:
        raise InputError("--condition", "a conditional prior is built for the edm and flow formulations without privacy",
                         "drop --condition, or --formulation cld / --dp-epsilon")
    if labels.shape != (n,) or not conditions or len(conditions) < 2:
        raise InputError("--condition", f"{len(labels)} labels of {len(conditions or [])} conditions for {n} latents",
                         "give one label per latent and at least two conditions")
    counts = torch.bincount(labels.clamp(0, len(conditions)), minlength=len(conditions) + 1)
    if labels.min() < 0 or counts[-1] > 0 or (counts[:-1] < MIN_LATENTS).any():
        raise InputError("--condition", f"each condition needs at least {MIN_LATENTS} latents (counts: "
                         f"{dict(zip(conditions, counts[:-1].tolist()))})", "merge or drop the rare conditions")
    return labels


def _trainer(z, mean, std, settings: PriorSettings, out: Path, progress: bool, log_every: int,
             checkpoint_every: int, labels: torch.Tensor | None = None) -> Trainer:
    """The engine's Trainer on standardised latents with the loss of ``settings.formulation`` (conditioned
    on ``labels [N]`` with dropout to the null condition, for a conditional prior)."""
    u = torch.from_numpy((z - mean) / std).float()
    torch.manual_seed(settings.seed)
    model = build_network(z.shape[1], settings)
    form = engine_formulation(settings)

    if labels is None:
        def batch_fn(step, g):
            return u[torch.randint(len(u), (settings.batch_size,), generator=g)]

        def loss_fn(model_, batch, g):
            return form.loss(model_, batch, generator=g)
    else:
        null = len(settings.conditions)

        def batch_fn(step, g):
            rows = torch.randint(len(u), (settings.batch_size,), generator=g)
            return u[rows], labels[rows]

        def loss_fn(model_, batch, g):
            x0, label = batch
            dropped = torch.rand(len(label), generator=g) < settings.condition_dropout
            return form.loss(model_, x0, cond={"class": torch.where(dropped, null, label)}, generator=g)

    common = dict(lr=settings.lr, ema_decay=settings.ema_decay, seed=settings.seed,
                  checkpoint_path=str(out / CHECKPOINT), checkpoint_every=checkpoint_every,
                  log_path=str(out / LOG), log_every=log_every, progress=progress)
    if settings.dp_epsilon is not None:
        return DPTrainer(model, loss_fn, lambda rows: u[rows], len(u), sample_rate=min(settings.batch_size / len(u), 1.0),
                         delta=settings.dp_delta, target_epsilon=settings.dp_epsilon, steps=settings.steps,
                         max_grad_norm=1.0, noise_draws=settings.dp_noise_draws, **common)
    return Trainer(model, loss_fn, batch_fn, grad_clip=1.0, **common)


#: Every key prior.json may hold; anything else means the file was edited or made elsewhere.
_RECORD_KEYS = {"format", "version", "zdim", "n_latents", "mean", "std", "settings", "source", "steps_done", "privacy"}


def _read_settings(path: Path) -> dict:
    record = read_json(path, "the prior's settings")
    if record.get("format") != FORMAT:
        raise InputError(path, "not a cryodiff prior", "give a directory written by cryodiff train-prior")
    unknown = sorted(set(record) - _RECORD_KEYS)
    if unknown:
        raise InputError(path, f"holds keys cryodiff never writes ({', '.join(map(str, unknown[:3]))})",
                         "restore the prior.json that cryodiff train-prior wrote, or retrain the prior")
    return record


def _check_log(path: Path) -> None:
    """Refuse a training log that is not the UTF-8 JSON lines the trainer writes (it is trimmed on resume)."""
    try:
        path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return
    except UnicodeDecodeError:
        raise InputError(path, "is not the JSON-lines log cryodiff writes (not UTF-8 text)",
                         "move it aside and resume again (the checkpoint holds the training state)") from None


def matching_prior(run_path: Path, z: np.ndarray) -> Path | None:
    """A finished prior trained on ``z``: ``RUN/prior`` or ``RUN/../prior`` with its weights and a
    ``prior.json`` giving the latents' count, zdim and mean (float32 round-off allowed); ``None`` if none."""
    run_path = Path(run_path)
    for folder in (run_path / "prior", run_path.parent / "prior"):
        if not (folder / WEIGHTS).is_file():
            continue
        try:
            record = json.loads((folder / SETTINGS).read_text())
        except (OSError, ValueError):
            continue
        if record.get("n_latents") == len(z) and record.get("zdim") == z.shape[1] and \
                np.allclose(record.get("mean"), z.mean(0, dtype=np.float64), rtol=1e-4, atol=1e-6):
            return folder
    return None


def load_prior(path: str | Path) -> Prior:
    """Load a prior directory written by :func:`train_prior` (or its ``prior.pt``) on the CPU."""
    path = Path(path)
    out = path.parent if path.is_file() else path
    if not (out / SETTINGS).is_file():
        raise InputError(out, f"not a cryodiff prior ({SETTINGS} missing)", "give the directory written by cryodiff train-prior")
    record = _read_settings(out / SETTINGS)
    if not (out / WEIGHTS).is_file():
        raise InputError(out, f"{WEIGHTS} missing: training did not finish", "finish it with cryodiff train-prior --resume")
    try:
        settings = PriorSettings(**record["settings"])
        zdim, mean, std = int(record["zdim"]), np.asarray(record["mean"], np.float64), np.asarray(record["std"], np.float64)
        model = build_network(zdim, settings)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(out / SETTINGS, f"the prior's settings are incomplete or foreign ({type(err).__name__}: {err})",
                         "give a prior folder written by this version of cryodiff train-prior") from None
    if mean.shape != (zdim,) or std.shape != (zdim,) or not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise InputError(out / SETTINGS, "the latent standardisation (mean, std) is not zdim finite numbers with std > 0",
                         "retrain the prior with cryodiff train-prior")
    state = load_weights(out / WEIGHTS, "the prior's weights")
    try:
        model.load_state_dict(state["ema"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise InputError(out / WEIGHTS, f"the weights do not fit the prior's settings ({str(err).splitlines()[0][:120]})",
                         "give the prior's own prior.pt, or retrain it") from None
    if not all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()):
        raise InputError(out / WEIGHTS, "the network's weights hold NaN or infinite values (the training diverged)",
                         "retrain the prior, e.g. with a lower --lr")
    model.eval().requires_grad_(False)
    return Prior(model, mean, std, settings, {**record, "path": str(out)})
