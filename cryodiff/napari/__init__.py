"""cryodiff in napari: open particles, volumes and runs; explore the latent landscape; play paths.

Declared to napari by ``napari.yaml`` (npe2) through the ``napari.manifest``
entry point; install with ``pip install "cryodiff[napari]"``. Contributions:

* readers (:mod:`cryodiff.napari._reader`): ``.mrc``/``.map`` volumes,
  ``.mrcs`` stacks (lazy), RELION ``.star`` and cryoSPARC ``.cs`` particle
  files, cryodiff run directories;
* writer (:mod:`cryodiff.napari._writer`): an image layer as ``.mrc`` with
  its scale as voxel size;
* widget "Latent explorer" (:mod:`cryodiff.napari._widget`).

Every volume is ``[z, y, x]`` with its voxel size in Å as the layer scale.
"""
