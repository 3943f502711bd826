"""Write a cryodiff VAE run as a cryoDRGN 4.x ``train_vae`` output folder.

The inverse of :mod:`recon.io.cryodrgn_run`: ``WORKDIR`` receives

    config.yaml          dataset_args (the run's particles, ctf, poses, datadir,
                         ind; norm [0, std]; invert_data; window, window_r 0.85),
                         lattice_args (D = box + 1, extent 0.5, ignore_DC),
                         model_args (cryoDRGN's names for the architecture;
                         encode_mode resid, domain fourier, activation relu,
                         enc_mask D // 2)
    weights.E.pkl, weights.pkl   {"epoch": E, "model_state_dict": ...} (torch)
    z.E.pkl, z.pkl       z_mu then z_logvar [N, zdim] float32, pickled back to back

with ``E`` the run's epoch (1-based, as cryodiff and cryoDRGN 4.x number them),
so that ``cryodrgn eval_vol``, ``cryodrgn analyze WORKDIR E`` and other tools that
read cryoDRGN runs work on a cryodiff run. Every run cryodiff trains can be
exported: its architecture is cryoDRGN's default heterogeneous model.

The latent rows follow the run's particle order (``latents.h5`` indices); when the
run used a subset, ``dataset_args.ind`` names the index file it was trained with,
as cryoDRGN expects.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
import yaml

from recon.files import atomic_target
from recon.run import TrainedRun

#: cryodiff state-dict prefix -> cryoDRGN's (inverse of the import's renaming).
_PREFIXES = (("decoder.mlp.", "decoder.decoder."), ("decoder.encoding.rand_freqs", "decoder.rand_freqs"))
#: cryoDRGN's soft window (``window_r``), the inner radius of cryodiff's :func:`recon.fourier.soft_window`.
WINDOW_INNER = 0.85


def cryodrgn_state_dict(run: TrainedRun) -> dict[str, torch.Tensor]:
    """The run's weights under cryoDRGN's ``HetOnlyVAE`` names. Geometric positional
    encodings store no frequencies in cryoDRGN, so their buffers are left out."""
    out = {}
    for key, value in run.model.state_dict().items():
        if key.startswith("decoder.encoding.") and not key.startswith("decoder.encoding.rand_freqs"):
            continue
        for ours, theirs in _PREFIXES:
            if key.startswith(ours):
                key = theirs + key[len(ours):]
                break
        out[key] = value.detach().cpu().clone()
    return out


def cryodrgn_config(run: TrainedRun) -> dict:
    """config.yaml of the run in cryoDRGN 4.x's layout."""
    arch, data, training = run.model.arch, run.config["data"], run.config.get("training", {})
    window = run.config.get("imported_from", {}).get("window", training.get("window", True))
    return {
        "dataset_args": {
            "particles": data.get("particles"), "ctf": data.get("ctf"), "poses": data.get("poses"),
            "datadir": data.get("datadir"), "ind": data.get("ind"),
            "norm": [0.0, float(run.config["normalization"]["std"])],
            "invert_data": bool(training.get("invert", True)), "keepreal": False,
            "window": bool(window), "window_r": WINDOW_INNER,
        },
        "lattice_args": {"D": arch.box + 1, "extent": 0.5, "ignore_DC": True},
        "model_args": {
            "qlayers": arch.enc_layers, "qdim": arch.enc_dim, "players": arch.dec_layers, "pdim": arch.dec_dim,
            "zdim": arch.zdim, "encode_mode": "resid", "enc_mask": (arch.box + 1) // 2, "pe_type": arch.pe_type,
            "pe_dim": arch.pe_dim, "feat_sigma": float(arch.feat_sigma), "domain": "fourier", "activation": "relu",
        },
        "seed": training.get("seed"),
        "exported_from": {"tool": "cryodiff", "run": str(Path(run.path).resolve())},
    }


def export_cryodrgn(run: TrainedRun, workdir: str | os.PathLike, epoch: int, file=None) -> list[Path]:
    """Write the cryoDRGN files of ``run`` (weights and latents of ``epoch``) into ``workdir``;
    returns their paths. ``file(name)`` gives the path to write each name (default:
    ``workdir / name``), so a caller can check each one first (:mod:`cryodiff.output_folder`)."""
    workdir = Path(workdir)
    place = file or (lambda name: workdir / name)
    z_mu, z_logvar = run.latents(), np.asarray(run.z_logvar, dtype=np.float32)
    weights = {"epoch": int(epoch), "model_state_dict": cryodrgn_state_dict(run)}
    written = []
    with atomic_target(place("config.yaml")) as tmp:
        tmp.write_text(yaml.safe_dump(cryodrgn_config(run), sort_keys=True), encoding="utf-8")
    written.append(workdir / "config.yaml")
    for name in (f"weights.{epoch}.pkl", "weights.pkl"):
        with atomic_target(place(name)) as tmp:
            torch.save(weights, tmp)
        written.append(workdir / name)
    for name in (f"z.{epoch}.pkl", "z.pkl"):
        with atomic_target(place(name)) as tmp, open(tmp, "wb") as fh:
            pickle.dump(z_mu, fh, protocol=4)  # cryoDRGN's layout; written here, never read back unsafely
            pickle.dump(z_logvar, fh, protocol=4)
        written.append(workdir / name)
    return written
