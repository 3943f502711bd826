"""Sample data for napari's File > Open Sample menu: the simulated flexible molecule that
``cryodiff demo`` and ``cryodiff simulate`` use, made on the spot (no download).

* *cryodiff: three states* – the ground-truth density of the molecule's three states
  (``recon.simulate.STATE_MODES``, subunit bound), box 64 at 3 Å/px, as one 4-D layer
  ``[state, z, y, x]``: the slider steps through the conformations.
* *cryodiff: noisy particles* – 200 particle images of the same molecule (random poses,
  shifts, CTF, SNR 0.1), box 64 at 3 Å/px, ``[particle, y, x]``.

Every layer carries its pixel size in Å as its scale, like the readers' layers.
"""

from __future__ import annotations

import numpy as np

BOX, APIX = 64, 3.0


def three_states() -> list[tuple]:
    from recon.simulate import STATE_MODES, make_molecule, render_volume

    mol = make_molecule()
    volumes = np.stack([render_volume(mol, mode, True, BOX) for mode, _, _ in STATE_MODES])
    return [(volumes, {"name": "cryodiff: three states", "scale": (1.0, APIX, APIX, APIX), "colormap": "gray",
                       "rendering": "iso", "iso_threshold": 0.3,
                       "axis_labels": ("state", "z", "y", "x")}, "image")]


def noisy_particles(n: int = 200, snr: float = 0.1, seed: int = 0) -> list[tuple]:
    from recon.simulate import clean_images, make_molecule, sample_truth

    rng = np.random.default_rng(seed)
    truth = sample_truth(n, BOX, APIX, rng)
    clean = clean_images(make_molecule(), truth, np.arange(n), BOX).numpy()
    noisy = clean + rng.normal(0.0, np.sqrt(clean.var() / snr), clean.shape)
    return [(noisy.astype(np.float32), {"name": "cryodiff: noisy particles", "scale": (1.0, APIX, APIX), "colormap": "gray",
                                         "axis_labels": ("particle", "y", "x")}, "image")]
