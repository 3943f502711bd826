"""A selection of a run's particles: how it is chosen, the files other tools read, and its map.

A selection is a set of *rows* of the run's latents (0-based, the order of
``run.latents()``); ``run.indices[rows]`` are the particles' 0-based positions
in the particle file the run was trained on. Shared by ``cryodiff select`` and
the napari explorer, so neither imports the other:

* choosing: :func:`cluster_rows` (k-means clusters of an analysis),
  :func:`score_rows` (a cut on the log-likelihoods of ``score-particles``);
* :func:`write_selection`: RELION 3.1 ``.star``, ``.ind.txt``, cryoDRGN's
  ``.ind.pkl`` and, for a run trained on a cryoSPARC ``.cs``, a ``.cs`` subset
  keeping every field (``uid`` included);
* :func:`reconstruct_selection`: a gold-standard backprojection of the
  selected particles with the run's poses and CTF (half sets from the file
  when it has them), its half-map FSC and resolution.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryodiff.analysis_record import read_record, saved_kmeans
from cryodiff.output_folder import output_files
from cryodiff.outputs import save_array
from recon.errors import InputError

#: FSC threshold of the gold-standard resolution.
FSC_THRESHOLD = 0.143


def cluster_rows(folder: Path, z: np.ndarray, clusters: Iterable[int], k: int | None = None) -> np.ndarray:
    """Rows of ``z`` whose k-means label (of the analysis with ``k`` clusters, default the
    latest) in the analysis ``folder`` is in ``clusters``."""
    clusters = list(clusters)
    record = read_record(folder, z)
    if record is None and (folder / "analysis.json").is_file():
        raise InputError(folder, "this analysis was made from other latents than the run's current ones", "rerun cryodiff analyze on the run")
    found = None if record is None else saved_kmeans(folder, z, k)
    if found is None:
        also = f" with {k} clusters" if k is not None and record is not None else ""
        raise InputError(folder, f"no k-means analysis here{also}", "run cryodiff analyze on the run first (or pass --analysis DIR or --ksample K)")
    labels, rows = found
    bad = [c for c in clusters if not 0 <= c < len(rows)]
    if bad:
        raise InputError(
            "--clusters", f"cluster {bad[0]} does not exist (the analysis has clusters 0..{len(rows) - 1})", "use cluster numbers from the analysis plots"
        )
    return np.flatnonzero(np.isin(labels, clusters))


def read_scores(path: str | Path, particles: np.ndarray) -> np.ndarray:
    """Log-likelihood (nats, float64) of each of ``particles`` (the run's particle indices [N]) from
    the ``.h5`` that ``cryodiff score-particles`` wrote."""
    from recon.io.safe_read import open_h5, read_h5_array

    if not Path(path).is_file():
        raise InputError(path, "score file not found", "write it with cryodiff score-particles PRIOR --run RUN -o FILE")
    with open_h5(path, "the score file") as h5:
        log_prob, indices = (read_h5_array(h5, name, path, "the score file of cryodiff score-particles") for name in ("log_prob", "indices"))
    log_prob, indices = np.asarray(log_prob, np.float64).reshape(-1), np.asarray(indices, np.int64).reshape(-1)
    if log_prob.shape != indices.shape:
        raise InputError(path, f"{len(log_prob)} scores for {len(indices)} particle indices", "give the .h5 that score-particles wrote")
    if not np.isfinite(log_prob).all():
        raise InputError(path, f"{int(np.sum(~np.isfinite(log_prob)))} scores are NaN or infinite", "score the particles again with cryodiff score-particles")
    order = {int(p): i for i, p in enumerate(indices)}
    missing = [int(p) for p in particles if int(p) not in order]
    if missing:
        raise InputError(path, f"has no score for particle {missing[0]} of the run ({len(missing)} missing)", "score the run's own latents: score-particles --run RUN")
    return log_prob[[order[int(p)] for p in particles]]


def score_rows(path: str | Path, particles: np.ndarray, drop_worst: float | None, min_log_prob: float | None) -> np.ndarray:
    """Rows of the run's ``particles`` (particle indices [N]) that survive the score cut:
    ``drop_worst`` percent of them with the lowest log-likelihood in the score file ``path``
    are dropped, or those below ``min_log_prob`` nats."""
    if drop_worst is not None and not 0 <= drop_worst < 100:
        raise InputError("--drop-worst", f"{drop_worst} is not a percentage between 0 and 100", "pass e.g. --drop-worst 5")
    scores = read_scores(path, particles)
    if min_log_prob is None:
        min_log_prob = np.percentile(scores, drop_worst)
    return np.flatnonzero(scores >= min_log_prob)


def run_particles(run, particles_file: str | Path | None = None):
    """The particles of ``run`` opened as it was trained on them (:class:`recon.io.Particles`):
    poses and CTF from its pickles, the box from the stacks, the pixel size of the training
    images. ``particles_file``: the particle file's new path if it moved since training."""
    from recon.io import read_particles

    data = run.config["data"]
    path = particles_file or data.get("particles")
    if not path or not Path(path).is_file():
        raise InputError(path or run.path, "the run's particle file is not found", "pass its current path (select --particles)")
    return read_particles(path, datadir=data.get("datadir"), poses=data.get("poses"), ctf=data.get("ctf"), apix=data.get("apix"))


def chosen_particles(run, rows: np.ndarray, meta) -> np.ndarray:
    """The particle-file positions (sorted, int64) of ``rows`` of ``run``, checked against ``meta``'s length."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise InputError("selection", "the selection is empty", "choose at least one particle")
    chosen = np.sort(np.asarray(run.indices, dtype=np.int64)[rows])
    if chosen[-1] >= len(meta):
        raise InputError(meta.source, f"has {len(meta)} particles but the run used particle {chosen[-1]}", "give the particle file the run was trained on")
    return chosen


def selection_files(star: str | Path, cs: bool) -> list[Path]:
    """What :func:`write_selection` writes for ``star``: the star, ``.ind.txt``, ``.ind.pkl`` (and ``.cs``)."""
    star = Path(star)
    return [star, star.with_suffix(".ind.txt"), star.with_suffix(".ind.pkl")] + ([star.with_suffix(".cs")] if cs else [])


def write_selection(star: str | Path, run, rows: np.ndarray, particles, *, absolute: bool = False, force: bool = False,
                    command: str = "select", inputs: Iterable = ()) -> list[Path]:
    """Write the particles at ``rows`` of ``run`` (``particles`` from :func:`run_particles`), in file order.

    ``star`` (RELION 3.1: image names relative to the star's folder, or absolute with
    ``absolute``; poses, CTF and every other column of the particle file), beside it
    ``.ind.txt`` (0-based positions in the particle file, one per line), ``.ind.pkl`` (the
    same as the pickled int64 array cryoDRGN's ``--ind`` reads) and, when the run was trained
    on a cryoSPARC ``.cs``, ``.cs`` with those rows and every field. Written through the output
    policy (:func:`cryodiff.output_folder.output_files`): never onto an input, an existing file
    only with ``force``. Returns the files written."""
    from recon.io import write_star
    from recon.io.cryosparc import write_cs_subset
    from recon.files import atomic_target
    from recon.io.particles import relocate_image_names

    meta = particles.meta
    chosen = chosen_particles(run, rows, meta)
    files = selection_files(star, meta.source.suffix.lower() == ".cs")
    star, ind_txt, ind_pkl = files[:3]
    protected = [meta.source, run.path / "latents.h5", *particles.images.files, *inputs]
    with output_files(files, command, inputs=protected, force=force):
        write_star(star, relocate_image_names(meta.subset(chosen), star.parent, run.config["data"].get("datadir"), absolute=absolute))
        save_array(ind_txt, chosen, fmt="%d")
        with atomic_target(ind_pkl) as tmp, open(tmp, "wb") as fh:
            pickle.dump(chosen, fh, protocol=4)  # cryoDRGN's --ind format: a pickled int64 array
        if len(files) == 4:
            with atomic_target(files[3]) as tmp:
                write_cs_subset(meta.source, chosen, tmp)
    return files


@dataclass
class SelectionMap:
    """A gold-standard reconstruction of a selection: full and half maps ``[z, y, x]`` (float32, voxel
    ``apix`` Å), the half-map FSC (``freqs`` in cycles/pixel, ``curve``), the resolution in Å at FSC
    0.143 (``None``: not reached below Nyquist; ``inf``: below 0.143 already at the lowest frequency),
    the number of particles and where the half sets came from."""

    volume: np.ndarray
    half1: np.ndarray
    half2: np.ndarray
    apix: float
    freqs: np.ndarray
    curve: np.ndarray
    resolution: float | None
    n_particles: int
    half_source: str

    def describe(self) -> str:
        """``"7.43 Å (FSC 0.143, 1234 particles, halves: rlnRandomSubset)"``."""
        from recon.fsc import describe_resolution

        res = describe_resolution(self.resolution, FSC_THRESHOLD, self.apix)
        return f"{res} (FSC {FSC_THRESHOLD}, {self.n_particles} particles, halves: {self.half_source})"


def half_source(meta) -> str:
    """Which half sets a backprojection of ``meta``'s particles uses, in words."""
    for field in ("rlnRandomSubset", "alignments3D/split"):
        if field in meta.table.columns:
            return field
    return "alternating in file order"


def reconstruct_selection(run, rows: np.ndarray, particles, *, reg: float = 0.1, batch_size: int = 256,
                          progress: Callable[[int], None] | None = None) -> SelectionMap:
    """Backproject the particles at ``rows`` of ``run`` (``particles`` from :func:`run_particles`)
    with the poses and CTF the run was trained with, images inverted as in training; half maps
    follow the file's half sets (:func:`recon.backproject.gold_standard_halves`). ``progress`` is
    called after each batch with the number of images in it."""
    from recon.backproject import backproject, gold_standard_halves
    from recon.fsc import fsc, resolution

    meta = particles.meta
    if meta.apix is None:
        raise InputError(meta.source, "no pixel size for the particles", "train the run with --apix, or give a particle file that states it")
    rotations, shifts = meta.require_poses()
    chosen = chosen_particles(run, rows, meta)
    if len(chosen) < 2:
        raise InputError("selection", f"{len(chosen)} particle cannot fill two half maps", "select at least two particles")
    halves = gold_standard_halves(meta.half_sets(), len(meta), chosen)

    def batches():
        for start in range(0, len(chosen), batch_size):
            idx = chosen[start:start + batch_size]
            yield idx, particles.images[idx]

    rec = backproject(batches(), rotations, shifts, meta.ctf, meta.box, meta.apix, invert=bool(run.config.get("training", {}).get("invert", True)),
                      reg=reg, progress=progress, halves=halves)
    freqs, curve = fsc(rec.half1, rec.half2)
    return SelectionMap(rec.volume, rec.half1, rec.half2, rec.apix, freqs, curve, resolution(freqs, curve, FSC_THRESHOLD, rec.apix),
                        len(chosen), half_source(meta))
