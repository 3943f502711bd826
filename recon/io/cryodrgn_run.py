"""Import a cryoDRGN 4.x ``train_vae`` output folder as a cryodiff VAE run.

cryoDRGN writes, in its output folder ``WORKDIR``::

    config.yaml       dataset_args (particles, ctf, poses, ind, norm [mean, std],
                      invert_data, window), lattice_args (D = box + 1, extent,
                      ignore_DC), model_args (qlayers, qdim, players, pdim,
                      zdim, encode_mode, enc_mask, pe_type, pe_dim, feat_sigma,
                      domain, activation); older runs: config.pkl
    weights.N.pkl     torch checkpoint after epoch N (1-based):
                      {"epoch", "model_state_dict", "optimizer_state_dict"}
    z.N.pkl           two pickles back to back: z_mu then z_logvar [n, zdim]
    weights.pkl, z.pkl   the same after the last epoch

:func:`import_cryodrgn` writes a cryodiff run directory (``config.json``,
``checkpoint.pt``, ``latents.h5``, see :mod:`recon.run`) whose
:class:`~recon.vae.HetVAE` computes the same functions: the same volumes as
``cryodrgn eval_vol`` and the same encoder outputs. Nothing from the folder
runs: checkpoints load with ``torch.load(weights_only=True)``, pickles with
the numpy-only unpickler of :mod:`recon.io.pkl`, YAML with the safe loader and no aliases
(:func:`recon.io.safe_read.load_yaml`).

Mapping of the weights
----------------------
* ``encoder.main.*`` -> ``encoder.main.*``. Both encoders read the Nyquist
  disc of the ``(D+1)²`` Hartley lattice without the DC pixel (cryoDRGN's
  ``ignore_DC``), in row-major ``[y, x]`` order; cryoDRGN's pixel set is
  recomputed here with its own arithmetic and compared before anything is
  written.
* ``decoder.rand_freqs`` -> ``decoder.encoding.rand_freqs`` (gaussian
  encoding; the geometric encodings have no stored frequencies).
* ``decoder.decoder.main.*`` -> ``decoder.mlp.main.*`` (both decoder domains:
  ``fourier`` outputs (Re, Im) on half the space, ``hartley`` the Hartley value
  everywhere, see :class:`recon.vae.HartleyDecoder`).

Volumes: cryoDRGN multiplies the decoded Hartley lattice by ``norm[1]`` and
adds ``norm[0]``; cryodiff runs store ``std = norm[1]`` and assume a zero
mean (cryoDRGN's default), so runs trained with a non-zero ``--norm`` mean
are refused. The pixel size is cryoDRGN's ``ctf.pkl`` Å/px of the first
particle rescaled to the training box (``box_ctf * apix_ctf / D``, as
``cryodrgn train_vae`` does), unless given.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.ctf_columns import CTF_APIX, CTF_BOX
from recon.errors import InputError
from recon.files import atomic_target
from recon.fourier import training_mask
from recon.io.indices import read_indices
from recon.io.pkl import _ArrayUnpickler, load_pickle_safely, read_cryodrgn_ctf
from recon.io.safe_read import load_yaml, numpy_arrays_allowed
from recon.positional import PE_TYPES
from recon.run import CHECKPOINT, CONFIG, write_latents
from recon.vae import DOMAINS, Architecture, HetVAE

__all__ = ["CryoDrgnCheckpoint", "cryodrgn_encoder_mask", "find_checkpoint", "import_cryodrgn", "load_pickles_safely", "read_cryodrgn_config"]

_WEIGHTS = re.compile(r"^weights\.(\d+)\.pkl$")


@dataclass
class CryoDrgnCheckpoint:
    """One epoch of a cryoDRGN run: its 1-based epoch, files and model weights."""

    epoch: int
    weights: Path
    latents: Path
    state_dict: dict[str, torch.Tensor]


def load_pickles_safely(path: str | os.PathLike) -> list[Any]:
    """All pickles stored back to back in ``path`` (cryoDRGN's ``z.N.pkl``
    holds two), each read with the numpy-only unpickler of :mod:`recon.io.pkl`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found", "check the cryoDRGN output folder")
    data = path.read_bytes()
    stream = io.BytesIO(data)
    values = []
    try:
        while stream.tell() < len(data):
            values.append(_ArrayUnpickler(stream, path).load())
    except InputError:
        raise
    except Exception as err:  # corrupt pickles raise many exception types
        raise InputError(path, f"cannot unpickle ({type(err).__name__}: {err})", "give an intact cryoDRGN .pkl") from None
    return values


def read_cryodrgn_config(workdir: str | os.PathLike) -> tuple[dict, Path]:
    """cryoDRGN's configuration dict and the file it came from (``config.yaml``,
    or ``config.pkl`` of older runs)."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise InputError(workdir, "not a directory", "give the output folder of cryodrgn train_vae (its -o)")
    path = workdir / "config.yaml"
    if path.is_file():
        config = load_yaml(path, "cryoDRGN's config.yaml")
    elif (workdir / "config.pkl").is_file():
        path = workdir / "config.pkl"
        config = load_pickle_safely(path)
    else:
        raise InputError(workdir, "no config.yaml (or config.pkl) found", "give the output folder of cryodrgn train_vae (its -o)")
    for section in ("dataset_args", "lattice_args", "model_args"):
        if not isinstance(config, dict) or not isinstance(config.get(section), dict):
            raise InputError(path, f"section {section} missing", "give the config written by cryodrgn train_vae")
    return config, path


def _require(path: Path, ok: bool, problem: str, fix: str) -> None:
    """Raise ``InputError(path, problem, fix)`` unless ``ok``."""
    if not ok:
        raise InputError(path, problem, fix)


_MODEL_ARGS = ("qlayers", "qdim", "players", "pdim", "zdim", "encode_mode", "enc_mask", "pe_type")
_UNSUPPORTED = "cryodiff imports cryoDRGN's default heterogeneous model only"


def _check_supported(args: dict, lattice: dict, path: Path) -> None:
    """Refuse models that cryodiff's HetVAE cannot represent exactly."""
    missing = [key for key in _MODEL_ARGS if key not in args] + [key for key in ("D",) if key not in lattice]
    _require(path, not missing, f"{', '.join(missing)} missing from the config", "give the config written by cryodrgn train_vae")
    checks = (
        ("encode_mode", args["encode_mode"], "resid", "--encode-mode resid"),
        ("activation", args.get("activation", "relu"), "relu", "--activation relu"),
    )
    for key, value, wanted, option in checks:
        _require(path, value == wanted, f"model_args.{key} is {value!r}; {_UNSUPPORTED} ({key} {wanted})",
                 f"retrain with {option}, or keep using cryoDRGN for this run")
    _require(path, args.get("domain", "fourier") in DOMAINS, f"model_args.domain is {args.get('domain')!r}; supported: {', '.join(DOMAINS)}",
             "keep using cryoDRGN for this run")
    _require(path, args["pe_type"] in PE_TYPES, f"model_args.pe_type is {args['pe_type']!r}; supported: {', '.join(PE_TYPES)}",
             "retrain with one of those --pe-type values")
    size = lattice["D"]
    _require(path, isinstance(size, int) and size % 2 == 1 and size >= 9,
             f"lattice_args.D is {size!r}; expected the odd lattice size box + 1", "give the config written by cryodrgn train_vae")
    _require(path, lattice.get("extent", 0.5) == 0.5, f"lattice_args.extent is {lattice.get('extent')}; expected 0.5",
             "give the config written by cryodrgn train_vae")
    _require(path, args["enc_mask"] == size // 2,
             f"model_args.enc_mask is {args['enc_mask']}; cryodiff's encoder reads the whole Nyquist disc (radius {size // 2})",
             "retrain without --enc-mask")


def _architecture(config: dict, path: Path) -> Architecture:
    """cryodiff's Architecture for cryoDRGN's model_args and lattice_args
    (box = lattice D - 1; pe_dim None means box / 2 in both)."""
    args, lattice = config["model_args"], config["lattice_args"]
    _check_supported(args, lattice, path)
    return Architecture(
        box=lattice["D"] - 1, zdim=int(args["zdim"]), enc_dim=int(args["qdim"]), enc_layers=int(args["qlayers"]),
        dec_dim=int(args["pdim"]), dec_layers=int(args["players"]), pe_type=args["pe_type"], pe_dim=args.get("pe_dim"),
        feat_sigma=float(args.get("feat_sigma") or 0.5), domain=args.get("domain", "fourier"),
    )


def _normalization_std(config: dict, path: Path) -> float:
    """``norm[1]`` of ``dataset_args.norm = [mean, std]``; refuses a non-zero mean."""
    norm = config["dataset_args"].get("norm")
    _require(path, isinstance(norm, (list, tuple)) and len(norm) == 2 and math.isfinite(float(norm[1])) and float(norm[1]) > 0,
             f"dataset_args.norm is {norm!r}; expected [mean, std]", "give the config written by cryodrgn train_vae")
    _require(path, float(norm[0]) == 0.0, f"dataset_args.norm has mean {norm[0]}; cryodiff models assume a zero mean",
             "retrain without --norm (cryoDRGN's default normalisation has mean 0)")
    return float(norm[1])


def cryodrgn_encoder_mask(box: int, ignore_dc: bool = True) -> np.ndarray:
    """The pixels cryoDRGN's encoder reads by default: ``[(box+1)²]`` bool,
    row-major ``[y, x]``, recomputed with cryoDRGN's float32 arithmetic
    (coordinates ``linspace(-0.5, 0.5, box+1)``, squared radius <= 0.25, the
    DC pixel dropped when ``ignore_dc``)."""
    k = np.linspace(-0.5, 0.5, box + 1).astype(np.float32)
    kx, ky = np.meshgrid(k, k)
    mask = (kx * kx + ky * ky <= np.float32(0.25)).ravel()
    if ignore_dc:
        mask[(box + 1) ** 2 // 2] = False
    return mask


def _check_encoder_mask(box: int, ignore_dc: bool, path: Path) -> None:
    """cryoDRGN's encoder must read exactly cryodiff's training pixels (the
    Nyquist disc without DC), in the same order, for the weights to carry over."""
    same = ignore_dc and np.array_equal(cryodrgn_encoder_mask(box, ignore_dc), training_mask(box).numpy())
    _require(path, same, f"for box {box}, cryoDRGN's encoder pixels (ignore_DC={ignore_dc}) differ from cryodiff's",
             "only runs trained with cryoDRGN's default mask (ignore_DC, radius D/2) can be imported")


def _rename(key: str) -> str:
    """cryoDRGN's state-dict key -> cryodiff's."""
    return key.replace("decoder.decoder.", "decoder.mlp.", 1).replace("decoder.rand_freqs", "decoder.encoding.rand_freqs", 1)


def _map_state_dict(theirs: dict[str, torch.Tensor], arch: Architecture, weights: Path) -> dict[str, torch.Tensor]:
    """cryoDRGN's HetOnlyVAE state dict -> cryodiff's HetVAE state dict."""
    target = HetVAE(arch).state_dict()
    not_tensors = sorted(str(key) for key, value in theirs.items() if not isinstance(value, torch.Tensor))
    _require(weights, not not_tensors, f"model_state_dict entry {not_tensors[0] if not_tensors else ''} is not a tensor",
             "give a weights.N.pkl written by cryodrgn train_vae")
    mapped = {_rename(key): value.float() for key, value in theirs.items()}
    for key, value in target.items():  # geometric encodings: frequencies computed, not stored
        if key.startswith("decoder.encoding.") and key not in mapped:
            mapped[key] = value
    expected = {key: tuple(value.shape) for key, value in target.items()}
    wrong = sorted(set(mapped) ^ set(expected)) + sorted(k for k in mapped if k in expected and tuple(mapped[k].shape) != expected[k])
    _require(weights, not wrong, f"the weights do not fit the model described by the config (at {wrong[0] if wrong else ''})",
             "give the config.yaml of the run these weights come from")
    return mapped


def _load_weights(path: Path) -> dict:
    """A cryoDRGN checkpoint, tensors and plain containers only (weights_only)."""
    try:
        with numpy_arrays_allowed():
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-weights file raises many types
        raise InputError(path, f"cannot load as a weights-only torch checkpoint ({type(err).__name__}: {err})".split("\n")[0],
                         "give cryoDRGN's weights.N.pkl (files holding code objects are refused)") from None
    _require(path, isinstance(checkpoint, dict) and isinstance(checkpoint.get("model_state_dict"), dict),
             "no model_state_dict in the checkpoint", "give a weights.N.pkl written by cryodrgn train_vae")
    return checkpoint


def find_checkpoint(workdir: str | os.PathLike, epoch: int | None = None) -> CryoDrgnCheckpoint:
    """Weights and latents of ``epoch`` (1-based; default: the last one present,
    from ``weights.N.pkl`` or the final ``weights.pkl``, whose epoch is read
    from the checkpoint)."""
    workdir = Path(workdir)
    numbered = {int(m[1]): m[0] for m in (_WEIGHTS.match(p.name) for p in workdir.iterdir()) if m}
    if epoch in numbered:
        return _checkpoint(workdir / numbered[epoch], workdir / f"z.{epoch}.pkl")
    final = _checkpoint(workdir / "weights.pkl", workdir / "z.pkl") if (workdir / "weights.pkl").is_file() else None
    if final is not None and (final.epoch == epoch or (epoch is None and final.epoch >= max(numbered, default=0))):
        return final
    if epoch is None and numbered:
        return _checkpoint(workdir / numbered[max(numbered)], workdir / f"z.{max(numbered)}.pkl")
    present = sorted(set(numbered) | ({final.epoch} if final is not None else set()))
    raise InputError(workdir, f"no weights for epoch {epoch}" if epoch is not None else "no weights.N.pkl or weights.pkl found",
                     f"choose --epoch from {present}" if present else "give the output folder of cryodrgn train_vae")


def _checkpoint(weights: Path, latents: Path) -> CryoDrgnCheckpoint:
    checkpoint = _load_weights(weights)
    _require(weights, isinstance(checkpoint.get("epoch"), int), "no epoch number in the checkpoint",
             "give a weights.N.pkl written by cryodrgn train_vae")
    return CryoDrgnCheckpoint(checkpoint["epoch"], weights, latents, checkpoint["model_state_dict"])


def _latents(path: Path, zdim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(z_mu, z_logvar)`` float32 [n, zdim] from a z.N.pkl."""
    values = load_pickles_safely(path)
    _require(path, len(values) == 2, f"holds {len(values)} pickled objects; expected z_mu then z_logvar", "give cryoDRGN's z.N.pkl")
    for name, value in zip(("z_mu", "z_logvar"), values):
        _require(path, isinstance(value, np.ndarray) and value.ndim == 2 and value.shape[1] == zdim,
                 f"{name} is not an [n, {zdim}] array", "give the z.N.pkl of the same run and epoch")
    _require(path, values[0].shape == values[1].shape, "z_mu and z_logvar differ in shape", "give an intact z.N.pkl")
    for name, value in zip(("z_mu", "z_logvar"), values):
        _require(path, np.isfinite(value).all(), f"{name} holds NaN or infinite values (the run diverged)",
                 "import an earlier epoch with --epoch")
    return values[0].astype(np.float32), values[1].astype(np.float32)


def _locate(name: str | None, workdir: Path) -> Path | None:
    """A file named in the config: as written (cryoDRGN writes absolute
    paths), else relative to the run folder; None when neither exists."""
    if not name:
        return None
    for candidate in (Path(name), workdir / name):
        if candidate.is_file():
            return candidate
    return None


def _pixel_size(config: dict, workdir: Path, box: int, apix: float | None, path: Path) -> tuple[float, int | None]:
    """Å/px of the training box and the particle count of ctf.pkl (None without one)."""
    named = config["dataset_args"].get("ctf")
    ctf_path = _locate(named, workdir)
    ctf = read_cryodrgn_ctf(ctf_path) if ctf_path is not None else None
    if apix is not None:
        return apix, None if ctf is None else len(ctf)
    _require(path, ctf is not None,
             f"the pixel size is unknown: the CTF file {named!r} named in dataset_args.ctf cannot be found" if named
             else "the pixel size is unknown (the run was trained without a CTF)",
             "pass --apix (Å/px of the training images)")
    pixel = float(ctf[0, CTF_BOX] * ctf[0, CTF_APIX] / box)
    _require(ctf_path, math.isfinite(pixel) and pixel > 0, f"the first particle's box and pixel size give {pixel} Å/px",
             "pass --apix (Å/px of the training images), or give an intact ctf.pkl")
    return pixel, len(ctf)


def _indices(config: dict, workdir: Path, n_latents: int, n_total: int | None, ind: str | None, path: Path) -> np.ndarray:
    """0-based particle index of each latent row (``--ind`` or dataset_args.ind;
    all particles in order without one). The upper bound is checked against the
    particle count of ctf.pkl when that file is at hand."""
    named = ind or config["dataset_args"].get("ind")
    if not named:
        return np.arange(n_latents)
    ind_path = _locate(named, workdir)
    _require(path, ind_path is not None, f"the index file {named!r} named in dataset_args.ind cannot be found",
             "pass --ind with the index file the run was trained with")
    indices = read_indices(ind_path, n_total if n_total is not None else np.iinfo(np.int64).max)
    _require(ind_path, len(indices) == n_latents, f"{len(indices)} indices for {n_latents} latents",
             "give the index file the run was trained with")
    return indices


def import_cryodrgn(workdir: str | os.PathLike, out: str | os.PathLike, *, epoch: int | None = None,
                    apix: float | None = None, ind: str | None = None) -> Path:
    """Write the cryoDRGN run in ``workdir`` (epoch ``epoch``, default the last)
    as a cryodiff run directory ``out``; returns ``out``.

    ``apix`` (Å/px) and ``ind`` (index file) override what the config names.
    Raises :class:`~recon.errors.InputError` for anything that cannot be
    imported exactly, before writing.
    """
    workdir, out = Path(workdir), Path(out)
    if (out / CHECKPOINT).exists():
        raise InputError(out, "already holds a run", "choose a new output directory")
    config, config_path = read_cryodrgn_config(workdir)
    try:
        arch = _architecture(config, config_path)
        std = _normalization_std(config, config_path)
        ignore_dc = bool(config["lattice_args"].get("ignore_DC", True))
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a hand-edited or foreign config
        raise InputError(config_path, f"the configuration is not one cryodrgn train_vae wrote ({type(err).__name__}: {err})",
                         "give the run's own, unedited config.yaml") from None
    _check_encoder_mask(arch.box, ignore_dc, config_path)
    checkpoint = find_checkpoint(workdir, epoch)
    state = _map_state_dict(checkpoint.state_dict, arch, checkpoint.weights)
    z_mu, z_logvar = _latents(checkpoint.latents, arch.zdim)
    pixel, n_total = _pixel_size(config, workdir, arch.box, apix, config_path)
    indices = _indices(config, workdir, len(z_mu), n_total, ind, config_path)
    model = HetVAE(arch)
    model.load_state_dict(state)
    out.mkdir(parents=True, exist_ok=True)
    _write_run(out, _config(config, arch, checkpoint, workdir, std, pixel, len(z_mu), ind), model, checkpoint.epoch)
    write_latents(out, z_mu, z_logvar, indices)
    return out


def _config(config: dict, arch: Architecture, checkpoint: CryoDrgnCheckpoint, workdir: Path, std: float, apix: float,
            n: int, ind: str | None) -> dict:
    """cryodiff's config.json for the imported run (see recon.training)."""
    data_args = config["dataset_args"]
    source = {key: data_args.get(key) for key in ("particles", "datadir", "poses", "ctf")} | {"ind": ind or data_args.get("ind")}
    return {
        "format": "cryodiff-vae/1",
        "architecture": arch.to_dict(),
        "training": {"epochs": checkpoint.epoch, "seed": config.get("seed"), "invert": bool(data_args.get("invert_data", True))},
        "data": source | {"n_particles": n, "box": arch.box, "apix": apix},
        "normalization": {"mean": 0.0, "std": std},
        "imported_from": {
            "tool": "cryodrgn", "version": str(config.get("version", "unknown")), "workdir": str(workdir.resolve()),
            "weights": checkpoint.weights.name, "latents": checkpoint.latents.name,
            "window": bool(data_args.get("window", True)), "window_r": data_args.get("window_r"),
        },
    }


def _write_run(out: Path, config: dict, model: HetVAE, epoch: int) -> None:
    """config.json and checkpoint.pt (model weights and epoch), each atomically."""
    with atomic_target(out / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=2))
    with atomic_target(out / CHECKPOINT) as tmp:
        torch.save({"model": model.state_dict(), "epoch": epoch}, tmp)
