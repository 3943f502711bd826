"""cryoDRGN-style reconstruction core: particle I/O, Fourier primitives, CTF,
simulation with ground truth, homogeneous backprojection and FSC.

This package knows nothing about diffusion models (``generative``) or the
product layer (``cryodiff``) and never imports them.
"""

from recon.errors import InputError

__all__ = ["InputError"]
