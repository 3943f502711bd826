"""The npe2 manifest: valid, importable, and declaring what the plugin offers (``npe2 validate cryodiff --imports``)."""

from npe2 import PluginManifest


def test_manifest_validates_and_imports():
    manifest = PluginManifest.from_distribution("cryodiff")
    manifest.validate_imports()  # every python_name resolves
    contributions = manifest.contributions
    patterns = {p for reader in contributions.readers for p in reader.filename_patterns}
    assert {"*.mrc", "*.mrcs", "*.star", "*.cs"} <= patterns
    assert any(reader.accepts_directories for reader in contributions.readers)
    assert [w.filename_extensions for w in contributions.writers] == [[".mrc"]]
    assert [w.display_name for w in contributions.widgets] == ["Latent explorer"]
