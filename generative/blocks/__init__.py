"""Network blocks shared by the engine's models.

* :mod:`.embeddings`: Fourier and sinusoidal embeddings of scalars;
* :mod:`.attention`: self, cross and joint (MMDiT) attention with optional QK-norm;
* :mod:`.modulation`: adaLN-Zero;
* :mod:`.mlp`: the residual MLP for vectors;
* :mod:`.transformer`: the pre-LayerNorm transformer block (self-, cross-attention, MLP);
* :mod:`.unet`: the image UNet (SDXL-style cross-attention and micro-conditioning);
* :mod:`.mmdit`: SD3's multimodal diffusion transformer.
"""

from .attention import Attention, JointAttention, QKNorm
from .embeddings import FourierEmbedding, sinusoidal
from .mlp import ResidualBlock, ResidualMLP
from .mmdit import MMDiT
from .modulation import AdaLNZero, modulate
from .transformer import TransformerBlock
from .unet import UNet

__all__ = ["AdaLNZero", "Attention", "FourierEmbedding", "JointAttention", "MMDiT", "QKNorm", "ResidualBlock", "ResidualMLP",
           "TransformerBlock", "UNet", "modulate", "sinusoidal"]
