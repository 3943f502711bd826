"""A trained VAE run, for notebooks, the command line and napari::

    from recon.run import load_run
    run = load_run("runs/vae1")
    run.z_mu                     # [N, zdim] posterior means, particle order of run.indices
    vol = run.volume(run.z_mu[0])            # float32 [D, D, D], [z, y, x]
    small = run.volume(run.z_mu[0], box=32)  # faster; pixel size run.apix * D / 32
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from recon.errors import InputError
from recon.training import CONFIG, LATENTS, load_checkpoint
from recon.vae import Architecture, HetVAE


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


def load_run(path: str | Path, device: str = "cpu") -> TrainedRun:
    """Load ``config.json``, the checkpoint's weights and ``latents.h5`` (if written)."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise InputError(path, f"not a cryodiff VAE run ({CONFIG} missing)", "give the directory written by cryodiff train-vae")
    config = json.loads((path / CONFIG).read_text())
    model = HetVAE(Architecture(**config["architecture"]))
    model.load_state_dict(load_checkpoint(path, map_location=device)["model"])
    model.to(device).eval()
    z_mu = z_logvar = indices = None
    if (path / LATENTS).is_file():
        with h5py.File(path / LATENTS, "r") as h5:
            z_mu, z_logvar, indices = h5["z_mu"][()], h5["z_logvar"][()], h5["indices"][()]
    return TrainedRun(path, config, model, z_mu, z_logvar, indices)
