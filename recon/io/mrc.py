"""MRC files: header checks, memory-mapped image stacks, and writers.

Arrays follow mrcfile's order: an image is ``[y, x]``, a stack ``[n, y, x]``,
a volume ``[z, y, x]``. Pixel and voxel sizes are in Å.

Reading never loads a whole stack: :class:`StackReader` reads the requested
images of a stack with positioned reads, one per run of consecutive images,
and :func:`read_images` converts only those to float32; :func:`open_stack`
memory-maps a file (``mrcfile.mmap`` in permissive mode, because real RELION
and EMPIAR stacks often lack the ``MAP `` identifier) for whole-file reads. The standard modes 0 (int8), 1 (int16),
2 (float32), 6 (uint16) and 12 (float16) are accepted, in either byte order.

Writers produce mode-2 (float32) files with the voxel size set in the header
and the origin at 0, and write atomically (:func:`recon.files.atomic_target`):
to a temporary file in the target directory, then ``os.replace`` onto the
target, so readers never see a half-written file.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import mrcfile.dtypes
import mrcfile.utils
import numpy as np
from mrcfile.mrcmemmap import MrcMemmap

from recon.errors import InputError
from recon.files import atomic_target

__all__ = [
    "StackInfo",
    "inspect_stack",
    "open_stack",
    "read_images",
    "StackReader",
    "write_stack",
    "write_volume",
    "read_volume",
]

#: MRC modes the readers accept (complex modes 3 and 4 are not images).
_IMAGE_MODES = (0, 1, 2, 6, 12)
_HEADER_BYTES = 1024


@dataclass(frozen=True)
class StackInfo:
    """What an MRC header says about a file (nothing of its data is read).

    Attributes
    ----------
    path
        The file.
    n
        Number of images (sections along z; 1 for a single 2-D image).
    shape
        (ny, nx): image height and width in pixels.
    dtype
        The on-disk data type (with byte order).
    apix
        Pixel size in Å from the header (``voxel_size.x``); 0 when unset.
        Often unreliable in particle stacks (RELION may write 1.0), so the
        particle readers take the pixel size from the metadata instead.
    data_offset
        Bytes before the first image: the 1024-byte header and the extended header.
    """

    path: Path
    n: int
    shape: tuple[int, int]
    dtype: np.dtype
    apix: float
    data_offset: int = _HEADER_BYTES


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise InputError(path, "file not found", "check the path (and the working directory it is relative to)")


def _not_mrc(path: Path, detail: str) -> InputError:
    return InputError(
        path,
        f"not a readable MRC file ({detail})",
        "give an MRC image stack (.mrcs/.mrc) as written by RELION, cryoSPARC or mrcfile",
    )


def _check_raw_header(path: Path) -> None:
    """Reject files whose header is not MRC before mrcfile reads them.

    mrcfile trusts the header's extended-header length (``nsymbt``) and would
    allocate that much memory for a garbage file; check that ``mode`` is an
    image mode and ``nsymbt`` fits in the file, in either byte order.
    """
    with open(path, "rb") as f:
        raw = f.read(_HEADER_BYTES)
    if len(raw) < _HEADER_BYTES:
        raise _not_mrc(path, f"only {len(raw)} bytes, shorter than the {_HEADER_BYTES}-byte header")
    room = path.stat().st_size - _HEADER_BYTES
    for order in "<>":
        header = np.frombuffer(raw, dtype=mrcfile.dtypes.HEADER_DTYPE.newbyteorder(order))[0]
        if int(header["mode"]) in _IMAGE_MODES and 0 <= int(header["nsymbt"]) <= room:
            return
    raise _not_mrc(path, f"header field 'mode' is not one of {_IMAGE_MODES} or 'nsymbt' exceeds the file")


def inspect_stack(path: str | os.PathLike) -> StackInfo:
    """Read and check an MRC header without touching the data.

    Raises :class:`~recon.errors.InputError` if the file is missing, is not an
    MRC file (short or garbled header, unknown ``mode``), or is truncated (the
    file is shorter than the data size the header announces).
    """
    path = Path(path)
    _check_exists(path)
    _check_raw_header(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                header = mrc.header
    except ValueError as err:
        raise _not_mrc(path, str(err)) from None
    mode = int(header.mode)
    if mode not in _IMAGE_MODES:
        raise _not_mrc(path, f"header field 'mode' is {mode}; expected one of {_IMAGE_MODES}")
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    if min(nx, ny, nz) < 1:
        raise _not_mrc(path, f"header fields nx, ny, nz are {nx}, {ny}, {nz}; all must be positive")
    dtype = mrcfile.utils.data_dtype_from_header(header)
    needed = _HEADER_BYTES + int(header.nsymbt) + nx * ny * nz * dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise InputError(
            path,
            f"truncated MRC file: the header announces {nz} images of {ny}x{nx} pixels "
            f"({needed} bytes) but the file has {size} bytes",
            "the file was cut short (interrupted copy or extraction); copy or extract it again",
        )
    voxel_x = float(header.cella.x) / int(header.mx) if int(header.mx) > 0 else 0.0
    return StackInfo(path=path, n=nz, shape=(ny, nx), dtype=dtype, apix=voxel_x,
                     data_offset=_HEADER_BYTES + int(header.nsymbt))


def open_stack(path: str | os.PathLike) -> MrcMemmap:
    """Memory-map an MRC stack for reading (read-only, permissive).

    The caller closes the returned handle. Check the file with
    :func:`inspect_stack` first for clear errors; a file whose data block
    cannot be mapped raises :class:`~recon.errors.InputError` here too.
    """
    path = Path(path)
    _check_exists(path)
    _check_raw_header(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
        except ValueError as err:
            raise _not_mrc(path, str(err)) from None
    if mrc.data is None:
        mrc.close()
        raise _not_mrc(path, "; ".join(str(w.message) for w in caught) or "no data block")
    return mrc


class StackReader:
    """An MRC stack (checked by :func:`inspect_stack`) open for reading images by number.

    Hand-written instead of reading through ``mrcfile.mmap``: pages of a memory-mapped file
    count toward the process's resident memory and stay mapped, so an epoch over a stack
    larger than RAM would look like (and be accounted as) that much memory; positioned reads
    (``os.pread``) hold only the images asked for, and the kernel's page cache does the rest.
    """

    def __init__(self, info: StackInfo):
        self.info = info
        self.image_bytes = info.shape[0] * info.shape[1] * info.dtype.itemsize
        self.fd = os.open(info.path, os.O_RDONLY)

    def read(self, first: int, count: int) -> np.ndarray:
        """Images ``first`` to ``first + count - 1`` (0-based) in the file's own type ``[count, ny, nx]``."""
        size, offset = count * self.image_bytes, self.info.data_offset + first * self.image_bytes
        buffer = bytearray(size)
        view, done = memoryview(buffer), 0
        while done < size:
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got == 0:
                raise InputError(self.info.path, f"the file ends before image {first + done // self.image_bytes + 1} (1-based) is complete",
                                 "the file was cut short while being read (still being copied?); copy it again")
            done += got
        return np.frombuffer(buffer, dtype=self.info.dtype).reshape(count, *self.info.shape)

    def close(self) -> None:
        os.close(self.fd)


def read_images(reader: StackReader, indices: np.ndarray) -> np.ndarray:
    """Read images by 0-based index from an open stack as float32 [B, ny, nx].

    Only the requested images are read and converted, one read per run of consecutive
    indices; pass sorted indices for the most sequential disk access.
    """
    indices = np.asarray(indices, dtype=np.intp)
    out = np.empty((len(indices), *reader.info.shape), np.float32)
    if not len(indices):
        return out
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(indices)]):
        out[start:stop] = reader.read(int(indices[start]), int(stop - start))
    return out


#: The largest magnitude a float16 (MRC mode 12) pixel holds.
FLOAT16_MAX = float(np.finfo(np.float16).max)


@contextlib.contextmanager
def new_stack_mmap(path: str | os.PathLike, shape: tuple[int, int, int], apix: float,
                   float16: bool = False) -> Iterator[mrcfile.mrcmemmap.MrcMemmap]:
    """A new image stack ``[n, y, x]`` at ``path``, written through a memory map: float32
    (MRC mode 2), or float16 (mode 12: half the disk and page cache, 3 significant digits,
    magnitudes up to :data:`FLOAT16_MAX`) with ``float16``.

    The file's blocks are reserved on disk before anything is written (``posix_fallocate``):
    a disk too small fails here with ``ENOSPC`` naming the file, instead of killing the
    process with SIGBUS when a write through the map finds no free block.
    """
    with mrcfile.new_mmap(path, shape=shape, mrc_mode=12 if float16 else 2, overwrite=True) as mrc:
        mrc.set_image_stack()
        mrc.voxel_size = apix
        mrc.flush()
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(path)) from None
        finally:
            os.close(fd)
        yield mrc


def _write_mrc(path: str | os.PathLike, data: np.ndarray, apix: float, image_stack: bool) -> None:
    """``data`` as it is typed (float32: mode 2, float16: mode 12), written atomically."""
    with atomic_target(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(data)
        if image_stack:
            mrc.set_image_stack()
        mrc.voxel_size = float(apix)
        mrc.header.origin = (0.0, 0.0, 0.0)


def write_stack(path: str | os.PathLike, images: np.ndarray, apix: float, float16: bool = False) -> None:
    """Write an image stack [N, D, D] (``[n, y, x]``) as a .mrcs file.

    ``apix`` is the pixel size in Å, stored as the header voxel size. The
    data are stored as float32 (mode 2), or as float16 (mode 12) with
    ``float16``; a value beyond :data:`FLOAT16_MAX` is then a ``ValueError``
    (it would be stored as infinity). The file is written atomically.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"images must be [N, D, D], got shape {images.shape}")
    if float16:
        images = to_float16(images)
    _write_mrc(path, images, apix, image_stack=True)


def to_float16(images: np.ndarray) -> np.ndarray:
    """``images`` as float16; a ``ValueError`` if a finite value is too large for float16."""
    peak = float(np.abs(images).max(initial=0.0))
    if np.isfinite(peak) and peak > FLOAT16_MAX:
        raise ValueError(f"a pixel of magnitude {peak:.4g} does not fit in float16 (at most {FLOAT16_MAX:.0f})")
    return images.astype(np.float16)


def write_volume(path: str | os.PathLike, volume: np.ndarray, apix: float) -> None:
    """Write a volume [D, D, D] (``[z, y, x]``) as a mode-2 MRC map.

    ``apix`` is the voxel size in Å, stored in the header; the origin is 0.
    The file is written atomically.
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"volume must be [D, D, D], got shape {volume.shape}")
    _write_mrc(path, volume, apix, image_stack=False)


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Read an MRC volume.

    Returns
    -------
    (volume, apix)
        volume: float32 ``[z, y, x]`` in RAM, whatever axis order the file
        stores (header ``mapc``, ``mapr``, ``maps``); apix: the header voxel
        size (x) in Å (0.0 if the header leaves it unset). The origin is not
        used: cryodiff's maps are boxes centred on the particle. A NaN or negative voxel size,
        or a NaN or infinite voxel, is an :class:`~recon.errors.InputError`.
    """
    info = inspect_stack(path)
    mrc = open_stack(path)
    try:
        volume = np.array(mrc.data, dtype=np.float32)
        order = tuple(int(mrc.header[f]) for f in ("maps", "mapr", "mapc"))  # file axis of sections, rows, columns
    finally:
        mrc.close()
    if volume.ndim == 2:
        volume = volume[None]
    if order not in ((3, 2, 1), (0, 0, 0)):  # (0, 0, 0): unset by some writers, the standard order
        if sorted(order) != [1, 2, 3]:
            raise InputError(path, f"header fields mapc, mapr, maps are {order[::-1]}, not an order of the axes 1, 2, 3",
                             "repair the header (the usual order is mapc=1, mapr=2, maps=3)")
        volume = np.ascontiguousarray(volume.transpose([order.index(axis) for axis in (3, 2, 1)]))  # to [z, y, x]
    if not (math.isfinite(info.apix) and info.apix >= 0):
        raise InputError(path, f"the header's voxel size is {info.apix} Å", "set a positive voxel size in the header (or pass --apix where the command has it)")
    if not np.isfinite(volume).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(volume))[0])
        raise InputError(path, f"voxel [z, y, x] = {list(where)} is NaN or infinite", "give a map with finite values")
    return volume, info.apix
