"""Each particle's condition (apo or bound, a time point, a data set), read for ``train-prior
--condition`` and ``compare``: a column of the particle file the run was trained on, or a text file
of labels in the order of the latents. Labels are strings; conditions are the distinct labels in
sorted order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recon.errors import InputError


def condition_labels(*, column: str | None, labels_file: str | None, particles_file: str | None,
                     latents_source: str | Path, indices: np.ndarray) -> np.ndarray:
    """The condition label (str) of each latent ``[len(indices)]``.

    ``labels_file``: one label per line, in the order of the latents. ``column``: a column of
    ``particles_file``, or of the particle file in the ``config.json`` of the run folder
    ``latents_source``, at the latents' particle ``indices`` (0-based rows of that file).
    """
    if labels_file:
        path = Path(labels_file)
        if not path.is_file():
            raise InputError(path, "label file not found", "check the path given to --labels")
        values = np.array([line.strip() for line in path.read_text().splitlines() if line.strip()])
        if len(values) != len(indices):
            raise InputError(path, f"{len(values)} labels for {len(indices)} latents", "write one label per latent, in their order")
        return values
    from recon.io import read_particles

    if particles_file is None:
        config = Path(latents_source) / "config.json"
        if not config.is_file():
            raise InputError(latents_source, "latents without a run: the particle file holding the condition is unknown",
                             "give --particles FILE, or --labels")
        particles_file = json.loads(config.read_text())["data"].get("particles")
    if not particles_file or not Path(particles_file).is_file():
        raise InputError(particles_file or latents_source, "the particle file is not found", "pass its current path with --particles")
    table = read_particles(particles_file).meta.table
    if column not in table.columns:
        raise InputError(particles_file, f"has no column {column!r} (columns: {', '.join(map(str, table.columns))})",
                         "name a column of the particle file, e.g. rlnGroupName or rlnOpticsGroup")
    if len(indices) and indices.max() >= len(table):
        raise InputError(particles_file, f"has {len(table)} particles but the latents use particle {indices.max()}",
                         "give the particle file the run was trained on")
    return table[column].astype(str).to_numpy()[indices]


def condition_indices(values: np.ndarray, reference: str | None = None, what: str = "--condition") -> tuple[list[str], np.ndarray]:
    """``(names, index [N])``: the distinct labels, ``reference`` (default: the first in sorted order)
    first and the others sorted, and each latent's index into them. Fewer than two conditions is an error."""
    names = sorted(set(values.tolist()))
    if len(names) < 2:
        raise InputError(what, f"all particles have one condition ({names[0]!r})" if names else "no labels",
                         "give a column or labels that differ between conditions")
    reference = names[0] if reference is None else reference
    if reference not in names:
        raise InputError("--reference", f"{reference!r} is not a condition (conditions: {', '.join(names)})", "name one of them")
    names.remove(reference)
    names.insert(0, reference)
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[v] for v in values])
