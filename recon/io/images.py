"""``ImageStack``: a lazy, indexable view of particle images in MRC stacks.

A particle set's images usually live in many files (one ``.mrcs`` per
micrograph in RELION and cryoSPARC projects). ``ImageStack`` maps particle
number ``i`` (0-based, in metadata order) to (file, image within file) and
reads batches on demand::

    stack = ImageStack(["a.mrcs", "b.mrcs"])   # every image of a, then b
    stack.box, len(stack)                      # D (px), N
    batch = stack[[0, 5, 7]]                   # float32 [3, D, D], [y, x]

Opening only reads the headers, which are checked at once: a missing file,
a non-MRC or truncated file, non-square images, box sizes that differ
between files and an index past the end of a file each raise
:class:`~recon.errors.InputError`. Images are read on demand with positioned
reads (:class:`recon.io.mrc.StackReader`), so the process holds only the
images asked for whatever the size of the stacks; each file stays open (up
to :data:`MAX_OPEN_FILES` at a time, least recently used closed first, so
projects with thousands of stacks stay within the operating system's limit
on open files). Each batch is checked for NaN or infinite pixels.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io.mrc import StackReader, inspect_stack, read_images

__all__ = ["ImageStack", "MAX_OPEN_FILES"]

#: Most stack files kept memory-mapped at once.
MAX_OPEN_FILES = 256


class ImageStack:
    """Particle images drawn from one or more MRC stacks.

    Parameters
    ----------
    files
        Paths of the MRC stacks.
    file_index, image_index
        Optional int arrays [N]: particle ``i`` is image ``image_index[i]``
        (0-based) of ``files[file_index[i]]``. Leave both out to take every
        image of every file, in file order.
    referenced_by
        The metadata file the references come from, named in error messages.

    Attributes
    ----------
    box
        Image size D in pixels (all images are D x D).

    Indexing (``stack[key]``) accepts an int (returns [D, D]), a slice, a
    list, an int array or a boolean mask of length N (returns [B, D, D]).
    Images are float32 ``[y, x]`` in the files' own units (no
    normalisation, no contrast flip).
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        file_index: Sequence[int] | np.ndarray | None = None,
        image_index: Sequence[int] | np.ndarray | None = None,
        *,
        referenced_by: str | os.PathLike | None = None,
    ):
        self._infos = [inspect_stack(f) for f in files]
        if (file_index is None) != (image_index is None):
            raise ValueError("give both file_index and image_index, or neither")
        if file_index is None:
            counts = [info.n for info in self._infos]
            file_index = np.repeat(np.arange(len(counts)), counts)
            image_index = np.concatenate([np.arange(n) for n in counts]) if counts else np.zeros(0, int)
        self._file_index = np.asarray(file_index, dtype=np.intp)
        self._image_index = np.asarray(image_index, dtype=np.intp)
        if self._file_index.shape != self._image_index.shape or self._file_index.ndim != 1:
            raise ValueError("file_index and image_index must be 1-D arrays of equal length")
        self._referenced_by = referenced_by
        self.box = self._check_shapes()
        self._check_indices()
        self._open: OrderedDict[int, StackReader] = OrderedDict()
        self._cache: np.ndarray | None = None

    @property
    def files(self) -> list[Path]:
        """The stack files, in the order ``file_index`` refers to."""
        return [info.path for info in self._infos]

    @property
    def file_index(self) -> np.ndarray:
        """[N] index into :attr:`files` of each particle's stack."""
        return self._file_index

    @property
    def image_index(self) -> np.ndarray:
        """[N] 0-based position of each particle within its stack."""
        return self._image_index

    def _fix_reference(self) -> str:
        if self._referenced_by is None:
            return "give the correct stack files"
        return f"correct the image references in {self._referenced_by} (or point datadir at the right stacks)"

    def _check_shapes(self) -> int:
        box = None
        for info in self._infos:
            ny, nx = info.shape
            if ny != nx:
                raise InputError(
                    info.path,
                    f"images are not square ({ny}x{nx} pixels, [y, x])",
                    "re-extract the particles with a square box",
                )
            if box is None:
                box = nx
            elif nx != box:
                raise InputError(
                    info.path,
                    f"box size {nx} px differs from {box} px in {self._infos[0].path} (mixed box sizes)",
                    "re-extract all particles at one box size, or downsample the stacks to a common size",
                )
        if box is None:
            raise InputError(self._referenced_by, "no image stacks given", "give at least one MRC stack")
        return box

    def _check_indices(self) -> None:
        if len(self._image_index) and self._image_index.min() < 0:
            raise InputError(self._referenced_by, "negative image index", self._fix_reference())
        counts = np.array([info.n for info in self._infos])
        past = self._image_index >= counts[self._file_index]
        if past.any():
            first = int(np.argmax(past))
            info = self._infos[self._file_index[first]]
            raise InputError(
                info.path,
                f"particle {first} refers to image {self._image_index[first] + 1} (1-based) "
                f"but the stack holds only {info.n} images",
                self._fix_reference(),
            )

    def __len__(self) -> int:
        return len(self._file_index)

    def __repr__(self) -> str:
        return f"ImageStack({len(self)} images of {self.box}x{self.box} px from {len(self._infos)} file(s))"

    def _positions(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(len(self))[key]
        positions = np.asarray(key)
        if positions.dtype == bool and positions.shape == (len(self),):
            return np.flatnonzero(positions)
        if not np.issubdtype(positions.dtype, np.integer) or positions.ndim != 1:
            raise TypeError(
                f"index with an int, slice, 1-D int array or boolean mask, not {positions.dtype} {positions.shape}"
            )
        positions = np.where(positions < 0, positions + len(self), positions).astype(np.intp)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"particle index out of range for {len(self)} particles")
        return positions

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        positions = self._positions(key)
        if self._cache is not None:
            return self._cache[positions]
        out = np.empty((len(positions), self.box, self.box), dtype=np.float32)
        files = self._file_index[positions]
        for f in np.unique(files):
            rows = np.flatnonzero(files == f)
            wanted = self._image_index[positions[rows]]
            order = np.argsort(wanted, kind="stable")
            images = read_images(self._handle(int(f)), wanted[order])
            self._check_finite(images, int(f), wanted[order])
            out[rows[order]] = images
        return out

    def _check_finite(self, images: np.ndarray, f: int, indices: np.ndarray) -> None:
        if np.issubdtype(self._infos[f].dtype, np.integer):
            return
        bad = ~np.isfinite(images).all(axis=(1, 2))
        if bad.any():
            raise InputError(
                self._infos[f].path,
                f"image {int(indices[np.argmax(bad)]) + 1} (1-based) contains NaN or infinite pixels",
                "remove that particle from the metadata or re-extract the stack",
            )

    def _handle(self, f: int) -> StackReader:
        handle = self._open.get(f)
        if handle is None:
            if len(self._open) >= MAX_OPEN_FILES:
                self._open.popitem(last=False)[1].close()
            handle = self._open[f] = StackReader(self._infos[f])
        else:
            self._open.move_to_end(f)
        return handle

    def load(self) -> np.ndarray:
        """Read every image into RAM (float32 [N, D, D]) and serve later reads from it.

        Needs N·D²·4 bytes of memory. Returns the array.
        """
        if self._cache is None:
            self._cache = self[np.arange(len(self))]
            self.close()
        return self._cache

    def close(self) -> None:
        """Close all open stack files (they are reopened on the next read)."""
        while self._open:
            self._open.popitem()[1].close()

    def __enter__(self) -> ImageStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        """Pickle without open file handles (for DataLoader worker processes)."""
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state
