"""Public entry points: particle metadata and images from any supported file.

:func:`read_metadata` reads poses, CTF and image references from a RELION
``.star``, a cryoSPARC ``.cs``, an MRC stack (``.mrcs``/``.mrc``) or a
``.txt`` list of stacks, optionally replacing poses or CTF by cryoDRGN
``pose.pkl``/``ctf.pkl`` files; it never needs the image stacks of a star
or cs file. :func:`read_particles` adds the images as a lazy
:class:`~recon.io.images.ImageStack`.

The metadata, with its units and conventions, is a
:class:`~recon.io.metadata.ParticleMetadata` (importable from here too).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recon.ctf_columns import CTF_APIX, CTF_BOX
from recon.errors import InputError
from recon.io.cryosparc import read_cs
from recon.io.images import ImageStack
from recon.io.metadata import ParticleMetadata
from recon.io.pkl import read_cryodrgn_ctf, read_cryodrgn_poses
from recon.io.star import read_star
from recon.io.validate import check_ctf, check_poses

__all__ = ["ParticleMetadata", "Particles", "read_metadata", "read_particles"]

_IMAGE_SUFFIXES = (".mrcs", ".mrc")
#: Where the image references come from, per source type (for messages).
_NAME_FIELD = {".star": "rlnImageName", ".cs": "blob/path"}

log = logging.getLogger("recon.io")


@dataclass
class Particles:
    """Images and metadata of one particle set, in the same order."""

    images: ImageStack
    meta: ParticleMetadata

    def __len__(self) -> int:
        return len(self.meta)


def _summary_pixel_size(pixel_sizes: np.ndarray | None, source: Path) -> float | None:
    if pixel_sizes is None:
        return None
    values, counts = np.unique(pixel_sizes, return_counts=True)
    chosen = float(values[np.argmax(counts)])
    if len(values) > 1:
        warnings.warn(
            f"{source}: particles have {len(values)} pixel sizes ({', '.join(f'{v:g}' for v in values)} Å); "
            f"apix is the most common, {chosen:g} Å, and per-particle values are in ctf[:, 1]",
            stacklevel=3,
        )
    return chosen


def _resolve_stack(name: str, source: Path, datadir: Path | None) -> Path:
    """Find a stack named in ``source``: absolute, beside source, in datadir, then datadir/basename."""
    written = Path(name)
    candidates = [written] if written.is_absolute() else [source.parent / written]
    if datadir is not None:
        candidates += [datadir / written, datadir / written.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    field = _NAME_FIELD.get(source.suffix.lower(), "stack list")
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    fix = "pass --datadir with the folder that holds the stacks (datadir= in Python)" if datadir is None else "check --datadir (datadir= in Python) and the stack names"
    raise InputError(source, f"image stack {name} ({field}) not found; looked for {looked}", fix)


def _stack_list(path: Path) -> list[str]:
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return [path.name]
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise InputError(path, f"is not UTF-8 text (byte {err.start})", "write the stack list as plain text, one .mrcs path per line") from None
    names = [line for line in lines if line and not line.startswith("#")]
    if not names:
        raise InputError(path, "the list names no image stacks", "write one .mrcs path per line")
    return names


def _read_stacks_only(path: Path, apix: float | None, datadir: Path | None) -> dict[str, Any]:
    names = _stack_list(path)
    stack = ImageStack([_resolve_stack(n, path, datadir) for n in names], referenced_by=path)
    image_names = [
        f"{i + 1}@{names[f]}" for f, i in zip(stack.file_index.tolist(), stack.image_index.tolist(), strict=True)
    ]
    return dict(
        rotations=None,
        shifts_px=None,
        ctf=None,
        apix=None if apix is None else np.full(len(stack), float(apix)),
        box=stack.box,
        image_names=image_names,
        source=path,
        table=pd.DataFrame({"rlnImageName": image_names}),
        optics=None,
    )


def _with_poses(meta: ParticleMetadata, poses: Path, box: int | None) -> ParticleMetadata:
    box = meta.box if meta.box is not None else box
    if box is None:
        raise InputError(poses, "the box size is needed to turn pose.pkl translations into pixels",
                         "pass box= (px), or read with read_particles, which takes it from the stacks")
    rotations, shifts = read_cryodrgn_poses(poses, box)
    _check_count(poses, len(rotations), meta)
    return dataclasses.replace(meta, rotations=rotations, shifts_px=shifts)


def _with_ctf(meta: ParticleMetadata, ctf: Path, values: np.ndarray) -> ParticleMetadata:
    _check_count(ctf, len(values), meta)
    boxes = np.unique(values[:, CTF_BOX])
    box = meta.box if meta.box is not None or len(boxes) != 1 else int(boxes[0])
    return dataclasses.replace(meta, ctf=values, box=box, apix=_summary_pixel_size(values[:, CTF_APIX], ctf))


def _ctf_at_box(ctf: np.ndarray | None, box: int, source: Path) -> tuple[np.ndarray | None, float | None]:
    """CTF parameters for images of ``box`` px, and their pixel size when it had to change.

    A CTF table made at another box (cryoDRGN's ``ctf.pkl`` of the original particles, used
    with a downsampled stack) describes the same physical images: its pixel size is rescaled
    to ``box_ctf * apix_ctf / box`` Å/px, as cryoDRGN does. An unknown box (NaN) is the
    stacks'."""
    if ctf is None:
        return None, None
    ctf = ctf.copy()
    ctf[np.isnan(ctf[:, CTF_BOX]), CTF_BOX] = box
    other = ctf[:, CTF_BOX] != box
    if not other.any():
        return ctf, None
    made_at = int(np.median(ctf[other, CTF_BOX]))
    ctf[other, CTF_APIX] = ctf[other, CTF_BOX] * ctf[other, CTF_APIX] / box
    ctf[other, CTF_BOX] = box
    log.info("%s: CTF parameters made at a box of %d px; pixel size rescaled to %.4g Å/px for the %d px images",
             source, made_at, float(np.median(ctf[:, CTF_APIX])), box)
    return ctf, _summary_pixel_size(ctf[:, CTF_APIX], source)


def _check_count(path: Path, n: int, meta: ParticleMetadata) -> None:
    if n != len(meta):
        raise InputError(
            path,
            f"holds {n} particles but {meta.source} has {len(meta)} (particle count mismatch)",
            f"give the file made from {meta.source.name} (same particles, same order)",
        )


def read_metadata(
    path: str | os.PathLike,
    *,
    box: int | None = None,
    apix: float | None = None,
    amplitude_contrast: float | None = None,
    poses: str | os.PathLike | None = None,
    ctf: str | os.PathLike | None = None,
    datadir: str | os.PathLike | None = None,
) -> ParticleMetadata:
    """Read particle metadata from a .star, .cs, .mrcs/.mrc or .txt file.

    Parameters
    ----------
    path
        RELION STAR (3.0 to 5), cryoSPARC .cs, an MRC stack, or a .txt list
        of stack paths (one per line, relative to the list's folder).
    box, apix, amplitude_contrast
        Box (px), pixel size (Å/px) and amplitude contrast, used only where
        the file lacks them (e.g. ``box=300, apix=1.035,
        amplitude_contrast=0.1`` for a RELION 3.0 file without optics).
    poses, ctf
        cryoDRGN ``pose.pkl`` / ``ctf.pkl`` that replace the file's poses /
        CTF (read with the safe unpickler; counts must match).
    datadir
        Extra folder to look for the stacks of a .txt list.

    The stacks of a .star or .cs file are not opened (they may be absent);
    a .mrcs or .txt source is the stacks, so their headers are read.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found", "check the path of the particle file")
    suffix = path.suffix.lower()
    ctf_values = read_cryodrgn_ctf(ctf) if ctf is not None else None
    if apix is None and ctf_values is not None and len(ctf_values):  # the CTF file's pixel size fills a file without one
        apix = _summary_pixel_size(ctf_values[:, CTF_APIX], Path(ctf))
    options = dict(box=box, apix=apix, amplitude_contrast=amplitude_contrast)
    if suffix == ".star":
        fields = read_star(path, **options)
    elif suffix == ".cs":
        fields = read_cs(path, **options)
    elif suffix in _IMAGE_SUFFIXES or suffix == ".txt":
        fields = _read_stacks_only(path, apix, None if datadir is None else Path(datadir))
    else:
        raise InputError(path, f"unknown particle file type '{suffix}'", "give a .star, .cs, .mrcs/.mrc or .txt file")
    fields["apix"] = _summary_pixel_size(fields["apix"], path)
    meta = ParticleMetadata(**fields)
    if poses is not None:
        meta = _with_poses(meta, Path(poses), box)
    if ctf is not None:
        meta = _with_ctf(meta, Path(ctf), ctf_values)
    if meta.ctf is not None:
        check_ctf(meta.ctf, Path(ctf) if ctf is not None else path)
    check_poses(meta.rotations, meta.shifts_px, Path(poses) if poses is not None else path)
    if meta.apix is not None and not (np.isfinite(meta.apix) and meta.apix > 0):
        raise InputError(path, f"pixel size {meta.apix} Å is not a positive number", "give the pixel size in Å/px, e.g. --apix 1.5")
    if len(meta) == 0:
        raise InputError(path, "holds no particles", "give a particle file with at least one particle")
    return meta


def _parse_image_names(meta: ParticleMetadata) -> tuple[np.ndarray, list[str]]:
    """Split ``idx@path`` names into 0-based indices and stack names (no ``@``: image 1)."""
    names = pd.Series(meta.image_names, dtype=str)
    split = names.str.partition("@")
    has_at = split[1] == "@"
    index_text = split[0].where(has_at, "1")
    stacks = split[2].where(has_at, split[0])
    indices = pd.to_numeric(index_text, errors="coerce")
    bad = indices.isna() | (indices < 1) | (stacks.str.len() == 0)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        field = _NAME_FIELD.get(meta.source.suffix.lower(), "image name")
        raise InputError(
            meta.source,
            f"particle {row}: {field} '{meta.image_names[row]}' is not of the form index@stack (index from 1)",
            f"repair {field}",
        )
    return indices.to_numpy(dtype=np.int64) - 1, stacks.tolist()


def _open_images(meta: ParticleMetadata, datadir: Path | None) -> ImageStack:
    indices, stacks = _parse_image_names(meta)
    file_index, unique_names = pd.factorize(pd.Series(stacks))
    files = [_resolve_stack(name, meta.source, datadir) for name in unique_names]
    return ImageStack(files, file_index, indices, referenced_by=meta.source)


def relocate_image_names(
    meta: ParticleMetadata, folder: str | os.PathLike, datadir: str | os.PathLike | None = None, absolute: bool = False
) -> ParticleMetadata:
    """``meta`` with image names whose stacks resolve from ``folder`` (where a new particle
    file is being written): each stack is found as :func:`read_particles` finds it (beside
    ``meta.source``, then in ``datadir``) and named relative to ``folder``, or by its absolute
    path with ``absolute``. Image indices are kept as written."""
    _, stacks = _parse_image_names(meta)
    datadir = None if datadir is None else Path(datadir)
    folder = Path(folder).resolve()
    renamed = {}
    for name in dict.fromkeys(stacks):
        found = _resolve_stack(name, meta.source, datadir).resolve()
        renamed[name] = str(found) if absolute else os.path.relpath(found, folder)
    names = [
        f"{prefix}@{renamed[stack]}" if at else renamed[stack]
        for (prefix, at, _), stack in zip((n.partition("@") for n in meta.image_names), stacks)
    ]
    return dataclasses.replace(meta, image_names=names)


def read_particles(
    path: str | os.PathLike,
    *,
    datadir: str | os.PathLike | None = None,
    lazy: bool = True,
    box: int | None = None,
    apix: float | None = None,
    amplitude_contrast: float | None = None,
    poses: str | os.PathLike | None = None,
    ctf: str | os.PathLike | None = None,
) -> Particles:
    """Read particle metadata and open the images it references.

    Stacks named as ``idx@path`` are looked for relative to the metadata
    file's folder, then in ``datadir``, then as ``datadir``/basename
    (cryoSPARC's ``blob/path`` is relative to the project folder, so pass
    ``datadir=`` that folder for a .cs exported elsewhere). With
    ``lazy=False`` all images are read into RAM at once. The box size is
    taken from the stacks; it must agree with the metadata's. Other options
    as :func:`read_metadata`.
    """
    datadir = None if datadir is None else Path(datadir)
    meta = read_metadata(path, box=box, apix=apix, amplitude_contrast=amplitude_contrast, ctf=ctf, datadir=datadir)
    images = _open_images(meta, datadir)
    if meta.box is not None and meta.box != images.box:
        raise InputError(
            meta.source,
            f"the metadata gives a box of {meta.box} px but the stacks hold {images.box} px images",
            "use the particle file that belongs to these stacks (or re-extract at the stated box)",
        )
    if poses is not None:  # after the stacks are open: they give the box that pose.pkl's translations are a fraction of
        meta = _with_poses(meta, Path(poses), images.box)
        check_poses(meta.rotations, meta.shifts_px, Path(poses))
    ctf_values, ctf_apix = _ctf_at_box(meta.ctf, images.box, Path(ctf) if ctf is not None else meta.source)
    if ctf_apix is not None and apix is None and ctf is not None:
        meta = dataclasses.replace(meta, apix=ctf_apix)
    meta = dataclasses.replace(meta, box=images.box, ctf=ctf_values)
    if not lazy:
        images.load()
    return Particles(images=images, meta=meta)
