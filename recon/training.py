"""Training the heterogeneous VAE, with atomic checkpoints and exact resume.

The files of a run directory are described in :mod:`recon.run`.

The particle order of epoch ``e`` is a permutation drawn from ``(seed, e)``
and the reparameterisation noise comes from a generator saved in the
checkpoint, so a run resumed after being killed reaches exactly the weights of
an uninterrupted run with the same seed (on the same device and threads).

Started by ``torchrun``, several processes train one model through
DistributedDataParallel (:mod:`recon.distributed` states the conventions that
keep the result independent of their number); the epoch order and the reading
of stacks larger than memory are in :mod:`recon.loader`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from recon import distributed, loader

from recon.ctf import ctf_from_params
from recon.errors import InputError, TrainingDiverged
from recon.files import atomic_target
from recon.io import read_particles
from recon.io.indices import selected_indices
from recon.io.safe_read import read_json
from recon.preprocess import estimate_scale, hartley_images, masked
from recon.run import CHECKPOINT, CONFIG, LOG, epoch_files, load_checkpoint, write_latents
from recon.vae import Architecture, HetVAE, kl_per_particle

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Optimisation settings (cryoDRGN option names in brackets)."""

    epochs: int = 20  # [-n/--epochs]
    batch_size: int = 32  # [-b] (cryoDRGN: 8; benchmarks/time_to_quality.py)
    lr: float = 6e-4  # [--lr] Adam learning rate (cryoDRGN: 1e-4)
    beta: float | None = None  # [--beta] KL weight; default 1/zdim
    seed: int = 0  # [--seed]
    invert: bool = True  # [--uninvert-data sets False]
    window: bool = True  # [--no-window sets False] soft circular window on images
    weight_decay: float = 0.0  # [--wd]
    amp: bool | None = None  # [--amp/--no-amp] bf16 autocast; default: where bf16 is native (see default_amp)
    compile: bool = False  # [--compile] torch.compile the networks (GPU)
    keep_every: int = 0  # [--checkpoint] keep weights and latents of every k-th epoch (0: only the last)
    shuffle_chunk: int = 0  # particles per contiguous chunk of the chunk-shuffled order (0: shuffle every particle; recon.loader)
    shuffle_window: int = 8  # chunks shuffled together


#: Settings added after runs were first written: their value in a run whose config lacks them.
_LATER_SETTINGS = {"shuffle_chunk": 0, "shuffle_window": 8}
#: Most bytes of images one read of a chunk-shuffled epoch brings into memory (two are held).
READ_BYTES = 2**28


@dataclass
class TrainingData:
    """Particles to train on, all arrays indexed like ``indices``.

    ``images`` is indexable by absolute particle index (e.g. an ImageStack);
    ``rotations`` [N, 3, 3], ``shifts_px`` [N, 2] and ``ctf`` [N, 9] are for
    the selected particles only, in the order of ``indices``.
    """

    images: Any
    indices: np.ndarray
    rotations: np.ndarray
    shifts_px: np.ndarray
    ctf: np.ndarray | None
    box: int
    apix: float
    source: dict = field(default_factory=dict)  # file names, for config.json


def training_data(
    particles: str | os.PathLike,
    *,
    datadir: str | os.PathLike | None = None,
    poses: str | os.PathLike | None = None,
    ctf: str | os.PathLike | None = None,
    ind: str | os.PathLike | None = None,
    apix: float | None = None,
    amplitude_contrast: float | None = None,
) -> TrainingData:
    """The particles of a particle file ready to train on, read as ``cryodiff train-vae`` reads them.

    ``particles`` is a .star, .cs, .mrcs or .txt file; ``datadir``, the cryoDRGN
    ``poses``/``ctf`` pickles, ``apix`` (Å/px) and ``amplitude_contrast`` (fraction)
    are as for :func:`recon.io.read_particles`. ``ind`` is an index file of 0-based
    particles to train on (:func:`recon.io.indices.read_indices`; default: all). The
    images stay on disk and are read per batch; ``data.images.load()`` reads them into
    memory first. ``source`` records the files given, as absolute paths, for the run's
    ``config.json``.

    No particle selected, particles without 3-D poses and an unknown pixel size are an
    :class:`~recon.errors.InputError`.
    """
    read = read_particles(particles, datadir=datadir, poses=poses, ctf=ctf, apix=apix, amplitude_contrast=amplitude_contrast)
    indices = selected_indices(ind, len(read))
    meta = read.meta.subset(indices)
    rotations, shifts = meta.require_poses()
    if read.meta.apix is None:
        raise InputError(particles, "no pixel size in the particle file, its stacks or --ctf", "pass --apix in Å/px")
    given = {"particles": particles, "datadir": datadir, "poses": poses, "ctf": ctf, "ind": ind}
    return TrainingData(
        images=read.images,
        indices=indices,
        rotations=rotations,
        shifts_px=shifts,
        ctf=meta.ctf,
        box=read.meta.box,
        apix=read.meta.apix,
        source={name: (str(Path(path).resolve()) if path else None) for name, path in given.items()},
    )


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_amp(device: torch.device) -> bool:
    """Use bf16 autocast on GPUs and on CPUs with native bf16 matrix
    instructions (AVX512-BF16 or AMX), where it is about twice as fast as
    float32 (benchmarks/vae_throughput.py) at the same accuracy
    (benchmarks/accuracy.py). torch exposes the CPU check only privately, so a
    torch without it counts as "not native"."""
    if device.type == "cuda":
        return True
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class Batch:
    """One batch moved to the device and turned into the model's inputs."""

    def __init__(self, model: HetVAE, data: TrainingData, pos: np.ndarray, images: torch.Tensor, scale: float, invert: bool, window: bool):
        dev = model.coords.device
        shifts = torch.as_tensor(data.shifts_px[pos], dtype=torch.float32, device=dev)
        self.target = masked(hartley_images(images.to(dev), shifts, invert=invert, window=window)) / scale
        self.rotations = torch.as_tensor(data.rotations[pos], dtype=torch.float32, device=dev)
        self.ctf = None
        if data.ctf is not None:
            params = torch.as_tensor(data.ctf[pos], dtype=torch.float32, device=dev)
            self.ctf = ctf_from_params(model.coords[:, :2], params)
        self.encoder_input = self.target if self.ctf is None else self.target * torch.sign(self.ctf)


class Networks(nn.Module):
    """The encoder and decoder passes of one batch as one module: what DistributedDataParallel
    wraps and ``torch.compile`` compiles.

    ``forward(encoder_input, rotations, noise)`` returns ``(mu, logvar, predicted slices)`` in
    float32, with ``z = mu + exp(logvar / 2) * noise``; the networks run in bf16 under ``amp``."""

    def __init__(self, model: HetVAE, amp: bool):
        super().__init__()
        self.model, self.amp = model, amp

    def forward(self, encoder_input: torch.Tensor, rotations: torch.Tensor, noise: torch.Tensor):
        model = self.model
        with torch.autocast(model.coords.device.type, dtype=torch.bfloat16, enabled=self.amp):
            mu, logvar = model.encode(encoder_input)
            mu, logvar = mu.float(), logvar.float()
            z = mu + torch.exp(0.5 * logvar) * noise
            pred = model.decode_slices(rotations, z).float()
        return mu, logvar, pred


def training_networks(model: HetVAE, amp: bool, compile: bool = False) -> nn.Module:
    """:class:`Networks` of ``model``, inside DistributedDataParallel when several processes
    train (:mod:`recon.distributed`), compiled when asked."""
    networks = Networks(model, amp)
    if distributed.world_size() > 1:
        networks = DistributedDataParallel(networks, forward_sync_buffers=False)  # the buffers are constants
    return torch.compile(networks, dynamic=True) if compile else networks


def _loss(networks, model: HetVAE, batch: Batch, beta: float, noise: torch.Tensor, weight: float):
    """``weight * sum over the batch of (MSE on the masked lattice + beta * KL / M)``, with the
    sums of the MSE and the KL over the batch and the posterior ``(mu, logvar)``.

    With ``weight = 1 / B`` for a batch of ``B`` this is the batch mean; with several processes
    each gets ``weight = world size / global B`` (see :mod:`recon.distributed`)."""
    mu, logvar, pred = networks(batch.encoder_input, batch.rotations, noise)
    if batch.ctf is not None:
        pred = pred * batch.ctf
    mse = (pred - batch.target).pow(2).mean(1)
    kld = kl_per_particle(mu, logvar)
    loss = weight * (mse + beta * kld / model.n_pixels).sum()
    return loss, mse.sum(), kld.sum(), mu, logvar


def _save_checkpoint(run: Path, model, optimizer, epoch: int, generator, z_mu, z_logvar) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "generator": generator.get_state(),
        "z_mu_train": torch.as_tensor(z_mu),
        "z_logvar_train": torch.as_tensor(z_logvar),
    }
    with atomic_target(run / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def _keep_epoch(run: Path, model, epoch: int, indices: np.ndarray, z_mu, z_logvar) -> None:
    weights, latents = epoch_files(run, epoch)
    weights.parent.mkdir(exist_ok=True)
    with atomic_target(weights) as tmp:
        torch.save({"model": model.state_dict(), "epoch": epoch}, tmp)
    write_latents(run, z_mu, z_logvar, indices, latents)


def _append_line(path: Path, line: str) -> None:
    """Append one line to ``path``, never through a symbolic link (a link named like a log
    would otherwise make the run write into someone else's file)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def _trim_log(run: Path, last_epoch: int) -> None:
    """Keep the log lines of epochs up to ``last_epoch`` (the checkpoint a run resumes from)."""
    path = run / LOG
    if not path.is_file() or path.is_symlink():
        return
    try:
        lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise InputError(path, "is not the JSON-lines log cryodiff writes (not UTF-8 text)",
                         "move it aside and resume again (the checkpoint holds the training state)") from None
    kept = []
    for line in lines:
        try:
            if json.loads(line)["epoch"] <= last_epoch:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill
    if len(kept) != len(lines):
        with atomic_target(path) as tmp:
            tmp.write_text("".join(kept), encoding="utf-8")


def _restore(run: Path, device, model, optimizer, generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Load the checkpoint's state into ``model``, ``optimizer`` and ``generator``; returns the
    training-pass latents and the first epoch still to train. A damaged or foreign
    checkpoint is an :class:`InputError` naming it."""
    ckpt = load_checkpoint(run, map_location=device)
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        generator.set_state(ckpt["generator"].cpu() if device.type == "cpu" else ckpt["generator"])
        z_mu, z_logvar = ckpt["z_mu_train"].numpy(), ckpt["z_logvar_train"].numpy()
        epoch = ckpt["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"epoch is {epoch!r}")
        if z_mu.shape != shape or z_logvar.shape != shape:
            raise ValueError(f"the training latents are {tuple(z_mu.shape)}, not {shape}")
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise InputError(run / CHECKPOINT, f"is damaged or not this run's ({type(err).__name__}: {str(err).splitlines()[0][:120]})",
                         "restore it, or start a new run in another folder") from None
    return z_mu, z_logvar, epoch + 1


def _config(arch: Architecture, settings: TrainSettings, data: TrainingData, scale: float) -> dict:
    return {
        "format": "cryodiff-vae/1",
        "architecture": arch.to_dict(),
        "training": asdict(settings) | {"beta": settings.beta if settings.beta is not None else 1.0 / arch.zdim},
        "data": data.source | {"n_particles": int(len(data.indices)), "box": data.box, "apix": data.apix},
        "normalization": {"mean": 0.0, "std": scale},
    }


def _check_resumable(old: dict, new: dict, path: Path) -> None:
    for key in ("architecture", "data"):
        if old[key] != new[key]:
            raise InputError(path, f"the {key} differs from the run being resumed", "resume with the original settings, or start a new run")
    if "imported_from" in old:
        raise InputError(path, "this run was imported without its optimiser state and cannot be resumed", "train a new run from the particles instead")
    for key in ("batch_size", "lr", "beta", "seed", "invert", "window", "weight_decay", "amp", *_LATER_SETTINGS):
        if old["training"].get(key, _LATER_SETTINGS.get(key)) != new["training"][key]:  # epochs, keep_every may change
            raise InputError(path, f"training setting {key} differs from the run being resumed", "resume with the original settings")


def train_vae(
    data: TrainingData,
    arch: Architecture,
    settings: TrainSettings,
    run: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    after_epoch: Callable[[int], None] | None = None,
) -> HetVAE:
    """Train (or resume) a VAE run in ``run``; returns the trained model.

    ``after_epoch(epoch)`` is called once each epoch's checkpoint is on disk.
    """
    run = Path(run)
    main = distributed.is_main()
    if main:
        run.mkdir(parents=True, exist_ok=True)
    device = _device()
    beta = settings.beta if settings.beta is not None else 1.0 / arch.zdim
    amp = settings.amp if settings.amp is not None else default_amp(device)

    if resume:
        if not (run / CONFIG).is_file() or not (run / CHECKPOINT).is_file():
            raise InputError(run, "there is no run to resume here (config.json or checkpoint.pt missing)", "drop --resume to start a new run")
        config = read_json(run / CONFIG, "the run's settings")
        try:
            scale = float(config["normalization"]["std"])
            new = _config(arch, settings, data, scale)
            _check_resumable(config, new, run / CONFIG)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(run / CONFIG, f"is not the settings of a cryodiff VAE run ({type(err).__name__}: {err})",
                             "resume a run folder written by cryodiff train-vae, or start a new run elsewhere") from None
        if not (math.isfinite(scale) and scale > 0):
            raise InputError(run / CONFIG, f"normalization.std is {scale}", "restore the run's config.json, or start a new run")
        config["training"] = new["training"]  # the epoch count and keep_every may change on resume
    else:
        scale = estimate_scale(data.images, invert=settings.invert, window=settings.window, seed=settings.seed) if len(data.indices) else 1.0
        config = _config(arch, settings, data, scale)

    torch.manual_seed(settings.seed)
    model = HetVAE(arch).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator(device=device)
    generator.manual_seed(settings.seed)
    n = len(data.indices)
    z_mu = np.zeros((n, arch.zdim), np.float32)
    z_logvar = np.zeros((n, arch.zdim), np.float32)
    start_epoch = 1
    if resume:
        z_mu, z_logvar, start_epoch = _restore(run, device, model, optimizer, generator, (n, arch.zdim))
        if main:
            _trim_log(run, start_epoch - 1)
            log.info("resuming %s after epoch %d", run, start_epoch - 1)
    if main:
        with atomic_target(run / CONFIG) as tmp:  # after the checks of a resumed run: a refused resume changes nothing
            tmp.write_text(json.dumps(config, indent=2))

    networks = training_networks(model, amp, settings.compile)
    world = distributed.world_size()
    stored = loader.file_order(data.images, data.indices) if settings.shuffle_chunk else None
    group = 1
    if settings.shuffle_chunk:  # read a window's share at once, within READ_BYTES
        group = min(settings.shuffle_chunk * settings.shuffle_window, READ_BYTES // (4 * data.box**2)) // settings.batch_size
    for epoch in range(start_epoch, settings.epochs + 1):
        model.train()
        order = loader.epoch_order(n, settings.seed, epoch, chunk=settings.shuffle_chunk, window=settings.shuffle_window,
                                   stored=stored)
        batches = loader.batches_of(order, settings.batch_size)
        parts = [batch[distributed.shard(len(batch))] for batch in batches]
        sums = np.zeros(2)
        mine = np.zeros(n, bool)
        tic = time.perf_counter()
        bar = tqdm(total=n, desc=f"epoch {epoch}/{settings.epochs}", unit="img", disable=not (show_progress and main),
                   mininterval=1.0)
        for b, (pos, images) in enumerate(loader.Batches(data.images, data.indices, data.box, parts, group)):
            size = len(batches[b])
            noise = torch.randn(size, arch.zdim, generator=generator, device=device)[distributed.shard(size)]
            batch = Batch(model, data, pos, images, scale, settings.invert, settings.window)
            loss, mse, kld, mu, logvar = _loss(networks, model, batch, beta, noise, world / size)
            _stop_if_diverged(loss / world, run, epoch, b)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            z_mu[pos], z_logvar[pos] = mu.detach().cpu().numpy(), logvar.detach().cpu().numpy()
            mine[pos] = True
            sums += (mse.item(), kld.item())
            bar.update(size)
        bar.close()
        z_mu = distributed.sum_over_ranks(np.where(mine[:, None], z_mu, 0), device)
        z_logvar = distributed.sum_over_ranks(np.where(mine[:, None], z_logvar, 0), device)
        mse, kld = distributed.sum_over_ranks(sums, device) / max(n, 1)
        seconds = time.perf_counter() - tic
        record = {"epoch": epoch, "loss": mse + beta * kld / model.n_pixels, "mse": mse, "kld": kld,
                  "images_per_s": n / seconds, "seconds": seconds}
        if main:
            # the log line first: if the process dies before the checkpoint, a resume trims it and redoes the epoch
            _append_line(run / LOG, json.dumps(record))
            _save_checkpoint(run, model, optimizer, epoch, generator, z_mu, z_logvar)
            if settings.keep_every and epoch % settings.keep_every == 0:
                _keep_epoch(run, model, epoch, data.indices, z_mu, z_logvar)
            log.info("epoch %d: loss %.5f (mse %.5f, kld %.3f), %.0f images/s", epoch, record["loss"], mse, kld,
                     record["images_per_s"])
            if after_epoch is not None:
                after_epoch(epoch)
        distributed.barrier()  # the checkpoint is on disk before any process goes on

    latents = encode_all(model, data, scale, settings.invert, settings.window, settings.batch_size * 8)
    if main:
        write_latents(run, *latents, data.indices)
    return model


def _stop_if_diverged(batch_loss: torch.Tensor, run: Path, epoch: int, b: int) -> None:
    """Raise :class:`TrainingDiverged` in every process when the loss of batch ``b`` is not finite
    on any of them. ``batch_loss`` is this process's share of the batch mean (the sum over
    processes is the mean)."""
    total = batch_loss.detach().clone()
    if distributed.world_size() > 1:
        torch.distributed.all_reduce(total)
    if not torch.isfinite(total):
        last = f"{run / CHECKPOINT} (epoch {epoch - 1})" if epoch > 1 else "none (first epoch)"
        raise TrainingDiverged(
            f"loss became {total.item()} in epoch {epoch}, batch {b}; last good checkpoint: {last}. "
            "Try a lower --lr, and check the particles for outliers"
        )


@torch.no_grad()
def encode_all(model: HetVAE, data: TrainingData, scale: float, invert: bool, window: bool = True, batch_size: int = 256):
    """Posterior means and log-variances ``[N, zdim]`` of every particle (eval mode).

    With several processes each encodes its share and every process returns all rows."""
    model.eval()
    n = len(data.indices)
    mu = np.zeros((n, model.arch.zdim), np.float32)
    logvar = np.zeros_like(mu)
    share = np.arange(n)[distributed.shard(n)]
    for pos, images in loader.Batches(data.images, data.indices, data.box, loader.batches_of(share, batch_size)):
        batch = Batch(model, data, pos, images, scale, invert, window)
        m, lv = model.encode(batch.encoder_input)
        mu[pos], logvar[pos] = m.cpu().numpy(), lv.cpu().numpy()
    device = model.coords.device
    return distributed.sum_over_ranks(mu, device), distributed.sum_over_ranks(logvar, device)
