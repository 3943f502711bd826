"""What ``cryodiff analyze`` leaves in its folder, for the commands and the napari plugin that reuse it.

``analysis.json`` records the settings and a fingerprint of the latents the
analysis was made from, so that a later command can tell whether the
analysis still belongs to the run's current latents.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io.safe_read import load_npy

ANALYSIS = "analysis.json"


def fingerprint(z: np.ndarray) -> str:
    """SHA-256 of the float32 latents: tells whether an analysis belongs to them."""
    return hashlib.sha256(np.ascontiguousarray(z, dtype=np.float32).tobytes()).hexdigest()


def kmeans_folder(analysis: Path, k: int) -> Path:
    """Where an analysis with ``k`` k-means clusters keeps them: ``kmeans{k}/``, as cryoDRGN's
    ``analyze`` does, so analyses with other numbers of clusters stay side by side."""
    return Path(analysis) / f"kmeans{int(k)}"


def read_record(analysis: Path, z: np.ndarray) -> dict | None:
    """The ``analysis.json`` of folder ``analysis`` if it was made from latents ``z``, else ``None``."""
    try:
        record = json.loads((Path(analysis) / ANALYSIS).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("latents_sha256") != fingerprint(z):
        return None
    return record


def saved_kmeans(analysis: Path, z: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels [N], centre rows [K])`` of the k-means with ``k`` clusters (default: the
    analysis's latest) saved in ``analysis`` for latents ``z``; ``None`` if there is none."""
    record = read_record(analysis, z)
    if record is None:
        return None
    latest, made = record.get("ksample", 0), record.get("kmeans", [record.get("ksample")])
    if not (_whole(latest) and isinstance(made, list) and all(_whole(m) or m is None for m in made)):
        raise InputError(Path(analysis) / ANALYSIS, "ksample or kmeans is not what cryodiff analyze writes (whole numbers)",
                         f"rerun cryodiff analyze (it rewrites {ANALYSIS})")
    k = latest if k is None else k
    if k not in made:
        return None
    folder = kmeans_folder(analysis, k)
    try:
        labels = load_npy(folder / "labels.npy", "the k-means labels")
        rows = np.loadtxt(folder / "centers_ind.txt", dtype=np.int64, ndmin=1)
    except (OSError, ValueError):
        return None
    if labels.shape != (len(z),) or len(rows) != k:
        return None
    return labels, rows


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
