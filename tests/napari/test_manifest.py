"""The npe2 manifest: valid, importable, and declaring what the plugin offers (``npe2 validate cryodiff --imports``)."""

from npe2 import PluginManifest


def test_manifest_validates_and_imports():
    manifest = PluginManifest.from_distribution("cryodiff")
    manifest.validate_imports()  # every python_name resolves
    contributions = manifest.contributions
    patterns = {p for reader in contributions.readers for p in reader.filename_patterns}
    assert {"*.mrc", "*.mrcs", "*.star", "*.cs", "config.json"} <= patterns
    assert any(reader.accepts_directories for reader in contributions.readers)
    assert [w.filename_extensions for w in contributions.writers] == [[".mrc"]]
    assert [w.display_name for w in contributions.widgets] == ["Latent explorer"]


def test_sample_data_opens_in_the_viewer(make_napari_viewer):
    """File > Open Sample: the three true states step along the first axis, the particles are noisy
    images; both carry their pixel size (3 Å) as scale."""
    import numpy as np

    viewer = make_napari_viewer()
    viewer.open_sample("cryodiff", "three_states")
    viewer.open_sample("cryodiff", "noisy_particles")
    states, particles = viewer.layers["cryodiff: three states"], viewer.layers["cryodiff: noisy particles"]
    assert states.data.shape == (3, 64, 64, 64) and tuple(states.scale) == (1.0, 3.0, 3.0, 3.0)
    assert not np.allclose(states.data[0], states.data[2])  # different conformations
    assert particles.data.shape == (200, 64, 64) and tuple(particles.scale) == (1.0, 3.0, 3.0)


def test_hub_metadata():
    from importlib.metadata import metadata

    assert "Framework :: napari" in metadata("cryodiff").get_all("Classifier")
