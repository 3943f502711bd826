"""Conditioning: embedders turn a batch's conditions into the ``cond`` dict networks read.

The dict has up to three entries, each with leading dimension ``N``:

* ``"vector"`` ``[N, D]``: global conditions (a class, scalars such as a crop
  offset or an fps label, a pooled text embedding); embedders' outputs are
  concatenated along ``D``;
* ``"tokens"`` ``[N, L, D]``: sequences for cross- or joint attention (text
  tokens); concatenated along ``L`` (equal ``D`` required);
* ``"concat"`` ``[N, C, ...]``: maps stacked onto the network's input channels
  (a conditioning frame's latent); concatenated along ``C``.

A :class:`Conditioner` holds embedders, each reading one key of the batch dict
and writing one of those entries (or several: :class:`TextEmbedder` writes the
text's tokens and its pooled vector), each with its own drop rate: during
training an example's embedding (all of its parts) is replaced by zeros with
that probability (per embedder, independently), so one network learns the
conditional and the unconditional model for classifier-free guidance
(:func:`cfg`). SDXL's conditioning is a :class:`TextEmbedder` plus one
:class:`ScalarEmbedder` each for the original size, the crop's top-left corner
and the target size (``[N, 2]`` each), its ``"vector"`` the pooled text followed
by the sinusoidal embeddings of the six scalars. As in
Stability's ``sgm`` ``GeneralConditioner``, the unconditional branch is the
zero embedding: :meth:`Conditioner.unconditional` zeroes exactly the named
keys and keeps the others (e.g. guidance on the text but not on the image size).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .blocks.embeddings import sinusoidal
from .text import TextEncoder

#: The entries of a ``cond`` dict and the dimension their parts are concatenated along.
OUTPUTS = {"vector": 1, "tokens": 1, "concat": 1}


class Embedder(nn.Module):
    """One condition: reads ``batch[key]`` and returns a tensor for entry ``output`` of the cond dict, or,
    when ``output`` is a tuple of entries, a dict ``{entry: tensor}`` with exactly those entries;
    ``drop_rate``: probability that training replaces an example's embedding (every part) with zeros."""

    def __init__(self, key: str, output: str | tuple[str, ...], drop_rate: float = 0.0):
        super().__init__()
        outputs = (output,) if isinstance(output, str) else tuple(output)
        for name in outputs:
            if name not in OUTPUTS:
                raise ValueError(f"unknown output {name!r}; choose from {tuple(OUTPUTS)}")
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"drop_rate {drop_rate} is not a probability")
        self.key, self.outputs, self.drop_rate = key, outputs, drop_rate

    def parts(self, value) -> dict[str, torch.Tensor]:
        """``{output: embedding}`` of ``value``, checked against the declared outputs."""
        embs = self(value)
        if not isinstance(embs, dict):
            embs = {self.outputs[0]: embs}
        if set(embs) != set(self.outputs):
            raise ValueError(f"the embedder of {self.key!r} returned {sorted(embs)}, not its outputs {sorted(self.outputs)}")
        return embs


class ClassEmbedder(Embedder):
    """Integer labels ``[N]`` in ``[0, num_classes)`` -> learned vectors ``[N, dim]`` (``"vector"``)."""

    def __init__(self, key: str, num_classes: int, dim: int, drop_rate: float = 0.0):
        super().__init__(key, "vector", drop_rate)
        self.table = nn.Embedding(num_classes, dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.table(labels.long())


class ScalarEmbedder(Embedder):
    """Several scalars ``[N, k]`` (e.g. original size, crop top/left, fps) -> each embedded with
    :func:`sinusoidal` to ``dim`` values and concatenated, ``[N, k * dim]`` (``"vector"``); no parameters."""

    def __init__(self, key: str, dim: int, drop_rate: float = 0.0):
        super().__init__(key, "vector", drop_rate)
        if dim % 2:
            raise ValueError(f"dim {dim} must be even")
        self.dim = dim

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        values = values.reshape(len(values), -1)
        return torch.cat([sinusoidal(values[:, j], self.dim) for j in range(values.shape[1])], dim=1)


class Identity(Embedder):
    """A tensor given as it is (precomputed text tokens, an image latent to concatenate)."""

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value


class TextEmbedder(Embedder):
    """Token ids ``[N, L]`` -> a :class:`generative.text.TextEncoder`'s ``tokens`` ``[N, L, dim]``
    (``"tokens"``) and ``pooled`` ``[N, dim]`` (``"vector"``), dropped and zeroed together."""

    def __init__(self, key: str, encoder: TextEncoder, drop_rate: float = 0.0):
        super().__init__(key, ("tokens", "vector"), drop_rate)
        self.encoder = encoder

    def forward(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens, pooled = self.encoder(ids)
        return {"tokens": tokens, "vector": pooled}


class Conditioner(nn.Module):
    """Embedders -> the ``cond`` dict (see module doc).

    ``conditioner(batch, generator=None)`` embeds ``batch[embedder.key]`` with every embedder and,
    in training mode, zeroes each example's embedding with the embedder's drop rate (random
    numbers from ``generator``); in eval mode nothing is dropped.
    """

    def __init__(self, embedders: Iterable[Embedder]):
        super().__init__()
        self.embedders = nn.ModuleList(embedders)
        keys = [e.key for e in self.embedders]
        if len(set(keys)) != len(keys):
            raise ValueError(f"two embedders read the same key: {keys}")

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        return self._embed(batch, zero=(), generator=generator)

    def unconditional(self, batch: dict, zero: Iterable[str] | None = None) -> dict:
        """The cond dict with the embeddings of the keys in ``zero`` (default: every embedder whose drop
        rate is above 0, the conditions guidance acts on) replaced by zeros, nothing dropped at random."""
        if zero is None:
            zero = [e.key for e in self.embedders if e.drop_rate > 0]
        zero = set(zero)
        unknown = zero - {e.key for e in self.embedders}
        if unknown:
            raise ValueError(f"no embedder reads {sorted(unknown)}")
        return self._embed(batch, zero=zero, generator=None, drop=False)

    def _embed(self, batch: dict, zero, generator, drop: bool | None = None) -> dict:
        drop = self.training if drop is None else drop
        parts: dict[str, list[torch.Tensor]] = {}
        for embedder in self.embedders:
            if embedder.key not in batch:
                raise KeyError(f"the batch has no {embedder.key!r} (keys: {sorted(batch)})")
            embs = embedder.parts(batch[embedder.key])
            if embedder.key in zero:
                embs = {name: torch.zeros_like(emb) for name, emb in embs.items()}
            elif drop and embedder.drop_rate > 0:
                first = embs[embedder.outputs[0]]
                keep = torch.rand(len(first), generator=generator, device=first.device) >= embedder.drop_rate
                embs = {name: emb * keep.reshape(-1, *([1] * (emb.ndim - 1))).to(emb.dtype)
                        for name, emb in embs.items()}
            for name in embedder.outputs:
                parts.setdefault(name, []).append(embs[name])
        return {name: torch.cat(tensors, dim=OUTPUTS[name]) for name, tensors in parts.items()}


def cfg(denoise, uncond: dict, scale: float | torch.Tensor):
    """Classifier-free guidance on a conditional denoiser ``denoise(x, sigma, cond)``:
    ``D(x, sigma, uncond) + scale (D(x, sigma, cond) - D(x, sigma, uncond))``, as a denoiser
    ``(x, sigma, cond) -> x0_hat`` for any solver (pass ``cond=`` to :func:`generative.sample`).
    ``uncond`` is :meth:`Conditioner.unconditional` of the same batch; scale 1 is the conditional
    model, 0 the unconditional one. A tensor ``scale`` broadcasts against ``x``, e.g. one scale
    per frame of clips (:func:`frame_guidance`)."""

    def guided_denoise(x, sigma, cond):
        d_u = denoise(x, sigma, uncond)
        return d_u + scale * (denoise(x, sigma, cond) - d_u)

    return guided_denoise


def frame_guidance(frames: int, first: float, last: float) -> torch.Tensor:
    """Guidance scales rising linearly from ``first`` (frame 0) to ``last`` (frame ``T - 1``), shaped
    ``[1, T, 1, 1, 1]`` to scale clips ``[N, T, C, H, W]`` in :func:`cfg`. Stable Video Diffusion
    samples image-to-video this way: frames near the conditioning frame need little guidance."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, not {frames}")
    return torch.linspace(first, last, frames).reshape(1, frames, 1, 1, 1)
