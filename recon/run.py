"""A VAE run directory: its file names, the readers and writers of its files,
and the loaded run for notebooks, the command line and napari::

    from recon.run import load_run
    run = load_run("runs/vae1")
    run.z_mu                     # [N, zdim] posterior means, particle order of run.indices
    vol = run.volume(run.z_mu[0])            # float32 [D, D, D], [z, y, x]
    small = run.volume(run.z_mu[0], box=32)  # faster; pixel size run.apix * D / 32

A run directory (written by :func:`recon.training.train_vae` and
:func:`recon.io.cryodrgn_run.import_cryodrgn`) holds::

    config.json      every setting, the data it was trained on, the normalisation
    checkpoint.pt    model, optimiser, RNG state and epoch (after each epoch)
    log.jsonl        one JSON line per epoch: losses, images/s, seconds
    latents.h5       z_mu, z_logvar [N, zdim] and the particle indices, from a
                     clean encoding pass after the last epoch
    epochs/          with ``keep_every`` = k > 0, every k-th epoch's weights
                     (weights.E.pt) and latents (z.E.h5, from that epoch's
                     training pass), as cryoDRGN's weights.E.pkl and z.E.pkl

Epochs are numbered from 1; particle indices are 0-based positions in the
particle file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from recon.errors import InputError
from recon.files import atomic_target
from recon.io.safe_read import load_weights, open_h5, read_h5_array, read_json
from recon.vae import Architecture, HetVAE

CONFIG, CHECKPOINT, LOG, LATENTS = "config.json", "checkpoint.pt", "log.jsonl", "latents.h5"
EPOCHS = "epochs"


def epoch_files(run: str | Path, epoch: int) -> tuple[Path, Path]:
    """``(weights.E.pt, z.E.h5)`` of epoch ``epoch`` (1-based) kept in ``run/epochs``."""
    folder = Path(run) / EPOCHS
    return folder / f"weights.{epoch}.pt", folder / f"z.{epoch}.h5"


def load_checkpoint(run: Path, map_location="cpu") -> dict:
    """Read ``checkpoint.pt`` safely (tensors and plain containers only)."""
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise InputError(path, "no checkpoint in this run directory", "train first, or give the right run directory")
    state = load_weights(path, "the run's checkpoint", map_location)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise InputError(path, "is not a cryodiff VAE checkpoint (no model weights)", "give the run folder cryodiff train-vae wrote")
    return state


def write_latents(run: Path, z_mu: np.ndarray, z_logvar: np.ndarray, indices: np.ndarray, path: Path | None = None) -> None:
    """Write ``latents.h5`` (or ``path``): z_mu, z_logvar [N, zdim] and indices [N] (0-based)."""
    with atomic_target(path or Path(run) / LATENTS) as tmp, h5py.File(tmp, "w") as h5:
        h5["z_mu"] = z_mu
        h5["z_logvar"] = z_logvar
        h5["indices"] = np.asarray(indices, dtype=np.int64)


@dataclass
class TrainedRun:
    """A VAE run directory loaded for evaluation (CPU by default)."""

    path: Path
    config: dict
    model: HetVAE
    z_mu: np.ndarray | None
    z_logvar: np.ndarray | None
    indices: np.ndarray | None

    @property
    def box(self) -> int:
        return self.model.arch.box

    @property
    def apix(self) -> float:
        return float(self.config["data"]["apix"])

    @property
    def zdim(self) -> int:
        return self.model.arch.zdim

    def latents(self) -> np.ndarray:
        """The posterior means ``z_mu`` [N, zdim] (float32), or a clear error if training did not finish."""
        if self.z_mu is None:
            raise InputError(self.path, "the run has no latents.h5 (training did not finish)", "finish training with cryodiff train-vae --resume")
        return np.asarray(self.z_mu, dtype=np.float32)

    def volume(self, z, box: int | None = None, *, flip: bool = False, invert: bool = False) -> np.ndarray:
        """Density ``[z, y, x]`` at latent ``z`` in the units of the input images.

        ``box`` evaluates on a smaller grid (pixel size ``apix * D / box``),
        ``flip`` mirrors the map along z (the other hand), ``invert`` negates it.
        """
        z = np.asarray(z, dtype=np.float32).reshape(-1)
        if z.shape[0] != self.zdim:
            raise InputError(self.path, f"z has {z.shape[0]} values but the model's zdim is {self.zdim}", f"give {self.zdim} numbers per latent")
        vol = self.model.volume(z, box) * float(self.config["normalization"]["std"])
        if flip:
            vol = vol[::-1].copy()
        return -vol if invert else vol

    def apix_at(self, box: int | None) -> float:
        """Pixel size in Å of a volume evaluated at ``box``."""
        return self.apix * self.box / (box or self.box)


def load_run(path: str | Path, device: str = "cpu", epoch: int | None = None) -> TrainedRun:
    """Load ``config.json``, the checkpoint's weights and ``latents.h5`` (if written).

    ``epoch`` (1-based) loads the weights and latents kept after that epoch
    (``train-vae --checkpoint``) instead of the final ones.
    """
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise InputError(path, f"not a cryodiff VAE run ({CONFIG} missing)", "give the directory written by cryodiff train-vae")
    config = read_json(path / CONFIG, "the run's settings")
    try:
        model = HetVAE(Architecture(**config["architecture"]))
        for section, key in (("normalization", "std"), ("data", "apix")):
            value = float(config[section][key])
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{section}.{key} = {value} is not a finite number above 0")
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(path / CONFIG, f"the run's settings are incomplete or foreign ({type(err).__name__}: {err})",
                         "give a run folder written by cryodiff train-vae or import-cryodrgn") from None
    if epoch is None:
        weights, latents = load_checkpoint(path, map_location=device)["model"], path / LATENTS
    else:
        weights_file, latents = epoch_files(path, epoch)
        if not weights_file.is_file() or not latents.is_file():
            kept = sorted(int(f.name.split(".")[1]) for f in weights_file.parent.glob("weights.*.pt")) if weights_file.parent.is_dir() else []
            raise InputError(
                weights_file, f"epoch {epoch} was not kept (kept epochs: {kept or 'none'})",
                "choose a kept epoch, or train with --checkpoint 1 to keep every epoch",
            )
        weights = load_weights(weights_file, f"the weights of epoch {epoch}", device)
        weights = weights.get("model") if isinstance(weights, dict) else None
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise InputError(path, f"the weights do not fit the run's architecture ({str(err).splitlines()[0][:120]})",
                         "give the run's own checkpoint, or rerun cryodiff train-vae") from None
    if not all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()):
        source = path / CHECKPOINT if epoch is None else epoch_files(path, epoch)[0]
        raise InputError(source, "the network's weights hold NaN or infinite values (the training diverged)",
                         "train again with a lower --lr, or load the weights of an earlier epoch")
    model.to(device).eval()
    z_mu = z_logvar = indices = None
    if latents.is_file():
        z_mu, z_logvar, indices = read_latents_file(latents, model.arch.zdim)
    return TrainedRun(path, config, model, z_mu, z_logvar, indices)


def read_latents_file(path: Path, zdim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z_mu, z_logvar [N, zdim], indices [N])`` of a run's ``latents.h5``, checked for shape,
    finiteness and distinct non-negative indices."""
    with open_h5(path, "the run's latents") as h5:
        z_mu, z_logvar, indices = (read_h5_array(h5, name, path, "the run's latents") for name in ("z_mu", "z_logvar", "indices"))
    if not all(np.issubdtype(a.dtype, np.number) for a in (z_mu, z_logvar, indices)):
        raise InputError(path, "z_mu, z_logvar and indices are not all numbers", "rerun the last epoch with cryodiff train-vae --resume, or restore the file")
    n = len(indices) if np.ndim(indices) == 1 else -1
    if z_mu.shape != (n, zdim) or z_logvar.shape != (n, zdim):
        raise InputError(path, f"z_mu {z_mu.shape}, z_logvar {z_logvar.shape} and indices {np.shape(indices)} do not match zdim {zdim}",
                         "rerun the last epoch with cryodiff train-vae --resume, or restore the file")
    if not (np.isfinite(z_mu).all() and np.isfinite(z_logvar).all()):
        row = int(np.flatnonzero(~(np.isfinite(z_mu).all(1) & np.isfinite(z_logvar).all(1)))[0])
        raise InputError(path, f"latent {row} is not finite (NaN or infinite)", "retrain with a lower --lr; the run diverged")
    if not np.issubdtype(indices.dtype, np.integer) or (len(indices) and indices.min() < 0) or len(np.unique(indices)) != len(indices):
        raise InputError(path, "indices are not distinct non-negative particle numbers", "restore the file, or rerun cryodiff train-vae")
    return z_mu, z_logvar, indices.astype(np.int64)
