"""Atomic file writing: a file is either absent, its old version or complete.

Every writer in recon and cryodiff writes through :func:`atomic_target`: to a
temporary file in the target's directory, then ``os.replace`` onto the target,
so a reader (or a run killed half way) never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from recon.errors import InputError

__all__ = ["atomic_target"]


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    The temporary file, ``.NAME.<32 hex digits>.tmp`` in the same directory
    (so ``os.replace`` is atomic), is removed if the body raises. A missing
    directory is an :class:`~recon.errors.InputError`.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(path, "the output directory does not exist", f"create {path.parent} first")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
