"""Write a complete synthetic data set with ground truth to a folder.

Layout of ``OUTDIR`` (see :mod:`recon.simulate` for the physics)::

    particles.mrcs        noisy particle images, float32 [N, D, D]
    particles.star        RELION 3.1 star (optics table, poses, shifts, CTF)
    volumes/state{i}_subunit{0,1}.mrc   ground-truth maps on a grid of states
    truth.h5              per-particle truth and the volume grid

``truth.h5`` holds ``state`` [N] (continuous coordinate in [0, 1]),
``subunit`` [N] (0/1), ``rotations`` [N, 3, 3], ``shifts_px`` [N, 2] and
``ctf`` [N, 9] (the values written to the star file), with conditions
``condition`` [N] (index into the JSON list in the attribute ``conditions``:
name, mode weights, subunit fraction; the star file's ``rlnGroupName`` holds
the name), and a group
``volumes`` with ``state`` [G], ``subunit`` [G] and ``file`` [G] (paths
relative to ``OUTDIR``). Attributes record box, pixel size, SNR, seed and the
noise standard deviation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from recon.files import atomic_target
from recon.io import ParticleMetadata, write_star, write_volume
from recon.io.mrc import new_stack_mmap
from recon.simulate import GOOD, Condition, ParticleTruth, clean_images, make_molecule, render_volume, sample_truth

#: Particles simulated per chunk (bounds memory for large N).
CHUNK = 500


def write_synthetic_dataset(
    outdir: str | Path,
    n: int = 2000,
    box: int = 64,
    apix: float = 3.0,
    snr: float = 0.1,
    seed: int = 0,
    *,
    subunit_fraction: float = 0.4,
    state: float | None = None,
    junk_fraction: float = 0.0,
    junk_kind: str = "mixed",
    grid: int = 10,
    conditions: list[Condition] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ParticleTruth:
    """Simulate ``n`` particles and write them with their ground truth.

    ``state`` fixes all particles to one conformation (homogeneous data set);
    ``grid`` is the number of states (evenly spaced in [0, 1]) at which
    ground-truth volumes are written, each with and without the subunit.
    ``conditions`` split the particles between :class:`recon.simulate.Condition` s with
    their own state distributions (:func:`recon.simulate.sample_truth`).
    ``junk_fraction`` of the particles are junk of ``junk_kind`` (see
    :func:`recon.simulate.sample_truth`; truth.h5 flags them in ``junk``).
    The noise level is set from the good particles of the first chunk so that
    signal variance / noise variance = ``snr``. Returns the per-particle truth.
    """
    outdir = Path(outdir)
    (outdir / "volumes").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    mol = make_molecule()
    truth = sample_truth(n, box, apix, rng, subunit_fraction=subunit_fraction, state=state,
                         junk_fraction=junk_fraction, junk_kind=junk_kind, conditions=conditions)

    noise_std = None
    with atomic_target(outdir / "particles.mrcs") as tmp:
        with new_stack_mmap(tmp, (n, box, box), apix) as mrc:
            for start in range(0, n, CHUNK):
                idx = np.arange(start, min(start + CHUNK, n))
                clean = clean_images(mol, truth, idx, box).numpy()
                if noise_std is None:
                    good = clean[truth.junk[idx] == GOOD]
                    noise_std = float(np.sqrt((good if len(good) else clean).var() / snr))
                mrc.data[idx] = clean + rng.normal(0.0, noise_std, clean.shape)
                if progress is not None:
                    progress(len(idx))

    meta = ParticleMetadata(
        rotations=truth.rotations,
        shifts_px=truth.shifts_px,
        ctf=truth.ctf,
        apix=apix,
        box=box,
        image_names=[f"{i + 1:06d}@particles.mrcs" for i in range(n)],
        source=outdir / "particles.star",
        table=pd.DataFrame(index=range(n)) if truth.condition is None else
        pd.DataFrame({"rlnGroupName": [conditions[k].name for k in truth.condition]}),
    )
    write_star(outdir / "particles.star", meta)

    grid_states = np.linspace(0.0, 1.0, grid) if state is None else np.array([state])
    files, states, subunits = [], [], []
    for i, s in enumerate(grid_states):
        for sub in (0, 1):
            name = f"volumes/state{i:02d}_subunit{sub}.mrc"
            write_volume(outdir / name, render_volume(mol, float(s), bool(sub), box), apix)
            files.append(name)
            states.append(s)
            subunits.append(sub)

    with atomic_target(outdir / "truth.h5") as tmp, h5py.File(tmp, "w") as h5:
        h5["state"] = truth.states
        h5["subunit"] = truth.subunit.astype(np.uint8)
        h5["rotations"] = truth.rotations
        h5["shifts_px"] = truth.shifts_px
        h5["ctf"] = truth.ctf
        h5["junk"] = truth.junk
        if truth.condition is not None:
            h5["condition"] = truth.condition.astype(np.int32)
            h5.attrs["conditions"] = json.dumps([dataclasses.asdict(c) for c in conditions])
        vol = h5.create_group("volumes")
        vol["state"] = np.array(states)
        vol["subunit"] = np.array(subunits, dtype=np.uint8)
        vol["file"] = np.array(files, dtype=h5py.string_dtype())
        h5.attrs.update(box=box, apix=apix, snr=snr, seed=seed, noise_std=noise_std, n=n)
    return truth


def read_truth(path: str | Path) -> dict:
    """Read ``truth.h5`` into a dict of numpy arrays (volume files as str)."""
    with h5py.File(path, "r") as h5:
        out = {k: h5[k][()] for k in ("state", "subunit", "rotations", "shifts_px", "ctf")}
        out["junk"] = h5["junk"][()] if "junk" in h5 else np.zeros(len(out["state"]), np.uint8)
        if "condition" in h5:
            out["condition"] = h5["condition"][()]
        out["volumes"] = {k: h5["volumes"][k][()] for k in ("state", "subunit")}
        out["volumes"]["file"] = [f.decode() for f in h5["volumes"]["file"][()]]
        out.update(h5.attrs)
    if "conditions" in out:
        out["conditions"] = json.loads(out["conditions"])
    return out
