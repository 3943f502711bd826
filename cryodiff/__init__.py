"""cryodiff: learn and explore the landscape of shapes of a flexible molecule
from cryo-EM particle images."""

__version__ = "0.1.0"

__all__ = ["load_prior", "load_run"]


def __getattr__(name: str):
    """``cryodiff.load_prior`` and ``cryodiff.load_run`` for notebooks, imported
    on first use so that ``import cryodiff`` (and the command line) stays light."""
    if name == "load_prior":
        from cryodiff.prior import load_prior

        return load_prior
    if name == "load_run":
        from recon.run import load_run

        return load_run
    raise AttributeError(f"module 'cryodiff' has no attribute {name!r}")
