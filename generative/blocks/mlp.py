"""The residual MLP for vector data (the latent prior's network).

Networks take ``(x [N, d], c_noise [N][, cond])`` where ``c_noise`` is the scalar
noise conditioning chosen by the preconditioning (e.g. ``log(sigma) / 4`` for EDM
or the flow time t in [0, 1]) and ``cond`` an optional dict; a network built with
``classes`` reads ``cond["class"]``: class indices ``[N]`` (or one 0-d index for
the whole batch), where index ``classes`` (or no ``cond``) is the null class of
classifier-free guidance.
"""

import torch

from torch import nn

from .embeddings import FourierEmbedding


class ResidualBlock(nn.Module):
    """``h + Linear(SiLU(Linear(SiLU(LayerNorm(h)) + emb))))``, zero-initialised output."""

    def __init__(self, hidden, embed_dim):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h, emb):
        u = self.fc1(nn.functional.silu(self.norm(h))) + self.emb(emb)
        return h + self.fc2(nn.functional.silu(u))


class ResidualMLP(nn.Module):
    """Residual MLP ``(x [N, dim], c_noise [N]) -> [N, out_dim]`` with a Fourier embedding of ``c_noise``.

    ``out_dim`` defaults to ``dim`` (a denoiser or velocity); CLD's velocity-score
    network sees ``(x, v)`` (``dim = 2 d``) and returns ``d`` values.
    """

    def __init__(self, dim, hidden=128, depth=3, embed_dim=64, embed_scale=4.0, out_dim=None, classes=0):
        super().__init__()
        self.embed = nn.Sequential(FourierEmbedding(embed_dim, embed_scale),
                                   nn.Linear(embed_dim, embed_dim), nn.SiLU())
        self.num_classes = classes
        if classes:  # one more row: the null class; added to the noise embedding
            self.classes = nn.Embedding(classes + 1, embed_dim)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, embed_dim) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, out_dim or dim))

    def forward(self, x, c_noise, cond=None):
        dtype = x.dtype
        x = x.to(self.inp.weight.dtype)
        emb = self.embed(c_noise)
        if self.num_classes:
            label = torch.tensor(self.num_classes) if cond is None else torch.as_tensor(cond["class"])
            emb = emb + self.classes(label.to(emb.device).long().expand(len(x)))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h).to(dtype)
