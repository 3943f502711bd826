"""cryodiff: learn and explore the landscape of shapes of a flexible molecule
from cryo-EM particle images."""

__version__ = "0.1.0"
