"""Network blocks shared by the engine's models.

* :mod:`.embeddings`: Fourier and sinusoidal embeddings of scalars;
* :mod:`.attention`: self, cross and joint (MMDiT) attention with optional QK-norm;
* :mod:`.modulation`: adaLN-Zero;
* :mod:`.mlp`: the residual MLP for vectors;
* :mod:`.unet`: the image UNet.
"""

from .attention import Attention, JointAttention, QKNorm
from .embeddings import FourierEmbedding, sinusoidal
from .mlp import ResidualBlock, ResidualMLP
from .modulation import AdaLNZero, modulate
from .unet import UNet

__all__ = ["AdaLNZero", "Attention", "FourierEmbedding", "JointAttention", "QKNorm", "ResidualBlock", "ResidualMLP",
           "UNet", "modulate", "sinusoidal"]
